//! What is being asked: who, which action, on which resource, in which context, under which policies.
//!
//! Everything is borrowed so that building a request on the hot path allocates nothing.

use std::net::IpAddr;

use time::OffsetDateTime;

use crate::policy::Policy;

/// The kind of principal making a request; decides which evaluation rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// The account itself (`arn:aws:iam::<account>:root`): in its own account it may do everything that no
    /// resource-based policy explicitly denies.
    Root,
    /// An IAM user.
    User,
    /// An IAM role (or a session of one).
    Role,
    /// A service principal such as `ecr.amazonaws.com`; `Principal::arn` holds the service name.
    Service,
    /// An unauthenticated caller. Only `"Principal": "*"` (or `{"AWS": "*"}`) names it.
    Anonymous,
}

/// The authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal<'a> {
    pub kind: PrincipalKind,
    /// 12-digit account id of the caller ("" for anonymous and service principals).
    pub account: &'a str,
    /// The caller's ARN (`arn:aws:iam::<account>:user/<path/>name`, `...:root`, a role ARN), or the service name.
    pub arn: &'a str,
    /// The IAM user's friendly name (`aws:username`); only IAM users have one.
    pub user_name: Option<&'a str>,
    /// The caller's unique id (`aws:userid`): `AIDA...` for a user, the account id for root.
    pub user_id: Option<&'a str>,
}

impl<'a> Principal<'a> {
    /// The account root (`arn:aws:iam::<account>:root`).
    pub fn root(account: &'a str, arn: &'a str) -> Self {
        Principal {
            kind: PrincipalKind::Root,
            account,
            arn,
            user_name: None,
            user_id: Some(account),
        }
    }

    /// An IAM user.
    pub fn user(account: &'a str, arn: &'a str, user_name: &'a str, user_id: &'a str) -> Self {
        Principal {
            kind: PrincipalKind::User,
            account,
            arn,
            user_name: Some(user_name),
            user_id: Some(user_id),
        }
    }

    /// An unauthenticated caller.
    pub fn anonymous() -> Self {
        Principal {
            kind: PrincipalKind::Anonymous,
            account: "",
            arn: "anonymous",
            user_name: None,
            user_id: None,
        }
    }

    /// The value of `aws:PrincipalType`.
    pub fn principal_type(&self) -> &'static str {
        match self.kind {
            PrincipalKind::Root => "Account",
            PrincipalKind::User => "User",
            PrincipalKind::Role => "AssumedRole",
            PrincipalKind::Service => "Service",
            PrincipalKind::Anonymous => "Anonymous",
        }
    }
}

/// A value of a context key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    /// A multi-valued key (used with `ForAnyValue:` / `ForAllValues:`).
    List(&'a [&'a str]),
    Bool(bool),
    Number(f64),
    Ip(IpAddr),
    Time(OffsetDateTime),
}

/// Request context: the values of the global condition keys that are not derived from the principal.
///
/// Keys derived from the principal (`aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:PrincipalType`,
/// `aws:username`, `aws:userid`) come from [`Principal`]; `aws:EpochTime` comes from `current_time`;
/// `aws:TagKeys` are `tag_keys`, else the keys of `request_tags`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Context<'a> {
    /// `aws:SourceIp`. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are matched as IPv4.
    pub source_ip: Option<IpAddr>,
    /// `aws:SecureTransport`: whether the request came over TLS.
    pub secure_transport: Option<bool>,
    /// `aws:CurrentTime` and `aws:EpochTime`.
    pub current_time: Option<OffsetDateTime>,
    /// `aws:RequestedRegion`.
    pub requested_region: Option<&'a str>,
    /// `aws:PrincipalTag/<key>` (tag keys match case-insensitively).
    pub principal_tags: &'a [(&'a str, &'a str)],
    /// `ecr:ResourceTag/<key>` and `aws:ResourceTag/<key>`.
    pub resource_tags: &'a [(&'a str, &'a str)],
    /// `aws:RequestTag/<key>`; their keys are `aws:TagKeys`.
    pub request_tags: &'a [(&'a str, &'a str)],
    /// Tag keys a request names without values (UntagResource's `tagKeys`): when not
    /// empty, these are `aws:TagKeys`.
    pub tag_keys: &'a [&'a str],
    /// Any other key (service-specific keys such as `ecr:...`), by name; names match case-insensitively.
    pub extra: &'a [(&'a str, Value<'a>)],
}

/// One authorization question.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: Principal<'a>,
    /// The action, `service:Action` (`ecr:PutImage`); matched case-insensitively.
    pub action: &'a str,
    /// The resource ARN (or `*` for actions without a resource, such as `ecr:GetAuthorizationToken`).
    pub resource: &'a str,
    /// The account that owns the resource. Same-account and cross-account rules depend on it.
    pub resource_account: &'a str,
    pub context: Context<'a>,
    /// The caller's identity-based policies: inline and managed user policies and those of the user's groups.
    /// They must be parsed as [`PolicyKind::Identity`](crate::PolicyKind::Identity).
    pub identity_policies: &'a [&'a Policy],
    /// The resource's own policy (a repository policy), parsed as [`PolicyKind::Resource`](crate::PolicyKind::Resource).
    pub resource_policy: Option<&'a Policy>,
    /// The registry policy of the resource's account, parsed as [`PolicyKind::Resource`](crate::PolicyKind::Resource).
    pub registry_policy: Option<&'a Policy>,
}

impl<'a> Request<'a> {
    /// A request with an empty context and no policies; fill in the rest with struct update syntax.
    pub fn new(
        principal: Principal<'a>,
        action: &'a str,
        resource: &'a str,
        resource_account: &'a str,
    ) -> Self {
        Request {
            principal,
            action,
            resource,
            resource_account,
            context: Context::default(),
            identity_policies: &[],
            resource_policy: None,
            registry_policy: None,
        }
    }
}

/// Policy variables resolve against the request: `${aws:username}`, `${aws:PrincipalTag/team}`, ...
impl crate::wildcard::Vars for Request<'_> {
    fn var(&self, key: &crate::condition::keys::KeyId) -> Option<&str> {
        key.lookup(self).as_variable()
    }
}
