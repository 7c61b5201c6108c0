//! `berth migrate`: a single node (SQLite + disk) populated with real clients (skopeo
//! images under several tags, an artifact with a subject, repository and lifecycle
//! policies, an account setting, an IAM user with an access key) is stopped and copied
//! into PostgreSQL + S3 (Garage); one run is killed midway and the rerun copies only what
//! is missing; a node on the target serves every image byte for byte, the same policies,
//! and the old access keys (SigV4 and login tokens). Then back into a single node. Bad
//! input gives clear errors.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_testkit::garage::Garage;

use super::postgres::{node_env, MASTER_KEY};
use super::*;

/// `berth migrate --from <from> --to <to>`, with no `BERTH_*` variable of this process
/// (the two configuration files say everything).
fn migrate_cmd(from: &Path, to: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    for (k, _) in std::env::vars() {
        if k.starts_with("BERTH_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.arg("migrate")
        .arg("--from")
        .arg(from)
        .arg("--to")
        .arg(to)
        .args(extra);
    c
}

fn migrate_json(from: &Path, to: &Path) -> Value {
    let out = run(migrate_cmd(from, to, &["--json"]), Duration::from_secs(300));
    assert!(out.success(), "berth migrate failed\n{}", out.report());
    out.json()
}

fn migrate_fails(from: &Path, to: &Path) -> String {
    let out = run(migrate_cmd(from, to, &[]), Duration::from_secs(120));
    assert!(
        !out.success(),
        "berth migrate should fail\n{}",
        out.report()
    );
    out.stderr_str()
}

/// A TOML string (a JSON string is one).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn single_node_config(dir: &Path, name: &str, data: &Path) -> PathBuf {
    let path = dir.join(name);
    let text = format!(
        "[storage]\ndata_dir = {}\nfsync = false\n",
        toml_str(&data.display().to_string())
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The configuration `node_env` gives a cluster node, as a file.
fn cluster_config(
    dir: &Path,
    name: &str,
    g: &Garage,
    bucket: &str,
    url: &str,
    data: &Path,
) -> PathBuf {
    let path = dir.join(name);
    let text = format!(
        "[meta]\nbackend = \"postgres\"\nurl = {url}\nmax_connections = 4\n\n\
         [storage]\nbackend = \"s3\"\ndata_dir = {data}\nmaster_key = {key}\n\n\
         [storage.s3]\nbucket = {bucket}\nregion = {region}\nendpoint = {endpoint}\n\
         path_style = true\naccess_key_id = {id}\nsecret_access_key = {secret}\npart_size_mib = 5\n",
        url = toml_str(url),
        data = toml_str(&data.display().to_string()),
        key = toml_str(MASTER_KEY),
        bucket = toml_str(bucket),
        region = toml_str(&g.region),
        endpoint = toml_str(&g.endpoint),
        id = toml_str(&g.access_key_id),
        secret = toml_str(&g.secret_access_key),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn write_creds(path: &Path, id: &str, secret: &str) {
    std::fs::write(
        path,
        format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
}

/// What the test compares between the registries: per repository, its tags, the images
/// as DescribeImages reports them, its policy and lifecycle policy.
fn facts(reg: &TestRegistry, creds: &Path, repos: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for repo in repos {
        let tags = http()
            .get(reg.v2(&format!("{repo}/tags/list")))
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap();
        let mut images = run_ok(aws_cli(
            reg,
            creds,
            &["ecr", "describe-images", "--repository-name", repo],
        ))
        .json()["imageDetails"]
            .clone();
        let list = images.as_array_mut().unwrap();
        list.sort_by_key(|i| i["imageDigest"].as_str().unwrap().to_string());
        let policy = run(
            aws_cli(
                reg,
                creds,
                &["ecr", "get-repository-policy", "--repository-name", repo],
            ),
            CMD_TIMEOUT,
        );
        let lifecycle = run(
            aws_cli(
                reg,
                creds,
                &["ecr", "get-lifecycle-policy", "--repository-name", repo],
            ),
            CMD_TIMEOUT,
        );
        let text_of = |o: &CmdOutput, key: &str| {
            if o.success() {
                o.json()[key].clone()
            } else {
                Value::Null
            }
        };
        out.insert(
            repo.to_string(),
            json!({
                "tags": tags["tags"],
                "images": images,
                "policy": text_of(&policy, "policyText"),
                "lifecycle": text_of(&lifecycle, "lifecyclePolicyText"),
            }),
        );
    }
    let setting = run_ok(aws_cli(
        reg,
        creds,
        &["ecr", "get-account-setting", "--name", "BLOB_MOUNTING"],
    ))
    .json();
    out.insert("blobMounting".into(), setting["value"].clone());
    let users = run_ok(aws_cli(reg, creds, &["iam", "list-users"])).json();
    out.insert("users".into(), users["Users"].clone());
    Value::Object(out)
}

/// Pulls `repo:tag` from `reg` into a fresh layout and checks every blob against `src`.
fn assert_pulls_identically(reg: &TestRegistry, repo: &str, tag: &str, src: &OciLayout) {
    let env = ContainersEnv::new(reg);
    let dir = env.scratch(&format!("pull-{}", unique_suffix()));
    run_ok(env.skopeo().args([
        "copy",
        "--preserve-digests",
        "--all",
        "--src-tls-verify=false",
        &env.docker_ref(repo, tag),
        &format!("oci:{}:{tag}", dir.display()),
    ]));
    let dst = OciLayout::open(&dir);
    let want = src.descriptor(tag).digest;
    assert_eq!(dst.descriptor(tag).digest, want, "{repo}:{tag}");
    for d in src.reachable(&want) {
        assert!(
            src.blob(&d) == dst.blob(&d),
            "{repo}:{tag}: blob {d} differs"
        );
    }
}

/// `GET /v2/<repo>/manifests/<tag>` with `Basic AWS:<login password>`: the status.
fn get_with_login_token(reg: &TestRegistry, creds: &Path, repo: &str, tag: &str) -> u16 {
    let token = run_ok(aws_cli(reg, creds, &["ecr", "get-login-password"]))
        .stdout_str()
        .trim()
        .to_string();
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(reg.v2(&format!("{repo}/manifests/{tag}")))
        .basic_auth("AWS", Some(token))
        .header("accept", OCI_MANIFEST)
        .header("accept", OCI_INDEX)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// Runs a migration and SIGKILLs it once it has copied `after` blobs; the blob lines come
/// from its log (`RUST_LOG=info`). Returns how many it had reported.
fn migrate_killed_midway(from: &Path, to: &Path, after: usize) -> usize {
    let mut cmd = migrate_cmd(from, to, &[]);
    cmd.env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut copied = 0;
    let mut log = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("copied blob") {
            copied += 1;
            if copied == after {
                child.kill().unwrap();
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    assert!(
        !status.success() && copied == after,
        "the run ended before it could be interrupted ({status}, {copied} blobs)\n{log}"
    );
    copied
}

#[test]
fn a_single_node_moves_to_postgres_and_s3_and_back_with_its_images_policies_and_keys() {
    if !require_clients(&["skopeo", "umoci", "aws"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut a = TestRegistry::start();
    let creds = a.data_dir().unwrap().join("admin.credentials");

    // --- A single node with images, tags, a referrer, policies, settings and a user.
    let env = ContainersEnv::new(&a);
    let src = OciLayout::init(&env.scratch("src"));
    src.add_random_image("v1", "amd64", 4, 1_500_000);
    src.add_random_image("v2", "amd64", 4, 1_500_000);
    src.add_multiarch_index("multi");
    let push = |tag: &str, repo: &str, as_tag: &str| {
        run_ok(env.skopeo().args([
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &src.oci_ref(tag),
            &env.docker_ref(repo, as_tag),
        ]));
    };
    let (app, lib) = ("team/app", "team/lib");
    push("v1", app, "v1");
    push("v2", app, "v2");
    push("v2", app, "latest");
    push("multi", lib, "multi");
    // An artifact whose subject is app:v1 (a referrer).
    let v1 = src.descriptor("v1");
    let empty = push_blob(&a, app, b"{}");
    let payload = push_blob(&a, app, b"an sbom");
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.example.payload", "digest": payload, "size": 7}],
        "subject": {"mediaType": v1.media_type, "digest": v1.digest, "size": v1.size},
    }))
    .unwrap();
    let artifact_digest = sha256_digest(&artifact);
    let r = put_manifest(&a, app, &artifact_digest, OCI_MANIFEST, &artifact);
    assert_eq!(r.status().as_u16(), 201);
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":"*","Action":["ecr:BatchGetImage"]}]}"#;
    run_ok(aws_cli(
        &a,
        &creds,
        &[
            "ecr",
            "set-repository-policy",
            "--repository-name",
            app,
            "--policy-text",
            policy,
        ],
    ));
    let lifecycle = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}"#;
    run_ok(aws_cli(
        &a,
        &creds,
        &[
            "ecr",
            "put-lifecycle-policy",
            "--repository-name",
            app,
            "--lifecycle-policy-text",
            lifecycle,
        ],
    ));
    run_ok(aws_cli(
        &a,
        &creds,
        &[
            "ecr",
            "put-account-setting",
            "--name",
            "BLOB_MOUNTING",
            "--value",
            "DISABLED",
        ],
    ));
    run_ok(aws_cli(
        &a,
        &creds,
        &["iam", "create-user", "--user-name", "ci"],
    ));
    let allow_ecr = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#;
    run_ok(aws_cli(
        &a,
        &creds,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "ci",
            "--policy-name",
            "ecr",
            "--policy-document",
            allow_ecr,
        ],
    ));
    let key = run_ok(aws_cli(
        &a,
        &creds,
        &["iam", "create-access-key", "--user-name", "ci"],
    ))
    .json()["AccessKey"]
        .clone();
    let ci_creds = tmp.path().join("ci.credentials");
    write_creds(
        &ci_creds,
        key["AccessKeyId"].as_str().unwrap(),
        key["SecretAccessKey"].as_str().unwrap(),
    );
    assert_eq!(get_with_login_token(&a, &ci_creds, app, "v1"), 200);
    let before = facts(&a, &creds, &[app, lib]);
    let referrers_of = |reg: &TestRegistry| {
        http()
            .get(reg.v2(&format!("{app}/referrers/{}", v1.digest)))
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()["manifests"]
            .clone()
    };
    let referrers = referrers_of(&a);
    assert_eq!(referrers.as_array().unwrap().len(), 1, "{referrers}");

    // --- The configurations; bad input first.
    let pg = berth_testkit::postgres::shared();
    let db = pg.create_database().unwrap();
    let g = Garage::start();
    let bucket = format!("berth-migrate-{}", unique_suffix());
    g.bucket(&bucket);
    let source = single_node_config(tmp.path(), "single.toml", &a.data_dir().unwrap());
    let target_dir = tempfile::Builder::new()
        .prefix("berth-e2e-")
        .tempdir()
        .unwrap();
    let target = cluster_config(
        tmp.path(),
        "cluster.toml",
        &g,
        &bucket,
        &db.url(),
        &target_dir.path().join("data"),
    );
    let err = migrate_fails(&source, &target);
    assert!(
        err.contains("must be stopped") && err.contains("already using"),
        "{err}"
    );
    a.stop();
    let err = migrate_fails(&tmp.path().join("missing.toml"), &target);
    assert!(
        err.contains("--from") && err.contains("missing.toml"),
        "{err}"
    );
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[meta]\nbackend = \"mysql\"\n").unwrap();
    let err = migrate_fails(&source, &bad);
    assert!(err.contains("--to") && err.contains("backend"), "{err}");
    let unreachable = cluster_config(
        tmp.path(),
        "unreachable.toml",
        &g,
        &bucket,
        "postgres://berth@127.0.0.1:1/berth?sslmode=disable",
        &tmp.path().join("unreachable-data"),
    );
    let err = migrate_fails(&source, &unreachable);
    assert!(
        err.contains("opening the target's metadata database"),
        "{err}"
    );
    let err = migrate_fails(&source, &source);
    assert!(err.contains("same"), "{err}");

    // --- Killed midway, then resumed: only the missing blobs are copied.
    let reported = migrate_killed_midway(&source, &target, 3);
    let started = Instant::now();
    let report = migrate_json(&source, &target);
    let secs = started.elapsed().as_secs_f64();
    eprintln!("resumed migration ({secs:.1} s): {report:#}");
    let total = report["blobs"].as_u64().unwrap();
    let present = report["blobsAlreadyPresent"].as_u64().unwrap();
    let copied = report["blobsCopied"].as_u64().unwrap();
    assert!(present >= reported as u64, "{report}");
    assert!(copied >= 1 && present + copied == total, "{report}");
    assert_eq!(report["metadata"], "copied", "{report}");
    assert_eq!(report["secretsResealed"], true, "{report}");
    assert_eq!(report["repositories"], 2, "{report}");
    assert_eq!(report["tags"], 4, "{report}");
    // Once more: nothing to copy, and the metadata is recognized as this source's.
    let again = migrate_json(&source, &target);
    assert_eq!(again["blobsCopied"], 0, "{again}");
    assert_eq!(again["blobsAlreadyPresent"], total, "{again}");
    assert!(
        again["metadata"].as_str().unwrap().contains("already"),
        "{again}"
    );

    // --- A node on the target: same facts, same bytes, the old keys work.
    let env_b = node_env(&g, &bucket, &db.url());
    let env_b: Vec<(&str, &str)> = env_b
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut b = TestRegistry::start_in(target_dir, &env_b);
    assert_eq!(facts(&b, &creds, &[app, lib]), before);
    assert_eq!(referrers_of(&b), referrers);
    for (repo, tag) in [(app, "v1"), (app, "v2"), (lib, "multi")] {
        assert_pulls_identically(&b, repo, tag, &src);
    }
    // The user's key: SigV4 (the ECR API) and a login token from it on /v2.
    run_ok(aws_cli(&b, &ci_creds, &["ecr", "describe-repositories"]));
    assert_eq!(get_with_login_token(&b, &ci_creds, app, "latest"), 200);
    // New ids continue after the copied ones (PostgreSQL identities were advanced).
    run_ok(aws_cli(
        &b,
        &creds,
        &["iam", "create-user", "--user-name", "after"],
    ));
    let env_on_b = ContainersEnv::new(&b);
    run_ok(env_on_b.skopeo().args([
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src.oci_ref("v1"),
        &env_on_b.docker_ref("team/new", "v1"),
    ]));

    // --- And back into a single node: a new data directory takes the cluster's key, so
    // nothing is re-sealed and a login token issued by the cluster stays valid.
    let token = run_ok(aws_cli(&b, &ci_creds, &["ecr", "get-login-password"]))
        .stdout_str()
        .trim()
        .to_string();
    b.stop();
    let back_dir = tempfile::Builder::new()
        .prefix("berth-e2e-")
        .tempdir()
        .unwrap();
    let back = single_node_config(tmp.path(), "back.toml", &back_dir.path().join("data"));
    let source_b = cluster_config(
        tmp.path(),
        "cluster-source.toml",
        &g,
        &bucket,
        &db.url(),
        &b.data_dir().unwrap(),
    );
    let report = migrate_json(&source_b, &back);
    assert_eq!(report["repositories"], 3, "{report}");
    assert_eq!(report["secretsResealed"], false, "{report}");
    let mut c = TestRegistry::start_in(back_dir, &[]);
    let old_token = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(c.v2(&format!("{app}/manifests/v1")))
        .basic_auth("AWS", Some(&token))
        .header("accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(
        old_token.status().as_u16(),
        200,
        "a login token from the cluster"
    );
    assert_pulls_identically(&c, app, "v2", &src);
    assert_pulls_identically(&c, "team/new", "v1", &src);
    assert_eq!(referrers_of(&c), referrers);
    run_ok(aws_cli(&c, &ci_creds, &["ecr", "describe-repositories"]));
    assert_eq!(get_with_login_token(&c, &ci_creds, app, "v1"), 200);

    // A target holding other metadata (C has team/new, the first node does not) is
    // refused unless --force, which replaces it.
    c.stop();
    let err = migrate_fails(&source, &back);
    assert!(
        err.contains("not this source's") && err.contains("--force"),
        "{err}"
    );
    let out = run(
        migrate_cmd(&source, &back, &["--json", "--force"]),
        Duration::from_secs(300),
    );
    assert!(out.success(), "{}", out.report());
    assert_eq!(
        out.json()["metadata"],
        "replaced (--force)",
        "{}",
        out.report()
    );
    assert_eq!(out.json()["repositories"], 2, "{}", out.report());
}
