//! The behaviour every [`BlobStore`] backend must show. Each backend's tests call [`run`].

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
    assert!(store.list_uploads().await.unwrap().is_empty());
}
