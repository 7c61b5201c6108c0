//! The `oci-client` crate (the Rust OCI distribution client used by wasm/krustlet tooling) against the real
//! `berth` binary over plain http (`ClientProtocol::Http`): push, pull, chunked stream push, mount, tags.
//!
//! Set `BERTH_E2E_REGISTRY=127.0.0.1:PORT` to run against an already-running registry instead.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use common::*;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciImageManifest, IMAGE_LAYER_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::{json, Value};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn client() -> Client {
    install_crypto_provider();
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    })
}

fn reference(reg: &TestRegistry, repo: &str, tag: &str) -> Reference {
    format!("{}/{}:{}", reg.addr(), repo, tag)
        .parse()
        .expect("parse reference")
}

#[test]
fn oci_client_push_pull_roundtrip() {
    let reg = TestRegistry::start();
    let repo = reg.repo("oci-client");
    let image = reference(&reg, &repo, "v1");
    let auth = RegistryAuth::Basic(ADMIN_KEY_ID.to_string(), ADMIN_SECRET.to_string());
    let c = client();

    let layers = vec![
        ImageLayer::oci_v1(random_bytes(200_000), None),
        ImageLayer::oci_v1(random_bytes(3_000), None),
    ];
    let config_bytes = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.sha256_digest()).collect::<Vec<_>>()},
    }))
    .expect("config json");
    let config = Config::oci_v1(config_bytes.clone(), None);
    let manifest = OciImageManifest::build(&layers, &config, None);

    runtime().block_on(async {
        let pushed = c
            .push(
                &image,
                &layers,
                config.clone(),
                &auth,
                Some(manifest.clone()),
            )
            .await
            .expect("oci-client push");
        assert!(
            pushed.manifest_url.contains(&repo),
            "{}",
            pushed.manifest_url
        );

        let digest = c
            .fetch_manifest_digest(&image, &auth)
            .await
            .expect("fetch manifest digest");
        let (raw, raw_digest) = c
            .pull_manifest_raw(&image, &auth, &[OCI_MANIFEST])
            .await
            .expect("pull raw manifest");
        assert_eq!(raw_digest, digest);
        assert_eq!(sha256_digest(&raw), digest);
        let served: Value = serde_json::from_slice(&raw).expect("manifest json");
        assert_eq!(served["config"]["digest"], sha256_digest(&config_bytes));

        let (pulled_manifest, pulled_digest) = c
            .pull_image_manifest(&image, &auth)
            .await
            .expect("pull manifest");
        assert_eq!(pulled_digest, digest);
        assert_eq!(pulled_manifest.layers.len(), 2);

        let data = c
            .pull(&image, &auth, vec![IMAGE_LAYER_MEDIA_TYPE])
            .await
            .expect("oci-client pull");
        assert_eq!(data.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(data.config.data.to_vec(), config_bytes);
        // oci-client downloads layers concurrently and returns them in completion order.
        let mut got: Vec<(String, &[u8])> = data
            .layers
            .iter()
            .map(|l| (l.sha256_digest(), l.data.as_ref()))
            .collect();
        let mut want: Vec<(String, &[u8])> = layers
            .iter()
            .map(|l| (l.sha256_digest(), l.data.as_ref()))
            .collect();
        got.sort();
        want.sort();
        assert!(got == want, "pulled layers differ from the pushed ones");

        // Pull by digest as well.
        let by_digest: Reference = format!("{}/{}@{}", reg.addr(), repo, digest)
            .parse()
            .expect("parse digest reference");
        let data2 = c
            .pull(&by_digest, &auth, vec![IMAGE_LAYER_MEDIA_TYPE])
            .await
            .expect("pull by digest");
        assert_eq!(data2.layers.len(), 2);

        let tags = c
            .list_tags(&image, &auth, None, None)
            .await
            .expect("list tags");
        assert_eq!(tags.tags, ["v1"]);
    });
}

#[test]
fn oci_client_chunked_stream_push_and_mount() {
    let reg = TestRegistry::start();
    let repo = reg.repo("oci-client-chunked");
    let image = reference(&reg, &repo, "v1");
    let auth = RegistryAuth::Basic(ADMIN_KEY_ID.to_string(), ADMIN_SECRET.to_string());
    let c = client();
    let data = random_bytes(700_000);
    let want = sha256_digest(&data);

    runtime().block_on(async {
        c.auth(&image, &auth, oci_client::RegistryOperation::Push)
            .await
            .expect("anonymous auth");
        // Several stream items, so the client sends several PATCHes with Content-Range.
        let chunks: Vec<oci_client::errors::Result<bytes::Bytes>> = data
            .chunks(100_000)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let resp = c
            .push_blob_stream_chunked(&image, futures::stream::iter(chunks))
            .await
            .expect("chunked stream push");
        assert_eq!(resp.blob_digest, want);
        assert_eq!(resp.size, data.len() as u64);
        assert!(c.blob_exists(&image, &want).await.expect("HEAD blob"));

        let mut out = Vec::new();
        let layer = oci_client::manifest::OciDescriptor {
            media_type: IMAGE_LAYER_MEDIA_TYPE.to_string(),
            digest: want.clone(),
            size: data.len() as i64,
            ..Default::default()
        };
        c.pull_blob(&image, &layer, &mut out)
            .await
            .expect("pull blob");
        assert!(out == data, "pulled blob differs");

        let other_repo = reg.repo("oci-client-mount");
        let other = reference(&reg, &other_repo, "v1");
        assert!(!c.blob_exists(&other, &want).await.expect("HEAD blob"));
        c.mount_blob(&other, &image, &want).await.expect("mount");
        assert!(c
            .blob_exists(&other, &want)
            .await
            .expect("HEAD blob after mount"));
    });
}
