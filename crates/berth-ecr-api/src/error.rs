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
    /// The server cannot do this now, through no fault of the request, and a retry after
    /// `retry_after_secs` should succeed (a layer garbage collection is still deleting).
    /// `message` is for the client: it says what to wait for, never an internal cause.
    Unavailable {
        message: String,
        retry_after_secs: u64,
    },
    /// The registry's storage (metadata database or blob store) is full; nothing was written.
    StorageFull,
    /// Anything internal; the cause (for the log only) is in the string, which never
    /// reaches the wire.
    Internal(String),
}

/// An error as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub status: StatusCode,
    pub aws_type: &'static str,
    pub message: String,
    /// The `Retry-After` header's seconds, when the client should wait before retrying.
    pub retry_after_secs: Option<u64>,
}

/// The one mapping from [`EcrError`] to the wire.
pub fn to_wire(e: &EcrError) -> WireError {
    let bad = StatusCode::BAD_REQUEST;
    // Set by the arms of errors a client should retry after a wait.
    let mut retry_after_secs = None;
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
        EcrError::Throttled {
            retry_after_secs: secs,
        } => {
            retry_after_secs = Some(*secs);
            (bad, "ThrottlingException", "Rate exceeded".to_string())
        }
        // ServerException is the model's only server-side shape; 503 is what SDKs treat as
        // "unavailable, retry" (every AWS SDK retries 500 and 503), and Retry-After says when.
        EcrError::Unavailable {
            message,
            retry_after_secs: secs,
        } => {
            retry_after_secs = Some(*secs);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServerException",
                message.clone(),
            )
        }
        // Not the client's fault and not fixed by a retry soon: 500, with a message an
        // operator can act on (it names no path or device).
        EcrError::StorageFull => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServerException",
            "The registry's storage is full; nothing was written.".to_string(),
        ),
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
        retry_after_secs,
    }
}

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

// The conversions from the layers below, one `match` per domain error type.
mod domain;
#[cfg(test)]
mod tests;
