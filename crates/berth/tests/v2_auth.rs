//! Authentication and authorization of the `/v2` registry API against the real binary:
//! the Basic challenge, login passwords from `aws ecr get-login-password` (the AWS docs'
//! push workflow with podman, verbatim but for `--endpoint-url`), access keys used
//! directly, the Docker bearer-token flow, expired and forged tokens, and the anonymous
//! access modes.
//!
//! Needs podman, skopeo, curl and the AWS CLI (`pip install awscli`); a missing one FAILS
//! the test unless `BERTH_E2E_ALLOW_MISSING_CLIENTS=1`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::Value;

use common::*;

/// A client without the harness's default administrator credentials.
fn anonymous_http() -> reqwest::blocking::Client {
    install_crypto_provider();
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn error_code(resp: reqwest::blocking::Response) -> String {
    let v: Value = resp.json().expect("an OCI error body");
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `aws` as the administrator (the data directory's admin.credentials).
fn aws(reg: &TestRegistry, args: &[&str]) -> Command {
    let creds = reg
        .data_dir()
        .expect("a spawned registry")
        .join("admin.credentials");
    aws_cli(reg, &creds, args)
}

#[test]
fn v2_requires_credentials_and_answers_with_the_basic_challenge() {
    let reg = TestRegistry::start_with_env(&[]);
    let http = anonymous_http();
    let resp = http.get(reg.v2("")).send().unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = header(&resp, "www-authenticate");
    assert_eq!(
        challenge,
        format!("Basic realm=\"http://{0}/\",service=\"{0}\"", reg.addr())
    );
    assert_eq!(error_code(resp), "UNAUTHORIZED");

    let repo = reg.repo("auth-basic");
    let manifest = reg.v2(&format!("{repo}/manifests/latest"));
    assert_eq!(http.get(&manifest).send().unwrap().status(), 401);
    assert_eq!(
        http.post(reg.v2(&format!("{repo}/blobs/uploads/")))
            .send()
            .unwrap()
            .status(),
        401
    );

    // Wrong, malformed and forged credentials are refused with the challenge.
    for bad in [
        basic(ADMIN_KEY_ID, "not-the-secret-not-the-secret-not-the-sec"),
        basic("AKIANOSUCHKEY0000000", ADMIN_SECRET),
        basic("AWS", "berth1.e30.AAAA"),
        basic("alice", "password"),
        "Bearer berth1.forged.token".to_string(),
        "Basic !!!".to_string(),
        "Digest username=x".to_string(),
    ] {
        let resp = http
            .get(reg.v2(""))
            .header("authorization", &bad)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 401, "{bad}");
        assert!(header(&resp, "www-authenticate").starts_with("Basic "));
        assert_eq!(error_code(resp), "UNAUTHORIZED", "{bad}");
    }

    // The access key itself works as Basic credentials.
    let admin = basic(ADMIN_KEY_ID, ADMIN_SECRET);
    let resp = http
        .get(reg.v2(""))
        .header("authorization", &admin)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    push_small_image(&reg, &repo, "latest");
    let resp = http
        .get(&manifest)
        .header("authorization", &admin)
        .header("accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn the_token_endpoint_issues_bearer_tokens() {
    let reg = TestRegistry::start_with_env(&[]);
    let http = anonymous_http();
    let repo = reg.repo("auth-bearer");
    push_small_image(&reg, &repo, "v1");
    let token_url = format!(
        "{}/v2/token?service={}&scope=repository:{repo}:pull",
        reg.base_url(),
        reg.addr()
    );
    // No credentials: refused.
    assert_eq!(http.get(&token_url).send().unwrap().status(), 401);
    // Basic credentials in, a bearer token out.
    let resp = http
        .get(&token_url)
        .header("authorization", admin_basic_auth())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["access_token"], v["token"]);
    assert_eq!(v["expires_in"], 3600);
    assert!(v["issued_at"].as_str().unwrap().ends_with('Z'), "{v}");
    let resp = http
        .get(reg.v2(&format!("{repo}/manifests/v1")))
        .header("authorization", format!("Bearer {token}"))
        .header("accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A tampered token is not.
    let mut forged = token.clone();
    forged.insert(10, 'x');
    let resp = http
        .get(reg.v2(""))
        .header("authorization", format!("Bearer {forged}"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);

    // The OAuth2 password grant (POST, form body).
    let resp = http
        .post(format!("{}/v2/token", reg.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=password&service=berth&username={ADMIN_KEY_ID}&password={}",
            ADMIN_SECRET.replace('+', "%2B").replace('/', "%2F")
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().unwrap();
    let access = v["access_token"].as_str().unwrap();
    let resp = http
        .get(reg.v2("_catalog"))
        .header("authorization", format!("Bearer {access}"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http
        .post(format!("{}/v2/token", reg.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["error"], "invalid_request");
}

#[test]
fn expired_and_foreign_login_tokens_are_refused() {
    let reg = TestRegistry::start_with_env(&[]);
    let data = reg.data_dir().expect("spawned");
    let key = berth_meta::secrets::MasterKey::load(&data.join("master.key"))
        .expect("master key")
        .login_token_key();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = |expires_at| berth_access::token::TokenClaims {
        access_key_id: ADMIN_KEY_ID.to_string(),
        account_id: "000000000000".to_string(),
        user: None,
        expires_at,
        login_expires_at: expires_at,
    };
    let http = anonymous_http();
    let get = |password: &str| {
        http.get(reg.v2(""))
            .header("authorization", basic("AWS", password))
            .send()
            .unwrap()
    };
    // Valid for another minute: accepted.
    let valid = berth_access::token::sign(&key, &claims(now + 60));
    assert_eq!(get(&valid).status(), 200);
    // Expired a second ago: refused with ECR's message.
    let expired = berth_access::token::sign(&key, &claims(now - 1));
    let resp = get(&expired);
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().unwrap();
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{v}"
    );
    // Signed under another key (another server's token): refused.
    let foreign = berth_access::token::sign(&[7u8; 32], &claims(now + 3600));
    assert_eq!(get(&foreign).status(), 401);

    // Renewal (refresh_token grant, and a login password at GET /v2/token) never
    // outlives the original login: a login ending in 2 minutes gives a bearer token of
    // at most 2 minutes, although bearer tokens live an hour, and the renewed token
    // carries the same end.
    let ending = berth_access::token::sign(&key, &claims(now + 120));
    let refresh = |token: &str| {
        let resp = http
            .post(format!("{}/v2/token", reg.base_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=refresh_token&refresh_token={token}"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().unwrap()
    };
    let v = refresh(&ending);
    let expires_in = v["expires_in"].as_i64().unwrap();
    assert!((1..=120).contains(&expires_in), "{v}");
    let renewed = v["access_token"].as_str().unwrap().to_string();
    let c = berth_access::token::verify(&key, &renewed, now).unwrap();
    assert!(
        c.expires_at <= now + 120 && c.login_expires_at == now + 120,
        "{c:?}"
    );
    let v = refresh(&renewed);
    let c = berth_access::token::verify(&key, v["access_token"].as_str().unwrap(), now).unwrap();
    assert_eq!(c.login_expires_at, now + 120, "{v}");
    let resp = http
        .get(format!("{}/v2/token", reg.base_url()))
        .header("authorization", basic("AWS", &ending))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().unwrap();
    assert!(
        (1..=120).contains(&v["expires_in"].as_i64().unwrap()),
        "{v}"
    );
}

#[test]
fn aws_docs_push_workflow_with_get_login_password() {
    if !require_clients(&["aws", "podman", "umoci"]) {
        return;
    }
    let reg = TestRegistry::start_with_env(&[]);
    let env = ContainersEnv::new(&reg);
    // Start logged out: the workflow logs in itself.
    std::fs::write(env.path().join("auth.json"), "{}").unwrap();
    let src = OciLayout::init(&env.scratch("src"));
    src.add_random_image("v1", "amd64", 2, 64 * 1024);

    let repo = format!("hello-repository-{}", unique_suffix());
    let created = run_ok(aws(
        &reg,
        &["ecr", "create-repository", "--repository-name", &repo],
    ))
    .json();
    let uri = created["repository"]["repositoryUri"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(uri, format!("{}/{repo}", reg.addr()));

    // aws ecr get-login-password | podman login --username AWS --password-stdin <registry>
    let password = run_ok(aws(&reg, &["ecr", "get-login-password"]))
        .stdout_str()
        .trim()
        .to_string();
    assert!(password.starts_with("berth1."), "{password}");
    let mut login = env.podman();
    login
        .args(["login", "--username", "AWS", "--password-stdin"])
        .args(["--tls-verify=false", reg.addr()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = login.spawn().expect("podman login");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(password.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "podman login failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // docker tag hello-world:latest <uri>:latest; docker push; docker pull
    let id = run_ok(env.podman().args(["pull", "-q", &src.oci_ref("v1")]))
        .stdout_str()
        .trim()
        .to_string();
    let image = format!("{uri}:latest");
    run_ok(env.podman().args(["tag", &id, &image]));
    run_ok(env.podman().args(["push", "--tls-verify=false", &image]));
    run_ok(env.podman().args(["rmi", "-a", "-f"]));
    run_ok(env.podman().args(["pull", "--tls-verify=false", &image]));
    let inspect = run_ok(env.podman().args(["image", "inspect", &image])).json();
    assert_eq!(inspect[0]["Id"], id.as_str());

    // The image is visible through the API too.
    let images = run_ok(aws(
        &reg,
        &["ecr", "list-images", "--repository-name", &repo],
    ))
    .json();
    assert_eq!(images["imageIds"][0]["imageTag"], "latest", "{images}");

    // Logged out, the same pull is refused.
    run_ok(env.podman().args(["logout", reg.addr()]));
    run_ok(env.podman().args(["rmi", "-a", "-f"]));
    let out = run(
        env.podman().args(["pull", "--tls-verify=false", &image]),
        CMD_TIMEOUT,
    );
    assert!(
        !out.success(),
        "an anonymous pull must fail\n{}",
        out.report()
    );
    let text = out.report().to_lowercase();
    assert!(
        text.contains("unauthorized") || text.contains("authentication required"),
        "{}",
        out.report()
    );
}

#[test]
fn anonymous_pull_mode_allows_reads_only() {
    let reg = TestRegistry::start_with_env(&[("BERTH_AUTH__ANONYMOUS", "pull")]);
    let repo = reg.repo("anon-pull");
    let (_, digest) = push_small_image(&reg, &repo, "v1");
    let http = anonymous_http();
    assert_eq!(http.get(reg.v2("")).send().unwrap().status(), 200);
    let resp = http
        .get(reg.v2(&format!("{repo}/manifests/v1")))
        .header("accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    assert_eq!(
        http.get(reg.v2(&format!("{repo}/tags/list")))
            .send()
            .unwrap()
            .status(),
        200
    );
    // Writes still need credentials.
    let resp = http
        .post(reg.v2(&format!("{repo}/blobs/uploads/")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http
        .delete(reg.v2(&format!("{repo}/manifests/{digest}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The token endpoint hands anonymous callers the anonymous token, which reads.
    let v: Value = http
        .get(format!(
            "{}/v2/token?scope=repository:{repo}:pull",
            reg.base_url()
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = v["token"].as_str().unwrap();
    let resp = http
        .get(reg.v2(&format!("{repo}/tags/list")))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Bad credentials are refused even where anonymous reads are allowed.
    let resp = http
        .get(reg.v2(&format!("{repo}/tags/list")))
        .header("authorization", basic(ADMIN_KEY_ID, "wrong"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[test]
fn bearer_challenge_mode_drives_skopeo_through_the_token_flow() {
    if !require_clients(&["skopeo", "umoci"]) {
        return;
    }
    let reg = TestRegistry::start_with_env(&[("BERTH_AUTH__CHALLENGE", "bearer")]);
    let http = anonymous_http();
    let repo = reg.repo("bearer-skopeo");
    let resp = http
        .get(reg.v2(&format!("{repo}/manifests/v1")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        header(&resp, "www-authenticate"),
        format!(
            "Bearer realm=\"http://{0}/v2/token\",service=\"{0}\",scope=\"repository:{repo}:pull\"",
            reg.addr()
        )
    );

    let env = ContainersEnv::new(&reg);
    std::fs::write(env.path().join("auth.json"), "{}").unwrap();
    let src = OciLayout::init(&env.scratch("src"));
    src.add_random_image("v1", "amd64", 2, 32 * 1024);
    let creds = format!("{ADMIN_KEY_ID}:{ADMIN_SECRET}");
    run_ok(env.skopeo().args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &src.oci_ref("v1"),
        &env.docker_ref(&repo, "v1"),
    ]));
    // Without credentials skopeo is refused; with them it reads back what it pushed.
    let out = run(
        env.skopeo().args([
            "inspect",
            "--tls-verify=false",
            &env.docker_ref(&repo, "v1"),
        ]),
        CMD_TIMEOUT,
    );
    assert!(!out.success(), "{}", out.report());
    run_ok(env.skopeo().args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        &env.docker_ref(&repo, "v1"),
    ]));
}

/// A master key file as an operator makes one for a cluster (32 random bytes, mode 0600).
fn master_key_file(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut key)
        .unwrap();
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, &key).unwrap();
    path
}

/// Nodes sharing a database must share the key that signs login tokens: a token one node
/// issued is accepted by another that loads the same key (from a file, or as base64 in the
/// environment), and refused by one with another key. Each node here has its own data
/// directory and the same bootstrap administrator key, standing in for one database.
#[test]
fn nodes_with_one_master_key_accept_each_others_tokens() {
    let keys = tempfile::tempdir().unwrap();
    let shared = master_key_file(keys.path(), "cluster.key");
    let other = master_key_file(keys.path(), "other.key");
    let shared_b64 =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&shared).unwrap());
    let file_env = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let node_a =
        TestRegistry::start_with_env(&[("BERTH_STORAGE__MASTER_KEY_FILE", &file_env(&shared))]);
    let node_b = TestRegistry::start_with_env(&[("BERTH_STORAGE__MASTER_KEY", &shared_b64)]);
    let node_c =
        TestRegistry::start_with_env(&[("BERTH_STORAGE__MASTER_KEY_FILE", &file_env(&other))]);
    // The configured key is used, not a data-directory key made up by each node.
    for node in [&node_a, &node_b, &node_c] {
        assert!(!node.data_dir().unwrap().join("master.key").exists());
    }
    // Neither the key nor its base64 reaches the log.
    assert!(!node_b.server_log().contains(&shared_b64));

    let http = anonymous_http();
    let token_url = format!(
        "{}/v2/token?service={}&scope=repository:cluster/any:pull",
        node_a.base_url(),
        node_a.addr()
    );
    let resp = http
        .get(&token_url)
        .header("authorization", admin_basic_auth())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token = resp.json::<Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let with_token = |node: &TestRegistry| {
        http.get(node.v2(""))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(with_token(&node_a), 200);
    assert_eq!(with_token(&node_b), 200);
    assert_eq!(with_token(&node_c), 401);
}

/// A node whose master key is not the one the database's secrets are sealed under refuses
/// to start, naming both key ids, instead of failing every login later.
#[test]
fn a_node_with_another_master_key_than_the_database_refuses_to_start() {
    let mut reg = TestRegistry::start_with_env(&[]);
    let data = reg.data_dir().unwrap();
    // (The data directory is removed when `reg` drops, after this test.)
    let sealed_under = berth_meta::secrets::MasterKey::load(&data.join("master.key"))
        .unwrap()
        .id_hex();
    let (status, by_itself) = reg.stop().unwrap();
    assert!(by_itself && status.success());
    let keys = tempfile::tempdir().unwrap();
    let wrong = master_key_file(keys.path(), "wrong.key");
    let wrong_id = berth_meta::secrets::MasterKey::load(&wrong)
        .unwrap()
        .id_hex();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(&data)
        .env_remove("BERTH_CONFIG")
        .env("BERTH_STORAGE__MASTER_KEY_FILE", &wrong)
        .stdin(Stdio::null());
    let out = run(cmd, CMD_TIMEOUT);
    assert!(!out.success(), "{}", out.report());
    let err = out.stderr_str();
    assert!(
        err.contains(&sealed_under) && err.contains(&wrong_id) && err.contains("master key"),
        "{err}"
    );
}
