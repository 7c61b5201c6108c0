//! The behaviour every [`BlobStore`] backend must show, as named cases.
//!
//! A backend's tests expand [`blob_store_suite!`](crate::blob_store_suite) with an async
//! function that makes a fresh, empty [`SuiteBackend`]; the macro emits one `#[tokio::test]`
//! per case, so a failure names its case. Compiled only for this crate's tests and with the
//! `suite` feature (never into the release library).
// A suite is test code that backends run from their tests: a failed unwrap is a failed case.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use futures::TryStreamExt;

use berth_types::{Algorithm, Digest};

use crate::{BlobStore, BlobStoreError, ByteRange, Written};

/// A fresh, empty store for one case, plus a way to reach the same storage again.
#[async_trait::async_trait]
pub trait SuiteBackend: Send + Sync {
    fn store(&self) -> &dyn BlobStore;
    /// A second, independent instance on the same storage: another node, or this process
    /// after a restart. It shares nothing in memory with [`SuiteBackend::store`].
    async fn another(&self) -> Box<dyn BlobStore>;
}

/// Emits one `#[tokio::test]` per suite case, each on a backend made by `$make` (a path to
/// an `async fn() -> impl SuiteBackend`).
#[macro_export]
macro_rules! blob_store_suite {
    ($make:path) => {
        $crate::blob_store_suite!(@cases $make;
            absent_blobs_and_uploads,
            an_upload_in_chunks_checks_offsets_and_hashes,
            an_aborted_sink_leaves_the_upload_as_it_was,
            committed_blobs_read_back_whole_and_by_range,
            identical_content_deduplicates,
            the_empty_blob,
            abort_and_delete_are_idempotent,
            listing_pages_in_digest_order_without_uploads,
            another_instance_continues_an_upload,
            another_algorithm_rehashes_the_upload,
            a_large_upload_in_odd_chunks,
            listed_uploads_carry_the_time_of_their_last_write,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $make().await;
                $crate::suite::$case(&backend).await;
            }
        )*
    };
}

async fn collect(s: crate::ByteStream) -> Vec<u8> {
    let chunks: Vec<Bytes> = s.try_collect().await.expect("stream reads");
    chunks.concat()
}

async fn read_blob(store: &dyn BlobStore, d: &Digest) -> Vec<u8> {
    collect(store.open(d, None).await.unwrap()).await
}

/// Appends `data` at `offset` in one sink, in chunks of `chunk` bytes.
async fn write_in(
    store: &dyn BlobStore,
    id: &str,
    offset: u64,
    data: &[u8],
    chunk: usize,
) -> Written {
    let mut sink = store
        .upload_sink(id, offset, Algorithm::Sha256)
        .await
        .expect("sink opens");
    for c in data.chunks(chunk.max(1)) {
        sink.write(vec![Bytes::copy_from_slice(c)]).await.unwrap();
    }
    sink.finish().await.unwrap()
}

async fn write(store: &dyn BlobStore, id: &str, offset: u64, data: &[u8]) -> Written {
    write_in(store, id, offset, data, 64 * 1024).await
}

/// Uploads and commits `data` as one blob; returns its digest.
async fn put(store: &dyn BlobStore, id: &str, data: &[u8]) -> Digest {
    store.create_upload(id).await.unwrap();
    let w = write(store, id, 0, data).await;
    let d = w.hasher.finish();
    store.commit_upload(id, &d).await.unwrap();
    d
}

async fn upload_ids(store: &dyn BlobStore) -> Vec<String> {
    let mut ids: Vec<String> = store
        .list_uploads()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    ids.sort();
    ids
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n as u32).map(|i| (i % 251) as u8).collect()
}

pub async fn absent_blobs_and_uploads(b: &dyn SuiteBackend) {
    let store = b.store();
    let digest = Digest::sha256_of(b"never stored");
    assert!(store.stat(&digest).await.unwrap().is_none());
    assert!(store.blob_info(&digest).await.unwrap().is_none());
    assert!(matches!(
        store.open(&digest, None).await,
        Err(BlobStoreError::BlobNotFound(_))
    ));
    assert!(store.upload_size("nope").await.unwrap().is_none());
    assert!(matches!(
        store.upload_sink("nope", 0, Algorithm::Sha256).await,
        Err(BlobStoreError::UploadNotFound(_))
    ));
    assert!(matches!(
        store.commit_upload("nope", &digest).await,
        Err(BlobStoreError::UploadNotFound(_))
    ));
    assert!(upload_ids(store).await.is_empty());
    assert!(store.list_blobs(None, 10).await.unwrap().is_empty());
}

pub async fn an_upload_in_chunks_checks_offsets_and_hashes(b: &dyn SuiteBackend) {
    let store = b.store();
    let data = pattern(300_000);
    store.create_upload("u1").await.unwrap();
    assert_eq!(store.upload_size("u1").await.unwrap(), Some(0));
    let w = write(store, "u1", 0, &data[..1000]).await;
    assert_eq!(w.size, 1000);
    assert_eq!(w.hasher.finish(), Digest::sha256_of(&data[..1000]));
    assert!(matches!(
        store.upload_sink("u1", 5, Algorithm::Sha256).await,
        Err(BlobStoreError::UploadOffsetMismatch { actual: 1000, .. })
    ));
    let w = write(store, "u1", 1000, &data[1000..]).await;
    assert_eq!(w.size, data.len() as u64);
    // The hash continues across sinks: the digest of all the bytes.
    assert_eq!(w.hasher.finish(), Digest::sha256_of(&data));
    assert_eq!(
        store.upload_size("u1").await.unwrap(),
        Some(data.len() as u64)
    );
    assert_eq!(upload_ids(store).await, vec!["u1".to_string()]);
    // Blobs are not uploads.
    assert!(store.list_blobs(None, 10).await.unwrap().is_empty());
}

pub async fn an_aborted_sink_leaves_the_upload_as_it_was(b: &dyn SuiteBackend) {
    let store = b.store();
    let data = pattern(200_000);
    store.create_upload("u1").await.unwrap();
    write(store, "u1", 0, &data).await;
    let mut sink = store
        .upload_sink("u1", data.len() as u64, Algorithm::Sha256)
        .await
        .unwrap();
    sink.write(vec![Bytes::from(vec![1u8; 300_000])])
        .await
        .unwrap();
    sink.abort().await.unwrap();
    assert_eq!(
        store.upload_size("u1").await.unwrap(),
        Some(data.len() as u64)
    );
    // And the saved hash is still that of the bytes before the aborted sink.
    let w = write(store, "u1", data.len() as u64, b"tail").await;
    let mut all = data.clone();
    all.extend_from_slice(b"tail");
    assert_eq!(w.hasher.finish(), Digest::sha256_of(&all));
    store
        .commit_upload("u1", &Digest::sha256_of(&all))
        .await
        .unwrap();
    assert_eq!(read_blob(store, &Digest::sha256_of(&all)).await, all);
}

pub async fn committed_blobs_read_back_whole_and_by_range(b: &dyn SuiteBackend) {
    let store = b.store();
    let data = pattern(300_000);
    let digest = put(store, "u1", &data).await;
    assert_eq!(digest, Digest::sha256_of(&data));
    assert!(store.upload_size("u1").await.unwrap().is_none());
    assert!(upload_ids(store).await.is_empty());
    assert_eq!(store.stat(&digest).await.unwrap(), Some(data.len() as u64));
    assert_eq!(read_blob(store, &digest).await, data);
    for (start, end) in [
        (131_000u64, 140_000u64),
        (0, 0),
        (0, 99),
        (299_999, 299_999),
        (1, 299_999),
    ] {
        let r = ByteRange { start, end };
        assert_eq!(
            collect(store.open(&digest, Some(r)).await.unwrap()).await,
            &data[start as usize..=end as usize],
            "range {start}-{end}"
        );
    }
    // A range running past the end stops at the end.
    let r = ByteRange {
        start: 299_000,
        end: 400_000,
    };
    assert_eq!(
        collect(store.open(&digest, Some(r)).await.unwrap()).await,
        &data[299_000..]
    );
}

pub async fn identical_content_deduplicates(b: &dyn SuiteBackend) {
    let store = b.store();
    let data = pattern(100_000);
    let digest = put(store, "u1", &data).await;
    let again = put(store, "u2", &data).await;
    assert_eq!(digest, again);
    assert!(store.upload_size("u2").await.unwrap().is_none());
    assert_eq!(read_blob(store, &digest).await, data);
    assert_eq!(store.list_blobs(None, 10).await.unwrap().len(), 1);
}

pub async fn the_empty_blob(b: &dyn SuiteBackend) {
    let store = b.store();
    let empty = Digest::sha256_of(b"");
    store.create_upload("u3").await.unwrap();
    store.commit_upload("u3", &empty).await.unwrap();
    assert_eq!(store.stat(&empty).await.unwrap(), Some(0));
    assert!(read_blob(store, &empty).await.is_empty());
    // An empty sink is an empty upload with the empty hash.
    store.create_upload("u4").await.unwrap();
    let sink = store.upload_sink("u4", 0, Algorithm::Sha256).await.unwrap();
    let w = sink.finish().await.unwrap();
    assert_eq!((w.size, w.hasher.finish()), (0, empty));
}

pub async fn abort_and_delete_are_idempotent(b: &dyn SuiteBackend) {
    let store = b.store();
    let data = pattern(10_000);
    let digest = put(store, "u1", &data).await;
    store.create_upload("u4").await.unwrap();
    write(store, "u4", 0, b"some bytes").await;
    store.abort_upload("u4").await.unwrap();
    store.abort_upload("u4").await.unwrap();
    assert!(store.upload_size("u4").await.unwrap().is_none());
    assert!(matches!(
        store.commit_upload("u4", &digest).await,
        Err(BlobStoreError::UploadNotFound(_))
    ));
    store.delete(&digest).await.unwrap();
    store.delete(&digest).await.unwrap();
    assert!(store.stat(&digest).await.unwrap().is_none());
    assert!(store.blob_info(&digest).await.unwrap().is_none());
    assert!(upload_ids(store).await.is_empty());
}

/// `list_blobs` pages through committed blobs in digest order and never shows uploads;
/// `blob_info` agrees with it.
pub async fn listing_pages_in_digest_order_without_uploads(b: &dyn SuiteBackend) {
    let store = b.store();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut expected = Vec::new();
    for i in 0..30u32 {
        let body = format!("listed blob {i}").repeat(i as usize + 1);
        let digest = put(store, &format!("l{i}"), body.as_bytes()).await;
        expected.push((digest, body.len() as u64));
    }
    // A SHA-512 blob sorts after every SHA-256 one.
    let long = b"sha512 content".to_vec();
    store.create_upload("l512").await.unwrap();
    let mut sink = store
        .upload_sink("l512", 0, Algorithm::Sha512)
        .await
        .unwrap();
    sink.write(vec![Bytes::from(long.clone())]).await.unwrap();
    let w = sink.finish().await.unwrap();
    assert_eq!(w.hasher.algorithm(), Algorithm::Sha512);
    let real512 = w.hasher.finish();
    store.commit_upload("l512", &real512).await.unwrap();
    expected.push((real512, long.len() as u64));
    expected.sort_by_key(|(d, _)| d.to_string());
    // An upload in progress is not a blob.
    store.create_upload("in-progress").await.unwrap();
    write(store, "in-progress", 0, b"partial").await;

    let mut seen = Vec::new();
    let mut after: Option<Digest> = None;
    loop {
        let page = store.list_blobs(after.as_ref(), 7).await.unwrap();
        assert!(page.len() <= 7);
        let Some(last) = page.last() else { break };
        after = Some(last.digest.clone());
        for info in &page {
            assert!(info.modified_ms >= before - 2_000, "{info:?}");
            let stat = store.blob_info(&info.digest).await.unwrap().unwrap();
            assert_eq!(&stat, info);
        }
        seen.extend(page.into_iter().map(|i| (i.digest, i.size)));
    }
    assert_eq!(seen, expected);
    let last = &expected.last().unwrap().0;
    assert!(store.list_blobs(Some(last), 10).await.unwrap().is_empty());
    let middle = &expected[15].0;
    let rest = store.list_blobs(Some(middle), 1000).await.unwrap();
    assert_eq!(rest.len(), expected.len() - 16);
    assert_eq!(rest[0].digest, expected[16].0);

    // Deleting leaves the upload alone and the listing without the blob.
    store.delete(&expected[3].0).await.unwrap();
    let all = store.list_blobs(None, 1000).await.unwrap();
    assert_eq!(all.len(), expected.len() - 1);
    assert!(all.iter().all(|i| i.digest != expected[3].0));
    assert_eq!(store.upload_size("in-progress").await.unwrap(), Some(7));
    assert_eq!(upload_ids(store).await, vec!["in-progress".to_string()]);
}

/// A chunked upload whose chunks go to different instances (nodes) completes with the
/// right digest: the hash state travels with the upload, not in any one process.
pub async fn another_instance_continues_an_upload(b: &dyn SuiteBackend) {
    let first = b.store();
    let second = b.another().await;
    let data = pattern(700_000);
    first.create_upload("shared").await.unwrap();
    write(first, "shared", 0, &data[..250_000]).await;
    assert_eq!(second.upload_size("shared").await.unwrap(), Some(250_000));
    let w = write(second.as_ref(), "shared", 250_000, &data[250_000..600_000]).await;
    assert_eq!(w.hasher.finish(), Digest::sha256_of(&data[..600_000]));
    let w = write(first, "shared", 600_000, &data[600_000..]).await;
    let digest = w.hasher.finish();
    assert_eq!(digest, Digest::sha256_of(&data));
    second.commit_upload("shared", &digest).await.unwrap();
    assert_eq!(read_blob(first, &digest).await, data);
    assert_eq!(read_blob(second.as_ref(), &digest).await, data);
}

/// A sink asked for another algorithm than the saved hash's (a client completing with a
/// SHA-512 digest) hashes the upload's bytes again.
pub async fn another_algorithm_rehashes_the_upload(b: &dyn SuiteBackend) {
    let store = b.store();
    let data = pattern(50_000);
    store.create_upload("u1").await.unwrap();
    write(store, "u1", 0, &data[..20_000]).await;
    let mut sink = store
        .upload_sink("u1", 20_000, Algorithm::Sha512)
        .await
        .unwrap();
    sink.write(vec![Bytes::copy_from_slice(&data[20_000..])])
        .await
        .unwrap();
    let w = sink.finish().await.unwrap();
    let mut expected = Algorithm::Sha512.hasher();
    expected.update(&data);
    let digest = w.hasher.finish();
    assert_eq!(digest, expected.finish());
    store.commit_upload("u1", &digest).await.unwrap();
    assert_eq!(read_blob(store, &digest).await, data);
}

/// A blob of several multipart parts (for S3 with a small part size), written through
/// several sinks in chunks that never line up with part boundaries.
pub async fn a_large_upload_in_odd_chunks(b: &dyn SuiteBackend) {
    let store = b.store();
    let data: Vec<u8> = {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..13 * 1024 * 1024 + 12_345)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    };
    store.create_upload("big").await.unwrap();
    let cuts = [
        0,
        1,
        3_000_001,
        7_340_032,
        7_340_033,
        11_000_000,
        data.len(),
    ];
    let mut w = None;
    for pair in cuts.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        w = Some(write_in(store, "big", from as u64, &data[from..to], 777_777).await);
    }
    let digest = w.unwrap().hasher.finish();
    assert_eq!(digest, Digest::sha256_of(&data));
    store.commit_upload("big", &digest).await.unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), Some(data.len() as u64));
    assert!(read_blob(store, &digest).await == data, "bytes differ");
    let r = ByteRange {
        start: 5 * 1024 * 1024 - 10,
        end: 10 * 1024 * 1024 + 10,
    };
    assert!(
        collect(store.open(&digest, Some(r)).await.unwrap()).await
            == data[r.start as usize..=r.end as usize],
        "a range across parts differs"
    );
}

/// Uploads are listed with the store's time of their last write, the same on every
/// instance: the sweeper of uploads without a metadata row goes by it, so another node's
/// sweep spares an upload that is being written.
pub async fn listed_uploads_carry_the_time_of_their_last_write(b: &dyn SuiteBackend) {
    let store = b.store();
    let second = b.another().await;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    // Store clocks (an S3 server's) may be a little off this process's and round to seconds.
    let slack = 5_000;
    let before = now();
    store.create_upload("timed").await.unwrap();
    let listed = store.list_uploads().await.unwrap();
    assert_eq!(listed.len(), 1);
    let created = listed[0].modified_ms;
    assert!(
        (before - slack..=now() + slack).contains(&created),
        "created at {created}, listed around {before}"
    );
    assert_eq!(second.list_uploads().await.unwrap(), listed);
    // A later write moves the time on (past a whole second, the coarsest store clock).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    write(store, "timed", 0, b"more bytes").await;
    let written = second.list_uploads().await.unwrap()[0].modified_ms;
    assert!(
        written > created,
        "written at {written}, created at {created}"
    );
}
