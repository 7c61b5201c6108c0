//! Parsing manifests and indexes into what the registry must check and index:
//! the media type, the blobs and child manifests they reference, the subject
//! (for the referrers API) and the artifact type.
//!
//! The raw bytes are never re-serialised: the registry stores and serves exactly
//! what was pushed; this module only reads them.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::Digest;
use crate::json_limits::{self, JsonLimitError, JsonLimits};
use crate::media::{self, ManifestKind};

/// The largest manifest accepted, as in the distribution spec's recommendation.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("manifest schemaVersion must be 2")]
    SchemaVersion,
    #[error("Docker schema 1 manifests are not supported")]
    Schema1,
    #[error("manifest media type {0:?} is not a manifest or index type")]
    UnknownMediaType(String),
    #[error("manifest mediaType field {field:?} does not match Content-Type {header:?}")]
    MediaTypeMismatch { field: String, header: String },
    #[error("manifest of type {0} lacks its required {1:?} field")]
    MissingField(&'static str, &'static str),
    #[error("descriptor {0}")]
    BadDescriptor(String),
    #[error("manifest is larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge,
    /// Too deep or too many elements (see [`crate::json_limits`]): refused before parsing.
    #[error("manifest is refused: {0}")]
    Limits(#[from] JsonLimitError),
}

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

impl Descriptor {
    /// True for a layer whose bytes are not expected in the registry.
    pub fn is_non_distributable(&self) -> bool {
        media::NON_DISTRIBUTABLE.contains(&self.media_type.as_str())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// What the registry needs to know about a pushed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    /// The effective media type: the `mediaType` field, else the upload's Content-Type.
    pub media_type: String,
    pub kind: ManifestKind,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    /// `artifactType`, else (for image manifests) the config media type: what the referrers API reports.
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ParsedManifest {
    /// Blobs that must be present in the repository before this manifest is accepted.
    pub fn required_blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(
            self.layers
                .iter()
                .filter(|d| !(d.is_non_distributable() && d.urls.is_some())),
        )
    }

    /// Child manifests that must be present (indexes only).
    pub fn required_manifests(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifests.iter()
    }
}

/// Parses manifest bytes as pushed with the given `Content-Type` header (if any).
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<ParsedManifest, ManifestError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge);
    }
    let header = content_type.map(media::essence).filter(|h| !h.is_empty());
    if matches!(
        header,
        Some(media::DOCKER_SCHEMA1 | media::DOCKER_SCHEMA1_SIGNED)
    ) {
        return Err(ManifestError::Schema1);
    }
    json_limits::check(bytes, JsonLimits::DOCUMENT)?;
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    match raw.schema_version.as_ref().and_then(|v| v.as_i64()) {
        Some(2) => {}
        Some(1) => return Err(ManifestError::Schema1),
        _ => return Err(ManifestError::SchemaVersion),
    }

    let media_type = match (&raw.media_type, header) {
        (Some(field), Some(h)) if media::manifest_kind(h).is_some() && field != h => {
            return Err(ManifestError::MediaTypeMismatch {
                field: field.clone(),
                header: h.to_string(),
            })
        }
        (Some(field), _) => field.clone(),
        (None, Some(h)) if media::manifest_kind(h).is_some() => h.to_string(),
        (None, _) => {
            if raw.manifests.is_some() {
                media::OCI_INDEX.to_string()
            } else {
                media::OCI_MANIFEST.to_string()
            }
        }
    };
    if matches!(
        media_type.as_str(),
        media::DOCKER_SCHEMA1 | media::DOCKER_SCHEMA1_SIGNED
    ) {
        return Err(ManifestError::Schema1);
    }
    let kind = media::manifest_kind(&media_type)
        .ok_or_else(|| ManifestError::UnknownMediaType(media_type.clone()))?;

    let parsed = match kind {
        ManifestKind::Image => {
            let config = raw
                .config
                .ok_or(ManifestError::MissingField("image manifest", "config"))?;
            let layers = match raw.layers {
                Some(l) => l,
                None if media_type == media::OCI_MANIFEST => {
                    return Err(ManifestError::MissingField("image manifest", "layers"))
                }
                None => Vec::new(),
            };
            let artifact_type = raw
                .artifact_type
                .clone()
                .or_else(|| Some(config.media_type.clone()));
            ParsedManifest {
                media_type,
                kind,
                config: Some(config),
                layers,
                manifests: Vec::new(),
                subject: raw.subject,
                artifact_type,
                annotations: raw.annotations,
            }
        }
        ManifestKind::Index => {
            let manifests = raw
                .manifests
                .ok_or(ManifestError::MissingField("index", "manifests"))?;
            ParsedManifest {
                media_type,
                kind,
                config: None,
                layers: Vec::new(),
                manifests,
                subject: raw.subject,
                artifact_type: raw.artifact_type,
                annotations: raw.annotations,
            }
        }
    };
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    const L1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(media_type_field: bool) -> String {
        let mt = if media_type_field {
            format!("\"mediaType\":\"{}\",", media::OCI_MANIFEST)
        } else {
            String::new()
        };
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CFG}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{L1}","size":0}}]}}"#
        )
    }

    #[test]
    fn image_manifest_with_field() {
        let p = parse(image(true).as_bytes(), Some(media::OCI_MANIFEST)).unwrap();
        assert_eq!(p.kind, ManifestKind::Image);
        assert_eq!(p.required_blobs().count(), 2);
        assert_eq!(
            p.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn media_type_from_content_type_when_field_absent() {
        let p = parse(image(false).as_bytes(), Some(media::DOCKER_MANIFEST)).unwrap();
        assert_eq!(p.media_type, media::DOCKER_MANIFEST);
        let p = parse(image(false).as_bytes(), Some("application/json")).unwrap();
        assert_eq!(p.media_type, media::OCI_MANIFEST);
    }

    #[test]
    fn mismatch_between_field_and_header_is_rejected() {
        let e = parse(image(true).as_bytes(), Some(media::DOCKER_MANIFEST)).unwrap_err();
        assert!(matches!(e, ManifestError::MediaTypeMismatch { .. }));
    }

    #[test]
    fn index_with_subject_and_artifact_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/x.sig",
            "manifests":[{{"mediaType":"{}","digest":"{L1}","size":10,"platform":{{"os":"linux","architecture":"amd64"}}}}],
            "subject":{{"mediaType":"{}","digest":"{CFG}","size":3}}}}"#,
            media::OCI_INDEX,
            media::OCI_MANIFEST,
            media::OCI_MANIFEST
        );
        let p = parse(body.as_bytes(), None).unwrap();
        assert_eq!(p.kind, ManifestKind::Index);
        assert_eq!(p.required_manifests().count(), 1);
        assert_eq!(p.subject.unwrap().digest.to_string(), CFG);
        assert_eq!(p.artifact_type.as_deref(), Some("application/x.sig"));
    }

    #[test]
    fn bad_inputs() {
        assert!(matches!(parse(b"{", None), Err(ManifestError::Json(_))));
        assert!(matches!(parse(b"[]", None), Err(ManifestError::Json(_))));
        assert!(matches!(
            parse(br#"{"schemaVersion":1}"#, None),
            Err(ManifestError::Schema1)
        ));
        assert!(matches!(
            parse(br#"{"schemaVersion":3}"#, None),
            Err(ManifestError::SchemaVersion)
        ));
        assert!(matches!(
            parse(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None),
            Err(ManifestError::UnknownMediaType(_))
        ));
        assert!(matches!(
            parse(
                format!(
                    r#"{{"schemaVersion":2,"mediaType":"{}"}}"#,
                    media::OCI_MANIFEST
                )
                .as_bytes(),
                None
            ),
            Err(ManifestError::MissingField(..))
        ));
        let bad_digest = r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:nope","size":1},"layers":[]}"#;
        assert!(parse(bad_digest.as_bytes(), None).is_err());
        // 100,000 levels in a member serde would skip without limit.
        let deep = format!(
            r#"{{"schemaVersion":2,"x":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            parse(deep.as_bytes(), None),
            Err(ManifestError::Limits(JsonLimitError::TooDeep { max: 64 }))
        );
        let wide = format!(r#"{{"schemaVersion":2,"x":[{}0]}}"#, "0,".repeat(20_000));
        assert!(matches!(
            parse(wide.as_bytes(), None),
            Err(ManifestError::Limits(
                JsonLimitError::TooManyElements { .. }
            ))
        ));
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert_eq!(parse(&big, None), Err(ManifestError::TooLarge));
    }

    #[test]
    fn foreign_layers_are_not_required() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x","digest":"{CFG}","size":2}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{L1}","size":5,"urls":["https://example.invalid/x"]}}]}}"#,
            media::DOCKER_MANIFEST
        );
        let p = parse(body.as_bytes(), None).unwrap();
        assert_eq!(p.required_blobs().count(), 1);
    }
}
