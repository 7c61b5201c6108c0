//! The ECR registry-configuration API of the real binary (repository and registry
//! policies, tags, account settings, repository creation templates and CREATE_ON_PUSH),
//! driven by boto3 (`tests/ecr_policies_boto3.py`) with the administrator credentials
//! written at first start; its `/v2` pushes authenticate with an ECR login token.
//!
//! Needs python3 with boto3 (`pip install boto3`). When either is missing this test FAILS,
//! unless `BERTH_ALLOW_MISSING_BOTOCORE=1`.

mod common;

use std::process::Command;

use common::{run, unique_suffix, TestRegistry, CMD_TIMEOUT};

#[test]
fn boto3_manages_policies_tags_settings_and_creation_templates() {
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
        eprintln!("SKIPPED boto3 ECR policies test (no python3); BERTH_ALLOW_MISSING_BOTOCORE=1");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ecr_policies_boto3.py");
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
            "SKIPPED boto3 ECR policies test ({}); BERTH_ALLOW_MISSING_BOTOCORE=1",
            out.stderr_str().trim()
        );
        return;
    }
    assert!(
        out.success(),
        "ecr_policies_boto3.py failed\n{}\nserver log:\n{}",
        out.report(),
        reg.server_log()
    );
    let report = out.stdout_str();
    for check in [
        "repository policies",
        "registry policy",
        "tags",
        "delete_repository takes policy and tags",
        "account settings",
        "BLOB_MOUNTING",
        "repository creation templates",
        "CREATE_ON_PUSH",
    ] {
        assert!(
            report.contains(check),
            "missing check {check:?}\n{}",
            out.report()
        );
    }
}
