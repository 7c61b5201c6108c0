//! Entry points for the fuzz targets in `fuzz/` and for the regression tests that replay
//! their corpora (`tests/fuzz_corpus.rs`): both call the same code. Each must never panic.

use std::net::{IpAddr, Ipv4Addr};

use time::OffsetDateTime;

use crate::{evaluate, Context, Policy, PolicyKind, Principal, Request, SizeLimit};

/// A policy document as any text: parsed as an identity and as a resource policy, and
/// each one that parses is evaluated for a user request with a full context (conditions,
/// variables and ARN patterns all run).
pub fn policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let identity = Policy::parse(&text, PolicyKind::Identity, SizeLimit::Unlimited).ok();
    let resource = Policy::parse(&text, PolicyKind::Resource, SizeLimit::Unlimited).ok();
    if identity.is_none() && resource.is_none() {
        return;
    }
    let tags = [("team", "a"), ("protected", "true")];
    let identities: Vec<&Policy> = identity.iter().collect();
    for action in ["ecr:PutImage", "iam:CreateUser", "sts:GetCallerIdentity"] {
        let req = Request {
            context: Context {
                source_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
                secure_transport: Some(true),
                current_time: Some(OffsetDateTime::UNIX_EPOCH),
                requested_region: Some("us-east-1"),
                principal_tags: &tags,
                resource_tags: &tags,
                request_tags: &tags,
                tag_keys: &["team", "owner"],
                extra: &[],
            },
            identity_policies: &identities,
            resource_policy: resource.as_ref(),
            registry_policy: resource.as_ref(),
            ..Request::new(
                Principal::user(
                    "111122223333",
                    "arn:aws:iam::111122223333:user/alice",
                    "alice",
                    "AIDAEXAMPLE",
                ),
                action,
                "arn:aws:ecr:us-east-1:111122223333:repository/team/app",
                "111122223333",
            )
        };
        let _ = evaluate(&req);
    }
}
