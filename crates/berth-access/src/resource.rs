//! What an operation acts on, declared by the operation and authorized once, before any
//! handler runs ([`crate::ResourcePolicies::authorize`]).

use time::OffsetDateTime;

use crate::auth::{Caller, ConnInfo};

/// One thing an operation touches. Which policies apply follows from the kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A repository: the caller's identity policies, the repository's policy and its
    /// account's registry policy apply; its tags are the `ResourceTag` condition keys.
    Repository { account: String, name: String },
    /// Every repository of a registry (`repository/*`): identity and registry policies.
    AllRepositories { account: String },
    /// An account-level action on `*` (a login token, the registry policy, account
    /// settings...): identity policies only.
    Account { account: String },
    /// Another ARN (an IAM user or group): identity policies only.
    Arn { account: String, arn: String },
}

impl Resource {
    /// The account that owns the resource.
    pub fn account(&self) -> &str {
        match self {
            Resource::Repository { account, .. }
            | Resource::AllRepositories { account }
            | Resource::Account { account }
            | Resource::Arn { account, .. } => account,
        }
    }

    /// The ARN IAM evaluates (`*` for account-level actions).
    pub fn arn(&self, region: &str) -> String {
        match self {
            Resource::Repository { account, name } => {
                berth_iam::ecr_repository_arn(region, account, name)
            }
            Resource::AllRepositories { account } => {
                berth_iam::ecr_repository_arn(region, account, "*")
            }
            Resource::Account { .. } => "*".to_string(),
            Resource::Arn { arn, .. } => arn.clone(),
        }
    }
}

/// One IAM action an operation needs on one resource. An operation may need several
/// (CreateRepository with tags also needs `ecr:TagResource`, as in AWS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub action: &'static str,
    pub resource: Resource,
}

impl Requirement {
    pub fn new(action: &'static str, resource: Resource) -> Self {
        Requirement { action, resource }
    }
}

/// Tags a request asks to put (`aws:RequestTag/<key>`) and the tag keys it names
/// (`aws:TagKeys`: the keys of `tags`, or the keys UntagResource removes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestTags {
    pub tags: Vec<(String, String)>,
    /// Keys named without values (UntagResource's `tagKeys`).
    pub keys: Vec<String>,
}

/// Where and when a request arrived: the rest of the IAM request context.
#[derive(Debug, Clone, Copy)]
pub struct RequestEnv<'a> {
    pub conn: ConnInfo,
    pub region: &'a str,
    pub now: OffsetDateTime,
}

/// An operation of an edge that declares what it acts on. Dispatch asks for the
/// requirements of every request and authorizes them all before the handler runs.
pub trait AuthorizedOperation {
    /// The decoded request the requirements are read from.
    type Input: ?Sized;
    /// The edge's error (a request that names no valid resource).
    type Error;

    /// The IAM action of the operation itself (`ecr:PutImage`).
    fn iam_action(&self) -> &'static str;

    /// Every (action, resource) the request needs, for `caller`.
    fn requirements(
        &self,
        input: &Self::Input,
        caller: &Caller,
        region: &str,
    ) -> Result<Vec<Requirement>, Self::Error>;
}
