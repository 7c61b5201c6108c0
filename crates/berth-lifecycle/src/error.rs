//! The one error type of this crate: why a lifecycle policy text was refused.
//!
//! ECR reports every refusal of a lifecycle policy as an `InvalidParameterException` whose message wraps a
//! detail in a fixed frame (see [`LifecycleError`]'s `Display`). The details come in two families, and this
//! module keeps ECR's wording for both:
//! - *schema* failures (a missing or unknown property, a value of the wrong JSON type, a value outside an
//!   enumeration, a number below its minimum): ECR validates the document against a JSON schema first and
//!   reports the validator's sentence;
//! - *semantic* failures (duplicate priorities, `any` not last, two untagged rules, ...): ECR's own sentences.
//!
//! The API edge maps this type to the wire once; nothing here knows HTTP.

use std::fmt;

use crate::limits::MAX_POLICY_CHARS;

/// A lifecycle policy ECR (or Berth, for an extension) would refuse.
///
/// `Display` gives the complete `InvalidParameterException` message for `PutLifecyclePolicy` and
/// `StartLifecyclePolicyPreview`; [`LifecycleError::message_for`] frames it for another request member (the
/// repository creation template's `lifecyclePolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleError {
    /// Longer than [`MAX_POLICY_CHARS`] characters: a model constraint, reported before any parsing.
    TooLong {
        /// The length of the text, in characters.
        chars: usize,
    },
    /// The text is not a valid policy; the detail is the sentence after `Lifecycle policy validation failure: `.
    Invalid(String),
}

impl LifecycleError {
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        LifecycleError::Invalid(detail.into())
    }

    /// The detail alone (what follows `Lifecycle policy validation failure: `), for logs and tests.
    pub fn detail(&self) -> String {
        match self {
            LifecycleError::TooLong { chars } => {
                format!("Member must have length less than or equal to {MAX_POLICY_CHARS} (got {chars} characters)")
            }
            LifecycleError::Invalid(d) => d.clone(),
        }
    }

    /// The full message as ECR frames it for the request member `member` (for example `lifecyclePolicyText`).
    pub fn message_for(&self, member: &str) -> String {
        match self {
            LifecycleError::TooLong { chars } => format!(
                "Invalid parameter at '{member}' failed to satisfy constraint: 'Member must have length less than or equal to {MAX_POLICY_CHARS}' (got {chars} characters)"
            ),
            LifecycleError::Invalid(d) => format!(
                "Invalid parameter at '{member}' failed to satisfy constraint: 'Lifecycle policy validation failure: {d}'"
            ),
        }
    }
}

impl fmt::Display for LifecycleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message_for("LifecyclePolicyText"))
    }
}

impl std::error::Error for LifecycleError {}
