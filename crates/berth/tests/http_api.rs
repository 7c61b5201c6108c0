//! The OCI Distribution API over real HTTP against the real `berth` binary: uploads in chunks with `curl` (including
//! a resumed upload and a podman-style streamed PATCH), out-of-order chunks, cross-repository mounts, the referrers
//! API, tag list pagination, content negotiation with several `Accept:` lines, a TLS ClientHello on the plain port,
//! error codes, and a graceful stop on SIGTERM. One fresh registry per test. `operations`: `/metrics` and
//! `X-Request-Id`. `s3`: blobs on a real S3 server (Garage) with presigned redirects. `postgres`: two nodes
//! sharing one PostgreSQL metadata database and one bucket. `cluster*`: three such nodes
//! behind HAProxy (real clients through the balancer, state across nodes, singleton passes,
//! a node killed mid-push). `start_checks`: bad configuration (S3 credentials, bucket,
//! endpoint; database; newer schemas) refused at start, never listening. `migrate`:
//! `berth migrate` from a single node into PostgreSQL + S3 and back.
//!
//! Set `BERTH_E2E_REGISTRY=127.0.0.1:PORT` to run against an already-running registry instead.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

#[path = "http_api/cluster.rs"]
mod cluster;
#[path = "http_api/cluster_clients.rs"]
mod cluster_clients;
#[path = "http_api/cluster_failover.rs"]
mod cluster_failover;
mod common;
#[path = "http_api/migrate.rs"]
mod migrate;
#[path = "http_api/operations.rs"]
mod operations;
#[path = "http_api/postgres.rs"]
mod postgres;
#[path = "http_api/s3.rs"]
mod s3;
#[path = "http_api/start_checks.rs"]
mod start_checks;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const CHUNK: usize = 64 * 1024;

/// Parses a `Range: 0-<end>` upload status header into the number of bytes received.
fn received(range: &str) -> usize {
    let (start, end) = range
        .split_once('-')
        .unwrap_or_else(|| panic!("bad Range header {range:?}"));
    assert_eq!(start.trim(), "0", "upload Range must start at 0: {range:?}");
    end.trim().parse::<usize>().expect("Range end") + 1
}

/// `POST /v2/<repo>/blobs/uploads/` with curl; returns the absolute upload URL.
fn start_upload(reg: &TestRegistry, repo: &str) -> String {
    let r = curl(&["-X", "POST", &reg.v2(&format!("{repo}/blobs/uploads/"))]);
    assert_eq!(
        r.status,
        202,
        "POST upload: {}\n{}",
        r.body_str(),
        r.raw_headers
    );
    reg.resolve(
        r.header("location")
            .expect("POST upload answers with Location"),
    )
}

/// One `PATCH` with `Content-Range: <start>-<end>`; asserts 202 and the new Range; returns the new upload URL.
fn patch_chunk(reg: &TestRegistry, url: &str, data: &[u8], start: usize) -> String {
    let f = temp_file_with(data);
    let range = format!("Content-Range: {}-{}", start, start + data.len() - 1);
    let r = curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        &range,
        "--data-binary",
        &format!("@{}", f.path().display()),
        url,
    ]);
    assert_eq!(
        r.status,
        202,
        "PATCH {range}: {}\n{}",
        r.body_str(),
        r.raw_headers
    );
    let got = received(r.header("range").expect("PATCH answers with Range"));
    assert_eq!(got, start + data.len(), "Range after PATCH {range}");
    reg.resolve(r.header("location").expect("PATCH answers with Location"))
}

/// `PUT <upload>?digest=` with an optional last chunk; asserts 201 and the digest header.
fn finish_upload(reg: &TestRegistry, url: &str, digest: &str, last: &[u8]) {
    let f = temp_file_with(last);
    let r = curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", f.path().display()),
        &with_query(url, "digest", digest),
    ]);
    assert_eq!(
        r.status,
        201,
        "PUT ?digest=: {}\n{}",
        r.body_str(),
        r.raw_headers
    );
    assert!(
        r.header("location").is_some(),
        "PUT answers with the blob's Location"
    );
    if let Some(d) = r.header("docker-content-digest") {
        assert_eq!(d, digest);
    }
    let _ = reg;
}

/// GET the blob back and compare bytes; HEAD gives its size.
fn assert_blob(reg: &TestRegistry, repo: &str, digest: &str, data: &[u8]) {
    let url = reg.v2(&format!("{repo}/blobs/{digest}"));
    let r = curl(&["-L", &url]);
    assert_eq!(r.status, 200, "GET {url}");
    assert!(
        r.body == data,
        "GET {url} returned {} other bytes",
        r.body.len()
    );
    let h = curl(&["-I", "-L", &url]);
    assert_eq!(h.status, 200, "HEAD {url}");
    assert_eq!(
        h.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert_eq!(h.header("docker-content-digest"), Some(digest));
}

#[test]
fn chunked_upload_with_curl() {
    if !require_clients(&["curl"]) {
        return;
    }
    let reg = TestRegistry::start();
    let repo = reg.repo("chunked");
    let data = random_bytes(3 * CHUNK + 1234);
    let digest = sha256_digest(&data);

    let mut url = start_upload(&reg, &repo);
    let mut offset = 0;
    for chunk in data.chunks(CHUNK) {
        url = patch_chunk(&reg, &url, chunk, offset);
        offset += chunk.len();
    }
    finish_upload(&reg, &url, &digest, &[]);
    assert_blob(&reg, &repo, &digest, &data);
}

#[test]
fn resumed_upload_with_curl() {
    if !require_clients(&["curl"]) {
        return;
    }
    let reg = TestRegistry::start();
    let repo = reg.repo("resumed");
    let data = random_bytes(5 * 40_000 + 77);
    let digest = sha256_digest(&data);

    let url = start_upload(&reg, &repo);
    let url = patch_chunk(&reg, &url, &data[..40_000], 0);
    let url = patch_chunk(&reg, &url, &data[40_000..80_000], 40_000);

    // The client "forgets" how far it got and asks the registry.
    let status = curl(&[&url]);
    assert_eq!(
        status.status,
        204,
        "GET upload status: {}\n{}",
        status.body_str(),
        status.raw_headers
    );
    let offset = received(status.header("range").expect("upload status has Range"));
    assert_eq!(offset, 80_000);
    let mut url = reg.resolve(
        status
            .header("location")
            .expect("upload status has Location"),
    );
    if let Some(uuid) = status.header("docker-upload-uuid") {
        assert!(!uuid.is_empty());
    }

    // Continue from where the registry says, in two more PATCHes, and finish with the last bytes in the PUT.
    url = patch_chunk(&reg, &url, &data[offset..offset + 60_000], offset);
    url = patch_chunk(
        &reg,
        &url,
        &data[offset + 60_000..offset + 100_000],
        offset + 60_000,
    );
    let status = curl(&[&url]);
    assert_eq!(status.status, 204);
    assert_eq!(
        received(status.header("range").expect("Range")),
        offset + 100_000
    );
    let url = reg.resolve(status.header("location").expect("Location"));
    finish_upload(&reg, &url, &digest, &data[offset + 100_000..]);
    assert_blob(&reg, &repo, &digest, &data);
}

#[test]
fn streamed_patch_without_content_range_then_empty_put() {
    // What podman and buildah do: one PATCH with Transfer-Encoding: chunked and no Content-Range.
    if !require_clients(&["curl"]) {
        return;
    }
    let reg = TestRegistry::start();
    let repo = reg.repo("streamed");
    let data = random_bytes(300_000);
    let digest = sha256_digest(&data);
    let url = start_upload(&reg, &repo);
    let f = temp_file_with(&data);
    let r = curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", f.path().display()),
        &url,
    ]);
    assert_eq!(
        r.status,
        202,
        "streamed PATCH: {}\n{}",
        r.body_str(),
        r.raw_headers
    );
    assert_eq!(received(r.header("range").expect("Range")), data.len());
    let url = reg.resolve(r.header("location").expect("Location"));
    finish_upload(&reg, &url, &digest, &[]);
    assert_blob(&reg, &repo, &digest, &data);
}

#[test]
fn out_of_order_patch_is_416() {
    if !require_clients(&["curl"]) {
        return;
    }
    let reg = TestRegistry::start();
    let repo = reg.repo("out-of-order");
    let data = random_bytes(300);
    let url = start_upload(&reg, &repo);
    let url = patch_chunk(&reg, &url, &data[..100], 0);

    // Skips bytes 100..199.
    let f = temp_file_with(&data[200..]);
    let r = curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "Content-Range: 200-299",
        "--data-binary",
        &format!("@{}", f.path().display()),
        &url,
    ]);
    assert_eq!(
        r.status,
        416,
        "out-of-order PATCH: {}\n{}",
        r.body_str(),
        r.raw_headers
    );

    // Overlapping (re-sending bytes the registry already has) is out of order too.
    let f = temp_file_with(&data[50..150]);
    let r = curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "Content-Range: 50-149",
        "--data-binary",
        &format!("@{}", f.path().display()),
        &url,
    ]);
    assert_eq!(
        r.status,
        416,
        "overlapping PATCH: {}\n{}",
        r.body_str(),
        r.raw_headers
    );
}

#[test]
fn upload_continues_after_rejected_out_of_order_patch() {
    if !require_clients(&["curl"]) {
        return;
    }
    let reg = TestRegistry::start();
    let repo = reg.repo("after-416");
    let data = random_bytes(300);
    let digest = sha256_digest(&data);
    let url = start_upload(&reg, &repo);
    let url = patch_chunk(&reg, &url, &data[..100], 0);
    let f = temp_file_with(&data[200..]);
    let r = curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "Content-Range: 200-299",
        "--data-binary",
        &format!("@{}", f.path().display()),
        &url,
    ]);
    assert_eq!(r.status, 416);
    // The session is intact: the status still says 100 bytes, and the upload can be completed.
    let status = curl(&[&url]);
    assert_eq!(
        status.status,
        204,
        "upload status after 416: {}",
        status.body_str()
    );
    assert_eq!(received(status.header("range").expect("Range")), 100);
    let url = reg.resolve(status.header("location").unwrap_or(url.as_str()));
    let url = patch_chunk(&reg, &url, &data[100..200], 100);
    finish_upload(&reg, &url, &digest, &data[200..]);
    assert_blob(&reg, &repo, &digest, &data);
}

#[test]
fn cross_repository_mount() {
    let reg = TestRegistry::start();
    let a = reg.repo("mount-a");
    let b = reg.repo("mount-b");
    let c = reg.repo("mount-c");
    let data = random_bytes(10_000);
    let digest = push_blob(&reg, &a, &data);
    push_blob(&reg, &c, &random_bytes(100)); // c exists but lacks the blob
    let client = http();

    let resp = client
        .head(reg.v2(&format!("{b}/blobs/{digest}")))
        .send()
        .expect("HEAD");
    assert_eq!(
        resp.status().as_u16(),
        404,
        "blob visible in b before the mount"
    );

    let mount_url = with_query(
        &with_query(&reg.v2(&format!("{b}/blobs/uploads/")), "mount", &digest),
        "from",
        &a,
    );
    let resp = client.post(&mount_url).send().expect("POST mount");
    assert_eq!(
        resp.status().as_u16(),
        201,
        "mount from a repo that has the blob"
    );
    assert!(
        !header(&resp, "location").is_empty(),
        "201 mount answers with Location"
    );
    assert_eq!(header(&resp, "docker-content-digest"), digest);

    let resp = client
        .head(reg.v2(&format!("{b}/blobs/{digest}")))
        .send()
        .expect("HEAD");
    assert_eq!(
        resp.status().as_u16(),
        200,
        "blob visible in b after the mount"
    );
    assert_eq!(header(&resp, "content-length"), data.len().to_string());
    let got = client
        .get(reg.v2(&format!("{b}/blobs/{digest}")))
        .send()
        .expect("GET")
        .bytes()
        .expect("body");
    assert_eq!(got.to_vec(), data);

    // From a repository lacking the blob (and from one that does not exist): an ordinary upload session starts.
    let other = random_bytes(5000);
    let other_digest = sha256_digest(&other);
    for from in [c.as_str(), "e2e/no-such-repo-for-mount"] {
        let d = reg.repo("mount-d");
        let url = with_query(
            &with_query(
                &reg.v2(&format!("{d}/blobs/uploads/")),
                "mount",
                &other_digest,
            ),
            "from",
            from,
        );
        let resp = client.post(&url).send().expect("POST mount");
        assert_eq!(
            resp.status().as_u16(),
            202,
            "mount from {from}, which lacks the blob"
        );
        let loc = header(&resp, "location");
        assert!(!loc.is_empty(), "202 answers with an upload Location");
        let resp = client
            .put(with_query(&reg.resolve(&loc), "digest", &other_digest))
            .header("content-type", "application/octet-stream")
            .body(other.clone())
            .send()
            .expect("PUT");
        assert_eq!(
            resp.status().as_u16(),
            201,
            "the 202 session accepts the upload"
        );
        let resp = client
            .head(reg.v2(&format!("{d}/blobs/{other_digest}")))
            .send()
            .expect("HEAD");
        assert_eq!(resp.status().as_u16(), 200);
    }

    // Mounting a blob b now has (from a) again is still 201.
    let resp = client.post(&mount_url).send().expect("POST mount again");
    assert_eq!(resp.status().as_u16(), 201);
}

#[test]
fn referrers_api_lists_manifests_with_subject() {
    let reg = TestRegistry::start();
    let repo = reg.repo("referrers");
    let (subject_bytes, subject) = push_small_image(&reg, &repo, "v1");
    let empty = push_blob(&reg, &repo, b"{}");
    assert_eq!(
        empty,
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );

    let push_referrer = |artifact_type: Option<&str>,
                         config_type: &str,
                         payload: &[u8],
                         note: &str| {
        let layer = push_blob(&reg, &repo, payload);
        let mut m = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/vnd.example.payload", "digest": layer, "size": payload.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_bytes.len()},
            "annotations": {"org.example.note": note},
        });
        if let Some(t) = artifact_type {
            m["artifactType"] = json!(t);
        }
        let bytes = serde_json::to_vec(&m).expect("json");
        let digest = sha256_digest(&bytes);
        let resp = put_manifest(&reg, &repo, &digest, OCI_MANIFEST, &bytes);
        assert_eq!(resp.status().as_u16(), 201, "PUT referrer {note}");
        assert_eq!(
            header(&resp, "oci-subject"),
            subject,
            "PUT with subject answers OCI-Subject"
        );
        (digest, bytes.len())
    };
    let sbom_type = "application/vnd.example.sbom.v1";
    let sig_type = "application/vnd.example.signature.v1";
    let cfg_type = "application/vnd.example.config.v1+json";
    let (sbom, sbom_size) = push_referrer(Some(sbom_type), OCI_EMPTY, b"sbom", "sbom");
    let (sig, _) = push_referrer(Some(sig_type), OCI_EMPTY, b"signature", "sig");
    // No artifactType: the config's media type stands in for it.
    let (cfg, _) = push_referrer(None, cfg_type, b"by-config", "cfg");

    let client = http();
    let url = reg.v2(&format!("{repo}/referrers/{subject}"));
    let list = |url: &str| -> (String, String, Value) {
        let resp = client.get(url).send().expect("GET referrers");
        assert_eq!(resp.status().as_u16(), 200, "GET {url}");
        let ct = header(&resp, "content-type");
        let filters = header(&resp, "oci-filters-applied");
        let v: Value =
            serde_json::from_slice(&resp.bytes().expect("body")).expect("referrers json");
        (ct, filters, v)
    };

    let (ct, _, index) = list(&url);
    assert!(ct.starts_with(OCI_INDEX), "referrers Content-Type {ct:?}");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    let entries = index["manifests"].as_array().expect("manifests");
    let mut found: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            assert_eq!(e["mediaType"], OCI_MANIFEST, "{e}");
            (
                e["digest"].as_str().unwrap_or_default().to_string(),
                e["artifactType"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    found.sort();
    let mut want = vec![
        (sbom.clone(), sbom_type.to_string()),
        (sig.clone(), sig_type.to_string()),
        (cfg.clone(), cfg_type.to_string()),
    ];
    want.sort();
    assert_eq!(found, want, "{index}");
    let sbom_entry = entries
        .iter()
        .find(|e| e["digest"] == sbom.as_str())
        .expect("sbom entry");
    assert_eq!(sbom_entry["size"], sbom_size);
    assert_eq!(
        sbom_entry["annotations"]["org.example.note"], "sbom",
        "annotations are copied: {sbom_entry}"
    );

    let filtered_url = with_query(&url, "artifactType", sbom_type);
    let (_, filters, filtered) = list(&filtered_url);
    assert_eq!(filters, "artifactType", "OCI-Filters-Applied");
    let only: Vec<&str> = filtered["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|e| e["digest"].as_str())
        .collect();
    assert_eq!(only, [sbom.as_str()], "{filtered}");

    // A digest nobody refers to: 200 with an empty index.
    let nobody = sha256_digest(b"nobody refers to this");
    let (_, _, empty_index) = list(&reg.v2(&format!("{repo}/referrers/{nobody}")));
    assert_eq!(
        empty_index["manifests"].as_array().map(Vec::len),
        Some(0),
        "{empty_index}"
    );

    // Deleting a referrer removes it from the list.
    let resp = client
        .delete(reg.v2(&format!("{repo}/manifests/{sig}")))
        .send()
        .expect("DELETE");
    assert_eq!(resp.status().as_u16(), 202);
    let (_, _, after) = list(&url);
    let mut left: Vec<&str> = after["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|e| e["digest"].as_str())
        .collect();
    left.sort_unstable();
    let mut expect = vec![sbom.as_str(), cfg.as_str()];
    expect.sort_unstable();
    assert_eq!(left, expect);
}

/// Parses `Link: <url>; rel="next"`.
fn next_link(link: &str) -> Option<String> {
    if link.is_empty() {
        return None;
    }
    let start = link.find('<')? + 1;
    let end = link.find('>')?;
    assert!(
        link[end..].contains("rel=\"next\""),
        "Link without rel=\"next\": {link}"
    );
    Some(link[start..end].to_string())
}

#[test]
fn tag_list_pagination() {
    let reg = TestRegistry::start();
    let repo = reg.repo("tags");
    let (manifest, _) = push_small_image(&reg, &repo, "latest");
    let mut tags = vec!["a", "b1", "b10", "b2", "latest", "v1.0", "v1.1", "z_9"];
    for t in &tags {
        let resp = put_manifest(&reg, &repo, t, OCI_MANIFEST, &manifest);
        assert_eq!(resp.status().as_u16(), 201, "tag {t}");
    }
    tags.sort_unstable();
    let client = http();
    let get = |url: &str| -> (Vec<String>, String) {
        let resp = client.get(url).send().expect("GET tags");
        assert_eq!(resp.status().as_u16(), 200, "GET {url}");
        let link = header(&resp, "link");
        let v: Value = serde_json::from_slice(&resp.bytes().expect("body")).expect("json");
        assert_eq!(v["name"], repo.as_str());
        let got = v["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        (got, link)
    };

    let base = reg.v2(&format!("{repo}/tags/list"));
    let (all, link) = get(&base);
    assert_eq!(all, tags, "full tag list in lexical order");
    assert!(
        next_link(&link).is_none(),
        "no Link when everything fits: {link}"
    );

    let (first, link) = get(&with_query(&base, "n", "3"));
    assert_eq!(first, tags[..3]);
    let mut collected = first;
    let mut next = next_link(&link);
    let mut pages = 1;
    while let Some(n) = next {
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
        assert!(n.contains("n=3"), "Link keeps n: {n}");
        let (page, link) = get(&reg.resolve(&n));
        assert!(page.len() <= 3);
        collected.extend(page);
        next = next_link(&link);
    }
    assert_eq!(collected, tags, "pages concatenate to the full list");
    assert_eq!(pages, 3);

    let (page, _) = get(&with_query(&with_query(&base, "n", "2"), "last", "b2"));
    assert_eq!(page, ["latest", "v1.0"]);
    let (page, _) = get(&with_query(&base, "last", "v1.0"));
    assert_eq!(page, ["v1.1", "z_9"]);
    let (page, link) = get(&with_query(&base, "last", "z_9"));
    assert!(page.is_empty(), "{page:?}");
    assert!(next_link(&link).is_none());
    let (page, link) = get(&with_query(&base, "n", "0"));
    assert!(page.is_empty(), "n=0 gives an empty list: {page:?}");
    assert!(next_link(&link).is_none(), "n=0 gives no Link: {link}");
}

#[test]
fn several_accept_header_lines_are_merged() {
    if !require_clients(&["curl"]) {
        return;
    }
    let reg = TestRegistry::start();
    let repo = reg.repo("accept");
    let (m1, d1) = push_small_image(&reg, &repo, "one");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": d1, "size": m1.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .expect("json");
    let index_digest = sha256_digest(&index);
    let resp = put_manifest(&reg, &repo, "multi", OCI_INDEX, &index);
    assert_eq!(resp.status().as_u16(), 201, "PUT index");

    let url = reg.v2(&format!("{repo}/manifests/multi"));
    // Separate lines, the index type in the last one (as containers/image sends them).
    let r = curl(&[
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v2+json",
        "-H",
        &format!("Accept: {OCI_MANIFEST}"),
        "-H",
        &format!("Accept: {OCI_INDEX}"),
        &url,
    ]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    assert_eq!(
        r.header("docker-content-digest"),
        Some(index_digest.as_str())
    );
    assert_eq!(sha256_digest(&r.body), index_digest);
    // One comma-separated line.
    let r = curl(&["-H", &format!("Accept: {OCI_MANIFEST}, {OCI_INDEX}"), &url]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(index_digest.as_str())
    );
    // HEAD with separate lines.
    let r = curl(&[
        "-I",
        "-H",
        &format!("Accept: {OCI_MANIFEST}"),
        "-H",
        &format!("Accept: {OCI_INDEX}"),
        &url,
    ]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    assert_eq!(
        r.header("content-length"),
        Some(index.len().to_string().as_str())
    );
}

/// A TLS 1.2 ClientHello record shaped like the one Go's crypto/tls (skopeo, podman) sends first on a plain-http
/// port: cipher suites, SNI-less, with the usual supported_groups / ec_point_formats / signature_algorithms / ALPN
/// extensions. (A server that reads "lines" answers only once it sees a 0x0a byte, which real hellos contain.)
fn client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03]; // client_version TLS 1.2
    body.extend(random_bytes(32)); // random
    body.push(32); // session id
    body.extend(random_bytes(32));
    let suites: [u16; 8] = [
        0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc009, 0xc00a,
    ];
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend(s.to_be_bytes());
    }
    body.extend([0x01, 0x00]); // compression: null
    let mut ext = Vec::new();
    let mut add = |typ: u16, data: &[u8]| {
        ext.extend(typ.to_be_bytes());
        ext.extend((data.len() as u16).to_be_bytes());
        ext.extend_from_slice(data);
    };
    add(0x000a, &[0x00, 0x06, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]); // supported_groups
    add(0x000b, &[0x01, 0x00]); // ec_point_formats
    add(0x000d, &[0x00, 0x04, 0x04, 0x03, 0x08, 0x04]); // signature_algorithms
    add(0x0010, b"\x00\x0c\x02h2\x08http/1.1"); // ALPN
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![0x01, 0x00, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend(body);
    let mut rec = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend(hs);
    rec
}

#[test]
fn tls_client_hello_on_plain_port_is_answered_quickly() {
    let reg = TestRegistry::start();
    let started = Instant::now();
    let mut s = TcpStream::connect(reg.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(&client_hello()).expect("send ClientHello");
    let mut buf = [0u8; 4096];
    // Either an answer (e.g. an HTTP 400), a close, or a reset is fine; silence is not.
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("no answer or close within 5 s to a TLS ClientHello on the plain port")
            }
            Err(_) => break,
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // And the registry still serves.
    let resp = http().get(reg.v2("")).send().expect("GET /v2/");
    assert_eq!(resp.status().as_u16(), 200);
}

#[test]
fn error_codes_on_the_wire() {
    let reg = TestRegistry::start();
    let repo = reg.repo("errors");
    push_small_image(&reg, &repo, "v1");
    let client = http();
    let code = |resp: reqwest::blocking::Response| -> (u16, String) {
        let status = resp.status().as_u16();
        let v: Value =
            serde_json::from_slice(&resp.bytes().unwrap_or_default()).unwrap_or(Value::Null);
        (
            status,
            v["errors"][0]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };

    let missing = sha256_digest(b"missing");
    let r = client
        .get(reg.v2(&format!("{repo}/manifests/nope")))
        .header("accept", OCI_MANIFEST)
        .send()
        .expect("GET");
    assert_eq!(code(r), (404, "MANIFEST_UNKNOWN".into()));
    let r = client
        .get(reg.v2(&format!("{repo}/blobs/{missing}")))
        .send()
        .expect("GET");
    assert_eq!(code(r), (404, "BLOB_UNKNOWN".into()));
    let r = client
        .get(reg.v2("e2e/never-pushed-repo/tags/list"))
        .send()
        .expect("GET");
    assert_eq!(code(r), (404, "NAME_UNKNOWN".into()));

    // A PUT whose digest does not match the bytes.
    let r = client
        .post(reg.v2(&format!("{repo}/blobs/uploads/")))
        .send()
        .expect("POST");
    assert_eq!(r.status().as_u16(), 202);
    let loc = reg.resolve(&header(&r, "location"));
    let r = client
        .put(with_query(&loc, "digest", &missing))
        .header("content-type", "application/octet-stream")
        .body(b"not what the digest says".to_vec())
        .send()
        .expect("PUT");
    assert_eq!(code(r), (400, "DIGEST_INVALID".into()));

    // A manifest that references a blob the repository does not have.
    let bad = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": missing, "size": 7},
        "layers": [],
    }))
    .expect("json");
    let r = put_manifest(&reg, &repo, "bad", OCI_MANIFEST, &bad);
    assert_eq!(code(r), (400, "MANIFEST_BLOB_UNKNOWN".into()));
}

#[test]
fn blob_range_request() {
    let reg = TestRegistry::start();
    let repo = reg.repo("range");
    let data = random_bytes(1000);
    let digest = push_blob(&reg, &repo, &data);
    let resp = http()
        .get(reg.v2(&format!("{repo}/blobs/{digest}")))
        .header("range", "bytes=100-199")
        .send()
        .expect("GET range");
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(header(&resp, "content-range"), "bytes 100-199/1000");
    assert_eq!(
        resp.bytes().expect("body").to_vec(),
        data[100..200].to_vec()
    );
}

#[test]
fn server_stops_gracefully_on_sigterm() {
    let mut reg = TestRegistry::start();
    if reg.is_external() {
        eprintln!("SKIPPED: cannot signal an external registry");
        return;
    }
    let repo = reg.repo("sigterm");
    push_small_image(&reg, &repo, "v1");
    let (status, by_itself) = reg.stop().expect("spawned server");
    assert!(
        by_itself,
        "berth did not exit within the timeout after SIGTERM"
    );
    assert!(
        status.success(),
        "berth exited with {status} after SIGTERM\n{}",
        reg.server_log()
    );
}

#[test]
fn readyz_answers_draining_after_sigterm_while_requests_are_still_served() {
    let mut reg = TestRegistry::start_with_env(&[("BERTH_SERVER__DRAIN_DELAY_SECS", "3")]);
    let http = reqwest::blocking::Client::new();
    let readyz = |http: &reqwest::blocking::Client| {
        let resp = http
            .get(format!("{}/readyz", reg.base_url()))
            .send()
            .expect("GET /readyz");
        (resp.status().as_u16(), resp.text().expect("body"))
    };
    assert_eq!(readyz(&http), (200, "ready\n".to_string()));

    reg.send_sigterm();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, body) = readyz(&http);
        if status == 503 {
            assert_eq!(body, "draining\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {status} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The listener still accepts and serves during the drain delay: a whole push works.
    let repo = reg.repo("draining");
    push_small_image(&reg, &repo, "during-drain");

    let (status, by_itself) = reg.stop().expect("spawned server");
    assert!(
        by_itself && status.success(),
        "exit after the drain: {status}\n{}",
        reg.server_log()
    );
}

#[test]
fn upload_resumes_across_restart() {
    if !require_clients(&["curl"]) {
        return;
    }
    let mut reg = TestRegistry::start();
    if reg.is_external() {
        eprintln!("SKIPPED: cannot restart an external registry");
        return;
    }
    let repo = reg.repo("restart-upload");
    let data = random_bytes(200_000);
    let digest = sha256_digest(&data);
    let url = start_upload(&reg, &repo);
    let url = patch_chunk(&reg, &url, &data[..120_000], 0);
    let path = TestRegistry::path_of(&url);

    reg.restart();

    let status = curl(&[&reg.resolve(&path)]);
    assert_eq!(
        status.status,
        204,
        "upload status after restart: {}\n{}",
        status.body_str(),
        status.raw_headers
    );
    let offset = received(status.header("range").expect("Range"));
    assert_eq!(offset, 120_000, "bytes kept across the restart");
    let url = reg.resolve(&TestRegistry::path_of(
        status.header("location").unwrap_or(path.as_str()),
    ));
    let url = patch_chunk(&reg, &url, &data[offset..], offset);
    finish_upload(&reg, &url, &digest, &[]);
    assert_blob(&reg, &repo, &digest, &data);
}

/// A descriptor must state its blob's stored size: a manifest declaring 999 bytes for a
/// 1,000-byte layer (or 2^63, or more than a u64 holds, or a negative size) is refused
/// with `MANIFEST_INVALID` naming the digest and both sizes, and nothing is stored.
#[test]
fn descriptor_sizes_must_match_the_stored_blobs() {
    let reg = TestRegistry::start();
    let repo = reg.repo("sizes");
    let layer = random_bytes(1000);
    let layer_digest = push_blob(&reg, &repo, &layer);
    let config = b"{}".to_vec();
    let config_digest = push_blob(&reg, &repo, &config);
    let manifest = |layer_size: Value, config_size: Value| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": OCI_LAYER_TAR, "digest": layer_digest, "size": layer_size}],
        }))
        .expect("json")
    };
    let error = |resp: reqwest::blocking::Response| -> (u16, Value) {
        let status = resp.status().as_u16();
        let v: Value = serde_json::from_slice(&resp.bytes().expect("body")).expect("json body");
        (status, v["errors"][0].clone())
    };
    for (declared, config_size) in [(999u64, 2u64), (1u64 << 63, 2), (u64::MAX, 2), (1000, 3)] {
        let r = put_manifest(
            &reg,
            &repo,
            "bad",
            OCI_MANIFEST,
            &manifest(json!(declared), json!(config_size)),
        );
        let (status, e) = error(r);
        assert_eq!(status, 400, "{declared}: {e}");
        assert_eq!(e["code"], "MANIFEST_INVALID", "{e}");
        let (digest, stored, declared) = if config_size == 2 {
            (&layer_digest, 1000, declared)
        } else {
            (&config_digest, 2, config_size)
        };
        let msg = e["message"].as_str().expect("message");
        assert!(
            msg.contains(digest.as_str())
                && msg.contains(&declared.to_string())
                && msg.contains(&stored.to_string()),
            "{msg}"
        );
        assert_eq!(e["detail"]["digest"], digest.as_str());
        assert_eq!(e["detail"]["size"], declared);
        assert_eq!(e["detail"]["storedSize"], stored);
    }
    // Sizes no u64 holds, negative or fractional: invalid JSON for a descriptor.
    for size in [
        json!(-1),
        json!(-9_223_372_036_854_775_808i64),
        json!(18_446_744_073_709_551_616.0),
        json!(1.5),
    ] {
        let r = put_manifest(
            &reg,
            &repo,
            "bad",
            OCI_MANIFEST,
            &manifest(size.clone(), json!(2)),
        );
        let (status, e) = error(r);
        assert_eq!(
            (status, e["code"].as_str()),
            (400, Some("MANIFEST_INVALID")),
            "{size}: {e}"
        );
    }
    // A size over u64 written as an integer literal.
    let huge = String::from_utf8(manifest(json!(1000), json!(2)))
        .expect("utf8")
        .replace("\"size\":1000", "\"size\":18446744073709551616");
    let (status, e) = error(put_manifest(
        &reg,
        &repo,
        "bad",
        OCI_MANIFEST,
        huge.as_bytes(),
    ));
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("MANIFEST_INVALID")),
        "{e}"
    );
    let r = http()
        .get(reg.v2(&format!("{repo}/manifests/bad")))
        .header("accept", OCI_MANIFEST)
        .send()
        .expect("GET");
    assert_eq!(r.status().as_u16(), 404, "a refused manifest is not stored");
    // The right sizes are accepted.
    let r = put_manifest(
        &reg,
        &repo,
        "good",
        OCI_MANIFEST,
        &manifest(json!(1000), json!(2)),
    );
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
}

/// A manifest with 100,000 levels of nesting in a member serde would skip (and store,
/// breaking every Go client later) is refused with MANIFEST_INVALID before parsing.
#[test]
fn deeply_nested_manifests_are_refused() {
    let reg = TestRegistry::start();
    let repo = reg.repo("deep");
    let config = b"{}".to_vec();
    let config_digest = push_blob(&reg, &repo, &config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{config_digest}","size":2}},"layers":[],"x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let r = put_manifest(&reg, &repo, "deep", OCI_MANIFEST, manifest.as_bytes());
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = serde_json::from_slice(&r.bytes().expect("body")).expect("json");
    assert_eq!(v["errors"][0]["code"], "MANIFEST_INVALID", "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nested more than 64 levels")),
        "{v}"
    );
    let r = http()
        .get(reg.v2(&format!("{repo}/manifests/deep")))
        .header("accept", OCI_MANIFEST)
        .send()
        .expect("GET");
    assert_eq!(r.status().as_u16(), 404);
}

/// Deleting a blob a manifest of the repository still uses would leave an image that
/// cannot be pulled: the DELETE is refused with 405 UNSUPPORTED (the spec's answer for a
/// delete the registry does not allow), the image still pulls, and once the manifest is
/// gone the blob can be deleted.
#[test]
fn a_blob_in_use_by_a_manifest_cannot_be_deleted() {
    let reg = TestRegistry::start();
    let repo = reg.repo("blob-in-use");
    let (manifest, manifest_digest) = push_small_image(&reg, &repo, "v1");
    let m: Value = serde_json::from_slice(&manifest).expect("manifest json");
    let layer = m["layers"][0]["digest"]
        .as_str()
        .expect("layer")
        .to_string();
    let client = http();
    let r = client
        .delete(reg.v2(&format!("{repo}/blobs/{layer}")))
        .send()
        .expect("DELETE blob");
    assert_eq!(r.status().as_u16(), 405);
    let v: Value = serde_json::from_slice(&r.bytes().expect("body")).expect("json");
    assert_eq!(v["errors"][0]["code"], "UNSUPPORTED", "{v}");
    assert_eq!(
        v["errors"][0]["detail"]["manifest"],
        manifest_digest.as_str()
    );
    let msg = v["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&layer) && msg.contains(&manifest_digest),
        "{msg}"
    );
    // The image still pulls, blob included.
    let r = client
        .get(reg.v2(&format!("{repo}/manifests/v1")))
        .header("accept", OCI_MANIFEST)
        .send()
        .expect("GET manifest");
    assert_eq!(r.status().as_u16(), 200);
    let r = client
        .get(reg.v2(&format!("{repo}/blobs/{layer}")))
        .send()
        .expect("GET blob");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(sha256_digest(&r.bytes().expect("blob")), layer);
    // Without the manifest, the blob goes.
    let r = client
        .delete(reg.v2(&format!("{repo}/manifests/{manifest_digest}")))
        .send()
        .expect("DELETE manifest");
    assert_eq!(r.status().as_u16(), 202);
    let r = client
        .delete(reg.v2(&format!("{repo}/blobs/{layer}")))
        .send()
        .expect("DELETE blob");
    assert_eq!(r.status().as_u16(), 202);
    let r = client
        .get(reg.v2(&format!("{repo}/blobs/{layer}")))
        .send()
        .expect("GET blob");
    assert_eq!(r.status().as_u16(), 404);
}
