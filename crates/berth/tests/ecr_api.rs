//! The ECR API of the real binary, driven by boto3 (`tests/ecr_boto3.py`) with the
//! administrator credentials file written at first start and `endpoint_url`, and by raw
//! botocore-signed requests with bad input (`tests/ecr_bad_input.py`).
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
fn boto3_manages_repositories_and_gets_login_tokens() {
    run_python_check("ecr_boto3.py");
}

/// Malformed JSON, unknown targets, wrong types, model constraints, oversize and invalid
/// policies: each the model's exception with HTTP 400, never a 500.
#[test]
fn bad_input_gets_the_models_exceptions() {
    run_python_check("ecr_bad_input.py");
}

#[test]
fn post_root_is_the_ecr_api_and_other_routes_are_unchanged() {
    let reg = TestRegistry::start();
    let http = reqwest::blocking::Client::new();
    let base = reg.base_url();
    // An unsigned request with no target: the ECR error shape, never a 500.
    let resp = http.post(format!("{base}/")).body("{}").send().unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().contains_key("x-amzn-requestid"));
    assert_eq!(resp.headers()["content-type"], "application/x-amz-json-1.1");
    let v: serde_json::Value = resp.json().unwrap();
    assert_eq!(v["__type"], "UnknownOperationException");
    // Unsigned with a target: authentication is required.
    let resp = http
        .post(format!("{base}/"))
        .header(
            "x-amz-target",
            "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
        )
        .body("{}")
        .send()
        .unwrap();
    let v: serde_json::Value = resp.json().unwrap();
    assert_eq!(v["__type"], "MissingAuthenticationTokenException");
    // GET / is still the OCI "not found"; /v2/ and /healthz as before.
    let resp = http.get(format!("{base}/")).send().unwrap();
    assert_eq!(resp.status(), 404);
    // /v2/ asks for credentials (the harness's client sends the administrator's).
    assert_eq!(http.get(reg.v2("")).send().unwrap().status(), 401);
    assert_eq!(common::http().get(reg.v2("")).send().unwrap().status(), 200);
    assert_eq!(
        http.get(format!("{base}/healthz")).send().unwrap().status(),
        200
    );
}
