//! The one place where ECR edge errors become wire errors: status, `__type` and message,
//! in the AWS JSON 1.1 shape `{"__type": "...", "message": "..."}`.
//!
//! Client errors are HTTP 400 (as AWS JSON services answer them); only `ServerException`
//! is 500. Actions of the model that this Berth version does not implement answer
//! `UnsupportedOperationException` (400) naming the action: the model has no exception for
//! "not implemented", and every choice it does have (`InvalidParameterException`,
//! `ServerException`, ...) would tell a client something false. SDKs surface an unmodelled
//! `__type` as a generic client error carrying that code and message, which is what a
//! script needs to see.

use berth_meta::MetaError;
use berth_sigv4::SigV4Error;
use http::StatusCode;

use crate::operation::EcrOperation;

/// Everything that can go wrong on the ECR edge, in domain words.
#[derive(Debug)]
pub enum EcrError {
    /// The `X-Amz-Target` header is missing or names no ECR action.
    UnknownOperation,
    /// The body is not JSON, or a member has the wrong type.
    Serialization(String),
    /// The body exceeds the edge's limit.
    BodyTooLarge {
        limit: usize,
    },
    /// A member fails the model's constraints.
    InvalidParameter(String),
    RepositoryAlreadyExists {
        registry: String,
        name: String,
    },
    RepositoryNotFound {
        registry: String,
        name: String,
    },
    RepositoryNotEmpty {
        registry: String,
        name: String,
    },
    // -- Registry configuration (policies, tags, account settings, creation templates). --
    RepositoryPolicyNotFound {
        registry: String,
        name: String,
    },
    RegistryPolicyNotFound {
        registry: String,
    },
    /// A resource would carry more than 50 tags, or a request names more.
    TooManyTags(String),
    /// A tag key or value breaks ECR's tag rules.
    InvalidTagParameter(String),
    TemplateAlreadyExists {
        registry: String,
        prefix: String,
    },
    TemplateNotFound {
        registry: String,
        prefix: String,
    },
    // -- End of registry configuration. --
    // -- Images, layers, tag mutability and pull times. --
    ImageNotFound(String),
    /// PutImage changed nothing: that manifest (and tag) were already there.
    ImageAlreadyExists(String),
    /// The tag is immutable in the repository and points at another image.
    ImageTagAlreadyExists(String),
    ImageDigestDoesNotMatch(String),
    LayersNotFound(String),
    ReferencedImagesNotFound(String),
    LayerInaccessible(String),
    UploadNotFound(String),
    /// The uploaded bytes do not hash to the digest given (or it is unusable).
    InvalidLayer(String),
    /// A part that does not continue the upload; `last_valid_byte_received` is the
    /// offset of the upload's last byte (absent while it holds none).
    InvalidLayerPart {
        registry: String,
        repository: String,
        upload_id: String,
        last_valid_byte_received: Option<u64>,
        message: String,
    },
    LayerAlreadyExists(String),
    EmptyUpload(String),
    ExclusionAlreadyExists(String),
    ExclusionNotFound(String),
    LimitExceeded(String),
    // -- End of images and layers. --
    // -- Lifecycle policies and previews. --
    LifecyclePolicyNotFound {
        registry: String,
        name: String,
    },
    LifecyclePolicyPreviewNotFound {
        registry: String,
        name: String,
    },
    LifecyclePolicyPreviewInProgress {
        registry: String,
        name: String,
    },
    /// A lifecycle policy text berth-lifecycle refuses; its message is ECR's.
    InvalidLifecyclePolicy(berth_lifecycle::LifecycleError),
    // -- End of lifecycle policies. --
    // -- The archive storage class. --
    /// A storage class change the image's status does not allow, or no archive tier.
    ImageStorageClassUpdateNotSupported(String),
    // -- End of the archive storage class. --
    /// SigV4 failed (missing, malformed, unknown or inactive key, bad signature, skew).
    Authentication(SigV4Error),
    /// IAM denied the request; the message is berth-iam's AWS-shaped denial message.
    AccessDenied(String),
    /// An action of the model this Berth version does not implement.
    Unsupported(EcrOperation),
    /// Over the account's quota for the action (`[limits]`); retry after that many seconds.
    Throttled {
        retry_after_secs: u64,
    },
    /// Anything internal; the cause goes to the log only.
    Internal(String),
}

/// An error as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub status: StatusCode,
    pub aws_type: &'static str,
    pub message: String,
}

/// The one mapping from [`EcrError`] to the wire.
pub fn to_wire(e: &EcrError) -> WireError {
    let bad = StatusCode::BAD_REQUEST;
    let (status, aws_type, message) = match e {
        EcrError::UnknownOperation => (
            bad,
            "UnknownOperationException",
            format!(
                "The X-Amz-Target header names no action of this service (expected {}.<Action>)",
                crate::operation::TARGET_PREFIX
            ),
        ),
        EcrError::Serialization(m) => (bad, "SerializationException", m.clone()),
        EcrError::BodyTooLarge { limit } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "SerializationException",
            format!("The request body exceeds the limit of {limit} bytes."),
        ),
        EcrError::InvalidParameter(m) => (bad, "InvalidParameterException", m.clone()),
        EcrError::RepositoryAlreadyExists { registry, name } => (
            bad,
            "RepositoryAlreadyExistsException",
            format!("The repository with name '{name}' already exists in the registry with id '{registry}'"),
        ),
        EcrError::RepositoryNotFound { registry, name } => (
            bad,
            "RepositoryNotFoundException",
            format!("The repository with name '{name}' does not exist in the registry with id '{registry}'"),
        ),
        EcrError::RepositoryNotEmpty { registry, name } => (
            bad,
            "RepositoryNotEmptyException",
            format!("The repository with name '{name}' in registry with id '{registry}' cannot be deleted because it still contains images"),
        ),
        EcrError::RepositoryPolicyNotFound { registry, name } => (
            bad,
            "RepositoryPolicyNotFoundException",
            format!("Repository policy does not exist for the repository with name '{name}' in the registry with id '{registry}'"),
        ),
        EcrError::RegistryPolicyNotFound { registry } => (
            bad,
            "RegistryPolicyNotFoundException",
            format!("Registry policy does not exist in the registry with id '{registry}'"),
        ),
        EcrError::TooManyTags(m) => (bad, "TooManyTagsException", m.clone()),
        EcrError::InvalidTagParameter(m) => (bad, "InvalidTagParameterException", m.clone()),
        EcrError::TemplateAlreadyExists { registry, prefix } => (
            bad,
            "TemplateAlreadyExistsException",
            format!("A repository creation template with prefix '{prefix}' already exists in the registry with id '{registry}'"),
        ),
        EcrError::TemplateNotFound { registry, prefix } => (
            bad,
            "TemplateNotFoundException",
            format!("No repository creation template with prefix '{prefix}' exists in the registry with id '{registry}'"),
        ),
        EcrError::ImageNotFound(m) => (bad, "ImageNotFoundException", m.clone()),
        EcrError::ImageAlreadyExists(m) => (bad, "ImageAlreadyExistsException", m.clone()),
        EcrError::ImageTagAlreadyExists(m) => (bad, "ImageTagAlreadyExistsException", m.clone()),
        EcrError::ImageDigestDoesNotMatch(m) => {
            (bad, "ImageDigestDoesNotMatchException", m.clone())
        }
        EcrError::LayersNotFound(m) => (bad, "LayersNotFoundException", m.clone()),
        EcrError::ReferencedImagesNotFound(m) => {
            (bad, "ReferencedImagesNotFoundException", m.clone())
        }
        EcrError::LayerInaccessible(m) => (bad, "LayerInaccessibleException", m.clone()),
        EcrError::UploadNotFound(m) => (bad, "UploadNotFoundException", m.clone()),
        EcrError::InvalidLayer(m) => (bad, "InvalidLayerException", m.clone()),
        EcrError::InvalidLayerPart { message, .. } => {
            (bad, "InvalidLayerPartException", message.clone())
        }
        EcrError::LayerAlreadyExists(m) => (bad, "LayerAlreadyExistsException", m.clone()),
        EcrError::EmptyUpload(m) => (bad, "EmptyUploadException", m.clone()),
        EcrError::ExclusionAlreadyExists(m) => {
            (bad, "ExclusionAlreadyExistsException", m.clone())
        }
        EcrError::ExclusionNotFound(m) => (bad, "ExclusionNotFoundException", m.clone()),
        EcrError::LimitExceeded(m) => (bad, "LimitExceededException", m.clone()),
        EcrError::LifecyclePolicyNotFound { registry, name } => (
            bad,
            "LifecyclePolicyNotFoundException",
            format!("Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{registry}'"),
        ),
        EcrError::LifecyclePolicyPreviewNotFound { registry, name } => (
            bad,
            "LifecyclePolicyPreviewNotFoundException",
            format!("Lifecycle policy preview does not exist for the repository with name '{name}' in the registry with id '{registry}'"),
        ),
        EcrError::LifecyclePolicyPreviewInProgress { registry, name } => (
            bad,
            "LifecyclePolicyPreviewInProgressException",
            format!("The previous lifecycle policy preview request for the repository with name '{name}' in the registry with id '{registry}' has not completed; wait and try again"),
        ),
        EcrError::InvalidLifecyclePolicy(e) => (bad, "InvalidParameterException", e.to_string()),
        EcrError::ImageStorageClassUpdateNotSupported(m) => {
            (bad, "ImageStorageClassUpdateNotSupportedException", m.clone())
        }
        EcrError::Authentication(e) => (
            StatusCode::from_u16(e.json_status()).unwrap_or(bad),
            e.aws_type(),
            e.detailed_message(),
        ),
        EcrError::AccessDenied(m) => (bad, "AccessDeniedException", m.clone()),
        EcrError::Unsupported(op) => (
            bad,
            "UnsupportedOperationException",
            format!("{} is not implemented by this Berth version", op.iam_action()),
        ),
        EcrError::Throttled { .. } => (bad, "ThrottlingException", "Rate exceeded".to_string()),
        EcrError::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServerException",
            "An internal error occurred; see the server log for the request id.".to_string(),
        ),
    };
    WireError {
        status,
        aws_type,
        message,
    }
}

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

#[cfg(test)]
mod settings_error_tests {
    use super::*;
    use berth_meta::SettingsError;

    #[test]
    fn settings_errors_map_to_the_model_exceptions() {
        let cases: Vec<(SettingsError, &str)> = vec![
            (
                SettingsError::RepositoryNotFound("a".into()),
                "RepositoryNotFoundException",
            ),
            (
                SettingsError::RepositoryPolicyNotFound("a".into()),
                "RepositoryPolicyNotFoundException",
            ),
            (
                SettingsError::RegistryPolicyNotFound("1".into()),
                "RegistryPolicyNotFoundException",
            ),
            (
                SettingsError::TooManyTags {
                    repository: "a".into(),
                    count: 51,
                },
                "TooManyTagsException",
            ),
            (
                SettingsError::TemplateAlreadyExists("p".into()),
                "TemplateAlreadyExistsException",
            ),
            (
                SettingsError::TemplateNotFound("p".into()),
                "TemplateNotFoundException",
            ),
            (
                SettingsError::Meta(berth_meta::MetaError::StorageFull),
                "ServerException",
            ),
        ];
        for (e, ty) in cases {
            let w = to_wire(&EcrError::from_settings(e, "123456789012"));
            assert_eq!(w.aws_type, ty);
            assert_eq!(
                w.status.as_u16(),
                if ty == "ServerException" { 500 } else { 400 }
            );
        }
        let w = to_wire(&EcrError::from_settings(
            SettingsError::RepositoryPolicyNotFound("team/app".into()),
            "123456789012",
        ));
        assert_eq!(w.message, "Repository policy does not exist for the repository with name 'team/app' in the registry with id '123456789012'");
        assert_eq!(
            to_wire(&EcrError::InvalidTagParameter("k".into())).aws_type,
            "InvalidTagParameterException"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_400_with_model_names_and_server_errors_500() {
        let cases: Vec<(EcrError, u16, &str)> = vec![
            (EcrError::UnknownOperation, 400, "UnknownOperationException"),
            (
                EcrError::Serialization("x".into()),
                400,
                "SerializationException",
            ),
            (
                EcrError::InvalidParameter("x".into()),
                400,
                "InvalidParameterException",
            ),
            (
                EcrError::RepositoryAlreadyExists {
                    registry: "1".into(),
                    name: "a".into(),
                },
                400,
                "RepositoryAlreadyExistsException",
            ),
            (
                EcrError::RepositoryNotFound {
                    registry: "1".into(),
                    name: "a".into(),
                },
                400,
                "RepositoryNotFoundException",
            ),
            (
                EcrError::RepositoryNotEmpty {
                    registry: "1".into(),
                    name: "a".into(),
                },
                400,
                "RepositoryNotEmptyException",
            ),
            (
                EcrError::Authentication(SigV4Error::UnrecognizedClient {
                    access_key_id: "AKIA".into(),
                }),
                400,
                "UnrecognizedClientException",
            ),
            (
                EcrError::Authentication(SigV4Error::MissingAuthentication),
                400,
                "MissingAuthenticationTokenException",
            ),
            (
                EcrError::AccessDenied("no".into()),
                400,
                "AccessDeniedException",
            ),
            (
                EcrError::Unsupported(EcrOperation::PutImage),
                400,
                "UnsupportedOperationException",
            ),
            (
                EcrError::Throttled {
                    retry_after_secs: 1,
                },
                400,
                "ThrottlingException",
            ),
            (EcrError::Internal("boom".into()), 500, "ServerException"),
        ];
        for (e, status, ty) in cases {
            let w = to_wire(&e);
            assert_eq!(w.status.as_u16(), status, "{e:?}");
            assert_eq!(w.aws_type, ty, "{e:?}");
        }
        let w = to_wire(&EcrError::Unsupported(EcrOperation::PutImage));
        assert_eq!(
            w.message,
            "ecr:PutImage is not implemented by this Berth version"
        );
        // The internal cause never reaches the wire.
        assert!(!to_wire(&EcrError::Internal("secret path".into()))
            .message
            .contains("secret"));
        let w = to_wire(&EcrError::RepositoryNotFound {
            registry: "123".into(),
            name: "a/b".into(),
        });
        assert_eq!(
            w.message,
            "The repository with name 'a/b' does not exist in the registry with id '123'"
        );
    }

    #[test]
    fn meta_errors_map_to_repository_exceptions() {
        assert!(matches!(
            EcrError::from_meta(MetaError::RepositoryNotEmpty("a".into()), "1"),
            EcrError::RepositoryNotEmpty { .. }
        ));
        assert!(matches!(
            EcrError::from_meta(MetaError::StorageFull, "1"),
            EcrError::Internal(_)
        ));
    }
}

// -- Images, layers, tag mutability and pull times. --

/// The JSON body of an error: `__type` and `message`, plus the members the model gives
/// some exceptions (InvalidLayerPartException's `lastValidByteReceived`, ...).
pub fn error_body(e: &EcrError, wire: &WireError) -> serde_json::Value {
    let mut body = berth_aws_service::json11_error(wire.aws_type, &wire.message);
    if let EcrError::InvalidLayerPart {
        registry,
        repository,
        upload_id,
        last_valid_byte_received,
        ..
    } = e
    {
        body["registryId"] = registry.as_str().into();
        body["repositoryName"] = repository.as_str().into();
        body["uploadId"] = upload_id.as_str().into();
        if let Some(last) = last_valid_byte_received {
            body["lastValidByteReceived"] = (*last).into();
        }
    }
    body
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

#[cfg(test)]
mod image_error_tests {
    use super::*;
    use berth_registry::RegistryError;

    #[test]
    fn image_and_layer_errors_map_to_the_model_exceptions() {
        let d = berth_types::Digest::sha256_of(b"x");
        let reg = |e| EcrError::from_registry(e, "1", "a");
        let cases: Vec<(EcrError, &str)> = vec![
            (
                reg(RegistryError::TagImmutable {
                    repository: "a".into(),
                    tag: "v1".into(),
                }),
                "ImageTagAlreadyExistsException",
            ),
            (
                reg(RegistryError::ManifestBlobUnknown(d.clone())),
                "LayersNotFoundException",
            ),
            (
                reg(RegistryError::ManifestChildUnknown(d.clone())),
                "ReferencedImagesNotFoundException",
            ),
            (
                reg(RegistryError::DigestMismatch {
                    expected: d.clone(),
                    actual: d.clone(),
                }),
                "ImageDigestDoesNotMatchException",
            ),
            (
                reg(RegistryError::UploadNotFound("u".into())),
                "UploadNotFoundException",
            ),
            (
                reg(RegistryError::RepositoryNotFound("a".into())),
                "RepositoryNotFoundException",
            ),
            (reg(RegistryError::StorageFull), "ServerException"),
            (EcrError::EmptyUpload("x".into()), "EmptyUploadException"),
            (
                EcrError::LayerAlreadyExists("x".into()),
                "LayerAlreadyExistsException",
            ),
            (EcrError::InvalidLayer("x".into()), "InvalidLayerException"),
            (
                EcrError::ExclusionNotFound("x".into()),
                "ExclusionNotFoundException",
            ),
            (
                EcrError::LimitExceeded("x".into()),
                "LimitExceededException",
            ),
        ];
        for (e, ty) in cases {
            let w = to_wire(&e);
            assert_eq!(w.aws_type, ty, "{e:?}");
            let status = if ty == "ServerException" { 500 } else { 400 };
            assert_eq!(w.status.as_u16(), status);
        }
        let part = EcrError::InvalidLayerPart {
            registry: "123456789012".into(),
            repository: "a/b".into(),
            upload_id: "u".into(),
            last_valid_byte_received: Some(99),
            message: "m".into(),
        };
        let body = error_body(&part, &to_wire(&part));
        assert_eq!(body["__type"], "InvalidLayerPartException");
        assert_eq!(body["lastValidByteReceived"], 99);
        assert_eq!(body["uploadId"], "u");
        let plain = EcrError::ImageNotFound("gone".into());
        assert_eq!(
            error_body(&plain, &to_wire(&plain)),
            serde_json::json!({"__type": "ImageNotFoundException", "message": "gone"})
        );
    }
}
