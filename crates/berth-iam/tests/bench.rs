//! Hot-path checks: evaluation allocates nothing (a counting allocator proves it), and a micro-benchmark:
//!
//! `cargo test --release -p berth-iam --test bench -- --ignored --nocapture`
//! (`BERTH_IAM_BENCH_ITERS` sets the iterations per scenario; a small number suits `valgrind --tool=callgrind`,
//! which counts instructions where wall-clock times are noisy).
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]
// Test support calls libc (rlimits, mounts, signals) and slices strings it built itself.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::time::Instant;

use berth_iam::{evaluate, Policy, Reason, Request};
use common::*;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// A realistic set: a user with an inline policy, two group policies and a managed-style policy (a dozen
/// statements, several with conditions and variables), a repository policy and a registry policy.
struct Fixture {
    identity: Vec<Policy>,
    repo: Policy,
    registry: Policy,
    ctx: Ctx,
}

fn fixture() -> Fixture {
    let identity = vec![
        identity(&doc(&[
            r#""Sid":"OwnRepos","Effect":"Allow","Action":["ecr:Put*","ecr:InitiateLayerUpload","ecr:UploadLayerPart","ecr:CompleteLayerUpload"],"Resource":"arn:aws:ecr:*:${aws:PrincipalAccount}:repository/${aws:username}/*""#,
            r#""Sid":"Token","Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*""#,
        ])),
        identity(&doc(&[
            r#""Sid":"TeamPull","Effect":"Allow","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:BatchCheckLayerAvailability","ecr:Describe*","ecr:List*"],"Resource":["arn:aws:ecr:us-east-1:111111111111:repository/team/*","arn:aws:ecr:us-east-1:111111111111:repository/shared/*"],"Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16","2001:db8::/32"]},"Bool":{"aws:SecureTransport":"true"}}"#,
            r#""Sid":"NoDeleteProd","Effect":"Deny","Action":["ecr:BatchDeleteImage","ecr:DeleteRepository"],"Resource":"arn:aws:ecr:*:*:repository/prod/*""#,
        ])),
        identity(&doc(&[
            r#""Sid":"Window","Effect":"Deny","Action":"ecr:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2031-01-01T00:00:00Z"}}"#,
            r#""Sid":"Region","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringNotEqualsIfExists":{"aws:RequestedRegion":["us-east-1","us-west-2"]}}"#,
        ])),
        identity(&doc(&[
            r#""Sid":"ReadOnly1","Effect":"Allow","Action":["s3:Get*","s3:List*"],"Resource":"*""#,
            r#""Sid":"ReadOnly2","Effect":"Allow","Action":["logs:Describe*","logs:Get*"],"Resource":"arn:aws:logs:*:*:log-group:/ecr/*""#,
            r#""Sid":"Tagged","Effect":"Allow","Action":"ecr:TagResource","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}"#,
        ])),
    ];
    let repo = resource(&doc(&[
        r#""Sid":"CrossPull","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::222222222222:root","333333333333"]},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]"#,
        r#""Sid":"NoPublic","Effect":"Deny","Principal":"*","Action":"ecr:*","Condition":{"Bool":{"aws:SecureTransport":"false"}}"#,
        r#""Sid":"Ci","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/ci"},"Action":"ecr:*""#,
    ]));
    let registry = resource(&doc(&[
        r#""Sid":"Replicate","Effect":"Allow","Principal":{"AWS":"444444444444"},"Action":["ecr:ReplicateImage","ecr:CreateRepository"],"Resource":"arn:aws:ecr:us-east-1:111111111111:repository/*""#,
    ]));
    let ctx = Ctx {
        source_ip: Some(ip("10.1.2.3")),
        secure: Some(true),
        time: Some(at("2024-05-01T12:00:00Z")),
        region: Some("us-east-1"),
        ..Ctx::default()
    };
    Fixture {
        identity,
        repo,
        registry,
        ctx,
    }
}

#[test]
fn evaluation_allocates_nothing() {
    let f = fixture();
    let refs: Vec<&Policy> = f.identity.iter().collect();
    let principal = Who::Alice.principal();
    let context = f.ctx.context();
    let before = allocations();
    let mut allowed = 0;
    for action in [
        "ecr:BatchGetImage",
        "ecr:PutImage",
        "ecr:DeleteRepository",
        "ecr:TagResource",
    ] {
        let req = Request {
            context,
            identity_policies: &refs,
            resource_policy: Some(&f.repo),
            registry_policy: Some(&f.registry),
            ..Request::new(principal, action, REPO, ACCT)
        };
        allowed += usize::from(evaluate(&req).is_allowed());
    }
    assert_eq!(allocations() - before, 0, "evaluate allocated");
    assert_eq!(allowed, 2); // the pull (TeamPull) and the tagging (no tags: ForAllValues holds)
}

#[test]
#[ignore = "micro-benchmark; run with --release --ignored --nocapture"]
fn bench_evaluate() {
    let f = fixture();
    let refs: Vec<&Policy> = f.identity.iter().collect();
    let context = f.ctx.context();
    let scenarios = [
        (
            "same-account pull, allowed by identity policy (conditions)",
            Who::Alice,
            "ecr:BatchGetImage",
            Reason::IdentityPolicyAllows,
        ),
        (
            "same-account push, implicit deny (all statements scanned)",
            Who::Alice,
            "ecr:PutImage",
            Reason::NoIdentityPolicyAllows,
        ),
        (
            "cross-account pull, resource policy by account",
            Who::Bob,
            "ecr:BatchGetImage",
            Reason::NoIdentityPolicyAllows,
        ),
        ("root", Who::Root, "ecr:PutImage", Reason::AccountRoot),
    ];
    for (label, who, action, want) in scenarios {
        let req = Request {
            context,
            identity_policies: if who == Who::Alice { &refs } else { &[] },
            resource_policy: Some(&f.repo),
            registry_policy: Some(&f.registry),
            ..Request::new(who.principal(), action, REPO, ACCT)
        };
        assert_eq!(evaluate(&req).reason, want, "{label}");
        let iterations: u32 = std::env::var("BERTH_IAM_BENCH_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let start = Instant::now();
        for _ in 0..iterations {
            black_box(evaluate(black_box(&req)));
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
        println!("{ns:>8.1} ns/eval  {label}");
    }
}
