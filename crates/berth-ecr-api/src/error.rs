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
    /// SigV4 failed (missing, malformed, unknown or inactive key, bad signature, skew).
    Authentication(SigV4Error),
    /// IAM denied the request; the message is berth-iam's AWS-shaped denial message.
    AccessDenied(String),
    /// An action of the model this Berth version does not implement.
    Unsupported(EcrOperation),
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
        EcrError::UnknownOperation => (bad, "UnknownOperationException", String::new()),
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
