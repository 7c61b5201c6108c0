//! UpdateImageStorageClass: ECR's archive storage class. `ARCHIVE` moves an `ACTIVE` image
//! to the archive tier and answers `ARCHIVED`; `STANDARD` starts restoring an `ARCHIVED`
//! image and answers `ACTIVATING` (the image is `ACTIVE` once its blobs are back; poll
//! DescribeImages). The work is the core's (`berth_registry::archive`); this is the shape.
//!
//! Transitions the image's status does not allow (archiving an image that is archived or
//! being restored, restoring an `ACTIVE` one) answer
//! `ImageStorageClassUpdateNotSupportedException` saying why; asking again to restore an
//! image being restored answers `ACTIVATING` (the restore goes on).

use serde::Deserialize;
use serde_json::{json, Value};

use berth_meta::archive::ImageStatus;
use berth_registry::RegistryError;
use berth_types::{Digest, Reference, Tag};

use super::images::{open_repository, Target};
use super::{required, Ctx};
use crate::error::EcrError;

/// The model's `ImageIdentifier`.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ImageIdentifier {
    image_digest: Option<String>,
    image_tag: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UpdateImageStorageClassInput {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_id: Option<ImageIdentifier>,
    target_storage_class: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetClass {
    Standard,
    Archive,
}

fn target_class(s: Option<&str>) -> Result<TargetClass, EcrError> {
    match s {
        Some("STANDARD") => Ok(TargetClass::Standard),
        Some("ARCHIVE") => Ok(TargetClass::Archive),
        None => Err(EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'targetStorageClass' failed to satisfy constraint: Member must not be null".into(),
        )),
        Some(other) => Err(EcrError::InvalidParameter(format!(
            "Invalid parameter at 'targetStorageClass' failed to satisfy constraint: 'Member must satisfy enum value set: [STANDARD, ARCHIVE]' (got '{other}')"
        ))),
    }
}

/// The digest and tag of the identifier, checked against the model.
fn parse_image_id(id: &Option<ImageIdentifier>) -> Result<(Option<Digest>, Option<Tag>), EcrError> {
    let id = id.as_ref().ok_or_else(|| {
        EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'imageId' failed to satisfy constraint: Member must not be null".into(),
        )
    })?;
    let digest = match &id.image_digest {
        None => None,
        Some(d) => Some(d.parse::<Digest>().map_err(|_| {
            EcrError::InvalidParameter(format!(
                "Invalid parameter at 'imageId.imageDigest' failed to satisfy constraint: 'must be a digest such as sha256:<64 hex digits>' (got '{d}')"
            ))
        })?),
    };
    let tag = match &id.image_tag {
        None => None,
        Some(t) => Some(t.parse::<Tag>().map_err(|_| {
            EcrError::InvalidParameter(format!(
                "Invalid parameter at 'imageId.imageTag' failed to satisfy constraint: 'must be a valid image tag of 1 to 128 characters' (got '{t}')"
            ))
        })?),
    };
    if digest.is_none() && tag.is_none() {
        return Err(EcrError::InvalidParameter(
            "Invalid parameter at 'imageId': both imageDigest and imageTag cannot be null".into(),
        ));
    }
    Ok((digest, tag))
}

fn image_not_found(t: &Target, digest: &Option<Digest>, tag: &Option<Tag>) -> EcrError {
    EcrError::ImageNotFound(format!(
        "The image with imageId {{imageDigest:'{}', imageTag:'{}'}} does not exist within the repository with name '{}' in the registry with id '{}'",
        digest.as_ref().map_or("null".to_string(), |d| d.to_string()),
        tag.as_ref().map_or("null", |t| t.as_str()),
        t.name,
        t.registry
    ))
}

pub(super) async fn update_image_storage_class(
    ctx: &Ctx<'_>,
    input: UpdateImageStorageClassInput,
) -> Result<Value, EcrError> {
    required(&input.repository_name, "repositoryName")?;
    let (digest, tag) = parse_image_id(&input.image_id)?;
    let class = target_class(input.target_storage_class.as_deref())?;
    let target = open_repository(ctx, input.registry_id.as_deref(), &input.repository_name).await?;
    let registry = &ctx.state.inner.registry;
    let not_found = || image_not_found(&target, &digest, &tag);
    // Resolve the tag (the status does not matter for this).
    let image = match &tag {
        Some(t) => {
            let d = match registry
                .resolve(&target.repo, &Reference::Tag(t.clone()))
                .await
            {
                Ok(d) => d,
                Err(RegistryError::ManifestNotFound(_)) => return Err(not_found()),
                Err(e) => return Err(target.registry_error(e)),
            };
            if digest.as_ref().is_some_and(|want| want != &d) {
                return Err(not_found());
            }
            d
        }
        None => digest
            .clone()
            .expect("parse_image_id requires a digest or a tag"),
    };
    let result = match class {
        TargetClass::Archive => registry
            .archive_image(&target.repo, &image)
            .await
            .map(|()| ImageStatus::Archived),
        TargetClass::Standard => registry.restore_image(&target.repo, &image).await,
    };
    let status = match result {
        Ok(s) => s,
        Err(RegistryError::ManifestNotFound(_)) => return Err(not_found()),
        Err(RegistryError::StorageClassUnchanged(m)) => {
            // Asking again while a restore runs is not an error: it goes on.
            if class == TargetClass::Standard && m.contains("being restored") {
                ImageStatus::Activating
            } else {
                return Err(EcrError::ImageStorageClassUpdateNotSupported(m));
            }
        }
        Err(RegistryError::Unsupported(m)) => {
            return Err(EcrError::ImageStorageClassUpdateNotSupported(m))
        }
        Err(e) => return Err(target.registry_error(e)),
    };
    let mut image_id = json!({"imageDigest": image.to_string()});
    if let Some(t) = &tag {
        image_id["imageTag"] = json!(t.as_str());
    }
    Ok(json!({
        "registryId": target.registry,
        "repositoryName": target.name,
        "imageId": image_id,
        "imageStatus": status.as_api(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_checked_against_the_model() {
        assert_eq!(target_class(Some("ARCHIVE")).unwrap(), TargetClass::Archive);
        assert_eq!(
            target_class(Some("STANDARD")).unwrap(),
            TargetClass::Standard
        );
        for bad in [None, Some("archive"), Some("GLACIER")] {
            assert!(matches!(
                target_class(bad),
                Err(EcrError::InvalidParameter(_))
            ));
        }
        assert!(parse_image_id(&None).is_err());
        assert!(parse_image_id(&Some(ImageIdentifier::default())).is_err());
        let bad_digest = ImageIdentifier {
            image_digest: Some("sha256:nope".into()),
            image_tag: None,
        };
        assert!(parse_image_id(&Some(bad_digest)).is_err());
        let ok = ImageIdentifier {
            image_digest: None,
            image_tag: Some("v1".into()),
        };
        let (d, t) = parse_image_id(&Some(ok)).unwrap();
        assert!(d.is_none() && t.unwrap().as_str() == "v1");
    }
}
