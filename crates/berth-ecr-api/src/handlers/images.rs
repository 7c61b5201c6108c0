//! The image actions: PutImage, BatchGetImage, BatchDeleteImage, DescribeImages,
//! ListImages, ListImageReferrers, with the botocore model's shapes, per-item failures
//! and exceptions. Every fact they report was computed at push time and is read with one
//! indexed, paginated query (see `MetaStore::describe_images`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use berth_meta::archive::{ImageStatus, ImageStorage};
use berth_meta::{DeleteImageOutcome, ImageId, ImageRecord, TagStatus};
use berth_registry::RegistryError;
use berth_types::{Digest, Reference, RepositoryName, Tag};

use super::{repository_name, required, Ctx};
use crate::error::EcrError;

/// A repository an image or layer action works on, validated, authorized and present.
pub(super) struct Target {
    pub registry: String,
    pub name: String,
    pub repo: RepositoryName,
}

/// Validates the name, for the pushing actions (PutImage, InitiateLayerUpload): whether a missing repository is created
/// (ECR's create-on-push templates) or refused is the core's decision.
pub(super) fn push_target(
    ctx: &Ctx<'_>,
    registry_id: Option<&str>,
    name: &Option<String>,
) -> Result<Target, EcrError> {
    let name = required(name, "repositoryName")?.to_string();
    let registry = ctx.registry(registry_id)?;
    let repo = repository_name(&registry, &name)?;
    Ok(Target {
        registry,
        name,
        repo,
    })
}

/// Validates the name and checks that the repository exists (`RepositoryNotFoundException` otherwise).
pub(super) async fn open_repository(
    ctx: &Ctx<'_>,
    registry_id: Option<&str>,
    name: &Option<String>,
) -> Result<Target, EcrError> {
    let Target {
        registry,
        name,
        repo,
    } = push_target(ctx, registry_id, name)?;
    let exists = ctx
        .state
        .inner
        .registry
        .repository_store()
        .repository_exists(&repo)
        .await
        .map_err(|e| EcrError::from_meta(e, &registry))?;
    if !exists {
        return Err(EcrError::RepositoryNotFound { registry, name });
    }
    Ok(Target {
        registry,
        name,
        repo,
    })
}

impl Target {
    pub(super) fn registry_error(&self, e: RegistryError) -> EcrError {
        EcrError::from_registry(e, &self.registry, &self.name)
    }
}

/// `maxResults` within `1..=max`, or `default`.
pub(super) fn page_size(
    max_results: Option<i64>,
    default: usize,
    max: i64,
) -> Result<usize, EcrError> {
    match max_results {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n as usize),
        Some(n) => Err(EcrError::InvalidParameter(format!(
            "Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and {max}' (got {n})"
        ))),
    }
}

/// Opaque pagination tokens: base64url of `<kind>:<position>`, so a token of one action
/// is refused by another.
pub(super) fn encode_token(kind: &str, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{position}"))
}

pub(super) fn decode_token(kind: &str, token: &str) -> Result<String, EcrError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(&format!("{kind}:")).map(str::to_string))
        .ok_or_else(|| {
            EcrError::InvalidParameter(
                "Invalid parameter at 'nextToken': the token is not valid".into(),
            )
        })
}

pub(super) fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The tag status and the image status asked for (`None`: any status). Without a filter
/// only `ACTIVE` images are listed, as the model says.
fn tag_status(filter: Option<StatusFilter>) -> Result<(TagStatus, Option<ImageStatus>), EcrError> {
    let Some(f) = filter else {
        return Ok((TagStatus::Any, Some(ImageStatus::Active)));
    };
    let status = match f.tag_status.as_deref() {
        None | Some("ANY") => TagStatus::Any,
        Some("TAGGED") => TagStatus::Tagged,
        Some("UNTAGGED") => TagStatus::Untagged,
        Some(other) => {
            return Err(EcrError::InvalidParameter(format!(
                "Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]' (got '{other}')"
            )))
        }
    };
    let wanted = match f.image_status.as_deref() {
        None | Some("ACTIVE") => Some(ImageStatus::Active),
        Some("ARCHIVED") => Some(ImageStatus::Archived),
        Some("ACTIVATING") => Some(ImageStatus::Activating),
        Some("ANY") => None,
        Some(other) => {
            return Err(EcrError::InvalidParameter(format!(
                "Invalid parameter at 'filter.imageStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [ACTIVE, ARCHIVED, ACTIVATING, ANY]' (got '{other}')"
            )))
        }
    };
    Ok((status, wanted))
}

/// The storage state of each image of a page (absent: a never-archived `ACTIVE` image).
async fn storage_of(
    ctx: &Ctx<'_>,
    t: &Target,
    digests: &[Digest],
) -> Result<Vec<ImageStorage>, EcrError> {
    Ok(ctx
        .state
        .inner
        .registry
        .archive_store()
        .image_storage(&t.repo, digests)
        .await
        .map_err(|e| EcrError::from_meta(e, &t.registry))?
        .into_iter()
        .map(|s| s.unwrap_or(ImageStorage::ACTIVE))
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StatusFilter {
    tag_status: Option<String>,
    image_status: Option<String>,
}

/// The model's `ImageIdentifier`.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ImageIdInput {
    image_digest: Option<String>,
    image_tag: Option<String>,
}

impl ImageIdInput {
    fn json(&self) -> Value {
        let mut v = json!({});
        if let Some(d) = &self.image_digest {
            v["imageDigest"] = json!(d);
        }
        if let Some(t) = &self.image_tag {
            v["imageTag"] = json!(t);
        }
        v
    }
}

/// An image identifier that passed the per-item checks of the batch actions.
struct ParsedId {
    digest: Option<Digest>,
    tag: Option<Tag>,
}

/// The per-item checks: a failure code and reason of the model's `ImageFailureCode`.
fn parse_id(id: &ImageIdInput) -> Result<ParsedId, (&'static str, String)> {
    if id.image_digest.is_none() && id.image_tag.is_none() {
        return Err((
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null".into(),
        ));
    }
    let digest = match &id.image_digest {
        None => None,
        Some(d) => Some(
            d.parse::<Digest>()
                .map_err(|_| ("InvalidImageDigest", format!("Invalid image digest '{d}'")))?,
        ),
    };
    let tag = match &id.image_tag {
        None => None,
        Some(t) => Some(
            t.parse::<Tag>()
                .map_err(|_| ("InvalidImageTag", format!("Invalid image tag '{t}'")))?,
        ),
    };
    Ok(ParsedId { digest, tag })
}

fn failure(id: &ImageIdInput, code: &str, reason: impl Into<String>) -> Value {
    json!({"imageId": id.json(), "failureCode": code, "failureReason": reason.into()})
}

fn image_ids_len(ids: &Option<Vec<ImageIdInput>>) -> Result<&Vec<ImageIdInput>, EcrError> {
    let ids = ids.as_ref().ok_or_else(|| {
        EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'imageIds' failed to satisfy constraint: Member must not be null".into(),
        )
    })?;
    if ids.is_empty() || ids.len() > 100 {
        return Err(EcrError::InvalidParameter(
            "Invalid parameter at 'imageIds' failed to satisfy constraint: 'Member must have length between 1 and 100'".into(),
        ));
    }
    Ok(ids)
}

// ---- PutImage ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PutImageInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_manifest: Option<String>,
    image_manifest_media_type: Option<String>,
    image_tag: Option<String>,
    image_digest: Option<String>,
}

pub(super) async fn put_image(ctx: &Ctx<'_>, input: PutImageInput) -> Result<Value, EcrError> {
    required(&input.repository_name, "repositoryName")?;
    let manifest = required(&input.image_manifest, "imageManifest")?;
    if manifest.is_empty() || manifest.len() > berth_types::manifest::MAX_MANIFEST_BYTES {
        return Err(EcrError::InvalidParameter(
            "Invalid parameter at 'imageManifest' failed to satisfy constraint: 'Member must have length between 1 and 4194304'".into(),
        ));
    }
    let tag = match &input.image_tag {
        None => None,
        Some(t) => Some(t.parse::<Tag>().map_err(|_| {
            EcrError::InvalidParameter(format!(
                "Invalid parameter at 'imageTag' failed to satisfy constraint: 'must be a valid image tag of 1 to 128 characters [A-Za-z0-9_][A-Za-z0-9._-]*' (got '{t}')"
            ))
        })?),
    };
    let expected = match &input.image_digest {
        None => None,
        Some(d) => Some(d.parse::<Digest>().map_err(|_| {
            EcrError::InvalidParameter(format!(
                "Invalid parameter at 'imageDigest' failed to satisfy constraint: 'must be a digest such as sha256:<64 hex digits>' (got '{d}')"
            ))
        })?),
    };
    // Limits first: the Value parse below must not build a huge or deep tree.
    berth_types::json_limits::check(manifest.as_bytes(), berth_types::JsonLimits::DOCUMENT)
        .map_err(|e| {
            EcrError::InvalidParameter(format!(
                "Invalid parameter at 'imageManifest' failed to satisfy constraint: '{}'",
                berth_types::ManifestError::Limits(e)
            ))
        })?;
    // ECR needs the media type from the manifest or from the request.
    let has_field = serde_json::from_str::<Value>(manifest)
        .ok()
        .and_then(|v| v.get("mediaType").map(|m| m.is_string()))
        .unwrap_or(false);
    if !has_field && input.image_manifest_media_type.is_none() {
        return Err(EcrError::InvalidParameter(
            "Invalid parameter at 'imageManifestMediaType': the manifest has no mediaType field, so imageManifestMediaType is required".into(),
        ));
    }
    let target = push_target(ctx, input.registry_id.as_deref(), &input.repository_name)?;
    let body = axum::body::Bytes::from(manifest.to_string());
    if let Some(expected) = &expected {
        let actual = Digest::of(expected.algorithm(), &body);
        if &actual != expected {
            return Err(EcrError::ImageDigestDoesNotMatch(format!(
                "Provided digest '{expected}' does not match the calculated digest '{actual}' of the image manifest"
            )));
        }
    }
    let reference = match (&tag, &expected) {
        (Some(t), _) => Reference::Tag(t.clone()),
        (None, Some(d)) => Reference::Digest(d.clone()),
        (None, None) => Reference::Digest(Digest::sha256_of(&body)),
    };
    let pushed = ctx
        .state
        .inner
        .registry
        .put_manifest(
            &target.repo,
            &reference,
            input.image_manifest_media_type.as_deref(),
            body,
        )
        .await
        .map_err(|e| target.registry_error(e))?;
    if !pushed.changed {
        return Err(EcrError::ImageAlreadyExists(format!(
            "Image with digest '{}' and tag '{}' already exists in the repository with name '{}' in registry with id '{}'",
            pushed.digest,
            tag.as_ref().map(Tag::as_str).unwrap_or("null"),
            target.name,
            target.registry
        )));
    }
    let registry = &ctx.state.inner.registry;
    let media_type = match registry
        .get_manifest(&target.repo, &Reference::Digest(pushed.digest.clone()))
        .await
    {
        Ok(m) => m.media_type.clone(),
        // A new tag on an archived image: the push stands; the image stays archived.
        Err(RegistryError::ImageArchived { .. }) => registry
            .manifest_store()
            .get_manifest(&target.repo, &pushed.digest)
            .await
            .map_err(|e| EcrError::from_meta(e, &target.registry))?
            .map(|m| m.media_type)
            .unwrap_or_default(),
        Err(e) => return Err(target.registry_error(e)),
    };
    let mut image_id = json!({"imageDigest": pushed.digest.to_string()});
    if let Some(t) = &tag {
        image_id["imageTag"] = json!(t.as_str());
    }
    Ok(json!({"image": {
        "registryId": target.registry,
        "repositoryName": target.name,
        "imageId": image_id,
        "imageManifest": manifest,
        "imageManifestMediaType": media_type,
    }}))
}

// ---- BatchGetImage ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BatchGetImageInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_ids: Option<Vec<ImageIdInput>>,
    accepted_media_types: Option<Vec<String>>,
}

pub(super) async fn batch_get_image(
    ctx: &Ctx<'_>,
    input: BatchGetImageInput,
) -> Result<Value, EcrError> {
    required(&input.repository_name, "repositoryName")?;
    let ids = image_ids_len(&input.image_ids)?;
    if let Some(types) = &input.accepted_media_types {
        if types.is_empty() || types.len() > 100 {
            return Err(EcrError::InvalidParameter(
                "Invalid parameter at 'acceptedMediaTypes' failed to satisfy constraint: 'Member must have length between 1 and 100'".into(),
            ));
        }
    }
    let target = open_repository(ctx, input.registry_id.as_deref(), &input.repository_name).await?;
    let registry = &ctx.state.inner.registry;
    let (mut images, mut failures) = (Vec::new(), Vec::new());
    for id in ids {
        let parsed = match parse_id(id) {
            Ok(p) => p,
            Err((code, reason)) => {
                failures.push(failure(id, code, reason));
                continue;
            }
        };
        let reference = match (&parsed.tag, &parsed.digest) {
            (Some(t), _) => Reference::Tag(t.clone()),
            (None, Some(d)) => Reference::Digest(d.clone()),
            (None, None) => unreachable!("parse_id refuses ids without digest and tag"),
        };
        let manifest = match registry.get_manifest(&target.repo, &reference).await {
            Ok(m) => m,
            Err(RegistryError::ManifestNotFound(_)) => {
                failures.push(failure(id, "ImageNotFound", "Requested image not found"));
                continue;
            }
            // Archived (or being restored): not pullable; the reason says how to restore.
            Err(e @ RegistryError::ImageArchived { .. }) => {
                failures.push(failure(id, "ImageNotFound", e.to_string()));
                continue;
            }
            Err(e) => return Err(target.registry_error(e)),
        };
        if let (Some(_), Some(d)) = (&parsed.tag, &parsed.digest) {
            if &manifest.digest != d {
                failures.push(failure(
                    id,
                    "ImageTagDoesNotMatchDigest",
                    "Invalid request parameters: image tag does not match digest",
                ));
                continue;
            }
        }
        if let Some(types) = &input.accepted_media_types {
            if !types.iter().any(|t| t == &manifest.media_type) {
                failures.push(failure(
                    id,
                    "ImageNotFound",
                    format!(
                        "Requested image not found in the accepted media types: the image's manifest is {}",
                        manifest.media_type
                    ),
                ));
                continue;
            }
        }
        registry.record_pull(&target.repo, &manifest.digest, &ctx.caller.arn);
        let mut image_id = json!({"imageDigest": manifest.digest.to_string()});
        if let Some(t) = &parsed.tag {
            image_id["imageTag"] = json!(t.as_str());
        }
        images.push(json!({
            "registryId": target.registry,
            "repositoryName": target.name,
            "imageId": image_id,
            "imageManifest": String::from_utf8_lossy(&manifest.body),
            "imageManifestMediaType": manifest.media_type,
        }));
    }
    Ok(json!({"images": images, "failures": failures}))
}

// ---- BatchDeleteImage ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BatchDeleteImageInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_ids: Option<Vec<ImageIdInput>>,
}

pub(super) async fn batch_delete_image(
    ctx: &Ctx<'_>,
    input: BatchDeleteImageInput,
) -> Result<Value, EcrError> {
    required(&input.repository_name, "repositoryName")?;
    let ids = image_ids_len(&input.image_ids)?;
    let target = open_repository(ctx, input.registry_id.as_deref(), &input.repository_name).await?;
    let (mut deleted, mut failures) = (Vec::new(), Vec::new());
    for id in ids {
        let parsed = match parse_id(id) {
            Ok(p) => p,
            Err((code, reason)) => {
                failures.push(failure(id, code, reason));
                continue;
            }
        };
        let outcome = ctx
            .state
            .inner
            .registry
            .delete_image(&target.repo, parsed.digest.as_ref(), parsed.tag.as_ref())
            .await
            .map_err(|e| target.registry_error(e))?;
        match outcome {
            DeleteImageOutcome::Deleted { digest, tags, .. } => {
                if tags.is_empty() {
                    deleted.push(json!({"imageDigest": digest.to_string()}));
                }
                for t in tags {
                    deleted.push(json!({"imageDigest": digest.to_string(), "imageTag": t}));
                }
            }
            DeleteImageOutcome::NotFound => {
                failures.push(failure(id, "ImageNotFound", "Requested image not found"))
            }
            DeleteImageOutcome::TagDoesNotMatchDigest => failures.push(failure(
                id,
                "ImageTagDoesNotMatchDigest",
                "Invalid request parameters: image tag does not match digest",
            )),
            DeleteImageOutcome::ReferencedByIndex(index) => failures.push(failure(
                id,
                "ImageReferencedByManifestList",
                format!("Requested image referenced by manifest list: [{index}]"),
            )),
        }
    }
    Ok(json!({"imageIds": deleted, "failures": failures}))
}

// ---- DescribeImages ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DescribeImagesInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_ids: Option<Vec<ImageIdInput>>,
    next_token: Option<String>,
    max_results: Option<i64>,
    filter: Option<StatusFilter>,
}

const IMAGES_TOKEN: &str = "di1";

fn image_detail(t: &Target, i: &ImageRecord, storage: &ImageStorage) -> Value {
    let mut v = json!({
        "registryId": t.registry,
        "repositoryName": t.name,
        "imageDigest": i.digest.to_string(),
        "imageSizeInBytes": i.size,
        "imagePushedAt": secs(i.pushed_ms),
        "imageManifestMediaType": i.media_type,
        "imageStatus": storage.status.as_api(),
    });
    if let Some(ms) = storage.archived_ms {
        v["lastArchivedAt"] = json!(secs(ms));
    }
    if let Some(ms) = storage.activated_ms {
        v["lastActivatedAt"] = json!(secs(ms));
    }
    if !i.tags.is_empty() {
        v["imageTags"] = json!(i.tags);
    }
    if let Some(a) = &i.artifact_type {
        v["artifactMediaType"] = json!(a);
    }
    if let Some(p) = i.last_pull_ms {
        v["lastRecordedPullTime"] = json!(secs(p));
    }
    if let Some(s) = &i.subject {
        v["subjectManifestDigest"] = json!(s.to_string());
    }
    v
}

pub(super) async fn describe_images(
    ctx: &Ctx<'_>,
    input: DescribeImagesInput,
) -> Result<Value, EcrError> {
    required(&input.repository_name, "repositoryName")?;
    let limit = page_size(input.max_results, 100, 1000)?;
    let (status, wanted) = tag_status(input.filter)?;
    if input.image_ids.is_some() && (input.next_token.is_some() || input.max_results.is_some()) {
        return Err(EcrError::InvalidParameter(
            "maxResults and nextToken cannot be used with imageIds".into(),
        ));
    }
    let after = match &input.next_token {
        None => None,
        Some(t) => Some(
            decode_token(IMAGES_TOKEN, t)?
                .parse::<Digest>()
                .map_err(|_| {
                    EcrError::InvalidParameter(
                        "Invalid parameter at 'nextToken': the token is not valid".into(),
                    )
                })?,
        ),
    };
    let ids = match &input.image_ids {
        None => None,
        Some(_) => Some(image_ids_len(&input.image_ids)?),
    };
    let target = open_repository(ctx, input.registry_id.as_deref(), &input.repository_name).await?;
    let registry = &ctx.state.inner.registry;
    // Read our own pulls: write what is pending (usually nothing) before reading.
    if let Err(e) = registry.flush_pull_times().await {
        tracing::warn!(error = %e, "could not flush pull times before DescribeImages");
    }
    let from_meta = |e| EcrError::from_meta(e, &target.registry);
    if let Some(ids) = ids {
        // Resolve tags, then read every image in one call.
        let mut digests = Vec::with_capacity(ids.len());
        for id in ids {
            let parsed = parse_id(id).map_err(|(_, reason)| EcrError::InvalidParameter(reason))?;
            let digest = match (&parsed.tag, &parsed.digest) {
                (Some(t), d) => {
                    let found = registry
                        .manifest_store()
                        .resolve_tag(&target.repo, t)
                        .await
                        .map_err(from_meta)?;
                    match found {
                        Some(f) if d.as_ref().is_none_or(|d| d == &f) => f,
                        _ => return Err(image_not_found(&target, id)),
                    }
                }
                (None, Some(d)) => d.clone(),
                (None, None) => unreachable!("parse_id refuses ids without digest and tag"),
            };
            digests.push(digest);
        }
        let found = registry
            .image_store()
            .describe_images_by_digest(&target.repo, &digests)
            .await
            .map_err(from_meta)?;
        let storage = storage_of(ctx, &target, &digests).await?;
        let mut details = Vec::with_capacity(found.len());
        let mut seen = std::collections::HashSet::new();
        for ((id, image), storage) in ids.iter().zip(found).zip(&storage) {
            let image = image.ok_or_else(|| image_not_found(&target, id))?;
            if seen.insert(image.digest.clone()) {
                details.push(image_detail(&target, &image, storage));
            }
        }
        return Ok(json!({"imageDetails": details}));
    }
    let mut rows = registry
        .image_store()
        .describe_images(&target.repo, status, after.as_ref(), limit + 1)
        .await
        .map_err(from_meta)?
        .ok_or_else(|| EcrError::RepositoryNotFound {
            registry: target.registry.clone(),
            name: target.name.clone(),
        })?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    // The image status filter applies to the page (a page may come out shorter than
    // maxResults; its nextToken still continues after the last image read).
    let digests: Vec<Digest> = rows.iter().map(|i| i.digest.clone()).collect();
    let storage = storage_of(ctx, &target, &digests).await?;
    let details: Vec<Value> = rows
        .iter()
        .zip(&storage)
        .filter(|(_, s)| wanted.is_none_or(|w| w == s.status))
        .map(|(i, s)| image_detail(&target, i, s))
        .collect();
    let mut out = json!({ "imageDetails": details });
    if let (true, Some(last)) = (more, rows.last()) {
        out["nextToken"] = json!(encode_token(IMAGES_TOKEN, &last.digest.to_string()));
    }
    Ok(out)
}

fn image_not_found(t: &Target, id: &ImageIdInput) -> EcrError {
    EcrError::ImageNotFound(format!(
        "The image with imageId {{imageDigest:'{}', imageTag:'{}'}} does not exist within the repository with name '{}' in the registry with id '{}'",
        id.image_digest.as_deref().unwrap_or("null"),
        id.image_tag.as_deref().unwrap_or("null"),
        t.name,
        t.registry
    ))
}

// ---- ListImages ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListImagesInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    filter: Option<StatusFilter>,
}

const LIST_TOKEN: &str = "li1";

pub(super) async fn list_images(ctx: &Ctx<'_>, input: ListImagesInput) -> Result<Value, EcrError> {
    required(&input.repository_name, "repositoryName")?;
    let limit = page_size(input.max_results, 100, 1000)?;
    let (status, wanted) = tag_status(input.filter)?;
    let after = match &input.next_token {
        None => None,
        Some(t) => {
            let position = decode_token(LIST_TOKEN, t)?;
            let (d, tag) = position.split_once(' ').unwrap_or((position.as_str(), ""));
            let digest = d.parse::<Digest>().map_err(|_| {
                EcrError::InvalidParameter(
                    "Invalid parameter at 'nextToken': the token is not valid".into(),
                )
            })?;
            Some(ImageId {
                digest,
                tag: (!tag.is_empty()).then(|| tag.to_string()),
            })
        }
    };
    let target = open_repository(ctx, input.registry_id.as_deref(), &input.repository_name).await?;
    let mut rows = ctx
        .state
        .inner
        .registry
        .image_store()
        .list_images(&target.repo, status, after.as_ref(), limit + 1)
        .await
        .map_err(|e| EcrError::from_meta(e, &target.registry))?
        .unwrap_or_default();
    let more = rows.len() > limit;
    rows.truncate(limit);
    let digests: Vec<Digest> = rows.iter().map(|i| i.digest.clone()).collect();
    let storage = storage_of(ctx, &target, &digests).await?;
    let ids: Vec<Value> = rows
        .iter()
        .zip(&storage)
        .filter(|(_, s)| wanted.is_none_or(|w| w == s.status))
        .map(|(i, _)| match &i.tag {
            Some(t) => json!({"imageDigest": i.digest.to_string(), "imageTag": t}),
            None => json!({"imageDigest": i.digest.to_string()}),
        })
        .collect();
    let mut out = json!({ "imageIds": ids });
    if let (true, Some(last)) = (more, rows.last()) {
        let position = format!("{} {}", last.digest, last.tag.as_deref().unwrap_or(""));
        out["nextToken"] = json!(encode_token(LIST_TOKEN, &position));
    }
    Ok(out)
}

// ---- ListImageReferrers ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SubjectInput {
    image_digest: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReferrersFilter {
    artifact_types: Option<Vec<String>>,
    artifact_status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListImageReferrersInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    subject_id: Option<SubjectInput>,
    filter: Option<ReferrersFilter>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

const REFERRERS_TOKEN: &str = "lr1";

pub(super) async fn list_image_referrers(
    ctx: &Ctx<'_>,
    input: ListImageReferrersInput,
) -> Result<Value, EcrError> {
    required(&input.repository_name, "repositoryName")?;
    let subject = input.subject_id.as_ref().ok_or_else(|| {
        EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'subjectId' failed to satisfy constraint: Member must not be null".into(),
        )
    })?;
    let subject_text = required(&subject.image_digest, "subjectId.imageDigest")?;
    let subject: Digest = subject_text.parse().map_err(|_| {
        EcrError::InvalidParameter(format!(
            "Invalid parameter at 'subjectId.imageDigest': '{subject_text}' is not a valid image digest"
        ))
    })?;
    let limit = page_size(input.max_results, 20, 50)?;
    let (types, wanted) = match input.filter {
        None => (None, Some(ImageStatus::Active)),
        Some(f) => {
            if let Some(types) = &f.artifact_types {
                if types.len() > 5 || types.iter().any(|t| t.is_empty() || t.len() > 255) {
                    return Err(EcrError::InvalidParameter(
                        "Invalid parameter at 'filter.artifactTypes' failed to satisfy constraint: 'at most 5 artifact types of 1 to 255 characters'".into(),
                    ));
                }
            }
            let wanted = match f.artifact_status.as_deref() {
                None | Some("ACTIVE") => Some(ImageStatus::Active),
                Some("ARCHIVED") => Some(ImageStatus::Archived),
                Some("ACTIVATING") => Some(ImageStatus::Activating),
                Some("ANY") => None,
                Some(other) => {
                    return Err(EcrError::InvalidParameter(format!(
                        "Invalid parameter at 'filter.artifactStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [ACTIVE, ARCHIVED, ACTIVATING, ANY]' (got '{other}')"
                    )))
                }
            };
            (f.artifact_types.filter(|t| !t.is_empty()), wanted)
        }
    };
    let after = input
        .next_token
        .as_deref()
        .map(|t| decode_token(REFERRERS_TOKEN, t))
        .transpose()?;
    // The /v2 referrers endpoint is authorized as ecr:ListImageReferrers too.
    let target = open_repository(ctx, input.registry_id.as_deref(), &input.repository_name).await?;
    // A subject has few referrers; they come sorted by digest from one indexed query.
    let records = ctx
        .state
        .inner
        .registry
        .manifest_store()
        .referrers(&target.repo, &subject)
        .await
        .map_err(|e| EcrError::from_meta(e, &target.registry))?;
    let digests: Vec<Digest> = records.iter().map(|r| r.digest.clone()).collect();
    let storage = storage_of(ctx, &target, &digests).await?;
    let mut page: Vec<_> = records
        .into_iter()
        .zip(storage)
        .filter(|(_, s)| wanted.is_none_or(|w| w == s.status))
        .filter(|(r, _)| {
            after
                .as_deref()
                .is_none_or(|a| r.digest.to_string().as_str() > a)
        })
        .filter(|(r, _)| {
            types.as_ref().is_none_or(|t| {
                r.artifact_type
                    .as_ref()
                    .is_some_and(|a| t.iter().any(|x| x == a))
            })
        })
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let referrers: Vec<Value> = page
        .iter()
        .map(|(r, s)| {
            let mut v = json!({
                "digest": r.digest.to_string(),
                "mediaType": r.media_type,
                "size": r.size,
                "artifactStatus": s.status.as_api(),
            });
            if let Some(a) = &r.artifact_type {
                v["artifactType"] = json!(a);
            }
            if let Some(a) = r
                .annotations_json
                .as_deref()
                .and_then(|a| serde_json::from_str::<Value>(a).ok())
            {
                v["annotations"] = a;
            }
            v
        })
        .collect();
    let mut out = json!({ "referrers": referrers });
    if let (true, Some((last, _))) = (more, page.last()) {
        out["nextToken"] = json!(encode_token(REFERRERS_TOKEN, &last.digest.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_are_checked_per_item_with_the_model_codes() {
        let id = |d: Option<&str>, t: Option<&str>| ImageIdInput {
            image_digest: d.map(str::to_string),
            image_tag: t.map(str::to_string),
        };
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse_id(&id(None, None)).err().unwrap().0,
            "MissingDigestAndTag"
        );
        assert_eq!(
            parse_id(&id(Some("sha256:zz"), None)).err().unwrap().0,
            "InvalidImageDigest"
        );
        assert_eq!(
            parse_id(&id(None, Some("bad tag"))).err().unwrap().0,
            "InvalidImageTag"
        );
        let p = parse_id(&id(Some(&good), Some("v1"))).unwrap();
        assert!(p.digest.is_some() && p.tag.is_some());
        assert_eq!(id(Some(&good), None).json(), json!({"imageDigest": good}));
    }

    #[test]
    fn tokens_are_bound_to_their_action_and_pages_to_the_model_limits() {
        let t = encode_token(LIST_TOKEN, "sha256:ab v1");
        assert_eq!(decode_token(LIST_TOKEN, &t).unwrap(), "sha256:ab v1");
        assert!(decode_token(IMAGES_TOKEN, &t).is_err());
        assert!(decode_token(LIST_TOKEN, "%%").is_err());
        assert_eq!(page_size(None, 100, 1000).unwrap(), 100);
        assert_eq!(page_size(Some(1000), 100, 1000).unwrap(), 1000);
        assert!(page_size(Some(0), 100, 1000).is_err());
        assert!(page_size(Some(51), 20, 50).is_err());
    }

    #[test]
    fn tag_status_filters_follow_the_model() {
        let f = |t: Option<&str>, i: Option<&str>| {
            tag_status(Some(StatusFilter {
                tag_status: t.map(str::to_string),
                image_status: i.map(str::to_string),
            }))
        };
        let active = Some(ImageStatus::Active);
        assert_eq!(tag_status(None).unwrap(), (TagStatus::Any, active));
        assert_eq!(
            f(Some("TAGGED"), None).unwrap(),
            (TagStatus::Tagged, active)
        );
        assert_eq!(
            f(Some("UNTAGGED"), Some("ANY")).unwrap(),
            (TagStatus::Untagged, None)
        );
        assert_eq!(
            f(None, Some("ARCHIVED")).unwrap(),
            (TagStatus::Any, Some(ImageStatus::Archived))
        );
        assert_eq!(
            f(None, Some("ACTIVATING")).unwrap(),
            (TagStatus::Any, Some(ImageStatus::Activating))
        );
        assert!(f(Some("tagged"), None).is_err());
        assert!(f(None, Some("GONE")).is_err());
    }
}
