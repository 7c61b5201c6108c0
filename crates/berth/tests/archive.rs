//! The archive storage class of the real binary, driven by boto3
//! (`tests/archive_boto3.py`): UpdateImageStorageClass to ARCHIVE moves an image's
//! unshared bytes from the blob store to the archive tier, DescribeImages and ListImages
//! show it as ARCHIVED, /v2 pulls and BatchGetImage refuse it clearly while the image
//! sharing its layer pulls fine, and a restore (ACTIVATING, then ACTIVE) brings it back
//! byte-identical.
//!
//! Needs python3 with boto3 (`pip install boto3`). When either is missing this test FAILS,
//! unless `BERTH_ALLOW_MISSING_BOTOCORE=1`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use common::TestRegistry;

/// Runs a python script of this directory against a fresh registry with its admin
/// credentials; it must print `"ok"`.
fn run_python_check(script: &str) {
    let reg = TestRegistry::start();
    if let Some(out) = common::run_python_script(&reg, script, &[]) {
        assert!(out.stdout_str().contains("\"ok\""), "{}", out.report());
    }
}

#[test]
fn boto3_archives_refuses_pulls_and_restores_byte_identical() {
    run_python_check("archive_boto3.py");
}
