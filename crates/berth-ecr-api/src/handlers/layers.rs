//! The layer actions: BatchCheckLayerAvailability, InitiateLayerUpload, UploadLayerPart,
//! CompleteLayerUpload, GetDownloadUrlForLayer. Uploads are the core's (the same files,
//! rows and single-pass hashing as `/v2` uploads); parts must be contiguous.
//!
//! Berth's storage has no minimum part size, so `LayerPartTooSmallException` (S3's
//! 5 MiB multipart rule behind ECR) never occurs.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use berth_registry::RegistryError;
use berth_types::Digest;

use super::images::{open_repository, push_target, Target};
use super::{required, Ctx};
use crate::error::EcrError;
use berth_access::token::{
    sign_download, DOWNLOAD_LIFETIME_SECS, DOWNLOAD_PARAM, DOWNLOAD_REGISTRY_PARAM,
};

/// The part size InitiateLayerUpload suggests (ECR answers 10 MiB).
pub const PART_SIZE: u64 = 10 * 1024 * 1024;
/// The model's largest `layerPartBlob`.
pub const MAX_PART: usize = 20 * 1024 * 1024;

/// The model's `LayerDigest` pattern `[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+`.
fn layer_digest_shape(s: &str) -> bool {
    let Some((alg, hex)) = s.split_once(':') else {
        return false;
    };
    !alg.is_empty()
        && alg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.'))
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

fn layer_digest_shape_error(s: &str, member: &str) -> EcrError {
    EcrError::InvalidParameter(format!(
        "Invalid parameter at '{member}' failed to satisfy constraint: 'Member must satisfy regular expression pattern: [a-zA-Z0-9-_+.]+:[a-fA-F0-9]+' (got '{s}')"
    ))
}

fn layer_digest(s: &str, member: &str) -> Result<Digest, EcrError> {
    if !layer_digest_shape(s) {
        return Err(layer_digest_shape_error(s, member));
    }
    s.parse().map_err(|_| {
        EcrError::InvalidLayer(format!(
            "The layer digest '{s}' is not a supported digest (sha256:<64 hex> or sha512:<128 hex>)"
        ))
    })
}

/// The model's `UploadId`: a UUID.
fn upload_id(id: &str) -> Result<&str, EcrError> {
    let groups: Vec<&str> = id.split('-').collect();
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(id)
    } else {
        Err(EcrError::InvalidParameter(format!(
            "Invalid parameter at 'uploadId' failed to satisfy constraint: 'Member must satisfy regular expression pattern: [0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}' (got '{id}')"
        )))
    }
}

// ---- BatchCheckLayerAvailability ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BatchCheckLayerAvailabilityInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    layer_digests: Option<Vec<String>>,
}

pub(super) async fn batch_check_layer_availability(
    ctx: &Ctx<'_>,
    input: BatchCheckLayerAvailabilityInput,
) -> Result<Value, EcrError> {
    required(&input.repository_name, "repositoryName")?;
    let digests = input.layer_digests.as_ref().ok_or_else(|| {
        EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'layerDigests' failed to satisfy constraint: Member must not be null".into(),
        )
    })?;
    if digests.is_empty() || digests.len() > 100 || digests.iter().any(|d| d.len() > 1000) {
        return Err(EcrError::InvalidParameter(
            "Invalid parameter at 'layerDigests' failed to satisfy constraint: 'Member must have length between 1 and 100, each of at most 1000 characters'".into(),
        ));
    }
    let target = open_repository(ctx, input.registry_id.as_deref(), &input.repository_name).await?;
    let mut failures = Vec::new();
    let mut valid: Vec<(&String, Digest)> = Vec::new();
    for d in digests {
        if d.is_empty() {
            failures.push(json!({"layerDigest": d, "failureCode": "MissingLayerDigest", "failureReason": "The layer digest is missing"}));
            continue;
        }
        match d.parse::<Digest>() {
            Ok(parsed) if layer_digest_shape(d) => valid.push((d, parsed)),
            _ => failures.push(json!({"layerDigest": d, "failureCode": "InvalidLayerDigest", "failureReason": "Invalid layer digest"})),
        }
    }
    let wanted: Vec<Digest> = valid.iter().map(|(_, d)| d.clone()).collect();
    let sizes = ctx
        .state
        .inner
        .registry
        .link_store()
        .linked_blobs(&target.repo, &wanted)
        .await
        .map_err(|e| EcrError::from_meta(e, &target.registry))?;
    let layers: Vec<Value> = valid
        .iter()
        .zip(sizes)
        .map(|((text, _), size)| match size {
            Some(s) => {
                json!({"layerDigest": text, "layerAvailability": "AVAILABLE", "layerSize": s})
            }
            None => json!({"layerDigest": text, "layerAvailability": "UNAVAILABLE"}),
        })
        .collect();
    Ok(json!({"layers": layers, "failures": failures}))
}

// ---- InitiateLayerUpload ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InitiateLayerUploadInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
}

pub(super) async fn initiate_layer_upload(
    ctx: &Ctx<'_>,
    input: InitiateLayerUploadInput,
) -> Result<Value, EcrError> {
    let target = push_target(ctx, input.registry_id.as_deref(), &input.repository_name)?;
    let status = ctx
        .state
        .inner
        .registry
        .start_upload(&target.repo)
        .await
        .map_err(|e| target.registry_error(e))?;
    Ok(json!({"uploadId": status.id, "partSize": PART_SIZE}))
}

// ---- UploadLayerPart ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UploadLayerPartInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    upload_id: Option<String>,
    part_first_byte: Option<i64>,
    part_last_byte: Option<i64>,
    layer_part_blob: Option<String>,
}

/// Where a part must start and end, given what the upload holds. Returns the problem
/// in words when the part does not continue the upload exactly.
pub(crate) fn check_part(first: u64, last: u64, len: usize, held: u64) -> Result<(), String> {
    if len == 0 {
        return Err("The layer part is empty".into());
    }
    if last < first || last - first + 1 != len as u64 {
        return Err(format!(
            "partFirstByte {first} and partLastByte {last} do not describe a part of {len} bytes"
        ));
    }
    if first != held {
        return Err(format!(
            "partFirstByte {first} is not consecutive to the last byte received; the next part must start at byte {held}"
        ));
    }
    Ok(())
}

pub(super) async fn upload_layer_part(
    ctx: &Ctx<'_>,
    input: UploadLayerPartInput,
) -> Result<Value, EcrError> {
    required(&input.repository_name, "repositoryName")?;
    let id = upload_id(required(&input.upload_id, "uploadId")?)?.to_string();
    let byte = |v: Option<i64>, member: &str| -> Result<u64, EcrError> {
        match v {
            None => Err(EcrError::InvalidParameter(format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ))),
            Some(n) if n < 0 => Err(EcrError::InvalidParameter(format!(
                "Invalid parameter at '{member}' failed to satisfy constraint: 'Member must have value greater than or equal to 0' (got {n})"
            ))),
            Some(n) => Ok(n as u64),
        }
    };
    let first = byte(input.part_first_byte, "partFirstByte")?;
    let last = byte(input.part_last_byte, "partLastByte")?;
    let blob = required(&input.layer_part_blob, "layerPartBlob")?;
    let part = STANDARD
        .decode(blob)
        .map_err(|e| EcrError::Serialization(format!("layerPartBlob is not valid base64: {e}")))?;
    if part.len() > MAX_PART {
        return Err(EcrError::InvalidParameter(format!(
            "Invalid parameter at 'layerPartBlob' failed to satisfy constraint: 'Member must have length less than or equal to {MAX_PART}' (got {})",
            part.len()
        )));
    }
    let target = open_repository(ctx, input.registry_id.as_deref(), &input.repository_name).await?;
    let registry = &ctx.state.inner.registry;
    let invalid = |t: &Target, held: u64, message: String| EcrError::InvalidLayerPart {
        registry: t.registry.clone(),
        repository: t.name.clone(),
        upload_id: id.clone(),
        last_valid_byte_received: held.checked_sub(1),
        message,
    };
    let held = registry
        .upload_status(&target.repo, &id)
        .await
        .map_err(|e| target.registry_error(e))?
        .offset;
    check_part(first, last, part.len(), held).map_err(|m| invalid(&target, held, m))?;
    // The core re-checks the offset under the upload's lock (two racing parts: one wins).
    let status = registry
        .upload_part(&target.repo, &id, first, part.into())
        .await
        .map_err(|e| match e {
            RegistryError::UploadOutOfOrder { current, .. } => invalid(
                &target,
                current,
                format!("partFirstByte {first} is not consecutive to the last byte received; the next part must start at byte {current}"),
            ),
            other => target.registry_error(other),
        })?;
    Ok(json!({
        "registryId": target.registry,
        "repositoryName": target.name,
        "uploadId": id,
        "lastByteReceived": status.offset.saturating_sub(1),
    }))
}

// ---- CompleteLayerUpload ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CompleteLayerUploadInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    upload_id: Option<String>,
    layer_digests: Option<Vec<String>>,
}

pub(super) async fn complete_layer_upload(
    ctx: &Ctx<'_>,
    input: CompleteLayerUploadInput,
) -> Result<Value, EcrError> {
    required(&input.repository_name, "repositoryName")?;
    let id = upload_id(required(&input.upload_id, "uploadId")?)?.to_string();
    let digests = input.layer_digests.as_ref().ok_or_else(|| {
        EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'layerDigests' failed to satisfy constraint: Member must not be null".into(),
        )
    })?;
    if digests.is_empty() || digests.len() > 100 {
        return Err(EcrError::InvalidParameter(
            "Invalid parameter at 'layerDigests' failed to satisfy constraint: 'Member must have length between 1 and 100'".into(),
        ));
    }
    if let Some(bad) = digests.iter().find(|d| !layer_digest_shape(d)) {
        return Err(layer_digest_shape_error(bad, "layerDigests"));
    }
    let target = open_repository(ctx, input.registry_id.as_deref(), &input.repository_name).await?;
    // The upload is one layer: its digest is the first (ECR ignores the rest too).
    let digest = layer_digest(&digests[0], "layerDigests")?;
    let registry = &ctx.state.inner.registry;
    let held = registry
        .upload_status(&target.repo, &id)
        .await
        .map_err(|e| target.registry_error(e))?
        .offset;
    if held == 0 {
        return Err(EcrError::EmptyUpload(format!(
            "The upload with id '{id}' contains no layer parts"
        )));
    }
    let linked = registry
        .link_store()
        .linked_blob(&target.repo, &digest)
        .await
        .map_err(|e| EcrError::from_meta(e, &target.registry))?;
    if linked.is_some() {
        // The bytes are not needed: the repository already holds this layer.
        if let Err(e) = registry.cancel_upload(&target.repo, &id).await {
            tracing::warn!(upload = %id, error = %e, "could not drop a redundant layer upload");
        }
        return Err(EcrError::LayerAlreadyExists(format!(
            "The layer '{digest}' already exists in the repository with name '{}' in the registry with id '{}'",
            target.name, target.registry
        )));
    }
    registry
        .finish_upload(&target.repo, &id, &digest)
        .await
        .map_err(|e| match e {
            RegistryError::DigestMismatch { expected, actual } => EcrError::InvalidLayer(format!(
                "The layer digest '{expected}' does not match the digest '{actual}' calculated from the uploaded parts; the upload is discarded"
            )),
            other => target.registry_error(other),
        })?;
    Ok(json!({
        "registryId": target.registry,
        "repositoryName": target.name,
        "uploadId": id,
        "layerDigest": digest.to_string(),
    }))
}

// ---- GetDownloadUrlForLayer ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GetDownloadUrlForLayerInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    layer_digest: Option<String>,
}

pub(super) async fn get_download_url_for_layer(
    ctx: &Ctx<'_>,
    input: GetDownloadUrlForLayerInput,
) -> Result<Value, EcrError> {
    required(&input.repository_name, "repositoryName")?;
    let text = required(&input.layer_digest, "layerDigest")?;
    let digest = layer_digest(text, "layerDigest")?;
    let target = open_repository(ctx, input.registry_id.as_deref(), &input.repository_name).await?;
    let from_meta = |e| EcrError::from_meta(e, &target.registry);
    if ctx
        .state
        .inner
        .registry
        .link_store()
        .linked_blob(&target.repo, &digest)
        .await
        .map_err(from_meta)?
        .is_none()
    {
        return Err(EcrError::LayersNotFound(format!(
            "The layer '{digest}' could not be found in the repository with name '{}' in the registry with id '{}'",
            target.name, target.registry
        )));
    }
    if !ctx
        .state
        .inner
        .registry
        .link_store()
        .blob_referenced(&target.repo, &digest)
        .await
        .map_err(from_meta)?
    {
        return Err(EcrError::LayerInaccessible(format!(
            "The layer '{digest}' is not referenced by any image in the repository with name '{}'",
            target.name
        )));
    }
    let expires_at = ctx.now.unix_timestamp() + DOWNLOAD_LIFETIME_SECS;
    let grant = sign_download(
        &ctx.state.inner.config.login_token_key,
        &target.registry,
        &target.name,
        &digest.to_string(),
        expires_at,
    );
    let scheme = if ctx.conn.secure { "https" } else { "http" };
    Ok(json!({
        "downloadUrl": format!(
            "{scheme}://{}/v2/{}/blobs/{digest}?{DOWNLOAD_PARAM}={grant}&{DOWNLOAD_REGISTRY_PARAM}={}",
            ctx.registry_host(&target.registry), target.name, target.registry
        ),
        "layerDigest": digest.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_must_continue_the_upload_exactly() {
        assert!(check_part(0, 9, 10, 0).is_ok());
        assert!(check_part(10, 10, 1, 10).is_ok());
        // Not contiguous: a gap, an overlap, a restart.
        assert!(check_part(11, 20, 10, 10)
            .unwrap_err()
            .contains("start at byte 10"));
        assert!(check_part(5, 14, 10, 10).is_err());
        assert!(check_part(0, 9, 10, 10).is_err());
        // Bounds that do not match the bytes sent.
        assert!(check_part(0, 8, 10, 0).is_err());
        assert!(check_part(0, 10, 10, 0).is_err());
        assert!(check_part(5, 4, 0, 5).is_err());
        assert!(check_part(9, 0, 10, 9).is_err());
        // Empty parts are refused.
        assert!(check_part(0, 0, 0, 0).unwrap_err().contains("empty"));
    }

    #[test]
    fn digests_and_upload_ids_follow_the_model_patterns() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert!(layer_digest(&good, "layerDigest").is_ok());
        assert!(matches!(
            layer_digest("sha256:xyz", "layerDigest"),
            Err(EcrError::InvalidParameter(_))
        ));
        assert!(matches!(
            layer_digest("nocolon", "layerDigest"),
            Err(EcrError::InvalidParameter(_))
        ));
        // The model's shape, but not a digest Berth can verify.
        assert!(matches!(
            layer_digest("md5:abcdef", "layerDigest"),
            Err(EcrError::InvalidLayer(_))
        ));
        assert!(upload_id("0a1b2c3d-0000-4000-8000-00000000abcd").is_ok());
        for bad in [
            "",
            "x",
            "0a1b2c3d00004000800000000000abcd",
            "0a1b2c3d-0000-4000-8000-00000000abcg",
        ] {
            assert!(upload_id(bad).is_err(), "{bad}");
        }
    }
}
