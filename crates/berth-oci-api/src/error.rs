//! The one place where domain errors become OCI wire errors: a status, a spec error
//! code and the JSON body `{"errors":[{"code","message","detail"}]}`.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

use berth_registry::RegistryError;
use berth_types::ManifestError;

/// An error as it goes on the wire.
#[derive(Debug)]
pub struct OciError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<Box<serde_json::Value>>,
    /// Extra response headers (e.g. `Range` on a 416 during an upload).
    pub headers: Vec<(&'static str, String)>,
}

impl OciError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        OciError {
            status,
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(Box::new(detail));
        self
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn name_invalid(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "NAME_INVALID", msg)
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
    }
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "the method is not allowed on this endpoint",
        )
    }
}

/// Maps a domain error to the wire. `request_id` goes into the message of internal
/// errors, whose cause chain is logged but never sent.
pub fn from_registry(e: RegistryError, request_id: &str) -> OciError {
    use RegistryError as E;
    use StatusCode as S;
    let msg = e.to_string();
    match e {
        E::RepositoryNotFound(_) => OciError::new(S::NOT_FOUND, "NAME_UNKNOWN", msg),
        E::InvalidName(_) => OciError::new(S::BAD_REQUEST, "NAME_INVALID", msg),
        E::BlobNotFound(d) => OciError::new(S::NOT_FOUND, "BLOB_UNKNOWN", msg)
            .with_detail(serde_json::json!({ "digest": d.to_string() })),
        E::UploadNotFound(_) => OciError::new(S::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", msg),
        E::UploadInvalid(_) => OciError::new(S::BAD_REQUEST, "BLOB_UPLOAD_INVALID", msg),
        E::UploadOutOfOrder { current, .. } => {
            OciError::new(S::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID", msg)
                .with_header("range", &crate::headers::upload_range(current))
        }
        E::InvalidDigest(_) | E::DigestMismatch { .. } => {
            OciError::new(S::BAD_REQUEST, "DIGEST_INVALID", msg)
        }
        E::SizeInvalid(_) => OciError::new(S::BAD_REQUEST, "SIZE_INVALID", msg),
        E::InvalidTag(_) => OciError::new(S::BAD_REQUEST, "MANIFEST_INVALID", msg),
        E::ManifestNotFound(_) => OciError::new(S::NOT_FOUND, "MANIFEST_UNKNOWN", msg),
        E::ManifestInvalid(ManifestError::TooLarge) => {
            OciError::new(S::PAYLOAD_TOO_LARGE, "SIZE_INVALID", msg)
        }
        E::ManifestInvalid(ManifestError::Schema1) => {
            OciError::new(S::BAD_REQUEST, "MANIFEST_INVALID", msg)
        }
        E::ManifestInvalid(_) => OciError::new(S::BAD_REQUEST, "MANIFEST_INVALID", msg),
        E::ManifestBlobUnknown(d) | E::ManifestChildUnknown(d) => {
            OciError::new(S::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN", msg)
                .with_detail(serde_json::json!({ "digest": d.to_string() }))
        }
        // The spec's code for a manifest that fails the registry's checks; the detail
        // names the blob and both sizes.
        E::DescriptorSizeMismatch {
            digest,
            declared,
            stored,
        } => OciError::new(S::BAD_REQUEST, "MANIFEST_INVALID", msg).with_detail(
            serde_json::json!({ "digest": digest.to_string(), "size": declared, "storedSize": stored }),
        ),
        // The spec's answer for a DELETE the registry does not allow is 405 (zot answers
        // 405 too, with DENIED, which would send users to their credentials).
        E::BlobReferenced { digest, manifest } => {
            OciError::new(S::METHOD_NOT_ALLOWED, "UNSUPPORTED", msg).with_detail(
                serde_json::json!({ "digest": digest.to_string(), "manifest": manifest.to_string() }),
            )
        }
        // 409: the delete conflicts with the manifest's state (an index still lists it),
        // and a later delete of the index makes it possible. The spec has no code for
        // "still referenced"; UNSUPPORTED with the index named says what was refused,
        // where DENIED (what this was before) sends users to their credentials.
        E::ManifestReferenced { digest, index } => {
            OciError::new(S::CONFLICT, "UNSUPPORTED", msg).with_detail(
                serde_json::json!({ "digest": digest.to_string(), "index": index.to_string() }),
            )
        }
        // ECR answers docker `400 TAG_INVALID` (a code of the old Docker spec, not of the
        // OCI spec); MANIFEST_INVALID is the spec code for "this manifest PUT is refused
        // as given", and clients print the message ("manifest invalid: The image tag ...").
        E::TagImmutable { .. } => OciError::new(S::BAD_REQUEST, "MANIFEST_INVALID", msg),
        E::Unsupported(_) => OciError::new(S::METHOD_NOT_ALLOWED, "UNSUPPORTED", msg),
        // Archived content is "not available here" to a client (404, as docker and podman
        // print `manifest unknown: <message>`), with a message saying how to restore it;
        // DENIED would send users to their credentials (see docs/ARCHITECTURE.md).
        E::ImageArchived { .. } => OciError::new(S::NOT_FOUND, "MANIFEST_UNKNOWN", msg),
        E::BlobArchived(d) => OciError::new(S::NOT_FOUND, "BLOB_UNKNOWN", msg)
            .with_detail(serde_json::json!({ "digest": d.to_string() })),
        E::StorageClassUnchanged(_) => OciError::new(S::CONFLICT, "UNSUPPORTED", msg),
        E::RangeNotSatisfiable { size, .. } => {
            OciError::new(S::RANGE_NOT_SATISFIABLE, "SIZE_INVALID", msg)
                .with_header("content-range", &format!("bytes */{size}"))
        }
        E::BlobBeingDeleted(_) => OciError::new(S::SERVICE_UNAVAILABLE, "UNAVAILABLE", msg)
            .with_header("retry-after", "60"),
        E::StorageFull => OciError::new(
            S::INSUFFICIENT_STORAGE,
            "UNKNOWN",
            "the registry's storage is full; nothing was written",
        ),
        E::Internal(source) => {
            let mut chain = String::new();
            let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
            while let Some(c) = cur {
                if !chain.is_empty() {
                    chain.push_str(": ");
                }
                chain.push_str(&c.to_string());
                cur = c.source();
            }
            tracing::error!(request_id, error = %chain, "internal error");
            OciError::new(
                S::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                format!("internal error (request id {request_id})"),
            )
        }
    }
}

#[derive(serde::Serialize)]
struct WireError<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a serde_json::Value>,
}

#[derive(serde::Serialize)]
struct WireErrors<'a> {
    errors: [WireError<'a>; 1],
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&WireErrors {
            errors: [WireError {
                code: self.code,
                message: &self.message,
                detail: self.detail.as_deref(),
            }],
        })
        .unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        resp.extensions_mut()
            .insert(berth_types::telemetry::ErrorCode(self.code));
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (k, v) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(*k, v);
            }
        }
        resp
    }
}
