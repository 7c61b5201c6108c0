//! `[meta] backend = "postgres"`: two `berth serve` processes (separate data directories)
//! on one PostgreSQL database (started by `berth-testkit`), one bucket and one master key
//! act as one registry: an image pushed to one is listed and pulled from the other, which
//! also accepts the first one's login token. An unreachable database stops the start.

use std::process::Command;

use berth_testkit::garage::Garage;

use super::s3::s3_env;
use super::*;

/// `base64("0123456789abcdef0123456789abcdef")`: the cluster's shared master key.
pub(super) const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn node(g: &Garage, bucket: &str, url: &str) -> TestRegistry {
    let env = node_env(g, bucket, url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestRegistry::start_with_env(&env)
}

/// One node's configuration: blobs in `bucket`, metadata at `url`, the shared key.
pub(super) fn node_env(g: &Garage, bucket: &str, url: &str) -> Vec<(String, String)> {
    let mut env = s3_env(g, bucket, false);
    env.extend(
        [
            ("BERTH_META__BACKEND", "postgres"),
            ("BERTH_META__URL", url),
            ("BERTH_META__MAX_CONNECTIONS", "4"),
            ("BERTH_STORAGE__MASTER_KEY", MASTER_KEY),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    env
}

/// `GET /v2/<path>` with only `Basic AWS:<token>` (not the harness's administrator key).
fn get_with_token(url: &str, token: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .basic_auth("AWS", Some(token))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
}

#[test]
fn two_nodes_on_one_database_serve_the_same_images_and_tokens() {
    if !require_clients(&["skopeo", "umoci", "aws"]) {
        return;
    }
    let pg = berth_testkit::postgres::shared();
    let db = pg.create_database().unwrap();
    let g = Garage::start();
    let bucket = format!("berth-pg-{}", unique_suffix());
    g.bucket(&bucket);

    let a = node(&g, &bucket, &db.url());
    let b = node(&g, &bucket, &db.url());
    // The default account exists once, created by the first node; the second tolerated it.
    assert_eq!(
        db.psql("SELECT count(*) FROM accounts").unwrap().trim(),
        "1"
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM accounts").unwrap().trim(),
        "1"
    );

    // Push to node A, pull back from A byte for byte.
    let env_a = ContainersEnv::new(&a);
    let src = OciLayout::init(&env_a.scratch("src"));
    let desc = src.add_random_image("v1", "amd64", 2, 200_000);
    let repo = a.repo("pg");
    run_ok(env_a.skopeo().args([
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src.oci_ref("v1"),
        &env_a.docker_ref(&repo, "v1"),
    ]));
    let tags = http()
        .get(a.v2(&format!("{repo}/tags/list")))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(tags["tags"], json!(["v1"]), "{tags}");

    // Node B pulls the same image, every blob identical to the source.
    let env_b = ContainersEnv::new(&b);
    for (env, reg_name) in [(&env_a, "a"), (&env_b, "b")] {
        let dst_dir = env.scratch(&format!("dst-{reg_name}"));
        run_ok(env.skopeo().args([
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            &env.docker_ref(&repo, "v1"),
            &format!("oci:{}:v1", dst_dir.display()),
        ]));
        let dst = OciLayout::open(&dst_dir);
        assert_eq!(dst.descriptor("v1").digest, desc.digest, "node {reg_name}");
        for d in src.reachable(&desc.digest) {
            assert!(
                src.blob(&d) == dst.blob(&d),
                "blob {d} differs when pulled from node {reg_name}"
            );
        }
    }

    // Node B lists the repository and the image through the ECR API.
    // The administrator's key (the harness's, configured on both) was written by the node
    // that created the account.
    let creds = a.data_dir().unwrap().join("admin.credentials");
    assert!(!b.data_dir().unwrap().join("admin.credentials").exists());
    let images = run_ok(aws_cli(
        &b,
        &creds,
        &["ecr", "list-images", "--repository-name", &repo],
    ))
    .json();
    assert_eq!(
        images["imageIds"],
        json!([{"imageDigest": desc.digest, "imageTag": "v1"}]),
        "{images}"
    );

    // A login token from node A opens node B's /v2; a wrong one does not.
    let token = run_ok(aws_cli(&a, &creds, &["ecr", "get-login-password"]))
        .stdout_str()
        .trim()
        .to_string();
    let url = b.v2(&format!("{repo}/manifests/v1"));
    let resp = get_with_token(&url, &token);
    assert_eq!(resp.status().as_u16(), 200, "{}", b.server_log());
    assert_eq!(header(&resp, "docker-content-digest"), desc.digest);
    let mut forged = token.clone();
    forged.push('x');
    assert_eq!(get_with_token(&url, &forged).status().as_u16(), 401);

    // The operator commands open the same database (no meta.db in the data directory).
    let mut gc = Command::new(env!("CARGO_BIN_EXE_berth"));
    gc.args(["gc", "--dry-run", "--json", "--data-dir"])
        .arg(b.data_dir().unwrap())
        .envs(node_env(&g, &bucket, &db.url()));
    let out = run(&mut gc, Duration::from_secs(120));
    assert!(out.success(), "{}", out.report());
    assert!(!b.data_dir().unwrap().join("meta.db").exists());
}

/// Kills the spawned servers when the test ends, however it ends.
struct Servers(Vec<std::process::Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Three first starts at once on one empty database: they migrate it together, one creates
/// the default account and its key, the others tolerate that, and all three serve.
#[test]
fn first_starts_racing_on_one_database_all_come_up_with_one_account() {
    let pg = berth_testkit::postgres::shared();
    let db = pg.create_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut servers = Servers(Vec::new());
    for i in 0..3 {
        let log = std::fs::File::create(dir.path().join(format!("log{i}"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join(format!("data{i}")))
            .arg("--addr-file")
            .arg(dir.path().join(format!("addr{i}")))
            .env("BERTH_META__BACKEND", "postgres")
            .env("BERTH_META__URL", db.url())
            .env("BERTH_STORAGE__MASTER_KEY", MASTER_KEY)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        servers.0.push(child);
    }
    let logs = || {
        (0..3)
            .map(|i| {
                std::fs::read_to_string(dir.path().join(format!("log{i}"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..3 {
        while !dir.path().join(format!("addr{i}")).is_file() {
            if let Some(status) = servers.0[i].try_wait().unwrap() {
                panic!("node {i} exited with {status}\n{}", logs());
            }
            assert!(
                Instant::now() < deadline,
                "node {i} did not start\n{}",
                logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(
        db.psql("SELECT count(*) FROM accounts").unwrap().trim(),
        "1"
    );
    let written = (0..3)
        .filter(|i| {
            dir.path()
                .join(format!("data{i}/admin.credentials"))
                .is_file()
        })
        .count();
    assert_eq!(
        written,
        1,
        "one node created the administrator key\n{}",
        logs()
    );
}

#[test]
fn an_unreachable_database_stops_the_start_with_a_clear_error() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://berth:sekrit-pw@127.0.0.1:{port}/berth?sslmode=disable");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("BERTH_META__BACKEND", "postgres")
        .env("BERTH_META__URL", &url)
        .env("BERTH_META__ACQUIRE_TIMEOUT_SECS", "5")
        .env("BERTH_STORAGE__MASTER_KEY", MASTER_KEY);
    let out = run(&mut cmd, Duration::from_secs(60));
    assert!(
        !out.success(),
        "berth started without its database\n{}",
        out.report()
    );
    let stderr = out.stderr_str();
    assert!(
        stderr.contains("PostgreSQL") && stderr.contains("meta.url"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("sekrit-pw"),
        "the password leaked: {stderr}"
    );

    // Without a URL at all: a configuration error naming the key.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("BERTH_META__BACKEND", "postgres");
    let out = run(&mut cmd, Duration::from_secs(60));
    assert!(!out.success());
    assert!(out.stderr_str().contains("meta.url"), "{}", out.report());
}
