//! `berth serve` with `[storage] backend = "s3"` on a real S3 server (Garage, started by
//! `berth-testkit`): chunked uploads whose bytes and state live in the bucket (and survive a
//! restart), blob downloads redirected to presigned URLs (`redirect = true`) that curl
//! follows. (Refused starts: `start_checks.rs`.) Fails, naming what to install, without
//! the `garage` binary.

use berth_testkit::garage::Garage;

use super::*;

const BUCKET: &str = "berth-e2e";

fn garage() -> Garage {
    let g = Garage::start();
    g.bucket(BUCKET);
    g
}

pub(super) fn s3_env(g: &Garage, bucket: &str, redirect: bool) -> Vec<(String, String)> {
    [
        ("BERTH_STORAGE__BACKEND", "s3"),
        (
            "BERTH_STORAGE__REDIRECT",
            if redirect { "true" } else { "false" },
        ),
        ("BERTH_STORAGE__S3__BUCKET", bucket),
        ("BERTH_STORAGE__S3__REGION", g.region.as_str()),
        ("BERTH_STORAGE__S3__ENDPOINT", g.endpoint.as_str()),
        ("BERTH_STORAGE__S3__PATH_STYLE", "true"),
        ("BERTH_STORAGE__S3__ACCESS_KEY_ID", g.access_key_id.as_str()),
        (
            "BERTH_STORAGE__S3__SECRET_ACCESS_KEY",
            g.secret_access_key.as_str(),
        ),
        ("BERTH_STORAGE__S3__PART_SIZE_MIB", "5"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn start(g: &Garage, redirect: bool) -> TestRegistry {
    let env = s3_env(g, BUCKET, redirect);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestRegistry::start_with_env(&env)
}

/// A 7 MiB blob pushed in two chunks around a restart (so across a 5 MiB part boundary and
/// two processes) lands in the bucket, not the data directory; downloads answer 307 to
/// the object store, which serves the bytes (whole and by range) to a client that never
/// saw the store's credentials; HEAD stays with Berth.
#[test]
fn blobs_on_s3_survive_a_restart_mid_upload_and_downloads_redirect_to_the_store() {
    if !require_clients(&["curl"]) {
        return;
    }
    let g = garage();
    let mut reg = start(&g, true);
    let repo = reg.repo("s3");
    let data = random_bytes(7 * 1024 * 1024 + 123);
    let digest = sha256_digest(&data);
    let url = start_upload(&reg, &repo);
    let url = patch_chunk(&reg, &url, &data[..3_000_000], 0);
    let path = TestRegistry::path_of(&url);
    reg.restart();
    let url = patch_chunk(&reg, &reg.resolve(&path), &data[3_000_000..], 3_000_000);
    finish_upload(&reg, &url, &digest, &[]);

    let data_dir = reg.data_dir().expect("spawned");
    let local_blobs = std::fs::read_dir(data_dir.join("blobs")).map_or(0, |d| d.count());
    assert_eq!(
        local_blobs, 0,
        "blob files in the data directory with backend = s3"
    );

    let blob_url = reg.v2(&format!("{repo}/blobs/{digest}"));
    let r = curl(&[&blob_url]);
    assert_eq!(
        r.status, 307,
        "GET blob with redirect on\n{}",
        r.raw_headers
    );
    let location = r.header("location").expect("Location").to_string();
    assert!(location.starts_with(&g.endpoint), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert!(!location.contains(&g.secret_access_key));
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    // What clients do: follow it (curl drops the registry's credentials for another host).
    assert_blob(&reg, &repo, &digest, &data);
    let ranged = curl(&["-L", "-H", "Range: bytes=5242870-5242889", &blob_url]);
    assert_eq!(ranged.status, 206);
    assert!(ranged.body == data[5_242_870..5_242_890]);
    let head = curl(&["-I", &blob_url]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    // A blob the repository does not link is not redirected anywhere.
    let other = reg.v2(&format!("{}/blobs/{digest}", reg.repo("elsewhere")));
    assert_eq!(curl(&[&other]).status, 404);
}

/// Without `redirect`, Berth streams S3 blobs itself. Here the credentials come from the
/// AWS environment variables (the credential chain), not from `[storage.s3]`.
#[test]
fn without_redirect_berth_serves_s3_blobs_itself() {
    if !require_clients(&["curl"]) {
        return;
    }
    let g = garage();
    let mut env: Vec<(String, String)> = s3_env(&g, BUCKET, false)
        .into_iter()
        .filter(|(k, _)| !k.contains("ACCESS_KEY"))
        .collect();
    env.push(("AWS_ACCESS_KEY_ID".into(), g.access_key_id.clone()));
    env.push(("AWS_SECRET_ACCESS_KEY".into(), g.secret_access_key.clone()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let reg = TestRegistry::start_with_env(&env);
    let repo = reg.repo("s3-direct");
    let data = random_bytes(300_000);
    let digest = push_blob(&reg, &repo, &data);
    let r = curl(&[&reg.v2(&format!("{repo}/blobs/{digest}"))]);
    assert_eq!(r.status, 200);
    assert!(r.body == data);
}

/// The value of one series in `/metrics` (0 when absent).
pub(super) fn metric(reg: &TestRegistry, series: &str) -> f64 {
    let text = http()
        .get(format!("{}/metrics", reg.base_url()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// skopeo pulls an image through the redirects: every blob `GET` is answered 307 (none
/// 200), its bytes come from the object store, and the copy is byte-identical.
#[test]
fn skopeo_pulls_blobs_from_the_object_store() {
    if !require_clients(&["skopeo", "umoci"]) {
        return;
    }
    let g = garage();
    let reg = start(&g, true);
    let env = ContainersEnv::new(&reg);
    let src = OciLayout::init(&env.scratch("src"));
    let desc = src.add_random_image("v1", "amd64", 2, 1024 * 1024);
    let repo = reg.repo("s3-skopeo");
    run_ok(env.skopeo().args([
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src.oci_ref("v1"),
        &env.docker_ref(&repo, "v1"),
    ]));
    let redirected = r#"berth_http_requests_total{edge="oci",operation="GetBlob",status="307"}"#;
    let served = r#"berth_http_requests_total{edge="oci",operation="GetBlob",status="200"}"#;
    let sent_before = metric(&reg, "berth_http_response_body_bytes_total");
    let dst_dir = env.scratch("dst");
    run_ok(env.skopeo().args([
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &env.docker_ref(&repo, "v1"),
        &format!("oci:{}:v1", dst_dir.display()),
    ]));
    let dst = OciLayout::open(&dst_dir);
    assert_eq!(dst.descriptor("v1").digest, desc.digest);
    // Config and two layers: each a redirect, none served by Berth.
    assert!(metric(&reg, redirected) >= 3.0, "{}", reg.server_log());
    assert_eq!(metric(&reg, served), 0.0);
    // The two 1 MiB layers did not flow through Berth.
    let sent = metric(&reg, "berth_http_response_body_bytes_total") - sent_before;
    assert!(
        sent < 1024.0 * 1024.0,
        "Berth sent {sent} bytes during the pull"
    );
    let manifest: Value = serde_json::from_slice(&src.blob(&desc.digest)).unwrap();
    let mut blobs = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for l in manifest["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_string());
    }
    assert_eq!(blobs.len(), 3);
    for d in &blobs {
        assert!(dst.blob(d) == src.blob(d), "{d} differs after the pull");
    }
}
