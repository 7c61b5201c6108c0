//! IAM governs the registry API end to end: a second IAM user made with the real AWS CLI
//! (`aws iam ...`) is limited by its user policy and by a repository policy
//! (`aws ecr set-repository-policy`): denied push, allowed pull, an explicit deny beating an
//! allow, a cross-repository mount that needs pull on the source, and a login token that
//! stops working when its key is deactivated or deleted. Pushes and pulls use skopeo with
//! the user's credentials, as a CI job would.
//!
//! Needs the AWS CLI, skopeo and umoci; a missing one FAILS the test unless
//! `BERTH_E2E_ALLOW_MISSING_CLIENTS=1`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::{json, Value};

use common::*;

fn aws(reg: &TestRegistry, creds: &Path, args: &[&str]) -> Command {
    aws_cli(reg, creds, args)
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn raw_client() -> reqwest::blocking::Client {
    install_crypto_provider();
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
}

struct User {
    id: String,
    secret: String,
    creds_file: PathBuf,
}

fn create_user(reg: &TestRegistry, admin: &Path, dir: &Path, name: &str) -> User {
    run_ok(aws(
        reg,
        admin,
        &["iam", "create-user", "--user-name", name],
    ));
    let key = run_ok(aws(
        reg,
        admin,
        &["iam", "create-access-key", "--user-name", name],
    ))
    .json();
    let id = key["AccessKey"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = key["AccessKey"]["SecretAccessKey"]
        .as_str()
        .unwrap()
        .to_string();
    let creds_file = dir.join(format!("{name}.credentials"));
    std::fs::write(
        &creds_file,
        format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    User {
        id,
        secret,
        creds_file,
    }
}

fn put_user_policy(reg: &TestRegistry, admin: &Path, user: &str, name: &str, doc: &Value) {
    run_ok(aws(
        reg,
        admin,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            user,
            "--policy-name",
            name,
            "--policy-document",
            &doc.to_string(),
        ],
    ));
}

/// `skopeo copy` of the test image to `repo:tag` with `creds`; the output on failure.
fn skopeo_push(env: &ContainersEnv, src: &OciLayout, repo: &str, creds: &str) -> CmdOutput {
    run(
        env.skopeo().args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            &src.oci_ref("v1"),
            &env.docker_ref(repo, "v1"),
        ]),
        CMD_TIMEOUT,
    )
}

fn skopeo_pull(env: &ContainersEnv, repo: &str, creds: &str) -> CmdOutput {
    run(
        env.skopeo().args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            creds,
            &env.docker_ref(repo, "v1"),
        ]),
        CMD_TIMEOUT,
    )
}

#[test]
fn user_and_repository_policies_govern_push_pull_mount_and_tokens() {
    if !require_clients(&["aws", "skopeo", "umoci"]) {
        return;
    }
    let reg = TestRegistry::start();
    let Some(data) = reg.data_dir() else {
        eprintln!("skipped: needs a spawned berth (BERTH_E2E_REGISTRY is set)");
        return;
    };
    let admin = data.join("admin.credentials");
    let work = tempfile::tempdir().unwrap();
    let env = ContainersEnv::new(&reg);
    std::fs::write(env.path().join("auth.json"), "{}").unwrap();
    let src = OciLayout::init(&env.scratch("src"));
    let image = src.add_random_image("v1", "amd64", 2, 32 * 1024);
    let admin_creds = format!("{ADMIN_KEY_ID}:{ADMIN_SECRET}");

    let suffix = unique_suffix();
    let app = format!("team-{suffix}/app");
    let other = format!("team-{suffix}/other");
    let private = format!("private-{suffix}/src");
    for repo in [&app, &other, &private] {
        run_ok(aws(
            &reg,
            &admin,
            &["ecr", "create-repository", "--repository-name", repo],
        ));
        let out = skopeo_push(&env, &src, repo, &admin_creds);
        assert!(out.success(), "{}", out.report());
    }

    let dev = create_user(&reg, &admin, work.path(), "dev");
    let dev_creds = format!("{}:{}", dev.id, dev.secret);

    // No policy at all: every /v2 operation but the version check is denied.
    let http = raw_client();
    let resp = http
        .get(reg.v2(""))
        .header("authorization", basic(&dev.id, &dev.secret))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "authenticated callers pass /v2/");
    let resp = http
        .get(reg.v2(&format!("{app}/manifests/v1")))
        .header("authorization", basic(&dev.id, &dev.secret))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["errors"][0]["code"], "DENIED");
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("user/dev") && message.contains("ecr:BatchGetImage"),
        "{message}"
    );
    let out = skopeo_pull(&env, &app, &dev_creds);
    assert!(!out.success(), "{}", out.report());

    // A user policy allows pulling from team-*/ repositories (and logging in).
    let pull_actions = json!([
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
        "ecr:ListImages"
    ]);
    put_user_policy(
        &reg,
        &admin,
        "dev",
        "pull-team",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": pull_actions,
             "Resource": format!("arn:aws:ecr:us-east-1:000000000000:repository/team-{suffix}/*")},
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}
        ]}),
    );
    let out = skopeo_pull(&env, &app, &dev_creds);
    assert!(out.success(), "allowed pull\n{}", out.report());
    let out = skopeo_pull(&env, &private, &dev_creds);
    assert!(!out.success(), "pull outside the policy\n{}", out.report());
    // ... but not pushing.
    let out = skopeo_push(&env, &src, &app, &dev_creds);
    assert!(!out.success(), "denied push\n{}", out.report());
    assert!(
        out.report().to_lowercase().contains("denied"),
        "{}",
        out.report()
    );

    // A repository policy on team/app grants dev push there, and only there.
    let push_policy = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "dev-pushes",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::000000000000:user/dev"},
        "Action": ["ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload",
                   "ecr:PutImage", "ecr:BatchCheckLayerAvailability"]
    }]});
    run_ok(aws(
        &reg,
        &admin,
        &[
            "ecr",
            "set-repository-policy",
            "--repository-name",
            &app,
            "--policy-text",
            &push_policy.to_string(),
        ],
    ));
    let out = skopeo_push(&env, &src, &app, &dev_creds);
    assert!(
        out.success(),
        "push allowed by the repository policy\n{}",
        out.report()
    );
    let out = skopeo_push(&env, &src, &other, &dev_creds);
    assert!(
        !out.success(),
        "push to another repository\n{}",
        out.report()
    );

    // A cross-repository mount needs pull on the source: without it the client gets an
    // ordinary upload session (202), with it the blob is mounted (201).
    let layer = src.blob_json(&image.digest)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mount = |from: &str| {
        http.post(reg.v2(&format!("{app}/blobs/uploads/?mount={layer}&from={from}")))
            .header("authorization", basic(&dev.id, &dev.secret))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(mount(&private), 202, "no pull on the source: no mount");
    assert_eq!(mount(&other), 201, "pull on the source: mounted");

    // An explicit deny beats both allows.
    put_user_policy(
        &reg,
        &admin,
        "dev",
        "deny-app",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "ecr:*",
             "Resource": format!("arn:aws:ecr:us-east-1:000000000000:repository/{app}")}
        ]}),
    );
    let out = skopeo_pull(&env, &app, &dev_creds);
    assert!(
        !out.success(),
        "deny beats the user allow\n{}",
        out.report()
    );
    let out = skopeo_push(&env, &src, &app, &dev_creds);
    assert!(
        !out.success(),
        "deny beats the repository policy's allow\n{}",
        out.report()
    );
    let out = skopeo_pull(&env, &other, &dev_creds);
    assert!(
        out.success(),
        "other repositories unaffected\n{}",
        out.report()
    );

    // A login token works until its key is deactivated, and not after it is deleted.
    let password = run_ok(aws(&reg, &dev.creds_file, &["ecr", "get-login-password"]))
        .stdout_str()
        .trim()
        .to_string();
    let token_creds = format!("AWS:{password}");
    let out = skopeo_pull(&env, &other, &token_creds);
    assert!(out.success(), "{}", out.report());
    run_ok(aws(
        &reg,
        &admin,
        &[
            "iam",
            "update-access-key",
            "--user-name",
            "dev",
            "--access-key-id",
            &dev.id,
            "--status",
            "Inactive",
        ],
    ));
    let resp = http
        .get(reg.v2(""))
        .header("authorization", basic("AWS", &password))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401, "token of a deactivated key");
    let out = skopeo_pull(&env, &other, &token_creds);
    assert!(!out.success(), "{}", out.report());
    run_ok(aws(
        &reg,
        &admin,
        &[
            "iam",
            "update-access-key",
            "--user-name",
            "dev",
            "--access-key-id",
            &dev.id,
            "--status",
            "Active",
        ],
    ));
    assert!(skopeo_pull(&env, &other, &token_creds).success());
    run_ok(aws(
        &reg,
        &admin,
        &[
            "iam",
            "delete-access-key",
            "--user-name",
            "dev",
            "--access-key-id",
            &dev.id,
        ],
    ));
    let resp = http
        .get(reg.v2(""))
        .header("authorization", basic("AWS", &password))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401, "token of a deleted key");
    let resp = http
        .get(reg.v2(""))
        .header("authorization", basic(&dev.id, &dev.secret))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401, "the deleted key itself");
}

/// AWS's tag-based example, end to end: a user allowed `ecr:*` but denied
/// `ecr:BatchDeleteImage` on repositories tagged `protected=true` can delete images of
/// an untagged repository, and neither through the ECR API (`aws ecr batch-delete-image`)
/// nor through `/v2` (manifest `DELETE`) from a protected one.
#[test]
fn a_resource_tag_deny_protects_images_on_the_ecr_api_and_on_v2() {
    if !require_clients(&["aws", "skopeo", "umoci"]) {
        return;
    }
    let reg = TestRegistry::start();
    let Some(data) = reg.data_dir() else {
        eprintln!("skipped: needs a spawned berth (BERTH_E2E_REGISTRY is set)");
        return;
    };
    let admin = data.join("admin.credentials");
    let work = tempfile::tempdir().unwrap();
    let env = ContainersEnv::new(&reg);
    std::fs::write(env.path().join("auth.json"), "{}").unwrap();
    let src = OciLayout::init(&env.scratch("src"));
    let image = src.add_random_image("v1", "amd64", 1, 4 * 1024);
    let admin_creds = format!("{ADMIN_KEY_ID}:{ADMIN_SECRET}");
    let suffix = unique_suffix();
    let protected = format!("prot-{suffix}/app");
    let open = format!("open-{suffix}/app");
    run_ok(aws(
        &reg,
        &admin,
        &[
            "ecr",
            "create-repository",
            "--repository-name",
            &protected,
            "--tags",
            "Key=protected,Value=true",
        ],
    ));
    run_ok(aws(
        &reg,
        &admin,
        &["ecr", "create-repository", "--repository-name", &open],
    ));
    for repo in [&protected, &open] {
        let out = skopeo_push(&env, &src, repo, &admin_creds);
        assert!(out.success(), "{}", out.report());
    }
    let ops = create_user(&reg, &admin, work.path(), "ops");
    put_user_policy(
        &reg,
        &admin,
        "ops",
        "all-but-protected-deletes",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "ecr:BatchDeleteImage", "Resource": "*",
             "Condition": {"StringEquals": {"ecr:ResourceTag/protected": "true"}}}
        ]}),
    );
    let delete = |repo: &str| {
        run(
            aws(
                &reg,
                &ops.creds_file,
                &[
                    "ecr",
                    "batch-delete-image",
                    "--repository-name",
                    repo,
                    "--image-ids",
                    "imageTag=v1",
                ],
            ),
            CMD_TIMEOUT,
        )
    };
    let out = delete(&protected);
    assert!(
        !out.success() && out.stderr_str().contains("AccessDeniedException"),
        "{}",
        out.report()
    );
    let http = raw_client();
    let resp = http
        .delete(reg.v2(&format!("{protected}/manifests/{}", image.digest)))
        .header("authorization", basic(&ops.id, &ops.secret))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["errors"][0]["code"], "DENIED", "{v}");
    let out = skopeo_pull(&env, &protected, &admin_creds);
    assert!(
        out.success(),
        "the protected image is still there: {}",
        out.report()
    );

    // The untagged repository: the same user deletes through both edges.
    let out = delete(&open);
    assert!(out.success(), "{}", out.report());
    assert_eq!(
        out.json()["imageIds"][0]["imageTag"],
        "v1",
        "{}",
        out.report()
    );
    let out = skopeo_push(&env, &src, &open, &admin_creds);
    assert!(out.success(), "{}", out.report());
    let resp = http
        .delete(reg.v2(&format!("{open}/manifests/{}", image.digest)))
        .header("authorization", basic(&ops.id, &ops.secret))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
}
