//! The image and layer half of the ECR API on the real binary, driven by boto3
//! (`tests/ecr_images_boto3.py`): layer uploads in parts, PutImage / BatchGetImage byte
//! equality, DescribeImages sizes, tags, push and pull times, ListImages filters and pages,
//! ListImageReferrers, BatchDeleteImage failures, tag immutability (all four modes) refused
//! by PutImage and by a `/v2` manifest PUT, GetDownloadUrlForLayer URLs fetched, and pull
//! time update exclusions, each with its error paths.
//!
//! Needs python3 with boto3 (`pip install boto3`). When either is missing this test FAILS,
//! unless `BERTH_ALLOW_MISSING_BOTOCORE=1`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use common::TestRegistry;

#[test]
fn boto3_pushes_pulls_describes_and_deletes_images() {
    let reg = TestRegistry::start();
    let Some(out) = common::run_python_script(&reg, "ecr_images_boto3.py", &[]) else {
        return;
    };
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
