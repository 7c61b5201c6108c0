//! The one place where Query edge errors become wire errors: HTTP status, `Type`
//! (`Sender` or `Receiver`), `Code` and `Message`, rendered as AWS Query services do:
//!
//! ```xml
//! <ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
//!   <Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>...</Message></Error>
//!   <RequestId>...</RequestId>
//! </ErrorResponse>
//! ```
//!
//! Codes and statuses are the botocore IAM model's exceptions (`NoSuchEntity` 404,
//! `EntityAlreadyExists` 409, `LimitExceeded` 409, `DeleteConflict` 409,
//! `MalformedPolicyDocument` 400, `InvalidInput` 400, `ServiceFailure` 500) and the AWS
//! Common Errors (`ValidationError`, `MissingAction`, `InvalidAction` 400; SigV4 failures
//! per [`SigV4Error::query_code`]; `AccessDenied` 403).

use berth_access::AccessError;
use berth_aws_service::cause_chain;
use berth_meta::iam::IamError;
use berth_meta::MetaError;
use berth_sigv4::SigV4Error;
use http::StatusCode;

/// Everything that can go wrong on the IAM/STS Query edge, in domain words.
#[derive(Debug)]
pub enum IamApiError {
    /// No `Action` parameter.
    MissingAction,
    /// An action Berth does not implement, or the version of another service.
    InvalidAction {
        action: String,
        version: String,
    },
    /// The body exceeds the edge's limit.
    BodyTooLarge {
        limit: usize,
    },
    /// A parameter is missing or fails the model's constraints (AWS's message format).
    Validation(String),
    /// The store refused a value the model allows (e.g. a group name longer than Berth keeps).
    InvalidInput(String),
    NoSuchEntity(String),
    EntityAlreadyExists(String),
    LimitExceeded(String),
    DeleteConflict(String),
    MalformedPolicyDocument(String),
    /// SigV4 failed (missing, malformed, unknown or inactive key, bad signature, skew).
    Authentication(SigV4Error),
    /// IAM denied the request; berth-iam's AWS-shaped message.
    AccessDenied(String),
    /// The metadata database is full; nothing was written.
    StorageFull,
    /// Anything internal; the cause (for the log only) is in the string, which never
    /// reaches the wire.
    Internal(String),
}

/// An error as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub status: StatusCode,
    /// `Sender` (the client's fault) or `Receiver` (the server's).
    pub fault: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl WireError {
    /// The `<ErrorResponse>` document, in the namespace of the service that was called.
    pub fn to_xml(&self, namespace: &str, request_id: &str) -> String {
        berth_aws_service::query_error_document(
            namespace,
            self.fault,
            self.code,
            &self.message,
            request_id,
        )
    }
}

/// The one mapping from [`IamApiError`] to the wire.
pub fn to_wire(e: &IamApiError) -> WireError {
    let bad = StatusCode::BAD_REQUEST;
    let conflict = StatusCode::CONFLICT;
    let (status, code, message) = match e {
        IamApiError::MissingAction => (
            bad,
            "MissingAction",
            "The request must contain the parameter Action.".to_string(),
        ),
        IamApiError::InvalidAction { action, version } => (
            bad,
            "InvalidAction",
            format!("Could not find operation {action} for version {version}"),
        ),
        IamApiError::BodyTooLarge { limit } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "ValidationError",
            format!("The request body exceeds the limit of {limit} bytes."),
        ),
        IamApiError::Validation(m) => (bad, "ValidationError", m.clone()),
        IamApiError::InvalidInput(m) => (bad, "InvalidInput", m.clone()),
        IamApiError::NoSuchEntity(m) => (StatusCode::NOT_FOUND, "NoSuchEntity", m.clone()),
        IamApiError::EntityAlreadyExists(m) => (conflict, "EntityAlreadyExists", m.clone()),
        IamApiError::LimitExceeded(m) => (conflict, "LimitExceeded", m.clone()),
        IamApiError::DeleteConflict(m) => (conflict, "DeleteConflict", m.clone()),
        IamApiError::MalformedPolicyDocument(m) => (bad, "MalformedPolicyDocument", m.clone()),
        IamApiError::Authentication(e) => (
            StatusCode::from_u16(e.query_status()).unwrap_or(StatusCode::FORBIDDEN),
            e.query_code(),
            e.detailed_message(),
        ),
        IamApiError::AccessDenied(m) => (StatusCode::FORBIDDEN, "AccessDenied", m.clone()),
        // Not the caller's fault and not fixed by a retry soon; the message names no path.
        IamApiError::StorageFull => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceFailure",
            "The registry's storage is full; nothing was written.".to_string(),
        ),
        IamApiError::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceFailure",
            "An internal error occurred; see the server log for the request id.".to_string(),
        ),
    };
    WireError {
        status,
        fault: if status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        },
        code,
        message,
    }
}

impl From<IamError> for IamApiError {
    fn from(e: IamError) -> Self {
        match e {
            IamError::UserNotFound(_)
            | IamError::GroupNotFound(_)
            | IamError::AccessKeyNotFound(_)
            | IamError::PolicyNotFound { .. } => IamApiError::NoSuchEntity(e.to_string()),
            IamError::UserAlreadyExists(_) | IamError::GroupAlreadyExists(_) => {
                IamApiError::EntityAlreadyExists(e.to_string())
            }
            IamError::LimitExceeded(m) => IamApiError::LimitExceeded(m),
            IamError::DeleteConflict(m) => IamApiError::DeleteConflict(m),
            IamError::InvalidInput(m) => IamApiError::InvalidInput(m),
            // The caller's own account exists (its key was found) and this edge creates
            // none; a random key id that collides (SDKs retry a 500, drawing a new one) and
            // an undecryptable secret (the chain names the key id, never the secret) are ours.
            e @ (IamError::AccountNotFound(_)
            | IamError::AccountAlreadyExists(_)
            | IamError::AccessKeyAlreadyExists(_)
            | IamError::Secret { .. }) => IamApiError::Internal(cause_chain(&e)),
            IamError::Meta(m) => from_meta(m),
        }
    }
}

/// A metadata error under the IAM store.
fn from_meta(e: MetaError) -> IamApiError {
    match e {
        MetaError::StorageFull => IamApiError::StorageFull,
        e @ MetaError::Database(_) => IamApiError::Internal(cause_chain(&e)),
        // Facts of repositories and images: the IAM store never reports them, so one here
        // is a bug of ours, not the caller's.
        e @ (MetaError::RepositoryNotFound(_)
        | MetaError::RepositoryAlreadyExists(_)
        | MetaError::RepositoryNotEmpty(_)
        | MetaError::BlobNotLinked(_)
        | MetaError::BlobReferenced { .. }
        | MetaError::ChildManifestMissing(_)
        | MetaError::ManifestReferenced { .. }
        | MetaError::UploadNotFound(_)
        | MetaError::TagImmutable { .. }
        | MetaError::BlobBeingDeleted(_)) => IamApiError::Internal(cause_chain(&e)),
    }
}

/// The access layer's authentication and authorization errors.
impl From<AccessError> for IamApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Authentication(e) => IamApiError::Authentication(e),
            AccessError::AccessDenied(m) => IamApiError::AccessDenied(m),
            // An unreadable store or a stored policy that no longer parses: ours.
            e @ (AccessError::Store { .. } | AccessError::StoredPolicy { .. }) => {
                IamApiError::Internal(cause_chain(&e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_model_code_and_status() {
        let cases: Vec<(IamApiError, u16, &str)> = vec![
            (IamApiError::MissingAction, 400, "MissingAction"),
            (
                IamApiError::InvalidAction {
                    action: "ListRoles".into(),
                    version: "2010-05-08".into(),
                },
                400,
                "InvalidAction",
            ),
            (
                IamApiError::BodyTooLarge { limit: 1 },
                413,
                "ValidationError",
            ),
            (IamApiError::Validation("x".into()), 400, "ValidationError"),
            (IamApiError::InvalidInput("x".into()), 400, "InvalidInput"),
            (IamApiError::NoSuchEntity("x".into()), 404, "NoSuchEntity"),
            (
                IamApiError::EntityAlreadyExists("x".into()),
                409,
                "EntityAlreadyExists",
            ),
            (IamApiError::LimitExceeded("x".into()), 409, "LimitExceeded"),
            (
                IamApiError::DeleteConflict("x".into()),
                409,
                "DeleteConflict",
            ),
            (
                IamApiError::MalformedPolicyDocument("x".into()),
                400,
                "MalformedPolicyDocument",
            ),
            (
                IamApiError::Authentication(SigV4Error::UnrecognizedClient {
                    access_key_id: "AKIA".into(),
                }),
                403,
                "InvalidClientTokenId",
            ),
            (
                IamApiError::Authentication(SigV4Error::SignatureMismatch {
                    canonical_request: String::new(),
                    string_to_sign: String::new(),
                }),
                403,
                "SignatureDoesNotMatch",
            ),
            (
                IamApiError::Authentication(SigV4Error::MissingAuthentication),
                403,
                "MissingAuthenticationToken",
            ),
            (IamApiError::AccessDenied("no".into()), 403, "AccessDenied"),
            (IamApiError::StorageFull, 500, "ServiceFailure"),
            (IamApiError::Internal("boom".into()), 500, "ServiceFailure"),
        ];
        for (e, status, code) in cases {
            let w = to_wire(&e);
            assert_eq!(w.status.as_u16(), status, "{e:?}");
            assert_eq!(w.code, code, "{e:?}");
            assert_eq!(w.fault, if status == 500 { "Receiver" } else { "Sender" });
        }
        // The internal cause never reaches the wire.
        assert!(!to_wire(&IamApiError::Internal("secret path".into()))
            .message
            .contains("secret"));
        assert_eq!(
            to_wire(&IamApiError::InvalidAction {
                action: "ListRoles".into(),
                version: "2010-05-08".into()
            })
            .message,
            "Could not find operation ListRoles for version 2010-05-08"
        );
    }

    #[test]
    fn store_errors_map_to_model_exceptions() {
        let e: IamApiError = IamError::UserNotFound("bob".into()).into();
        assert!(
            matches!(&e, IamApiError::NoSuchEntity(m) if m == "The user with name bob cannot be found.")
        );
        let e: IamApiError = IamError::PolicyNotFound {
            kind: "user",
            name: "p".into(),
        }
        .into();
        assert!(matches!(e, IamApiError::NoSuchEntity(_)));
        let e: IamApiError = IamError::GroupAlreadyExists("g".into()).into();
        assert!(matches!(e, IamApiError::EntityAlreadyExists(_)));
        let e: IamApiError = IamError::DeleteConflict("keys".into()).into();
        assert!(matches!(e, IamApiError::DeleteConflict(_)));
        let e: IamApiError = IamError::LimitExceeded("2".into()).into();
        assert!(matches!(e, IamApiError::LimitExceeded(_)));
        let e: IamApiError = IamError::AccessKeyAlreadyExists("AKIA".into()).into();
        assert!(matches!(e, IamApiError::Internal(_)));
        let e: IamApiError = AccessError::AccessDenied("no".into()).into();
        assert!(matches!(e, IamApiError::AccessDenied(_)));
    }

    /// An internal failure whose text must stay in the log.
    fn leaky_source() -> Box<dyn std::error::Error + Send + Sync> {
        Box::new(std::io::Error::other(
            "open /var/lib/berth/meta.db: password=hunter2",
        ))
    }

    fn code_of(e: &IamApiError) -> (u16, &'static str) {
        let w = to_wire(e);
        (w.status.as_u16(), w.code)
    }

    #[test]
    fn server_side_store_errors_are_service_failures_that_say_nothing_internal() {
        let d = berth_types::Digest::sha256_of(b"x");
        let internal: Vec<IamError> = vec![
            IamError::AccountNotFound("123456789012".into()),
            IamError::AccountAlreadyExists("123456789012".into()),
            IamError::AccessKeyAlreadyExists("AKIA".into()),
            IamError::Secret {
                access_key_id: "AKIAEXAMPLE".into(),
                source: berth_meta::secrets::SecretError::Corrupt,
            },
            IamError::Meta(MetaError::Database(leaky_source())),
            IamError::Meta(MetaError::RepositoryNotFound("a".into())),
            IamError::Meta(MetaError::RepositoryAlreadyExists("a".into())),
            IamError::Meta(MetaError::RepositoryNotEmpty("a".into())),
            IamError::Meta(MetaError::BlobNotLinked(d.clone())),
            IamError::Meta(MetaError::BlobReferenced {
                digest: d.clone(),
                manifest: d.clone(),
            }),
            IamError::Meta(MetaError::ChildManifestMissing(d.clone())),
            IamError::Meta(MetaError::ManifestReferenced {
                digest: d.clone(),
                index: d.clone(),
            }),
            IamError::Meta(MetaError::UploadNotFound("u".into())),
            IamError::Meta(MetaError::TagImmutable {
                repository: "a".into(),
                tag: "t".into(),
            }),
            IamError::Meta(MetaError::BlobBeingDeleted(d.clone())),
        ];
        for e in internal {
            let shown = format!("{e:?}");
            let mapped = IamApiError::from(e);
            assert!(matches!(mapped, IamApiError::Internal(_)), "{shown}");
            let w = to_wire(&mapped);
            assert_eq!(
                (w.status.as_u16(), w.code, w.fault),
                (500, "ServiceFailure", "Receiver")
            );
            assert_eq!(
                w.message,
                "An internal error occurred; see the server log for the request id."
            );
        }
        // The cause chain is kept for the log.
        let e = IamApiError::from(IamError::Meta(MetaError::Database(leaky_source())));
        assert!(matches!(&e, IamApiError::Internal(m) if m.contains("hunter2")));
        let e = IamApiError::from(IamError::Secret {
            access_key_id: "AKIAEXAMPLE".into(),
            source: berth_meta::secrets::SecretError::Corrupt,
        });
        assert!(
            matches!(&e, IamApiError::Internal(m) if m.contains("AKIAEXAMPLE") && m.contains("corrupted"))
        );
        // A full database says so (it names no path).
        let full = IamApiError::from(IamError::Meta(MetaError::StorageFull));
        assert!(matches!(full, IamApiError::StorageFull));
        let w = to_wire(&full);
        assert_eq!((w.status.as_u16(), w.code), (500, "ServiceFailure"));
        assert_eq!(
            w.message,
            "The registry's storage is full; nothing was written."
        );
    }

    #[test]
    fn access_errors_keep_store_failures_off_the_wire() {
        let e: IamApiError = AccessError::Authentication(SigV4Error::MissingAuthentication).into();
        assert_eq!(code_of(&e), (403, "MissingAuthenticationToken"));
        let e: IamApiError = AccessError::AccessDenied("no".into()).into();
        assert_eq!(code_of(&e), (403, "AccessDenied"));
        let e: IamApiError = AccessError::Store {
            context: "reading the access key",
            source: leaky_source(),
        }
        .into();
        assert!(
            matches!(&e, IamApiError::Internal(m) if m.contains("reading the access key") && m.contains("hunter2"))
        );
        let w = to_wire(&e);
        assert_eq!((w.status.as_u16(), w.code), (500, "ServiceFailure"));
        assert!(!w.to_xml("urn:x", "r").contains("hunter2"));
        let source = berth_iam::Policy::parse(
            "not json",
            berth_iam::PolicyKind::Identity,
            berth_iam::SizeLimit::Unlimited,
        )
        .unwrap_err();
        let e: IamApiError = AccessError::StoredPolicy {
            name: "policy p of user bob".into(),
            source,
        }
        .into();
        assert_eq!(code_of(&e), (500, "ServiceFailure"));
    }

    #[test]
    fn error_documents_are_escaped_and_namespaced() {
        let w = to_wire(&IamApiError::Validation("a <b> & 'c'".into()));
        let xml = w.to_xml("https://iam.amazonaws.com/doc/2010-05-08/", "req-1");
        assert_eq!(
            xml,
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error>\
             <Type>Sender</Type><Code>ValidationError</Code>\
             <Message>a &lt;b&gt; &amp; &apos;c&apos;</Message></Error>\
             <RequestId>req-1</RequestId></ErrorResponse>"
        );
    }
}
