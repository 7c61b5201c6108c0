//! The ECR registry-configuration API of the real binary (repository and registry
//! policies, tags, account settings, repository creation templates and CREATE_ON_PUSH),
//! driven by boto3 (`tests/ecr_policies_boto3.py`) with the administrator credentials
//! written at first start; its `/v2` pushes authenticate with an ECR login token.
//!
//! Needs python3 with boto3 (`pip install boto3`). When either is missing this test FAILS,
//! unless `BERTH_ALLOW_MISSING_BOTOCORE=1`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use common::TestRegistry;

#[test]
fn boto3_manages_policies_tags_settings_and_creation_templates() {
    let reg = TestRegistry::start();
    let Some(out) = common::run_python_script(&reg, "ecr_policies_boto3.py", &[]) else {
        return;
    };
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
