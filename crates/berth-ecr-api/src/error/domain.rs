//! Domain errors of the layers below (access, metadata, settings, the core registry)
//! in the edge's words: the one place each becomes an [`EcrError`].

use berth_meta::MetaError;

use super::EcrError;

impl From<berth_access::AccessError> for EcrError {
    fn from(e: berth_access::AccessError) -> Self {
        use berth_access::AccessError as A;
        match e {
            A::Authentication(e) => EcrError::Authentication(e),
            A::AccessDenied(m) => EcrError::AccessDenied(m),
            internal => EcrError::Internal(format!(
                "{internal}: {:?}",
                std::error::Error::source(&internal)
            )),
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
            other => {
                EcrError::Internal(format!("{other}: {:?}", std::error::Error::source(&other)))
            }
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
            other => EcrError::Internal(format!(
                "{other}: {:?}",
                std::error::Error::source(&other)
            )),
        }
    }
}
