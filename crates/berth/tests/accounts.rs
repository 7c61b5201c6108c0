//! Several accounts on one server, each with its own registry namespace.
//!
//! The server runs with `[registry] base_domain = "berth.test"`, so `/v2` on
//! `<account>.berth.test:<port>` is that account's registry and every other host is the
//! default account's. A second account made with `berth iam create-account` creates a
//! repository of the same name as one of the default account's; skopeo pushes a different
//! image to each (the second through its own host name, which a private mount namespace
//! resolves to 127.0.0.1 with its own /etc/hosts), and each registry then shows only its
//! own: `aws ecr describe-repositories`/`describe-images`, repository URIs, the catalog and
//! pulls. Cross-account access needs both sides: the other account's repository policy
//! and, for an IAM user, the user's own policy.
//!
//! Needs the AWS CLI, skopeo, umoci and `unshare` (util-linux, run as root); a missing one
//! FAILS the test unless `BERTH_E2E_ALLOW_MISSING_CLIENTS=1`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use common::*;

const DEFAULT_ACCOUNT: &str = "000000000000";
const OTHER_ACCOUNT: &str = "222233334444";
const BASE_DOMAIN: &str = "berth.test";

/// `host:port` of `account`'s registry on this server.
fn registry_host(reg: &TestRegistry, account: &str) -> String {
    let port = reg.addr().rsplit_once(':').unwrap().1;
    format!("{account}.{BASE_DOMAIN}:{port}")
}

/// A hosts file resolving both accounts' registry names to loopback.
fn hosts_file(dir: &Path) -> PathBuf {
    let path = dir.join("hosts");
    std::fs::write(
        &path,
        format!(
            "127.0.0.1 localhost\n::1 localhost\n127.0.0.1 {DEFAULT_ACCOUNT}.{BASE_DOMAIN} {OTHER_ACCOUNT}.{BASE_DOMAIN}\n"
        ),
    )
    .unwrap();
    path
}

/// skopeo with `args`, run in a private mount namespace whose /etc/hosts is `hosts`.
fn skopeo_with_hosts(env: &ContainersEnv, hosts: &Path, args: &[&str]) -> CmdOutput {
    let mut c = env.cmd("unshare");
    c.args([
        "--mount",
        "--",
        "sh",
        "-c",
        "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
    ])
    .arg(hosts)
    .arg("skopeo")
    .arg("--policy")
    .arg(env.path().join("policy.json"))
    .args(args);
    run(c, CMD_TIMEOUT)
}

fn write_creds(path: &Path, id: &str, secret: &str) {
    std::fs::write(
        path,
        format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
}

fn aws(reg: &TestRegistry, creds: &Path, args: &[&str]) -> Command {
    aws_cli(reg, creds, args)
}

fn image_digests(reg: &TestRegistry, creds: &Path, registry: &str, repo: &str) -> Vec<String> {
    let out = run_ok(aws(
        reg,
        creds,
        &[
            "ecr",
            "describe-images",
            "--registry-id",
            registry,
            "--repository-name",
            repo,
        ],
    ))
    .json();
    out["imageDetails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["imageDigest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn each_account_has_its_own_registry_and_cross_account_access_needs_both_sides() {
    if !require_clients(&["aws", "skopeo", "umoci", "unshare"]) {
        return;
    }
    let reg = TestRegistry::start_with_env(&[("BERTH_REGISTRY__BASE_DOMAIN", BASE_DOMAIN)]);
    let Some(data) = reg.data_dir() else {
        eprintln!("skipped: needs a spawned berth (BERTH_E2E_REGISTRY is set)");
        return;
    };
    let admin = data.join("admin.credentials");
    let work = tempfile::tempdir().unwrap();
    let hosts = hosts_file(work.path());
    let env = ContainersEnv::new(&reg);
    let src = OciLayout::init(&env.scratch("src"));
    src.add_random_image("mine", "amd64", 1, 16 * 1024);
    src.add_random_image("theirs", "amd64", 1, 16 * 1024);

    // A second account, made with the CLI beside the running server.
    let created = run_ok(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["iam", "create-account", "--account", OTHER_ACCOUNT])
            .arg("--data-dir")
            .arg(&data),
    )
    .json();
    assert_eq!(created["Account"]["Id"], OTHER_ACCOUNT);
    let other_id = created["AccessKey"]["AccessKeyId"].as_str().unwrap();
    let other_secret = created["AccessKey"]["SecretAccessKey"].as_str().unwrap();
    let other = work.path().join("other.credentials");
    write_creds(&other, other_id, other_secret);
    let again = run(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["iam", "create-account", "--account", OTHER_ACCOUNT])
            .arg("--data-dir")
            .arg(&data),
        CMD_TIMEOUT,
    );
    assert!(!again.success(), "an account is created once");

    // The same repository name in both registries.
    let repo = "shared/app";
    let mine = run_ok(aws(
        &reg,
        &admin,
        &["ecr", "create-repository", "--repository-name", repo],
    ))
    .json();
    let theirs = run_ok(aws(
        &reg,
        &other,
        &["ecr", "create-repository", "--repository-name", repo],
    ))
    .json();
    assert_eq!(mine["repository"]["registryId"], DEFAULT_ACCOUNT);
    assert_eq!(theirs["repository"]["registryId"], OTHER_ACCOUNT);
    assert_eq!(
        theirs["repository"]["repositoryArn"],
        format!("arn:aws:ecr:us-east-1:{OTHER_ACCOUNT}:repository/{repo}")
    );
    assert_eq!(
        mine["repository"]["repositoryUri"],
        format!("{}/{repo}", registry_host(&reg, DEFAULT_ACCOUNT))
    );
    assert_eq!(
        theirs["repository"]["repositoryUri"],
        format!("{}/{repo}", registry_host(&reg, OTHER_ACCOUNT))
    );
    // Each account's login endpoint is its own registry host.
    let token = run_ok(aws(&reg, &other, &["ecr", "get-authorization-token"])).json();
    assert_eq!(
        token["authorizationData"][0]["proxyEndpoint"],
        format!("http://{}", registry_host(&reg, OTHER_ACCOUNT))
    );

    // Pushes: the default account's through the plain address, the other's through its
    // own host name, each with that account's root key.
    let admin_creds = format!("{ADMIN_KEY_ID}:{ADMIN_SECRET}");
    let other_creds = format!("{other_id}:{other_secret}");
    let out = run(
        env.skopeo().args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &admin_creds,
            &src.oci_ref("mine"),
            &env.docker_ref(repo, "v1"),
        ]),
        CMD_TIMEOUT,
    );
    assert!(out.success(), "{}", out.report());
    let theirs_ref = format!("docker://{}/{repo}:v1", registry_host(&reg, OTHER_ACCOUNT));
    let out = skopeo_with_hosts(
        &env,
        &hosts,
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &other_creds,
            &src.oci_ref("theirs"),
            &theirs_ref,
        ],
    );
    assert!(out.success(), "{}", out.report());

    // Each registry holds only its own image.
    let mine_digests = image_digests(&reg, &admin, DEFAULT_ACCOUNT, repo);
    let theirs_digests = image_digests(&reg, &other, OTHER_ACCOUNT, repo);
    assert_eq!(mine_digests.len(), 1, "{mine_digests:?}");
    assert_eq!(theirs_digests.len(), 1, "{theirs_digests:?}");
    assert_ne!(mine_digests, theirs_digests);
    let inspect = |host_ref: &str, creds: &str| {
        let out = skopeo_with_hosts(
            &env,
            &hosts,
            &["inspect", "--tls-verify=false", "--creds", creds, host_ref],
        );
        assert!(out.success(), "{}", out.report());
        out.json()["Digest"].as_str().unwrap().to_string()
    };
    assert_eq!(inspect(&theirs_ref, &other_creds), theirs_digests[0]);
    let mine_by_host = format!(
        "docker://{}/{repo}:v1",
        registry_host(&reg, DEFAULT_ACCOUNT)
    );
    assert_eq!(inspect(&mine_by_host, &admin_creds), mine_digests[0]);
    assert_eq!(
        inspect(&env.docker_ref(repo, "v1"), &admin_creds),
        mine_digests[0]
    );
    let names = |creds: &Path| -> Vec<String> {
        let out = run_ok(aws(&reg, creds, &["ecr", "describe-repositories"])).json();
        out["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["repositoryName"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&other), vec![repo.to_string()]);
    assert!(names(&admin).contains(&repo.to_string()));

    // The catalog of a registry lists its own repositories only.
    install_crypto_provider();
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let catalog = |account: &str, user: &str, secret: &str| -> Value {
        let resp = http
            .get(reg.v2("_catalog"))
            .header("host", registry_host(&reg, account))
            .basic_auth(user, Some(secret))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().unwrap()
    };
    assert_eq!(
        catalog(OTHER_ACCOUNT, other_id, other_secret),
        json!({"repositories": [repo]})
    );

    // A download URL of the other registry works on any host name of the server: the
    // grant names its registry.
    let manifest: Value = serde_json::from_str(
        run_ok(aws(
            &reg,
            &other,
            &[
                "ecr",
                "batch-get-image",
                "--repository-name",
                repo,
                "--image-ids",
                "imageTag=v1",
            ],
        ))
        .json()["images"][0]["imageManifest"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let url = run_ok(aws(
        &reg,
        &other,
        &[
            "ecr",
            "get-download-url-for-layer",
            "--repository-name",
            repo,
            "--layer-digest",
            &layer,
        ],
    ))
    .json()["downloadUrl"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        url.starts_with(&format!("http://{}/", registry_host(&reg, OTHER_ACCOUNT))),
        "{url}"
    );
    let plain_url = url.replace(&registry_host(&reg, OTHER_ACCOUNT), reg.addr());
    let resp = http.get(&plain_url).send().unwrap();
    assert_eq!(resp.status(), 200, "{plain_url}");
    let body = resp.bytes().unwrap();
    assert_eq!(sha256_digest(&body), layer);

    // `aws ecr batch-get-image` of the other registry's v1 with `creds`.
    let get_theirs = |creds: &Path| {
        aws(
            &reg,
            creds,
            &[
                "ecr",
                "batch-get-image",
                "--registry-id",
                OTHER_ACCOUNT,
                "--repository-name",
                repo,
                "--image-ids",
                "imageTag=v1",
            ],
        )
    };

    // Cross-account, step 1: nothing grants the default account anything in the other
    // registry, so even its root is refused, on both edges.
    let denied = run(get_theirs(&admin), CMD_TIMEOUT);
    assert!(!denied.success());
    assert!(
        denied.stderr_str().contains("AccessDenied"),
        "{}",
        denied.report()
    );
    let out = skopeo_with_hosts(
        &env,
        &hosts,
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &admin_creds,
            &theirs_ref,
        ],
    );
    assert!(!out.success(), "{}", out.report());

    // Step 2: the other account's repository policy lets the default account pull.
    let pull = json!([
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability"
    ]);
    let policy = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "pull-from-default-account",
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{DEFAULT_ACCOUNT}:root")},
        "Action": pull,
    }]});
    run_ok(aws(
        &reg,
        &other,
        &[
            "ecr",
            "set-repository-policy",
            "--repository-name",
            repo,
            "--policy-text",
            &policy.to_string(),
        ],
    ));
    let got = run_ok(get_theirs(&admin)).json();
    assert_eq!(
        got["images"][0]["imageId"]["imageDigest"],
        theirs_digests[0]
    );
    assert_eq!(inspect(&theirs_ref, &admin_creds), theirs_digests[0]);
    // ...but not push: the policy grants pulls only.
    let out = skopeo_with_hosts(
        &env,
        &hosts,
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &admin_creds,
            &src.oci_ref("mine"),
            &format!(
                "docker://{}/{repo}:intruder",
                registry_host(&reg, OTHER_ACCOUNT)
            ),
        ],
    );
    assert!(!out.success(), "{}", out.report());

    // Step 3: an IAM user of the default account also needs its own identity policy.
    run_ok(aws(
        &reg,
        &admin,
        &["iam", "create-user", "--user-name", "ci"],
    ));
    let key = run_ok(aws(
        &reg,
        &admin,
        &["iam", "create-access-key", "--user-name", "ci"],
    ))
    .json();
    let ci_id = key["AccessKey"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let ci_secret = key["AccessKey"]["SecretAccessKey"]
        .as_str()
        .unwrap()
        .to_string();
    let ci_creds = format!("{ci_id}:{ci_secret}");
    let out = skopeo_with_hosts(
        &env,
        &hosts,
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &ci_creds,
            &theirs_ref,
        ],
    );
    assert!(
        !out.success(),
        "the repository policy alone is not enough: {}",
        out.report()
    );
    run_ok(aws(
        &reg,
        &admin,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "ci",
            "--policy-name",
            "pull-other-account",
            "--policy-document",
            &json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Action": pull,
                "Resource": format!("arn:aws:ecr:us-east-1:{OTHER_ACCOUNT}:repository/{repo}"),
            }]})
            .to_string(),
        ],
    ));
    // Identities are cached for up to 2 s; the policy change made through the API
    // clears that cache, so the next pull sees it.
    assert_eq!(inspect(&theirs_ref, &ci_creds), theirs_digests[0]);
}
