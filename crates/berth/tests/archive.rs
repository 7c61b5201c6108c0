//! The archive storage class of the real binary, driven by boto3
//! (`tests/archive_boto3.py`): UpdateImageStorageClass to ARCHIVE moves an image's
//! unshared bytes from the blob store to the archive tier, DescribeImages and ListImages
//! show it as ARCHIVED, /v2 pulls and BatchGetImage refuse it clearly while the image
//! sharing its layer pulls fine, and a restore (ACTIVATING, then ACTIVE) brings it back
//! byte-identical.
//!
//! Needs python3 with boto3 (`pip install boto3`). When either is missing this test FAILS,
//! unless `BERTH_ALLOW_MISSING_BOTOCORE=1`.

mod common;

use std::process::Command;

use common::{run, unique_suffix, TestRegistry, CMD_TIMEOUT};

/// Runs a python script of this directory against a fresh registry with its admin
/// credentials; it must print `"ok"`.
fn run_python_check(script: &str) {
    let reg = TestRegistry::start();
    let Some(data) = reg.data_dir() else {
        eprintln!(
            "skipped: needs a spawned berth for its admin.credentials (BERTH_E2E_REGISTRY is set)"
        );
        return;
    };
    let script = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(reg.base_url())
        .arg(data.join("admin.credentials"))
        .arg(unique_suffix());
    let allow_missing = std::env::var("BERTH_ALLOW_MISSING_BOTOCORE").as_deref() == Ok("1");
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(
            allow_missing,
            "python3 is missing: {script} needs python3 with boto3 (pip install boto3); \
             set BERTH_ALLOW_MISSING_BOTOCORE=1 to skip it"
        );
        eprintln!("SKIPPED {script} (no python3); BERTH_ALLOW_MISSING_BOTOCORE=1");
        return;
    }
    let out = run(cmd, CMD_TIMEOUT);
    if out.status.code() == Some(3) {
        assert!(
            allow_missing,
            "{}: {script} needs boto3 (pip install boto3); \
             set BERTH_ALLOW_MISSING_BOTOCORE=1 to skip it",
            out.stderr_str().trim()
        );
        eprintln!(
            "SKIPPED {script} ({}); BERTH_ALLOW_MISSING_BOTOCORE=1",
            out.stderr_str().trim()
        );
        return;
    }
    assert!(
        out.success(),
        "{script} failed\n{}\nserver log:\n{}",
        out.report(),
        reg.server_log()
    );
    assert!(out.stdout_str().contains("\"ok\""), "{}", out.report());
}

#[test]
fn boto3_archives_refuses_pulls_and_restores_byte_identical() {
    run_python_check("archive_boto3.py");
}
