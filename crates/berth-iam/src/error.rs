//! Errors found while parsing and validating a policy document.
//!
//! Every error names where it was found (statement index and `Sid` when known, and the field), so that the message
//! an API returns lets a person find the mistake in their document.

use std::fmt;

/// A policy document was rejected. `location` says where, `kind` says why.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyError {
    /// Boxed to keep `Result<_, PolicyError>` small.
    pub location: Box<Location>,
    pub kind: PolicyErrorKind,
}

/// Where in the document an error was found. Every part is optional: a size or JSON error has no location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// Index of the statement in the `Statement` array (0 when `Statement` is a single object).
    pub statement: Option<usize>,
    /// The statement's `Sid`, if it has one.
    pub sid: Option<String>,
    /// The field, for example `Action`, `Condition.StringEquals.aws:username` or `Version`.
    pub field: Option<String>,
}

/// Why a policy document was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyErrorKind {
    #[error("the policy is {actual} characters long{}; the limit is {limit}", if *.counts_whitespace { "" } else { " (not counting whitespace)" })]
    TooLarge {
        actual: usize,
        limit: usize,
        counts_whitespace: bool,
    },
    #[error("the policy is not valid JSON: {0}")]
    Json(String),
    /// Nested too deep or too many elements, refused before parsing.
    #[error("the policy is refused: {0}")]
    JsonLimits(#[from] berth_types::JsonLimitError),
    #[error("expected {expected}")]
    WrongType { expected: &'static str },
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("`{0}` and `{1}` cannot both appear in one statement")]
    Conflict(&'static str, &'static str),
    #[error("unsupported policy version `{0}` (expected 2012-10-17 or 2008-10-17)")]
    InvalidVersion(String),
    #[error("invalid Effect `{0}` (expected Allow or Deny)")]
    InvalidEffect(String),
    #[error("the policy has no statements")]
    NoStatements,
    #[error("invalid Sid `{0}`: identity-based policies allow only ASCII letters and digits")]
    InvalidSid(String),
    #[error("duplicate Sid `{0}`: statement ids must be unique within a policy")]
    DuplicateSid(String),
    #[error("an identity-based policy cannot name a principal (Principal/NotPrincipal)")]
    PrincipalInIdentityPolicy,
    #[error("a resource-based policy statement must name a principal (Principal or NotPrincipal)")]
    MissingPrincipal,
    #[error("NotPrincipal can only be used with \"Effect\": \"Deny\"")]
    NotPrincipalWithAllow,
    #[error("invalid principal `{0}`")]
    InvalidPrincipal(String),
    #[error("unsupported principal type `{0}` (expected AWS or Service)")]
    UnsupportedPrincipalType(String),
    #[error("invalid action `{0}`: expected `*` or `<service>:<action>`")]
    InvalidAction(String),
    #[error("invalid resource `{0}`: expected `*` or an ARN `arn:partition:service:region:account:resource`")]
    InvalidResource(String),
    #[error("invalid ARN `{0}`: expected `arn:partition:service:region:account:resource`")]
    InvalidArn(String),
    #[error("unknown condition operator `{0}`")]
    UnknownOperator(String),
    #[error("invalid condition key `{0}`")]
    InvalidConditionKey(String),
    #[error("invalid value `{value}` for {operator}: {reason}")]
    InvalidConditionValue {
        operator: String,
        value: String,
        reason: &'static str,
    },
    #[error("invalid policy variable in `{0}`")]
    InvalidVariable(String),
    #[error("an empty list is not allowed here")]
    EmptyList,
}

impl PolicyError {
    pub(crate) fn new(kind: PolicyErrorKind) -> Self {
        PolicyError {
            location: Box::default(),
            kind,
        }
    }

    pub(crate) fn at(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.location.field = Some(match self.location.field.take() {
            Some(inner) => format!("{field}.{inner}"),
            None => field,
        });
        self
    }

    pub(crate) fn in_statement(mut self, index: usize, sid: Option<&str>) -> Self {
        self.location.statement = Some(index);
        self.location.sid = sid.map(str::to_owned);
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote = false;
        if let Some(index) = self.statement {
            write!(f, "Statement[{index}]")?;
            if let Some(sid) = &self.sid {
                write!(f, " (Sid \"{sid}\")")?;
            }
            wrote = true;
        }
        if let Some(field) = &self.field {
            if wrote {
                f.write_str(", ")?;
            }
            write!(f, "field {field}")?;
            wrote = true;
        }
        if !wrote {
            f.write_str("policy")?;
        }
        Ok(())
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self.location == Location::default() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.location, self.kind)
        }
    }
}

impl std::error::Error for PolicyError {}
