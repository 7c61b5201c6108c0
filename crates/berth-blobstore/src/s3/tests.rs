//! The S3 backend against a real S3 server (Garage, started by `berth-testkit`): the shared
//! suite, then what only an object store has (parts, the copy limit, presigned URLs,
//! credentials checked at connect, a second node changing an upload).

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStore;

use berth_testkit::garage::Garage;
use berth_types::{Algorithm, Digest};

use super::*;
use crate::Written;

const BUCKET: &str = "berth-blobs";
/// S3's smallest part, so that the suite's 13 MiB blob takes three parts.
const PART: u64 = 5 << 20;

struct S3Backend {
    garage: Garage,
    options: S3Options,
    store: S3BlobStore,
}

#[async_trait::async_trait]
impl crate::suite::SuiteBackend for S3Backend {
    fn store(&self) -> &dyn BlobStore {
        &self.store
    }
    async fn another(&self) -> Box<dyn BlobStore> {
        Box::new(S3BlobStore::connect(self.options.clone()).await.unwrap())
    }
}

fn options(g: &Garage) -> S3Options {
    S3Options {
        endpoint: Some(g.endpoint.clone()),
        path_style: true,
        credentials: Some((g.access_key_id.clone(), g.secret_access_key.clone(), None)),
        part_size: PART,
        ..S3Options::new(BUCKET, g.region.clone())
    }
}

async fn backend_with(change: impl FnOnce(&mut S3Options)) -> S3Backend {
    let garage = tokio::task::spawn_blocking(|| {
        let g = Garage::start();
        g.bucket(BUCKET);
        g
    })
    .await
    .unwrap();
    let mut options = options(&garage);
    change(&mut options);
    let store = S3BlobStore::connect(options.clone()).await.unwrap();
    S3Backend {
        garage,
        options,
        store,
    }
}

async fn make() -> S3Backend {
    backend_with(|_| {}).await
}

mod suite {
    crate::blob_store_suite!(super::make);
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn write(store: &dyn BlobStore, id: &str, offset: u64, data: &[u8]) -> Written {
    let mut sink = store
        .upload_sink(id, offset, Algorithm::Sha256)
        .await
        .unwrap();
    for c in data.chunks(1 << 20) {
        sink.write(vec![Bytes::copy_from_slice(c)]).await.unwrap();
    }
    sink.finish().await.unwrap()
}

async fn read_all(store: &dyn BlobStore, d: &Digest, range: Option<ByteRange>) -> Vec<u8> {
    let chunks: Vec<Bytes> = store
        .open(d, range)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}

async fn keys(store: &S3BlobStore, prefix: &str) -> Vec<String> {
    let p = Path::from(prefix);
    let mut k: Vec<String> = store
        .inner
        .s3
        .list(Some(&p))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    k.sort();
    k
}

/// A blob over the copy limit (here 6 MiB; 5 GiB on AWS) is sent in parts, completed at
/// the upload's data key and copied part by part to its digest key; nothing of the upload
/// is left, and ranged reads across part boundaries are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_over_the_copy_limit_is_copied_in_parts() {
    let b = backend_with(|o| o.copy_limit = 6 << 20).await;
    let store = &b.store;
    let data = random_bytes(12 * 1024 * 1024 + 999, 7);
    store.create_upload("big").await.unwrap();
    write(store, "big", 0, &data[..8_000_000]).await;
    // Mid-upload: one full part in the multipart upload, the rest in a tail object.
    let state_key = store.inner.upload_key("big", upload::STATE).unwrap();
    let (state, _) = UploadState::load(&store.inner, &state_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.parts.len(), 1);
    assert_eq!(state.parts[0].size, PART);
    assert_eq!(state.tail.as_ref().unwrap().size, 8_000_000 - PART);
    assert!(state.multipart.is_some());
    let w = write(store, "big", 8_000_000, &data[8_000_000..]).await;
    let digest = w.hasher.finish();
    assert_eq!(digest, Digest::sha256_of(&data));
    store.commit_upload("big", &digest).await.unwrap();
    assert!(
        keys(store, "uploads").await.is_empty(),
        "upload objects left"
    );
    assert_eq!(store.stat(&digest).await.unwrap(), Some(data.len() as u64));
    assert!(read_all(store, &digest, None).await == data);
    for (start, end) in [(0u64, 0u64), (PART - 1, PART), (PART * 2 - 3, PART * 2 + 3)] {
        let got = read_all(store, &digest, Some(ByteRange { start, end })).await;
        assert!(got == data[start as usize..=end as usize], "{start}-{end}");
    }
}

/// Under the copy limit the store copies the completed object itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_blob_under_the_copy_limit_is_copied_by_the_store() {
    let b = make().await;
    let store = &b.store;
    let data = random_bytes(11 * 1024 * 1024, 3);
    store.create_upload("mp").await.unwrap();
    let digest = write(store, "mp", 0, &data).await.hasher.finish();
    store.commit_upload("mp", &digest).await.unwrap();
    assert!(read_all(store, &digest, None).await == data);
    let blob_keys = keys(store, "blobs").await;
    assert_eq!(blob_keys.len(), 1);
    assert!(blob_keys[0].ends_with(digest.hex()));
    assert!(keys(store, "uploads").await.is_empty());
}

/// Node A hashed the upload and is about to commit; node B appends meanwhile. A's commit
/// is refused (the saved hash is no longer A's digest) and nothing appears under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_refuses_an_upload_another_node_changed() {
    let b = make().await;
    let a = &b.store;
    let other = S3BlobStore::connect(b.options.clone()).await.unwrap();
    a.create_upload("race").await.unwrap();
    let seen = write(a, "race", 0, b"first part").await.hasher.finish();
    write(&other, "race", 10, b" and more").await;
    match a.commit_upload("race", &seen).await {
        Err(BlobStoreError::UploadChanged {
            expected, actual, ..
        }) => {
            assert_eq!(expected, seen);
            assert_eq!(actual, Digest::sha256_of(b"first part and more"));
        }
        other => panic!("expected UploadChanged, got {other:?}"),
    }
    assert!(a.stat(&seen).await.unwrap().is_none());
}

/// A SHA-512 completion needs every byte again: possible while they are all in the tail,
/// refused (clearly) once some are in multipart parts, which S3 cannot read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehashing_an_upload_with_parts_is_refused_clearly() {
    let b = make().await;
    let store = &b.store;
    store.create_upload("p").await.unwrap();
    write(store, "p", 0, &random_bytes(6 << 20, 5)).await;
    match store.upload_sink("p", 6 << 20, Algorithm::Sha512).await {
        Err(e @ BlobStoreError::UploadNotRehashable { .. }) => {
            assert!(e.to_string().contains("sha512"), "{e}");
        }
        Err(e) => panic!("expected UploadNotRehashable, got {e:?}"),
        Ok(_) => panic!("expected UploadNotRehashable, got a sink"),
    }
}

/// A presigned URL lets a plain HTTP client fetch the blob, and only that blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_serve_the_blob_directly() {
    let b = make().await;
    let store = &b.store;
    let data = random_bytes(200_000, 11);
    store.create_upload("u").await.unwrap();
    let digest = write(store, "u", 0, &data).await.hasher.finish();
    store.commit_upload("u", &digest).await.unwrap();
    let url = store
        .presign(&digest, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(url.as_str().contains("X-Amz-Signature="), "{url}");
    assert!(!url.as_str().contains(&b.garage.secret_access_key));
    let client = reqwest::Client::new();
    let got = client.get(url.clone()).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert!(got.bytes().await.unwrap() == data);
    // The signature covers the key: another blob's path is refused.
    let other = url
        .as_str()
        .replace(digest.hex(), Digest::sha256_of(b"x").hex());
    let refused = client.get(&other).send().await.unwrap();
    assert_eq!(refused.status(), 403);
}

/// Wrong credentials and a missing bucket stop `connect` with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_or_a_missing_bucket_fail_at_connect() {
    let b = make().await;
    let mut wrong_key = b.options.clone();
    wrong_key.credentials = Some((b.garage.access_key_id.clone(), "0".repeat(64), None));
    let mut no_bucket = b.options.clone();
    no_bucket.bucket = "no-such-bucket".into();
    for (what, o) in [("wrong secret", wrong_key), ("missing bucket", no_bucket)] {
        match S3BlobStore::connect(o).await {
            Err(e @ BlobStoreError::Unreachable(_)) => {
                let full = format!("{:?}", anyhow_chain(&e));
                assert!(
                    !full.contains(&b.garage.secret_access_key),
                    "{what}: {full}"
                );
            }
            Err(e) => panic!("{what}: expected Unreachable, got {e:?}"),
            Ok(_) => panic!("{what}: connected"),
        }
    }
}

fn anyhow_chain(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        out.push(s.to_string());
        src = s.source();
    }
    out
}

/// With a prefix, every key Berth writes is under it, and listings see only those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_keeps_berth_to_its_part_of_the_bucket() {
    let b = backend_with(|o| o.prefix = "registry/".into()).await;
    let store = &b.store;
    // Someone else's object in the same bucket.
    store
        .inner
        .s3
        .put(
            &Path::from("blobs/other/thing"),
            PutPayload::from_static(b"x"),
        )
        .await
        .unwrap();
    store.create_upload("u").await.unwrap();
    let digest = write(store, "u", 0, b"prefixed").await.hasher.finish();
    store.create_upload("open").await.unwrap();
    store.commit_upload("u", &digest).await.unwrap();
    let listed = store.list_blobs(None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, digest);
    assert_eq!(
        store
            .list_uploads()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.id)
            .collect::<Vec<_>>(),
        vec!["open".to_string()]
    );
    let all = keys(store, "").await;
    assert!(
        all.iter()
            .all(|k| k.starts_with("registry/") || k == "blobs/other/thing"),
        "{all:?}"
    );
}

/// Neither the options nor the store print the secret key.
#[test]
fn secrets_never_reach_debug_output() {
    let secret = "s3cr3t-value-that-must-not-print";
    let options = S3Options {
        endpoint: Some("http://127.0.0.1:1".into()),
        path_style: true,
        credentials: Some(("GKkey".into(), secret.into(), Some("t0ken-value".into()))),
        ..S3Options::new("bucket", "garage")
    };
    let store = S3BlobStore::new(options.clone()).unwrap();
    for shown in [format!("{options:?}"), format!("{store:?}")] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains("t0ken-value"), "{shown}");
    }
}
