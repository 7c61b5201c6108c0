//! The ECR API of the real binary, driven by boto3 (`tests/ecr_boto3.py`) with the
//! administrator credentials file written at first start and `endpoint_url`, and by raw
//! botocore-signed requests with bad input (`tests/ecr_bad_input.py`).
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
