//! Real clients (skopeo, podman, buildah, umoci) against the real `berth` binary, one fresh registry per test.
//!
//! Client quirks handled here (see shared design notes "real-clients"):
//! * skopeo 1.9 ignores `CONTAINERS_REGISTRIES_CONF`, so every skopeo call passes `--tls-verify=false`,
//!   `--src-tls-verify=false` or `--dest-tls-verify=false`; podman and buildah get `--tls-verify=false` too.
//! * containers/image tries TLS first on the plain-http port and falls back to http.
//! * umoci writes manifests without a `mediaType` field; the registry must take the type from `Content-Type`.
//! * podman/buildah upload a layer as one streamed `PATCH` and then an empty `PUT ?digest=`.
//!
//! Set `BERTH_E2E_REGISTRY=127.0.0.1:PORT` to run against an already-running registry instead.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use common::*;
use serde_json::Value;

/// `skopeo inspect --raw` prints the manifest as stored; tolerate one added trailing newline.
fn strip_one_newline<'a>(printed: &'a [u8], expected: &[u8]) -> &'a [u8] {
    if printed != expected && printed.ends_with(b"\n") {
        &printed[..printed.len() - 1]
    } else {
        printed
    }
}

/// Every digest reachable from `root` in `src` is served by the registry with the same bytes.
fn assert_registry_has_all(reg: &TestRegistry, repo: &str, src: &OciLayout, root: &str) {
    let client = http();
    for d in src.reachable(root) {
        let blob = src.blob(&d);
        let is_manifest = serde_json::from_slice::<Value>(&blob)
            .map(|v| v.get("schemaVersion").is_some())
            .unwrap_or(false);
        let url = if is_manifest {
            reg.v2(&format!("{repo}/manifests/{d}"))
        } else {
            reg.v2(&format!("{repo}/blobs/{d}"))
        };
        let resp = client
            .get(&url)
            .header("accept", OCI_MANIFEST)
            .header("accept", OCI_INDEX)
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(resp.status().as_u16(), 200, "GET {url}");
        let body = resp.bytes().expect("body");
        assert_eq!(sha256_digest(&body), d, "GET {url} returned other bytes");
    }
}

/// Both layouts hold the same graph under `root`, byte for byte.
fn assert_same_graph(src: &OciLayout, dst: &OciLayout, root: &str) {
    let a = src.reachable(root);
    let b = dst.reachable(root);
    assert_eq!(a, b, "the copied image references other blobs");
    for d in &a {
        assert_eq!(
            src.blob(d),
            dst.blob(d),
            "blob {d} differs after the round trip"
        );
    }
}

#[test]
fn skopeo_copy_single_image_roundtrip() {
    if !require_clients(&["skopeo", "umoci"]) {
        return;
    }
    let reg = TestRegistry::start();
    let env = ContainersEnv::new(&reg);
    let src = OciLayout::init(&env.scratch("src"));
    let desc = src.add_random_image("v1", "amd64", 2, 300_000);
    let repo = reg.repo("skopeo-single");

    run_ok(env.skopeo().args([
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src.oci_ref("v1"),
        &env.docker_ref(&repo, "v1"),
    ]));

    // The registry serves the manifest by tag with the same bytes, digest and type.
    let resp = http()
        .get(reg.v2(&format!("{repo}/manifests/v1")))
        .header("accept", OCI_MANIFEST)
        .send()
        .expect("GET manifest");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), desc.digest);
    assert_eq!(header(&resp, "content-type"), OCI_MANIFEST);
    assert_eq!(resp.bytes().expect("body").to_vec(), src.blob(&desc.digest));
    assert_registry_has_all(&reg, &repo, &src, &desc.digest);

    let dst_dir = env.scratch("dst");
    let dst_ref = format!("oci:{}:v1", dst_dir.display());
    run_ok(env.skopeo().args([
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &env.docker_ref(&repo, "v1"),
        &dst_ref,
    ]));
    let dst = OciLayout::open(&dst_dir);
    assert_eq!(dst.descriptor("v1").digest, desc.digest);
    assert_same_graph(&src, &dst, &desc.digest);

    // And by digest.
    let dst2_dir = env.scratch("dst2");
    run_ok(env.skopeo().args([
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &env.docker_ref(&repo, &desc.digest),
        &format!("oci:{}:bydigest", dst2_dir.display()),
    ]));
    assert_eq!(
        OciLayout::open(&dst2_dir).descriptor("bydigest").digest,
        desc.digest
    );
}

#[test]
fn skopeo_copy_all_multiarch_index_roundtrip() {
    if !require_clients(&["skopeo", "umoci"]) {
        return;
    }
    let reg = TestRegistry::start();
    let env = ContainersEnv::new(&reg);
    let src = OciLayout::init(&env.scratch("src"));
    let index = src.add_multiarch_index("multi");
    let repo = reg.repo("skopeo-multi");

    run_ok(env.skopeo().args([
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src.oci_ref("multi"),
        &env.docker_ref(&repo, "v1"),
    ]));

    let resp = http()
        .get(reg.v2(&format!("{repo}/manifests/v1")))
        .header("accept", OCI_INDEX)
        .send()
        .expect("GET index");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), index.digest);
    assert_eq!(header(&resp, "content-type"), OCI_INDEX);
    assert_eq!(
        resp.bytes().expect("body").to_vec(),
        src.blob(&index.digest)
    );
    assert_registry_has_all(&reg, &repo, &src, &index.digest);

    let dst_dir = env.scratch("dst");
    run_ok(env.skopeo().args([
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &env.docker_ref(&repo, "v1"),
        &format!("oci:{}:v1", dst_dir.display()),
    ]));
    let dst = OciLayout::open(&dst_dir);
    let got = dst.descriptor("v1");
    assert_eq!(got.digest, index.digest);
    assert_eq!(got.media_type, OCI_INDEX);
    assert_same_graph(&src, &dst, &index.digest);

    // Without --all, skopeo picks one platform from the index; ask for arm64 explicitly.
    let arm_dir = env.scratch("arm");
    run_ok(env.skopeo().args([
        "--override-arch",
        "arm64",
        "--override-os",
        "linux",
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &env.docker_ref(&repo, "v1"),
        &format!("oci:{}:arm", arm_dir.display()),
    ]));
    assert_eq!(
        OciLayout::open(&arm_dir).descriptor("arm").digest,
        src.descriptor("multi-arm64").digest
    );
}

#[test]
fn skopeo_inspect_list_tags_delete() {
    if !require_clients(&["skopeo", "umoci"]) {
        return;
    }
    let reg = TestRegistry::start();
    let env = ContainersEnv::new(&reg);
    let src = OciLayout::init(&env.scratch("src"));
    let desc = src.add_random_image("v1", "arm64", 2, 50_000);
    let repo = reg.repo("skopeo-inspect");

    for tag in ["v1", "v2"] {
        run_ok(env.skopeo().args([
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &src.oci_ref("v1"),
            &env.docker_ref(&repo, tag),
        ]));
    }

    let manifest = src.blob(&desc.digest);
    let raw = run_ok(env.skopeo().args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &env.docker_ref(&repo, "v1"),
    ]));
    assert_eq!(
        strip_one_newline(&raw.stdout, &manifest),
        manifest.as_slice()
    );

    let manifest_json: Value = serde_json::from_slice(&manifest).expect("manifest json");
    let config_digest = manifest_json["config"]["digest"]
        .as_str()
        .expect("config digest");
    let raw_config = run_ok(env.skopeo().args([
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &env.docker_ref(&repo, "v2"),
    ]));
    let config = src.blob(config_digest);
    assert_eq!(
        strip_one_newline(&raw_config.stdout, &config),
        config.as_slice()
    );

    let info = run_ok(env.skopeo().args([
        "inspect",
        "--tls-verify=false",
        &env.docker_ref(&repo, "v1"),
    ]))
    .json();
    assert_eq!(info["Digest"], desc.digest.as_str(), "{info}");
    assert_eq!(info["Architecture"], "arm64", "{info}");
    assert_eq!(info["Os"], "linux", "{info}");
    let layers: Vec<&str> = manifest_json["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("layer digest"))
        .collect();
    let info_layers: Vec<&str> = info["Layers"]
        .as_array()
        .expect("Layers")
        .iter()
        .map(|l| l.as_str().expect("layer"))
        .collect();
    assert_eq!(info_layers, layers);
    let mut repo_tags: Vec<&str> = info["RepoTags"]
        .as_array()
        .expect("RepoTags")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    repo_tags.sort_unstable();
    assert_eq!(repo_tags, ["v1", "v2"]);

    let tags = run_ok(env.skopeo().args([
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/{}", reg.addr(), repo),
    ]))
    .json();
    let mut listed: Vec<&str> = tags["Tags"]
        .as_array()
        .expect("Tags")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, ["v1", "v2"], "{tags}");

    // skopeo delete resolves the tag and deletes the manifest by digest.
    run_ok(
        env.skopeo()
            .args(["delete", "--tls-verify=false", &env.docker_ref(&repo, "v1")]),
    );
    let client = http();
    for reference in [desc.digest.as_str(), "v1", "v2"] {
        let resp = client
            .get(reg.v2(&format!("{repo}/manifests/{reference}")))
            .header("accept", OCI_MANIFEST)
            .send()
            .expect("GET manifest");
        assert_eq!(
            resp.status().as_u16(),
            404,
            "manifest {reference} still served after delete"
        );
    }
    let after = run(
        env.skopeo().args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &env.docker_ref(&repo, "v2"),
        ]),
        CMD_TIMEOUT,
    );
    assert!(
        !after.success(),
        "inspect after delete succeeded\n{}",
        after.report()
    );
    let list_after = run(
        env.skopeo().args([
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/{}", reg.addr(), repo),
        ]),
        CMD_TIMEOUT,
    );
    if list_after.success() {
        let v = list_after.json();
        let still: Vec<&Value> = v["Tags"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        assert!(
            still.is_empty(),
            "tags still listed after their manifest was deleted: {v}"
        );
    }
}

#[test]
fn podman_push_pull_roundtrip() {
    if !require_clients(&["podman", "umoci"]) {
        return;
    }
    let reg = TestRegistry::start();
    let env = ContainersEnv::new(&reg);
    let src = OciLayout::init(&env.scratch("src"));
    let desc = src.add_random_image("v1", "amd64", 2, 200_000);
    let manifest: Value = src.blob_json(&desc.digest);
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config")
        .to_string();
    let config_hex = config_digest.trim_start_matches("sha256:").to_string();

    let pulled = run_ok(env.podman().args(["pull", "-q", &src.oci_ref("v1")]));
    assert_eq!(
        pulled.stdout_str().trim(),
        config_hex,
        "podman image id is the config digest"
    );

    let repo = reg.repo("podman");
    let image = env.image_ref(&repo, "v1");
    run_ok(env.podman().args(["tag", &config_hex, &image]));
    let digest_file = env.scratch("push.digest");
    run_ok(
        env.podman()
            .args(["push", "--tls-verify=false", "--digestfile"])
            .arg(&digest_file)
            .arg(&image),
    );
    let pushed = std::fs::read_to_string(&digest_file)
        .expect("digest file")
        .trim()
        .to_string();
    assert!(pushed.starts_with("sha256:"), "digest file: {pushed:?}");

    let resp = http()
        .get(reg.v2(&format!("{repo}/manifests/v1")))
        .header("accept", OCI_MANIFEST)
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .expect("GET manifest");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), pushed);
    let body = resp.bytes().expect("body").to_vec();
    assert_eq!(sha256_digest(&body), pushed);
    let served: Value = serde_json::from_slice(&body).expect("manifest json");
    assert_eq!(served["config"]["digest"], config_digest.as_str());

    // Forget everything locally, pull from the registry.
    run_ok(env.podman().args(["rmi", "-a", "-f"]));
    run_ok(env.podman().args(["pull", "--tls-verify=false", &image]));
    let inspect = run_ok(env.podman().args(["image", "inspect", &image])).json();
    let img = &inspect[0];
    assert_eq!(img["Id"], config_hex.as_str(), "{img}");
    assert_eq!(img["Digest"], pushed.as_str(), "{img}");
    let repo_digest = format!("{}/{}@{}", reg.addr(), repo, pushed);
    assert!(
        img["RepoDigests"]
            .as_array()
            .expect("RepoDigests")
            .iter()
            .any(|d| d.as_str() == Some(repo_digest.as_str())),
        "{repo_digest} not in {img}"
    );

    // podman save writes what it pulled: same manifest, and every blob equals the registry's.
    let saved_dir = env.scratch("saved");
    run_ok(
        env.podman()
            .args(["save", "--format", "oci-dir", "-o"])
            .arg(&saved_dir)
            .arg(&image),
    );
    let saved = OciLayout::open(&saved_dir);
    let saved_root = saved.index_json()["manifests"][0]["digest"]
        .as_str()
        .expect("saved digest")
        .to_string();
    assert_eq!(saved_root, pushed);
    assert_registry_has_all(&reg, &repo, &saved, &saved_root);

    // A second pull by digest resolves to the same image.
    let by_digest = format!("{}/{}@{}", reg.addr(), repo, pushed);
    run_ok(
        env.podman()
            .args(["pull", "--tls-verify=false", &by_digest]),
    );
    let inspect2 = run_ok(env.podman().args(["image", "inspect", &by_digest])).json();
    assert_eq!(inspect2[0]["Id"], config_hex.as_str());
}

#[test]
fn podman_manifest_push_all() {
    if !require_clients(&["podman", "umoci", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start();
    let env = ContainersEnv::new(&reg);
    let src = OciLayout::init(&env.scratch("src"));
    src.add_multiarch_index("multi");
    let amd = src.descriptor("multi-amd64");
    let arm = src.descriptor("multi-arm64");

    let list = format!("localhost/berth-e2e-list-{}:v1", unique_suffix());
    run_ok(env.podman().args(["manifest", "create", &list]));
    run_ok(
        env.podman()
            .args(["manifest", "add", &list, &src.oci_ref("multi-amd64")]),
    );
    run_ok(
        env.podman()
            .args(["manifest", "add", &list, &src.oci_ref("multi-arm64")]),
    );

    let repo = reg.repo("podman-manifest");
    let digest_file = env.scratch("list.digest");
    run_ok(
        env.podman()
            .args([
                "manifest",
                "push",
                "--all",
                "--tls-verify=false",
                "--digestfile",
            ])
            .arg(&digest_file)
            .arg(&list)
            .arg(env.docker_ref(&repo, "v1")),
    );
    let pushed = std::fs::read_to_string(&digest_file)
        .expect("digest file")
        .trim()
        .to_string();

    let resp = http()
        .get(reg.v2(&format!("{repo}/manifests/v1")))
        .header("accept", OCI_INDEX)
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        )
        .send()
        .expect("GET index");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), pushed);
    let ct = header(&resp, "content-type");
    let body = resp.bytes().expect("body").to_vec();
    assert_eq!(sha256_digest(&body), pushed);
    let index: Value = serde_json::from_slice(&body).expect("index json");
    assert_eq!(
        index["mediaType"].as_str(),
        Some(ct.as_str()),
        "Content-Type matches the list's mediaType"
    );
    let mut children: Vec<(String, String)> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                m["digest"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    children.sort();
    assert_eq!(
        children,
        vec![
            ("amd64".to_string(), amd.digest.clone()),
            ("arm64".to_string(), arm.digest.clone())
        ]
    );
    assert_registry_has_all(&reg, &repo, &src, &amd.digest);
    assert_registry_has_all(&reg, &repo, &src, &arm.digest);

    let raw = run_ok(env.skopeo().args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &env.docker_ref(&repo, "v1"),
    ]));
    assert_eq!(strip_one_newline(&raw.stdout, &body), body.as_slice());

    // podman picks the right instance for a requested platform.
    for (arch, want) in [("arm64", &arm), ("amd64", &amd)] {
        let image = env.image_ref(&repo, "v1");
        run_ok(
            env.podman()
                .args(["pull", "--tls-verify=false", "--arch", arch, &image]),
        );
        let inspect = run_ok(env.podman().args(["image", "inspect", &image])).json();
        assert_eq!(inspect[0]["Architecture"], arch, "{}", inspect[0]);
        // podman reports the list's digest as `Digest`; the instance digest is among `RepoDigests`.
        let instance = format!("{}/{}@{}", reg.addr(), repo, want.digest);
        assert!(
            inspect[0]["RepoDigests"]
                .as_array()
                .expect("RepoDigests")
                .iter()
                .any(|d| d.as_str() == Some(instance.as_str())),
            "{instance} not in {}",
            inspect[0]
        );
    }
}

#[test]
fn buildah_scratch_image_push_pull() {
    if !require_clients(&["buildah", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start();
    let env = ContainersEnv::new(&reg);
    let payload = random_bytes(150_000);
    let file = env.scratch("payload.bin");
    std::fs::write(&file, &payload).expect("write payload");

    let ctr = run_ok(env.buildah().args(["from", "scratch"]))
        .stdout_str()
        .trim()
        .to_string();
    run_ok(
        env.buildah()
            .args(["copy", &ctr])
            .arg(&file)
            .arg("/payload.bin"),
    );
    run_ok(
        env.buildah()
            .args(["config", "--cmd", "/payload.bin", &ctr]),
    );
    let image_name = format!("localhost/berth-e2e-buildah-{}:v1", unique_suffix());
    run_ok(
        env.buildah()
            .args(["commit", "--format", "oci", &ctr, &image_name]),
    );

    let repo = reg.repo("buildah");
    let digest_file = env.scratch("push.digest");
    run_ok(
        env.buildah()
            .args(["push", "--tls-verify=false", "--digestfile"])
            .arg(&digest_file)
            .arg(&image_name)
            .arg(env.docker_ref(&repo, "v1")),
    );
    let pushed = std::fs::read_to_string(&digest_file)
        .expect("digest file")
        .trim()
        .to_string();

    let info = run_ok(env.skopeo().args([
        "inspect",
        "--tls-verify=false",
        &env.docker_ref(&repo, "v1"),
    ]))
    .json();
    assert_eq!(info["Digest"], pushed.as_str(), "{info}");

    // Pull back into an OCI layout and find the payload in the single layer.
    let dst_dir = env.scratch("dst");
    run_ok(env.skopeo().args([
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &env.docker_ref(&repo, "v1"),
        &format!("oci:{}:v1", dst_dir.display()),
    ]));
    let dst = OciLayout::open(&dst_dir);
    assert_eq!(dst.descriptor("v1").digest, pushed);
    if require_clients(&["umoci"]) {
        let bundle = env.scratch("bundle");
        let mut c = command("umoci", ["unpack"]);
        if !is_root() {
            c.arg("--rootless");
        }
        run_ok(c.args(["--image", &dst.image_arg("v1")]).arg(&bundle));
        assert_eq!(
            std::fs::read(bundle.join("rootfs/payload.bin")).expect("payload"),
            payload
        );
    }
}

#[test]
fn umoci_layout_roundtrip_manifest_without_media_type() {
    if !require_clients(&["umoci", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start();
    let env = ContainersEnv::new(&reg);
    let src = OciLayout::init(&env.scratch("src"));
    let hello = b"hello from berth e2e\n".to_vec();
    let big = random_bytes(400_000);
    let desc = src.add_image(
        "v1",
        "amd64",
        &[
            ("/hello.txt", hello.clone()),
            ("/data/big.bin", big.clone()),
        ],
    );
    let manifest_bytes = src.blob(&desc.digest);
    let manifest: Value = serde_json::from_slice(&manifest_bytes).expect("manifest json");
    assert!(
        manifest.get("mediaType").is_none(),
        "umoci is expected to write manifests without mediaType: {manifest}"
    );

    let repo = reg.repo("umoci");
    run_ok(env.skopeo().args([
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src.oci_ref("v1"),
        &env.docker_ref(&repo, "v1"),
    ]));

    // The registry takes the type from the upload's Content-Type and returns it on GET and HEAD.
    let client = http();
    for by in ["v1", desc.digest.as_str()] {
        let url = reg.v2(&format!("{repo}/manifests/{by}"));
        let resp = client
            .get(&url)
            .header("accept", OCI_MANIFEST)
            .send()
            .expect("GET");
        assert_eq!(resp.status().as_u16(), 200, "GET {url}");
        assert_eq!(header(&resp, "content-type"), OCI_MANIFEST, "GET {url}");
        assert_eq!(header(&resp, "docker-content-digest"), desc.digest);
        assert_eq!(resp.bytes().expect("body").to_vec(), manifest_bytes);
        let head = client
            .head(&url)
            .header("accept", OCI_MANIFEST)
            .send()
            .expect("HEAD");
        assert_eq!(head.status().as_u16(), 200, "HEAD {url}");
        assert_eq!(header(&head, "content-type"), OCI_MANIFEST, "HEAD {url}");
        assert_eq!(header(&head, "docker-content-digest"), desc.digest);
        assert_eq!(
            header(&head, "content-length"),
            manifest_bytes.len().to_string()
        );
    }

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
    assert_same_graph(&src, &dst, &desc.digest);

    let bundle = env.scratch("bundle");
    let mut c = command("umoci", ["unpack"]);
    if !is_root() {
        c.arg("--rootless");
    }
    run_ok(c.args(["--image", &dst.image_arg("v1")]).arg(&bundle));
    assert_eq!(
        std::fs::read(bundle.join("rootfs/hello.txt")).expect("hello.txt"),
        hello
    );
    assert_eq!(
        std::fs::read(bundle.join("rootfs/data/big.bin")).expect("big.bin"),
        big
    );
    let cfg: Value = serde_json::from_slice(
        &std::fs::read(bundle.join("config.json")).expect("bundle config.json"),
    )
    .expect("runtime config json");
    assert_eq!(cfg["process"]["args"][0], "/bin/true", "{cfg}");
}

#[test]
fn skopeo_second_push_to_another_repository_reuses_blobs() {
    // skopeo remembers where it saw each blob (blob-info cache) and mounts it from there on the next push.
    if !require_clients(&["skopeo", "umoci"]) {
        return;
    }
    let reg = TestRegistry::start();
    let env = ContainersEnv::new(&reg);
    let src = OciLayout::init(&env.scratch("src"));
    let desc = src.add_random_image("v1", "amd64", 2, 100_000);
    let first = reg.repo("skopeo-first");
    let second = reg.repo("skopeo-second");
    for repo in [&first, &second] {
        run_ok(env.skopeo().args([
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &src.oci_ref("v1"),
            &env.docker_ref(repo, "v1"),
        ]));
    }
    for repo in [&first, &second] {
        assert_registry_has_all(&reg, repo, &src, &desc.digest);
    }
    // Deleting the first repository's manifest leaves the second one whole.
    run_ok(env.skopeo().args([
        "delete",
        "--tls-verify=false",
        &env.docker_ref(&first, "v1"),
    ]));
    assert_registry_has_all(&reg, &second, &src, &desc.digest);
}

#[test]
fn images_survive_a_restart() {
    if !require_clients(&["skopeo", "umoci"]) {
        return;
    }
    let mut reg = TestRegistry::start();
    if reg.is_external() {
        eprintln!("SKIPPED: cannot restart an external registry");
        return;
    }
    let repo = reg.repo("restart");
    let src_dir;
    let index;
    {
        let env = ContainersEnv::new(&reg);
        let src = OciLayout::init(&env.scratch("src"));
        index = src.add_multiarch_index("multi");
        run_ok(env.skopeo().args([
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &src.oci_ref("multi"),
            &env.docker_ref(&repo, "v1"),
        ]));
        // Keep the source layout past the env's lifetime.
        let keep = tempfile::tempdir().expect("temp dir");
        run_ok(
            command("cp", ["-a"])
                .arg(&src.dir)
                .arg(keep.path().join("src")),
        );
        src_dir = keep;
    }

    reg.restart();

    let env = ContainersEnv::new(&reg);
    let src = OciLayout::open(&src_dir.path().join("src"));
    assert_registry_has_all(&reg, &repo, &src, &index.digest);
    let dst_dir = env.scratch("dst");
    run_ok(env.skopeo().args([
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &env.docker_ref(&repo, "v1"),
        &format!("oci:{}:v1", dst_dir.display()),
    ]));
    let dst = OciLayout::open(&dst_dir);
    assert_eq!(dst.descriptor("v1").digest, index.digest);
    assert_same_graph(&src, &dst, &index.digest);
    let tags = run_ok(env.skopeo().args([
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/{}", reg.addr(), repo),
    ]))
    .json();
    assert_eq!(tags["Tags"], serde_json::json!(["v1"]));
}
