//! Shared fixtures: two accounts, a few principals, a repository, and helpers to write policies tersely.
#![allow(dead_code)]

use std::net::IpAddr;

use berth_iam::{Context, Policy, PolicyKind, Principal, PrincipalKind, SizeLimit, Value};
use time::OffsetDateTime;

pub const ACCT: &str = "111111111111";
pub const OTHER: &str = "222222222222";
pub const REPO: &str = "arn:aws:ecr:us-east-1:111111111111:repository/team/app";
pub const ALICE: &str = "arn:aws:iam::111111111111:user/alice";
pub const CAROL: &str = "arn:aws:iam::111111111111:user/dev/carol";
pub const BOB: &str = "arn:aws:iam::222222222222:user/bob";

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// IAM user `alice` in the resource's account.
    Alice,
    /// IAM user `/dev/carol` in the resource's account.
    Carol,
    /// IAM user `bob` in the other account.
    Bob,
    /// Root of the resource's account.
    Root,
    /// Root of the other account.
    OtherRoot,
    Anonymous,
    /// The service principal `replication.ecr.amazonaws.com`.
    Service,
}

impl Who {
    pub fn principal(self) -> Principal<'static> {
        match self {
            Who::Alice => Principal::user(ACCT, ALICE, "alice", "AIDAALICE"),
            Who::Carol => Principal::user(ACCT, CAROL, "carol", "AIDACAROL"),
            Who::Bob => Principal::user(OTHER, BOB, "bob", "AIDABOB"),
            Who::Root => Principal::root(ACCT, "arn:aws:iam::111111111111:root"),
            Who::OtherRoot => Principal::root(OTHER, "arn:aws:iam::222222222222:root"),
            Who::Anonymous => Principal::anonymous(),
            Who::Service => Principal {
                kind: PrincipalKind::Service,
                account: "",
                arn: "replication.ecr.amazonaws.com",
                user_name: None,
                user_id: None,
            },
        }
    }
}

/// Owned request-context values that a [`Context`] borrows.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub source_ip: Option<IpAddr>,
    pub secure: Option<bool>,
    pub time: Option<OffsetDateTime>,
    pub region: Option<&'static str>,
    pub principal_tags: Vec<(&'static str, &'static str)>,
    pub resource_tags: Vec<(&'static str, &'static str)>,
    pub request_tags: Vec<(&'static str, &'static str)>,
    pub tag_keys: Vec<&'static str>,
    pub extra: Vec<(&'static str, Value<'static>)>,
}

impl Ctx {
    pub fn context(&self) -> Context<'_> {
        Context {
            source_ip: self.source_ip,
            secure_transport: self.secure,
            current_time: self.time,
            requested_region: self.region,
            principal_tags: &self.principal_tags,
            resource_tags: &self.resource_tags,
            request_tags: &self.request_tags,
            tag_keys: &self.tag_keys,
            extra: &self.extra,
        }
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn at(rfc3339: &str) -> OffsetDateTime {
    OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap()
}

/// A 2012-10-17 policy document from statement bodies (the JSON between the statement's braces).
pub fn doc(statements: &[&str]) -> String {
    let body: Vec<String> = statements.iter().map(|s| format!("{{{s}}}")).collect();
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        body.join(",")
    )
}

pub fn identity(text: &str) -> Policy {
    Policy::parse(text, PolicyKind::Identity, SizeLimit::Unlimited)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

pub fn resource(text: &str) -> Policy {
    Policy::parse(text, PolicyKind::Resource, SizeLimit::Unlimited)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}
