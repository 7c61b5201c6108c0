//! In-process HTTP tests: every `/v2` endpoint and error path, driven through the real
//! router with the embedded stores in a temporary directory.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest as _, Sha256, Sha512};
use tower::ServiceExt;

use berth_blobstore::DiskBlobStore;
use berth_meta::sqlite::SqliteMetaStore;
use berth_registry::{Registry, RegistryOptions};

struct TestApp {
    router: Router,
    _dir: tempfile::TempDir,
}

struct Resp {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("missing header {name}; have {:?}", self.headers))
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

impl TestApp {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let meta = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
        let blobs = DiskBlobStore::open(dir.path()).unwrap();
        let registry = Registry::new(Arc::new(meta), Arc::new(blobs), RegistryOptions::default());
        TestApp {
            router: berth_oci_api::router(registry, "000000000000".parse().unwrap()),
            _dir: dir,
        }
    }

    async fn req(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = self
            .router
            .clone()
            .oneshot(b.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        assert!(
            status != StatusCode::INTERNAL_SERVER_ERROR,
            "500 for {uri}: {}",
            String::from_utf8_lossy(&body)
        );
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, uri: &str) -> Resp {
        self.req(Method::GET, uri, &[], vec![]).await
    }

    async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let d = sha256(data);
        let r = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[],
                data.to_vec(),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        d
    }

    /// Pushes config + one layer + manifest; returns (manifest bytes, digest, layer digest).
    async fn push_image(&self, repo: &str, tag: &str, seed: &str) -> (Vec<u8>, String, String) {
        let cfg = self
            .push_blob(repo, format!("{{\"seed\":\"{seed}\"}}").as_bytes())
            .await;
        let cfg_len = format!("{{\"seed\":\"{seed}\"}}").len();
        let layer_data = format!("layer-{seed}").into_bytes();
        let layer = self.push_blob(repo, &layer_data).await;
        let m = image_manifest(&cfg, cfg_len, &layer, layer_data.len(), None);
        let r = self
            .req(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{tag}"),
                &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
                m.clone(),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let d = sha256(&m);
        assert_eq!(r.header("docker-content-digest"), d);
        assert_eq!(r.header("location"), format!("/v2/{repo}/manifests/{d}"));
        (m, d, layer)
    }
}

fn image_manifest(
    cfg: &str,
    cfg_len: usize,
    layer: &str,
    layer_len: usize,
    subject: Option<(&str, usize)>,
) -> Vec<u8> {
    let mut v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_len},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_len}],
    });
    if let Some((d, n)) = subject {
        v["subject"] = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": n});
        v["artifactType"] = serde_json::json!("application/vnd.example.sig");
        v["annotations"] = serde_json::json!({"org.example": "yes"});
    }
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn api_version_and_unknown_endpoints() {
    let app = TestApp::new();
    let r = app.get("/v2/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
    assert!(!r.header("x-request-id").is_empty());
    assert_eq!(
        app.get("/v2/a/unknown/x").await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .req(Method::POST, "/v2/a/manifests/x", &[], vec![])
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.error_code(), "UNSUPPORTED");
}

#[tokio::test]
async fn monolithic_and_blob_reads_with_ranges() {
    let app = TestApp::new();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 256) as u8).collect();
    let d = app.push_blob("a/b/c", &data).await;

    let r = app
        .req(Method::HEAD, &format!("/v2/a/b/c/blobs/{d}"), &[], vec![])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "10000");
    assert_eq!(r.header("docker-content-digest"), d);
    assert!(r.body.is_empty());

    let r = app.get(&format!("/v2/a/b/c/blobs/{d}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, data);
    let etag = r.header("etag").to_string();

    let r = app
        .req(
            Method::GET,
            &format!("/v2/a/b/c/blobs/{d}"),
            &[("range", "bytes=100-199")],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &data[100..200]);
    assert_eq!(r.header("content-range"), "bytes 100-199/10000");
    let r = app
        .req(
            Method::GET,
            &format!("/v2/a/b/c/blobs/{d}"),
            &[("range", "bytes=-10")],
            vec![],
        )
        .await;
    assert_eq!(r.body, &data[9990..]);
    let r = app
        .req(
            Method::GET,
            &format!("/v2/a/b/c/blobs/{d}"),
            &[("range", "bytes=20000-")],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), "bytes */10000");
    let r = app
        .req(
            Method::GET,
            &format!("/v2/a/b/c/blobs/{d}"),
            &[("if-none-match", &etag)],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    // Invisible in another repository; bad digests are 400, not 500.
    let r = app.get(&format!("/v2/other/blobs/{d}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "BLOB_UNKNOWN");
    let r = app.get("/v2/a/blobs/sha256:totallywrong").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let r = app
        .get("/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Wrong digest on a monolithic push.
    let r = app
        .req(
            Method::POST,
            &format!("/v2/a/blobs/uploads/?digest={}", sha256(b"x")),
            &[],
            b"y".to_vec(),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );

    // Delete.
    let r = app
        .req(Method::DELETE, &format!("/v2/a/b/c/blobs/{d}"), &[], vec![])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = app
        .req(Method::HEAD, &format!("/v2/a/b/c/blobs/{d}"), &[], vec![])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .req(Method::DELETE, &format!("/v2/a/b/c/blobs/{d}"), &[], vec![])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn chunked_upload_status_out_of_order_and_cancel() {
    let app = TestApp::new();
    let data = vec![7u8; 300_000];
    let d = sha256(&data);
    let r = app
        .req(Method::POST, "/v2/repo/blobs/uploads/", &[], vec![])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let loc = r.header("location").to_string();
    assert!(loc.starts_with("/v2/repo/blobs/uploads/"));
    assert_eq!(r.header("range"), "0-0");
    assert!(!r.header("docker-upload-uuid").is_empty());

    let r = app
        .req(
            Method::PATCH,
            &loc,
            &[("content-range", "0-99999"), ("content-length", "100000")],
            data[..100_000].to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-99999");

    // Out of order: 416 with the current range.
    let r = app
        .req(
            Method::PATCH,
            &loc,
            &[
                ("content-range", "200000-299999"),
                ("content-length", "100000"),
            ],
            data[..100_000].to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("range"), "0-99999");
    assert_eq!(r.error_code(), "BLOB_UPLOAD_INVALID");

    // A Content-Range spanning every u64 (its length overflows): 416, never a panic.
    let r = app
        .req(
            Method::PATCH,
            &loc,
            &[
                ("content-range", "0-18446744073709551615"),
                ("content-length", "0"),
            ],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.error_code(), "BLOB_UPLOAD_INVALID");

    let r = app.get(&loc).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("range"), "0-99999");

    // A streamed PATCH without Content-Range (podman style), then an empty PUT.
    let r = app
        .req(Method::PATCH, &loc, &[], data[100_000..].to_vec())
        .await;
    assert_eq!(r.header("range"), "0-299999");
    let r = app
        .req(Method::PUT, &format!("{loc}?digest={d}"), &[], vec![])
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), format!("/v2/repo/blobs/{d}"));
    assert_eq!(app.get(&format!("/v2/repo/blobs/{d}")).await.body, data);
    // The finished upload is gone.
    let r = app.get(&loc).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN")
    );

    // POST then a single PUT with the body, sha512.
    let small = b"sha512 content".to_vec();
    let d512 = format!("sha512:{}", hex::encode(Sha512::digest(&small)));
    let loc = app
        .req(Method::POST, "/v2/repo/blobs/uploads/", &[], vec![])
        .await
        .header("location")
        .to_string();
    let r = app
        .req(
            Method::PUT,
            &format!("{loc}?digest={d512}"),
            &[],
            small.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(app.get(&format!("/v2/repo/blobs/{d512}")).await.body, small);

    // PUT without digest; PUT with a wrong digest; cancel.
    let loc = app
        .req(Method::POST, "/v2/repo/blobs/uploads/", &[], vec![])
        .await
        .header("location")
        .to_string();
    let r = app.req(Method::PUT, &loc, &[], b"abc".to_vec()).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let r = app.req(Method::DELETE, &loc, &[], vec![]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.req(Method::DELETE, &loc, &[], vec![]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .req(
            Method::PATCH,
            "/v2/repo/blobs/uploads/not-an-upload",
            &[],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN")
    );
    // An upload id is bound to its repository.
    let loc = app
        .req(Method::POST, "/v2/repo/blobs/uploads/", &[], vec![])
        .await
        .header("location")
        .to_string();
    let other = loc.replace("/v2/repo/", "/v2/other/");
    assert_eq!(app.get(&other).await.status, StatusCode::NOT_FOUND);
    let r = app
        .req(
            Method::PUT,
            &format!("{loc}?digest={}", sha256(b"abc")),
            &[],
            b"abd".to_vec(),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
}

#[tokio::test]
async fn cross_repository_mount() {
    let app = TestApp::new();
    let d = app.push_blob("src", b"mount me").await;
    let r = app
        .req(
            Method::POST,
            &format!("/v2/dst/blobs/uploads/?mount={d}&from=src"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), format!("/v2/dst/blobs/{d}"));
    assert_eq!(
        app.get(&format!("/v2/dst/blobs/{d}")).await.body,
        b"mount me"
    );
    // Source lacking the blob: an ordinary upload session instead.
    let r = app
        .req(
            Method::POST,
            &format!("/v2/dst2/blobs/uploads/?mount={}&from=src", sha256(b"nope")),
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.header("location").starts_with("/v2/dst2/blobs/uploads/"));
}

#[tokio::test]
async fn manifests_by_tag_and_digest_and_validation() {
    let app = TestApp::new();
    let (m, d, _) = app.push_image("img", "v1", "a").await;
    for uri in [
        "/v2/img/manifests/v1".to_string(),
        format!("/v2/img/manifests/{d}"),
    ] {
        let r = app.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, m);
        assert_eq!(
            r.header("content-type"),
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(r.header("docker-content-digest"), d);
        let r = app.req(Method::HEAD, &uri, &[], vec![]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-length"), m.len().to_string());
        assert!(r.body.is_empty());
    }
    let r = app.get("/v2/img/manifests/nope").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let r = app.get("/v2/img/manifests/.INVALID_MANIFEST_NAME").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let r = app.get("/v2/img/manifests/sha256:totallywrong").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let r = app.get("/v2/Bad_Name/manifests/v1").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "NAME_INVALID")
    );

    let put = |uri: String, ct: &'static str, body: Vec<u8>| {
        let app = &app;
        async move {
            app.req(Method::PUT, &uri, &[("content-type", ct)], body)
                .await
        }
    };
    const OCI: &str = "application/vnd.oci.image.manifest.v1+json";
    // Missing blobs.
    let bad = image_manifest(&sha256(b"no"), 2, &sha256(b"no2"), 3, None);
    let r = put("/v2/img/manifests/x".into(), OCI, bad).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
    // Malformed JSON, wrong schema, media type mismatch.
    let r = put("/v2/img/manifests/x".into(), OCI, b"{not json".to_vec()).await;
    assert_eq!(r.error_code(), "MANIFEST_INVALID");
    let r = put(
        "/v2/img/manifests/x".into(),
        OCI,
        br#"{"schemaVersion":1}"#.to_vec(),
    )
    .await;
    assert_eq!(r.error_code(), "MANIFEST_INVALID");
    let r = put(
        "/v2/img/manifests/x".into(),
        "application/vnd.docker.distribution.manifest.v2+json",
        m.clone(),
    )
    .await;
    assert_eq!(r.error_code(), "MANIFEST_INVALID");
    // Digest reference that does not match the body.
    let r = put(
        format!("/v2/img/manifests/{}", sha256(b"other")),
        OCI,
        m.clone(),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    // Too large.
    let r = put(
        "/v2/img/manifests/x".into(),
        OCI,
        vec![b' '; 4 * 1024 * 1024 + 1],
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
    // Bad tag.
    let r = put("/v2/img/manifests/-bad".into(), OCI, m.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Push by digest works.
    let r = put(format!("/v2/img/manifests/{d}"), OCI, m.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED);

    // A manifest without mediaType takes the Content-Type (umoci).
    let mut v: serde_json::Value = serde_json::from_slice(&m).unwrap();
    v.as_object_mut().unwrap().remove("mediaType");
    let no_mt = serde_json::to_vec(&v).unwrap();
    let r = put(
        "/v2/img/manifests/nomt".into(),
        "application/vnd.docker.distribution.manifest.v2+json",
        no_mt,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .req(Method::HEAD, "/v2/img/manifests/nomt", &[], vec![])
        .await;
    assert_eq!(
        r.header("content-type"),
        "application/vnd.docker.distribution.manifest.v2+json"
    );
}

#[tokio::test]
async fn index_requires_children_and_protects_them() {
    let app = TestApp::new();
    let (m1, d1, _) = app.push_image("multi", "amd64", "1").await;
    let (_, d2, _) = app.push_image("multi", "arm64", "2").await;
    let index = |children: &[(&str, usize)]| {
        let manifests: Vec<_> = children
            .iter()
            .map(|(d, n)| serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": n, "platform": {"os": "linux", "architecture": "amd64"}}))
            .collect();
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests})).unwrap()
    };
    let missing = sha256(b"missing");
    let r = app
        .req(
            Method::PUT,
            "/v2/multi/manifests/all",
            &[("content-type", "application/vnd.oci.image.index.v1+json")],
            index(&[(&d1, m1.len()), (&missing, 5)]),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
    let idx = index(&[(&d1, m1.len()), (&d2, 10)]);
    let r = app
        .req(
            Method::PUT,
            "/v2/multi/manifests/all",
            &[("content-type", "application/vnd.oci.image.index.v1+json")],
            idx.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app.get("/v2/multi/manifests/all").await;
    assert_eq!(r.body, idx);
    assert_eq!(
        r.header("content-type"),
        "application/vnd.oci.image.index.v1+json"
    );
    // A child cannot be deleted while the index refers to it: a refused delete
    // (409 UNSUPPORTED, the index named), not an authorization failure.
    let r = app
        .req(
            Method::DELETE,
            &format!("/v2/multi/manifests/{d1}"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::CONFLICT, "UNSUPPORTED")
    );
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert!(body.contains(&sha256(&idx)), "{body}");
    let r = app
        .req(
            Method::DELETE,
            &format!("/v2/multi/manifests/{}", sha256(&idx)),
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = app
        .req(
            Method::DELETE,
            &format!("/v2/multi/manifests/{d1}"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        app.get("/v2/multi/manifests/amd64").await.status,
        StatusCode::NOT_FOUND
    );
    // Deleting a tag leaves the manifest.
    let r = app
        .req(Method::DELETE, "/v2/multi/manifests/arm64", &[], vec![])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        app.get("/v2/multi/manifests/arm64").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/v2/multi/manifests/{d2}")).await.status,
        StatusCode::OK
    );
    let r = app
        .req(Method::DELETE, "/v2/multi/manifests/arm64", &[], vec![])
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
}

#[tokio::test]
async fn tags_and_catalog_paginate() {
    let app = TestApp::new();
    for t in ["c", "a", "b", "d"] {
        app.push_image("one", t, "x").await;
    }
    app.push_image("two/x", "t", "y").await;
    let r = app.get("/v2/one/tags/list").await;
    assert_eq!(
        r.json(),
        serde_json::json!({"name": "one", "tags": ["a", "b", "c", "d"]})
    );
    assert!(r.headers.get("link").is_none());
    let r = app.get("/v2/one/tags/list?n=2").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        r.header("link"),
        "</v2/one/tags/list?n=2&last=b>; rel=\"next\""
    );
    let r = app.get("/v2/one/tags/list?n=2&last=b").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["c", "d"]));
    assert!(r.headers.get("link").is_none());
    let r = app.get("/v2/one/tags/list?n=0").await;
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    let r = app.get("/v2/one/tags/list?n=abc").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.get("/v2/nothere/tags/list").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN")
    );

    let r = app.get("/v2/_catalog").await;
    assert_eq!(
        r.json(),
        serde_json::json!({"repositories": ["one", "two/x"]})
    );
    let r = app.get("/v2/_catalog?n=1").await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["one"]));
    assert_eq!(
        r.header("link"),
        "</v2/_catalog?n=1&last=one>; rel=\"next\""
    );
    let r = app.get("/v2/_catalog?n=1&last=one").await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["two/x"]));
}

#[tokio::test]
async fn referrers_api() {
    let app = TestApp::new();
    let (m, d, layer) = app.push_image("art", "v1", "s").await;
    // Nothing refers yet: an empty index, not a 404.
    let r = app.get(&format!("/v2/art/referrers/{d}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(r.json()["manifests"], serde_json::json!([]));

    let empty = app.push_blob("art", b"{}").await;
    let sig = image_manifest(&empty, 2, &layer, 7, Some((&d, m.len())));
    let r = app
        .req(
            Method::PUT,
            "/v2/art/manifests/sig",
            &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
            sig.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("oci-subject"), d);

    // A referrer to a subject that was never pushed is accepted too.
    let ghost = sha256(b"ghost");
    let sig2 = image_manifest(&empty, 2, &layer, 7, Some((&ghost, 10)));
    let r = app
        .req(
            Method::PUT,
            &format!("/v2/art/manifests/{}", sha256(&sig2)),
            &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
            sig2.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        app.get(&format!("/v2/art/referrers/{ghost}")).await.json()["manifests"][0]["digest"],
        sha256(&sig2)
    );

    let r = app.get(&format!("/v2/art/referrers/{d}")).await;
    let manifests = r.json()["manifests"].clone();
    assert_eq!(manifests.as_array().unwrap().len(), 1);
    assert_eq!(manifests[0]["digest"], sha256(&sig));
    assert_eq!(manifests[0]["artifactType"], "application/vnd.example.sig");
    assert_eq!(manifests[0]["annotations"]["org.example"], "yes");
    assert_eq!(manifests[0]["size"], sig.len());
    assert!(r.headers.get("oci-filters-applied").is_none());

    let r = app
        .get(&format!(
            "/v2/art/referrers/{d}?artifactType=application/vnd.example.sig"
        ))
        .await;
    assert_eq!(r.header("oci-filters-applied"), "artifactType");
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
    let r = app
        .get(&format!(
            "/v2/art/referrers/{d}?artifactType=application/other"
        ))
        .await;
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    let r = app.get("/v2/art/referrers/sha256:bad").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A subject that is an index, and a referrer that is itself an index.
    let idx = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": m.len()}]
    }))
    .unwrap();
    let idx_d = sha256(&idx);
    let r = app
        .req(
            Method::PUT,
            "/v2/art/manifests/multi",
            &[("content-type", "application/vnd.oci.image.index.v1+json")],
            idx.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let sbom = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "artifactType": "application/vnd.example.sbom-set",
        "manifests": [],
        "subject": {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": idx_d, "size": idx.len()}
    }))
    .unwrap();
    let r = app
        .req(
            Method::PUT,
            &format!("/v2/art/manifests/{}", sha256(&sbom)),
            &[("content-type", "application/vnd.oci.image.index.v1+json")],
            sbom.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("oci-subject"), idx_d);
    let listed = app.get(&format!("/v2/art/referrers/{idx_d}")).await.json();
    assert_eq!(listed["manifests"][0]["digest"], sha256(&sbom));
    assert_eq!(
        listed["manifests"][0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        listed["manifests"][0]["artifactType"],
        "application/vnd.example.sbom-set"
    );
}
