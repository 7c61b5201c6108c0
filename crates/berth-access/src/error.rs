//! The one error type of the access layer. Edges map it to their wire format
//! (`AccessDeniedException`, `AccessDenied`, `403 DENIED`, ...).

use berth_sigv4::SigV4Error;

/// Why a request could not be authenticated or authorized.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// SigV4 failed: missing, malformed, unknown or inactive key, bad signature, skew.
    #[error(transparent)]
    Authentication(#[from] SigV4Error),
    /// IAM denied the request; the message is berth-iam's AWS-shaped one.
    #[error("{0}")]
    AccessDenied(String),
    /// A store could not be read; the cause stays in the server log.
    #[error("{context}")]
    Store {
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored policy no longer parses (it was validated when it was put, so this is
    /// the server's problem, not the caller's).
    #[error("stored {name} does not parse")]
    StoredPolicy {
        name: String,
        #[source]
        source: berth_iam::PolicyError,
    },
}

impl AccessError {
    pub(crate) fn store(
        context: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        AccessError::Store {
            context,
            source: Box::new(source),
        }
    }

    /// True when the server, not the caller, is at fault.
    pub fn is_internal(&self) -> bool {
        // Every variant named, so a new one is classified where it is added.
        match self {
            AccessError::Store { .. } | AccessError::StoredPolicy { .. } => true,
            AccessError::Authentication(_) | AccessError::AccessDenied(_) => false,
        }
    }
}
