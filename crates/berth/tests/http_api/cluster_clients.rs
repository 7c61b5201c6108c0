//! The real clients against the three-node cluster, through the balancer only (each
//! request to the next node): skopeo and podman push and pull umoci-built images byte for
//! byte, the `oci-client` crate pushes (whole and chunked) and pulls, the AWS CLI and boto3
//! drive the ECR API, a login token from one node opens every node, and with
//! `[storage] redirect = true` skopeo and podman pull blobs from the object store.

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciImageManifest, IMAGE_LAYER_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;

use super::cluster::{assert_every_node_served, Cluster};
use super::s3::metric;
use super::*;

/// Pulls `repo:tag` from `env`'s registry into a fresh layout and checks every blob
/// reachable from `desc` is identical to `src`'s.
fn skopeo_pull_identical(env: &ContainersEnv, repo: &str, src: &OciLayout, desc: &Descriptor) {
    let dst_dir = env.scratch(&format!("dst-{}", unique_suffix()));
    run_ok(env.skopeo().args([
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &env.docker_ref(repo, "v1"),
        &format!("oci:{}:v1", dst_dir.display()),
    ]));
    let dst = OciLayout::open(&dst_dir);
    assert_eq!(dst.descriptor("v1").digest, desc.digest);
    for d in src.reachable(&desc.digest) {
        assert!(
            src.blob(&d) == dst.blob(&d),
            "blob {d} differs after the pull"
        );
    }
}

#[test]
fn cluster_skopeo_and_podman_push_and_pull_through_the_balancer() {
    if !require_clients(&["skopeo", "podman", "umoci"]) {
        return;
    }
    let c = Cluster::start(false, &[]);
    let env = ContainersEnv::new(&c.front);
    let src = OciLayout::init(&env.scratch("src"));
    let desc = src.add_random_image("v1", "amd64", 3, 300_000);

    // skopeo: a push (every blob and the manifest on whichever node), pulled back twice.
    let repo = c.front.repo("cluster-skopeo");
    run_ok(env.skopeo().args([
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src.oci_ref("v1"),
        &env.docker_ref(&repo, "v1"),
    ]));
    skopeo_pull_identical(&env, &repo, &src, &desc);
    skopeo_pull_identical(&env, &repo, &src, &desc);

    // podman: the same image from the layout, pushed to another repository, removed
    // locally, pulled back; the pushed manifest's digest and the image id agree.
    let config_hex = src.blob_json(&desc.digest)["config"]["digest"]
        .as_str()
        .expect("config digest")
        .trim_start_matches("sha256:")
        .to_string();
    run_ok(env.podman().args(["pull", "-q", &src.oci_ref("v1")]));
    let prepo = c.front.repo("cluster-podman");
    let image = env.image_ref(&prepo, "v1");
    run_ok(env.podman().args(["tag", &config_hex, &image]));
    let digest_file = env.scratch("push.digest");
    run_ok(
        env.podman()
            .args(["push", "--tls-verify=false", "--digestfile"])
            .arg(&digest_file)
            .arg(&image),
    );
    let pushed = std::fs::read_to_string(&digest_file)
        .unwrap()
        .trim()
        .to_string();
    run_ok(env.podman().args(["rmi", "-a", "-f"]));
    run_ok(env.podman().args(["pull", "--tls-verify=false", &image]));
    let inspect = run_ok(env.podman().args(["image", "inspect", &image])).json();
    assert_eq!(inspect[0]["Id"], config_hex.as_str(), "{inspect}");
    assert_eq!(inspect[0]["Digest"], pushed.as_str(), "{inspect}");
    // Every node serves what podman pushed, byte for byte.
    for n in &c.nodes {
        let r = http()
            .get(n.v2(&format!("{prepo}/manifests/{pushed}")))
            .header(
                "accept",
                format!("{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"),
            )
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(sha256_digest(&r.bytes().unwrap()), pushed);
    }
    assert_every_node_served(&c);
}

fn oci_reference(reg: &TestRegistry, repo: &str, tag: &str) -> oci_client::Reference {
    format!("{}/{}:{}", reg.addr(), repo, tag)
        .parse()
        .expect("parse reference")
}

/// The `oci-client` crate through the balancer: a push, a chunked stream push, pulls.
fn oci_client_round_trip(front: &TestRegistry) {
    install_crypto_provider();
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let auth = RegistryAuth::Basic(ADMIN_KEY_ID.to_string(), ADMIN_SECRET.to_string());
    let repo = front.repo("cluster-oci-client");
    let image = oci_reference(front, &repo, "v1");
    let layers = vec![
        ImageLayer::oci_v1(random_bytes(400_000), None),
        ImageLayer::oci_v1(random_bytes(3_000), None),
    ];
    let config_bytes = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.sha256_digest()).collect::<Vec<_>>()},
    }))
    .unwrap();
    let config = Config::oci_v1(config_bytes.clone(), None);
    let manifest = OciImageManifest::build(&layers, &config, None);
    let stream_data = random_bytes(700_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        client
            .push(&image, &layers, config, &auth, Some(manifest))
            .await
            .expect("oci-client push");
        let data = client
            .pull(&image, &auth, vec![IMAGE_LAYER_MEDIA_TYPE])
            .await
            .expect("oci-client pull");
        assert_eq!(data.config.data.to_vec(), config_bytes);
        let mut got: Vec<(String, Vec<u8>)> = data
            .layers
            .iter()
            .map(|l| (l.sha256_digest(), l.data.to_vec()))
            .collect();
        let mut want: Vec<(String, Vec<u8>)> = layers
            .iter()
            .map(|l| (l.sha256_digest(), l.data.to_vec()))
            .collect();
        got.sort();
        want.sort();
        assert!(got == want, "pulled layers differ from the pushed ones");

        // Seven PATCHes, each to the next node.
        let chunks: Vec<oci_client::errors::Result<bytes::Bytes>> = stream_data
            .chunks(100_000)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let resp = client
            .push_blob_stream_chunked(&image, futures::stream::iter(chunks))
            .await
            .expect("chunked stream push");
        assert_eq!(resp.blob_digest, sha256_digest(&stream_data));
        let mut out = Vec::new();
        let layer = oci_client::manifest::OciDescriptor {
            media_type: IMAGE_LAYER_MEDIA_TYPE.to_string(),
            digest: resp.blob_digest.clone(),
            size: stream_data.len() as i64,
            ..Default::default()
        };
        client
            .pull_blob(&image, &layer, &mut out)
            .await
            .expect("pull blob");
        assert!(out == stream_data, "pulled chunked blob differs");
    });
}

/// `GET /v2/<repo>/manifests/v1` with only `Basic AWS:<token>`: the status.
fn status_with_token(node: &TestRegistry, repo: &str, token: &str) -> u16 {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(node.v2(&format!("{repo}/manifests/v1")))
        .basic_auth("AWS", Some(token))
        .header("accept", OCI_MANIFEST)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn cluster_oci_client_aws_cli_and_boto3_through_the_balancer() {
    if !require_clients(&["aws"]) {
        return;
    }
    let c = Cluster::start(false, &[]);
    let front = &c.front;
    oci_client_round_trip(front);

    // The AWS CLI: a repository created through one node, images pushed and listed and
    // deleted through others.
    let aws = |args: &[&str]| run_ok(aws_cli(front, &c.credentials, args)).json();
    let repo = front.repo("cluster-aws");
    let created = aws(&["ecr", "create-repository", "--repository-name", &repo]);
    assert_eq!(
        created["repository"]["repositoryName"],
        repo.as_str(),
        "{created}"
    );
    let (_, one) = push_small_image(front, &repo, "one");
    let (_, two) = push_small_image(front, &repo, "two");
    let listed = aws(&["ecr", "describe-images", "--repository-name", &repo]);
    let mut digests: Vec<&str> = listed["imageDetails"]
        .as_array()
        .expect("imageDetails")
        .iter()
        .filter_map(|d| d["imageDigest"].as_str())
        .collect();
    digests.sort();
    let mut want = vec![one.as_str(), two.as_str()];
    want.sort();
    assert_eq!(digests, want, "{listed}");
    let deleted = aws(&[
        "ecr",
        "batch-delete-image",
        "--repository-name",
        &repo,
        "--image-ids",
        "imageTag=one",
    ]);
    assert_eq!(
        deleted["imageIds"][0]["imageDigest"],
        one.as_str(),
        "{deleted}"
    );
    assert_eq!(deleted["failures"], json!([]), "{deleted}");
    // Gone on every node (the deletion reached each node's cache).
    let deadline = Instant::now() + super::cluster::CACHE_STALENESS_BOUND;
    for n in &c.nodes {
        loop {
            let r = http()
                .get(n.v2(&format!("{repo}/manifests/one")))
                .header("accept", OCI_MANIFEST)
                .send()
                .unwrap();
            if r.status().as_u16() == 404 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {} still serves a deleted tag",
                n.addr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let after = aws(&["ecr", "describe-images", "--repository-name", &repo]);
    assert_eq!(
        after["imageDetails"].as_array().map(Vec::len),
        Some(1),
        "{after}"
    );

    // A login token got through the balancer opens every node; a forged one none.
    let token = run_ok(aws_cli(
        front,
        &c.credentials,
        &["ecr", "get-login-password"],
    ))
    .stdout_str()
    .trim()
    .to_string();
    push_small_image(front, &repo, "v1");
    let mut forged = token.clone();
    forged.push('x');
    for n in &c.nodes {
        assert_eq!(status_with_token(n, &repo, &token), 200, "{}", n.addr());
        assert_eq!(status_with_token(n, &repo, &forged), 401, "{}", n.addr());
    }

    // boto3: the ECR script of `ecr_api.rs`, every call to the next node.
    if let Some(out) = run_python_script(front, "ecr_boto3.py", &[]) {
        assert!(out.stdout_str().contains("\"ok\""), "{}", out.report());
    }
    assert_every_node_served(&c);
}

/// With `[storage] redirect = true` on every node, skopeo and podman pull through the
/// balancer: every blob GET, whichever node answers it, is a 307 to the object store (none
/// answered 200 with the bytes), the nodes send less than the layers' size, and the pulled
/// images are identical.
#[test]
fn cluster_redirected_pulls_get_their_bytes_from_the_object_store() {
    if !require_clients(&["skopeo", "podman", "umoci", "curl"]) {
        return;
    }
    let c = Cluster::start(true, &[]);
    let env = ContainersEnv::new(&c.front);
    let src = OciLayout::init(&env.scratch("src"));
    let desc = src.add_random_image("v1", "amd64", 2, 1024 * 1024);
    let repo = c.front.repo("cluster-redirect");
    run_ok(env.skopeo().args([
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src.oci_ref("v1"),
        &env.docker_ref(&repo, "v1"),
    ]));
    let all = c.all();
    let redirected = r#"berth_http_requests_total{edge="oci",operation="GetBlob",status="307"}"#;
    let served = r#"berth_http_requests_total{edge="oci",operation="GetBlob",status="200"}"#;
    let sent = "berth_http_response_body_bytes_total";
    let sent_before = c.metric_sum(&all, sent);

    skopeo_pull_identical(&env, &repo, &src, &desc);
    run_ok(
        env.podman()
            .args(["pull", "--tls-verify=false", &env.image_ref(&repo, "v1")]),
    );
    let inspect = run_ok(
        env.podman()
            .args(["image", "inspect", &env.image_ref(&repo, "v1")]),
    )
    .json();
    assert_eq!(inspect[0]["Digest"], desc.digest.as_str(), "{inspect}");

    // Config and two layers, by skopeo and by podman: six redirects, no blob served.
    let redirects = c.metric_sum(&all, redirected);
    assert!(redirects >= 6.0, "{redirects} redirects\n{}", c.logs());
    assert_eq!(c.metric_sum(&all, served), 0.0);
    let through_berth = c.metric_sum(&all, sent) - sent_before;
    assert!(
        through_berth < 1024.0 * 1024.0,
        "the nodes sent {through_berth} bytes while two clients pulled 2 MiB each"
    );
    let per_node: Vec<f64> = c.nodes.iter().map(|n| metric(n, redirected)).collect();
    assert!(
        per_node.iter().filter(|&&n| n > 0.0).count() >= 2,
        "{per_node:?}"
    );

    // What a client sees: the balancer answers a blob GET with a presigned URL of Garage.
    let layer = src.blob_json(&desc.digest)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let r = curl(&[&c.front.v2(&format!("{repo}/blobs/{layer}"))]);
    assert_eq!(r.status, 307, "{}", r.raw_headers);
    let location = r.header("location").expect("Location");
    assert!(location.starts_with(&c.garage.endpoint), "{location}");
    let followed = curl(&["-L", &c.front.v2(&format!("{repo}/blobs/{layer}"))]);
    assert_eq!(followed.status, 200);
    assert!(followed.body == src.blob(&layer));
}
