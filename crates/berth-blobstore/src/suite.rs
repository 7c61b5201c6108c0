//! The behaviour every [`BlobStore`] backend must show. Each backend's tests call [`run`].
// A suite is test code that backends run from their tests: a failed unwrap is a failed case.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use futures::TryStreamExt;

use berth_types::Digest;

use crate::{BlobStore, BlobStoreError, ByteRange};

async fn collect(s: crate::ByteStream) -> Vec<u8> {
    let chunks: Vec<Bytes> = s.try_collect().await.expect("stream reads");
    chunks.concat()
}

async fn write(store: &dyn BlobStore, id: &str, offset: u64, data: &[u8]) -> u64 {
    let data = data.to_vec();
    let mut sink = store.upload_sink(id, offset).await.expect("sink opens");
    tokio::task::spawn_blocking(move || {
        sink.write_all(&data).unwrap();
        sink.finish().unwrap()
    })
    .await
    .unwrap()
}

/// Runs the whole suite against a fresh, empty store.
pub async fn run(store: &dyn BlobStore) {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256_of(&data);

    // Absent things.
    assert!(store.stat(&digest).await.unwrap().is_none());
    assert!(matches!(
        store.open(&digest, None).await,
        Err(BlobStoreError::BlobNotFound(_))
    ));
    assert!(store.upload_size("nope").await.unwrap().is_none());

    // An upload in two appends.
    store.create_upload("u1").await.unwrap();
    assert_eq!(store.upload_size("u1").await.unwrap(), Some(0));
    assert_eq!(write(store, "u1", 0, &data[..1000]).await, 1000);
    assert!(matches!(
        store.upload_sink("u1", 5).await,
        Err(BlobStoreError::UploadOffsetMismatch { actual: 1000, .. })
    ));
    assert_eq!(
        write(store, "u1", 1000, &data[1000..]).await,
        data.len() as u64
    );
    assert_eq!(collect(store.read_upload("u1").await.unwrap()).await, data);
    // An aborted sink leaves the upload as it was.
    let mut sink = store.upload_sink("u1", data.len() as u64).await.unwrap();
    tokio::task::spawn_blocking(move || {
        sink.write_all(&[1u8; 300_000]).unwrap();
        sink.abort().unwrap();
    })
    .await
    .unwrap();
    assert_eq!(
        store.upload_size("u1").await.unwrap(),
        Some(data.len() as u64)
    );
    assert_eq!(store.list_uploads().await.unwrap(), vec!["u1".to_string()]);

    // Commit and read back, whole and by range.
    store.commit_upload("u1", &digest).await.unwrap();
    assert!(store.upload_size("u1").await.unwrap().is_none());
    assert_eq!(store.stat(&digest).await.unwrap(), Some(data.len() as u64));
    assert_eq!(
        collect(store.open(&digest, None).await.unwrap()).await,
        data
    );
    let r = ByteRange {
        start: 131_000,
        end: 140_000,
    };
    assert_eq!(
        collect(store.open(&digest, Some(r)).await.unwrap()).await,
        &data[131_000..=140_000]
    );

    // A second upload of the same content deduplicates.
    store.create_upload("u2").await.unwrap();
    write(store, "u2", 0, &data).await;
    store.commit_upload("u2", &digest).await.unwrap();
    assert!(store.upload_size("u2").await.unwrap().is_none());
    assert_eq!(
        collect(store.open(&digest, None).await.unwrap()).await,
        data
    );

    // Empty blob.
    let empty = Digest::sha256_of(b"");
    store.create_upload("u3").await.unwrap();
    store.commit_upload("u3", &empty).await.unwrap();
    assert_eq!(store.stat(&empty).await.unwrap(), Some(0));
    assert!(collect(store.open(&empty, None).await.unwrap())
        .await
        .is_empty());

    // Abort and delete are idempotent.
    store.create_upload("u4").await.unwrap();
    store.abort_upload("u4").await.unwrap();
    store.abort_upload("u4").await.unwrap();
    assert!(matches!(
        store.commit_upload("u4", &digest).await,
        Err(BlobStoreError::UploadNotFound(_))
    ));
    store.delete(&digest).await.unwrap();
    store.delete(&digest).await.unwrap();
    assert!(store.stat(&digest).await.unwrap().is_none());
    assert!(store.blob_info(&digest).await.unwrap().is_none());
    assert!(store.list_uploads().await.unwrap().is_empty());

    listing(store, &empty).await;
}

/// `list_blobs` pages through committed blobs in digest order and never shows uploads;
/// `blob_info` agrees with it.
async fn listing(store: &dyn BlobStore, empty: &Digest) {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut expected = vec![(empty.clone(), 0u64)];
    for i in 0..40u32 {
        let body = format!("listed blob {i}").repeat(i as usize + 1);
        let digest = Digest::sha256_of(body.as_bytes());
        let id = format!("l{i}");
        store.create_upload(&id).await.unwrap();
        write(store, &id, 0, body.as_bytes()).await;
        store.commit_upload(&id, &digest).await.unwrap();
        expected.push((digest, body.len() as u64));
    }
    // A SHA-512 blob sorts after every SHA-256 one.
    let long = b"sha512 content".to_vec();
    let d512: Digest = format!("sha512:{}", "ab".repeat(64)).parse().unwrap();
    store.create_upload("l512").await.unwrap();
    write(store, "l512", 0, &long).await;
    store.commit_upload("l512", &d512).await.unwrap();
    expected.push((d512.clone(), long.len() as u64));
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
    assert!(store.list_blobs(Some(&d512), 10).await.unwrap().is_empty());
    let middle = &expected[20].0;
    let rest = store.list_blobs(Some(middle), 1000).await.unwrap();
    assert_eq!(rest.len(), expected.len() - 21);
    assert_eq!(rest[0].digest, expected[21].0);

    // Deleting leaves the upload alone and the listing without the blob.
    store.delete(&expected[3].0).await.unwrap();
    let all = store.list_blobs(None, 1000).await.unwrap();
    assert_eq!(all.len(), expected.len() - 1);
    assert!(all.iter().all(|i| i.digest != expected[3].0));
    assert_eq!(store.upload_size("in-progress").await.unwrap(), Some(7));
    store.abort_upload("in-progress").await.unwrap();
}
