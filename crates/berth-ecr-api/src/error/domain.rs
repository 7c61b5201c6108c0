//! Domain errors of the layers below (access, metadata, settings, the core registry)
//! in the edge's words: the one place each becomes an [`EcrError`].

use berth_aws_service::cause_chain;
use berth_meta::MetaError;

use super::EcrError;

/// How long a client waits before retrying a layer garbage collection is still deleting:
/// a later pass finishes the deletion (the `/v2` edge answers the same `Retry-After`).
const BLOB_DELETION_RETRY_SECS: u64 = 60;

impl From<berth_access::AccessError> for EcrError {
    fn from(e: berth_access::AccessError) -> Self {
        use berth_access::AccessError as A;
        match e {
            A::Authentication(e) => EcrError::Authentication(e),
            A::AccessDenied(m) => EcrError::AccessDenied(m),
            // An unreadable store or a stored policy that no longer parses: ours, not the
            // caller's. The chain names the store's failure, never a secret.
            e @ (A::Store { .. } | A::StoredPolicy { .. }) => EcrError::Internal(cause_chain(&e)),
        }
    }
}

impl EcrError {
    /// A meta store error about repository `name` of `registry`.
    pub fn from_meta(e: MetaError, registry: &str) -> Self {
        let registry = registry.to_string();
        match e {
            MetaError::RepositoryNotFound(name) => EcrError::RepositoryNotFound { registry, name },
            MetaError::RepositoryAlreadyExists(name) => {
                EcrError::RepositoryAlreadyExists { registry, name }
            }
            MetaError::RepositoryNotEmpty(name) => EcrError::RepositoryNotEmpty { registry, name },
            // The image and layer facts, worded as `from_registry` words them (the store
            // does not know the repository's short name, so the messages leave it out).
            MetaError::BlobNotLinked(d) => EcrError::LayersNotFound(format!(
                "The layer with digest '{d}' does not exist in the repository in the registry with id '{registry}'"
            )),
            MetaError::ChildManifestMissing(d) => EcrError::ReferencedImagesNotFound(format!(
                "The manifest list references image '{d}', which does not exist in the repository in the registry with id '{registry}'"
            )),
            e @ (MetaError::BlobReferenced { .. } | MetaError::ManifestReferenced { .. }) => {
                EcrError::InvalidParameter(e.to_string())
            }
            MetaError::UploadNotFound(id) => EcrError::UploadNotFound(format!(
                "Upload with id '{id}' was not found in the registry with id '{registry}'"
            )),
            MetaError::TagImmutable { repository, tag } => EcrError::ImageTagAlreadyExists(
                berth_registry::RegistryError::TagImmutable { repository, tag }.to_string(),
            ),
            e @ MetaError::BlobBeingDeleted(_) => EcrError::Unavailable {
                message: e.to_string(),
                retry_after_secs: BLOB_DELETION_RETRY_SECS,
            },
            MetaError::StorageFull => EcrError::StorageFull,
            e @ MetaError::Database(_) => EcrError::Internal(cause_chain(&e)),
        }
    }
}

impl EcrError {
    /// A settings store error in the registry `registry`.
    pub fn from_settings(e: berth_meta::SettingsError, registry: &str) -> Self {
        use berth_meta::SettingsError as S;
        let registry = registry.to_string();
        match e {
            S::RepositoryNotFound(name) => EcrError::RepositoryNotFound { registry, name },
            S::RepositoryAlreadyExists(name) => {
                EcrError::RepositoryAlreadyExists { registry, name }
            }
            S::RepositoryPolicyNotFound(name) => {
                EcrError::RepositoryPolicyNotFound { registry, name }
            }
            S::RegistryPolicyNotFound(_) => EcrError::RegistryPolicyNotFound { registry },
            S::TooManyTags { repository, count } => EcrError::TooManyTags(format!(
                "The repository '{repository}' would have {count} tags; a repository can have at most {} tags",
                berth_meta::settings::MAX_TAGS_PER_RESOURCE
            )),
            S::TemplateAlreadyExists(prefix) => EcrError::TemplateAlreadyExists { registry, prefix },
            S::TemplateNotFound(prefix) => EcrError::TemplateNotFound { registry, prefix },
            S::Meta(m) => EcrError::from_meta(m, &registry),
        }
    }
}

impl EcrError {
    /// A core registry error met while working on `repository` of `registry`, in the
    /// words of the image and layer actions. Handlers map the few errors whose meaning
    /// depends on the action (a digest mismatch on CompleteLayerUpload, an out-of-order
    /// part) before falling back to this.
    pub fn from_registry(
        e: berth_registry::RegistryError,
        registry: &str,
        repository: &str,
    ) -> Self {
        use berth_registry::RegistryError as R;
        match e {
            R::RepositoryNotFound(name) => EcrError::RepositoryNotFound {
                registry: registry.to_string(),
                name,
            },
            R::TagImmutable { .. } => EcrError::ImageTagAlreadyExists(e.to_string()),
            R::ManifestBlobUnknown(d) | R::BlobNotFound(d) => EcrError::LayersNotFound(format!(
                "Layers with digests '[{d}]' required for pushing image into repository with name '{repository}' in registry with id '{registry}' do not exist"
            )),
            R::ManifestChildUnknown(d) => EcrError::ReferencedImagesNotFound(format!(
                "The manifest list references image '{d}', which does not exist in repository with name '{repository}' in registry with id '{registry}'"
            )),
            R::DigestMismatch { expected, actual } => EcrError::ImageDigestDoesNotMatch(format!(
                "Provided digest '{expected}' does not match the calculated digest '{actual}' of the image manifest"
            )),
            R::ManifestNotFound(r) => EcrError::ImageNotFound(format!(
                "The image with imageId '{r}' does not exist within the repository with name '{repository}' in the registry with id '{registry}'"
            )),
            // The archive storage class.
            R::ImageArchived { .. } => EcrError::ImageNotFound(e.to_string()),
            R::BlobArchived(_) => EcrError::LayersNotFound(e.to_string()),
            R::StorageClassUnchanged(m) => EcrError::ImageStorageClassUpdateNotSupported(m),
            R::UploadNotFound(id) => EcrError::UploadNotFound(format!(
                "Upload with id '{id}' was not found in the repository with name '{repository}' in the registry with id '{registry}'"
            )),
            R::ManifestInvalid(m) => EcrError::InvalidParameter(format!(
                "Invalid parameter at 'imageManifest' failed to satisfy constraint: '{m}'"
            )),
            R::DescriptorSizeMismatch { .. } => EcrError::InvalidParameter(format!(
                "Invalid parameter at 'imageManifest' failed to satisfy constraint: '{e}'"
            )),
            e @ (R::InvalidName(_)
            | R::InvalidTag(_)
            | R::InvalidDigest(_)
            | R::UploadInvalid(_)
            | R::UploadOutOfOrder { .. }
            | R::SizeInvalid(_)
            | R::ManifestReferenced { .. }
            | R::BlobReferenced { .. }
            | R::Unsupported(_)
            | R::RangeNotSatisfiable { .. }) => EcrError::InvalidParameter(e.to_string()),
            // A commit of a layer whose earlier copy garbage collection is still deleting
            // (its collector died): a later pass finishes it and the retry succeeds.
            e @ R::BlobBeingDeleted(_) => EcrError::Unavailable {
                message: e.to_string(),
                retry_after_secs: BLOB_DELETION_RETRY_SECS,
            },
            R::StorageFull => EcrError::StorageFull,
            e @ R::Internal(_) => EcrError::Internal(cause_chain(&e)),
        }
    }
}
