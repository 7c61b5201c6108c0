//! Request quotas (`[limits]`) against the real binary: over its quota, a `/v2` request
//! gets `429 TOOMANYREQUESTS` and an ECR API call `ThrottlingException` (through the real
//! AWS CLI), both with `Retry-After`; other accounts' and actions' buckets are separate,
//! and a bucket refills.
//!
//! Needs the AWS CLI (`pip install awscli`); missing, the test FAILS unless
//! `BERTH_E2E_ALLOW_MISSING_CLIENTS=1`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use std::time::Duration;

use common::*;

fn limited_registry() -> (TestRegistry, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        r#"
[limits]
enabled = true
burst_seconds = 1
default_rate = 1000

[limits.rates]
"ecr:BatchGetImage" = 3
"ecr:DescribeRepositories" = 1
"#,
    )
    .unwrap();
    let reg = TestRegistry::start_with_env(&[("BERTH_CONFIG", config.to_str().unwrap())]);
    (reg, dir)
}

#[test]
fn v2_requests_over_quota_get_429_with_retry_after() {
    let (reg, _dir) = limited_registry();
    let repo = reg.repo("limits");
    push_small_image(&reg, &repo, "v1");
    let http = http();
    let url = reg.v2(&format!("{repo}/manifests/v1"));
    let get = || {
        http.get(&url)
            .header("accept", OCI_MANIFEST)
            .send()
            .unwrap()
    };
    let statuses: Vec<u16> = (0..6).map(|_| get().status().as_u16()).collect();
    assert!(statuses.starts_with(&[200]), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let resp = get();
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "retry-after"), "1");
    let v: serde_json::Value = resp.json().unwrap();
    assert_eq!(v["errors"][0]["code"], "TOOMANYREQUESTS");
    // Other actions have their own buckets.
    assert_eq!(
        http.get(reg.v2(&format!("{repo}/tags/list")))
            .send()
            .unwrap()
            .status(),
        200
    );
    // The bucket refills.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get().status(), 200);
}

#[test]
fn ecr_api_calls_over_quota_get_throttling_exception() {
    if !require_clients(&["aws"]) {
        return;
    }
    let (reg, _dir) = limited_registry();
    let creds = reg.data_dir().unwrap().join("admin.credentials");
    let describe = || {
        let c = aws_cli(&reg, &creds, &["ecr", "describe-repositories", "--debug"]);
        run(c, CMD_TIMEOUT)
    };
    // Four CLI processes at once: one gets the single token of the second, the others are
    // throttled (one process alone takes about a second to start, so calls in sequence
    // would each find a refilled bucket).
    let outs: Vec<CmdOutput> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(describe)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(outs.iter().any(|o| o.success()), "{}", outs[0].report());
    let throttled = outs
        .iter()
        .find(|o| !o.success())
        .expect("calls within the same second are throttled");
    assert!(
        throttled.stderr_str().contains("ThrottlingException"),
        "{}",
        throttled.report()
    );
    // botocore's debug log shows the raw response headers.
    assert!(
        throttled
            .stderr_str()
            .to_lowercase()
            .contains("'retry-after': '1'"),
        "{}",
        throttled.report()
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert!(describe().success(), "the bucket refills");
}
