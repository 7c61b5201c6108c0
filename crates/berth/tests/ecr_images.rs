//! The image and layer half of the ECR API on the real binary, driven by boto3
//! (`tests/ecr_images_boto3.py`): layer uploads in parts, PutImage / BatchGetImage byte
//! equality, DescribeImages sizes, tags, push and pull times, ListImages filters and pages,
//! ListImageReferrers, BatchDeleteImage failures, tag immutability (all four modes) refused
//! by PutImage and by a `/v2` manifest PUT, GetDownloadUrlForLayer URLs fetched, and pull
//! time update exclusions, each with its error paths.
//!
//! Needs python3 with boto3 (`pip install boto3`). When either is missing this test FAILS,
//! unless `BERTH_ALLOW_MISSING_BOTOCORE=1`.

mod common;

use std::process::Command;

use common::{run, unique_suffix, TestRegistry, CMD_TIMEOUT};

#[test]
fn boto3_pushes_pulls_describes_and_deletes_images() {
    let reg = TestRegistry::start();
    let Some(data) = reg.data_dir() else {
        eprintln!(
            "skipped: needs a spawned berth for its admin.credentials (BERTH_E2E_REGISTRY is set)"
        );
        return;
    };
    let allow_missing = std::env::var("BERTH_ALLOW_MISSING_BOTOCORE").as_deref() == Ok("1");
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(
            allow_missing,
            "python3 is missing: the boto3 ECR test needs python3 with boto3 (pip install boto3); \
             set BERTH_ALLOW_MISSING_BOTOCORE=1 to skip it"
        );
        eprintln!("SKIPPED boto3 ECR image test (no python3); BERTH_ALLOW_MISSING_BOTOCORE=1");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ecr_images_boto3.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(reg.base_url())
        .arg(data.join("admin.credentials"))
        .arg(unique_suffix());
    let out = run(cmd, CMD_TIMEOUT);
    if out.status.code() == Some(3) {
        assert!(
            allow_missing,
            "{}: the boto3 ECR test needs boto3 (pip install boto3); \
             set BERTH_ALLOW_MISSING_BOTOCORE=1 to skip it",
            out.stderr_str().trim()
        );
        eprintln!(
            "SKIPPED boto3 ECR image test ({}); BERTH_ALLOW_MISSING_BOTOCORE=1",
            out.stderr_str().trim()
        );
        return;
    }
    assert!(
        out.success(),
        "ecr_images_boto3.py failed\n{}\nserver log:\n{}",
        out.report(),
        reg.server_log()
    );
    let report: serde_json::Value = serde_json::from_str(
        out.stdout_str()
            .lines()
            .last()
            .expect("the script prints its report last"),
    )
    .unwrap_or_else(|e| panic!("report is not JSON ({e}):\n{}", out.report()));
    let checks = report["ok"].as_array().expect("a list of checks");
    assert_eq!(checks.len(), 12, "{report}");
    eprintln!("{}", report["facts"]);
}
