//! Service-level tests of the core against the embedded backends.

use std::sync::Arc;

use bytes::Bytes;
use futures::{stream, TryStreamExt};

use berth_blobstore::DiskBlobStore;
use berth_meta::sqlite::SqliteMetaStore;
use berth_types::{Digest, Reference, RepositoryName};

use crate::{resolve_range, Registry, RegistryError, RegistryOptions};

fn registry(dir: &std::path::Path) -> Registry {
    let meta = SqliteMetaStore::open(dir.join("meta.db")).unwrap();
    let blobs = DiskBlobStore::open(dir).unwrap();
    Registry::new(Arc::new(meta), Arc::new(blobs), RegistryOptions::default())
}

fn body(parts: &[&[u8]]) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    let v: Vec<std::io::Result<Bytes>> = parts
        .iter()
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    stream::iter(v)
}

async fn read_all(r: &Registry, repo: &RepositoryName, d: &Digest) -> Vec<u8> {
    let b = r.open_blob(repo, d, None).await.unwrap();
    let chunks: Vec<Bytes> = b.stream.try_collect().await.unwrap();
    chunks.concat()
}

#[tokio::test]
async fn chunked_upload_survives_a_restart_and_verifies_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::test_repo("a/b");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let digest = Digest::sha256_of(&data);
    let id = {
        let r = registry(dir.path());
        let st = r.start_upload(&repo).await.unwrap();
        let st2 = r
            .append_upload(&repo, &st.id, Some(0), body(&[&data[..400_000]]))
            .await
            .unwrap();
        assert_eq!(st2.offset, 400_000);
        // Out of order is refused without changing anything.
        assert!(matches!(
            r.append_upload(&repo, &st.id, Some(10), body(&[b"x"]))
                .await,
            Err(RegistryError::UploadOutOfOrder {
                current: 400_000,
                ..
            })
        ));
        st.id
    };
    // "Restart": a new Registry over the same directory rebuilds the hash state.
    let r = registry(dir.path());
    assert_eq!(r.upload_status(&repo, &id).await.unwrap().offset, 400_000);
    let other = crate::test_repo("other");
    assert!(matches!(
        r.upload_status(&other, &id).await,
        Err(RegistryError::UploadNotFound(_))
    ));
    let size = r
        .complete_upload(&repo, &id, &digest, None, body(&[&data[400_000..]]))
        .await
        .unwrap();
    assert_eq!(size, data.len() as u64);
    assert_eq!(read_all(&r, &repo, &digest).await, data);
    // Invisible elsewhere until mounted.
    assert!(r.blob_size(&other, &digest).await.is_err());
    assert_eq!(
        r.mount_blob(&other, &repo, &digest).await.unwrap(),
        Some(data.len() as u64)
    );
    assert_eq!(read_all(&r, &other, &digest).await, data);
}

#[tokio::test]
async fn wrong_digest_is_refused_and_nothing_is_linked() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path());
    let repo = crate::test_repo("x");
    let wrong = Digest::sha256_of(b"something else");
    assert!(matches!(
        r.push_blob(&repo, &wrong, body(&[b"hello"])).await,
        Err(RegistryError::DigestMismatch { .. })
    ));
    assert!(r.blob_size(&repo, &wrong).await.is_err());
    let sha512 = Digest::of(berth_types::Algorithm::Sha512, b"hello");
    let st = r.start_upload(&repo).await.unwrap();
    r.append_upload(&repo, &st.id, None, body(&[b"hel", b"lo"]))
        .await
        .unwrap();
    r.complete_upload(&repo, &st.id, &sha512, None, body(&[]))
        .await
        .unwrap();
    assert_eq!(r.blob_size(&repo, &sha512).await.unwrap(), 5);
}

#[tokio::test]
async fn manifests_tags_and_cache_stay_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path());
    let repo = crate::test_repo("img");
    let cfg = b"{}";
    let cfg_d = Digest::sha256_of(cfg);
    r.push_blob(&repo, &cfg_d, body(&[cfg])).await.unwrap();
    let m = |n: u32| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{cfg_d}","size":2}},"layers":[],"annotations":{{"n":"{n}"}}}}"#
        )
    };
    let tag: Reference = "latest".parse().unwrap();
    let p1 = r
        .put_manifest(&repo, &tag, None, Bytes::from(m(1)))
        .await
        .unwrap();
    assert_eq!(r.get_manifest(&repo, &tag).await.unwrap().digest, p1.digest);
    let p2 = r
        .put_manifest(&repo, &tag, None, Bytes::from(m(2)))
        .await
        .unwrap();
    assert_eq!(r.get_manifest(&repo, &tag).await.unwrap().digest, p2.digest);
    r.delete_manifest(&repo, &Reference::Digest(p2.digest.clone()))
        .await
        .unwrap();
    assert!(matches!(
        r.get_manifest(&repo, &tag).await,
        Err(RegistryError::ManifestNotFound(_))
    ));
    assert!(r
        .get_manifest(&repo, &Reference::Digest(p2.digest.clone()))
        .await
        .is_err());
    assert!(r
        .get_manifest(&repo, &Reference::Digest(p1.digest.clone()))
        .await
        .is_ok());

    // Deleting the repository (forced: it holds an image) drops its cached manifests.
    assert!(matches!(
        r.delete_repository(&repo, false).await,
        Err(berth_meta::MetaError::RepositoryNotEmpty(_))
    ));
    r.delete_repository(&repo, true).await.unwrap();
    assert!(r
        .get_manifest(&repo, &Reference::Digest(p1.digest))
        .await
        .is_err());
}

/// Two processes on one store: what one changes, the other's cache forgets once its
/// follower has read the outbox (before that it may still serve the cached manifest).
#[tokio::test]
async fn the_cache_follower_applies_other_processes_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, other) = (registry(dir.path()), registry(dir.path()));
    let repo = crate::test_repo("shared/app");
    let cfg = b"{}";
    let cfg_d = Digest::sha256_of(cfg);
    server.push_blob(&repo, &cfg_d, body(&[cfg])).await.unwrap();
    let m = |n: u32| {
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{cfg_d}","size":2}},"layers":[],"annotations":{{"n":"{n}"}}}}"#
        ))
    };
    let tag: Reference = "v1".parse().unwrap();
    let first = server.put_manifest(&repo, &tag, None, m(1)).await.unwrap();
    let mut cursor =
        crate::cache_follower::OutboxCursor::new(server.inner.meta.last_event_id().await.unwrap());
    let start = cursor.last();
    // The server caches the tag and the manifest.
    assert_eq!(
        server.get_manifest(&repo, &tag).await.unwrap().digest,
        first.digest
    );
    let by_digest = Reference::Digest(first.digest.clone());
    server.get_manifest(&repo, &by_digest).await.unwrap();

    // The other process moves the tag, then deletes the first image.
    let second = other.put_manifest(&repo, &tag, None, m(2)).await.unwrap();
    other.delete_manifest(&repo, &by_digest).await.unwrap();
    assert_eq!(
        server.get_manifest(&repo, &tag).await.unwrap().digest,
        first.digest,
        "without following, the cache is stale"
    );
    server.follow_events(&mut cursor).await;
    let last = cursor.last();
    assert!(last > start);
    assert_eq!(
        server.get_manifest(&repo, &tag).await.unwrap().digest,
        second.digest
    );
    assert!(matches!(
        server.get_manifest(&repo, &by_digest).await,
        Err(RegistryError::ManifestNotFound(_))
    ));
    // Nothing new: the follower stays where it was.
    server.follow_events(&mut cursor).await;
    assert_eq!(cursor.last(), last);
}

/// The catalog snapshot never hides a change: pages after pushes and deletes, in and out
/// of the rebuild interval, always match the store.
#[tokio::test]
async fn catalog_pages_follow_pushes_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path());
    let account = crate::test_repo("x").account();
    let cfg = b"{}";
    let cfg_d = Digest::sha256_of(cfg);
    let m = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{cfg_d}","size":2}},"layers":[]}}"#
    ));
    let tag: Reference = "v1".parse().unwrap();
    let mut expected = Vec::new();
    for (i, name) in ["b", "d", "a", "c/x"].iter().enumerate() {
        let repo = crate::test_repo(name);
        r.push_blob(&repo, &cfg_d, body(&[cfg])).await.unwrap();
        r.put_manifest(&repo, &tag, None, m.clone()).await.unwrap();
        expected.push(name.to_string());
        expected.sort();
        assert_eq!(
            r.catalog(account, None, None).await.unwrap().items,
            expected
        );
        let second = r
            .catalog(account, Some(1), Some(&expected[0]))
            .await
            .unwrap();
        assert_eq!(
            second.items,
            expected[1..].iter().take(1).cloned().collect::<Vec<_>>()
        );
        if i % 2 == 1 {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
    // Served from a snapshot now; a delete still shows at once.
    assert_eq!(
        r.catalog(account, None, None).await.unwrap().items,
        expected
    );
    r.delete_repository(&crate::test_repo("b"), true)
        .await
        .unwrap();
    assert_eq!(
        r.catalog(account, None, None).await.unwrap().items,
        vec!["a".to_string(), "c/x".into(), "d".into()]
    );
    let other: berth_types::AccountId = "999999999999".parse().unwrap();
    assert!(r.catalog(other, None, None).await.unwrap().items.is_empty());
}

#[test]
fn ranges() {
    let ok = |s, e, size| resolve_range((s, e), size).map(|r| (r.start, r.end)).ok();
    assert_eq!(ok(Some(0), Some(9), 100), Some((0, 9)));
    assert_eq!(ok(Some(90), None, 100), Some((90, 99)));
    assert_eq!(ok(Some(90), Some(500), 100), Some((90, 99)));
    assert_eq!(ok(None, Some(10), 100), Some((90, 99)));
    assert_eq!(ok(None, Some(1000), 100), Some((0, 99)));
    assert_eq!(ok(Some(100), None, 100), None);
    assert_eq!(ok(Some(5), Some(4), 100), None);
    assert_eq!(ok(None, Some(0), 100), None);
    assert_eq!(ok(Some(0), None, 0), None);
}

#[tokio::test]
async fn abandoned_uploads_and_orphan_files_expire() {
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::test_repo("x");
    let id = {
        let r = registry(dir.path());
        let st = r.start_upload(&repo).await.unwrap();
        r.append_upload(&repo, &st.id, None, body(&[b"abc"]))
            .await
            .unwrap();
        // Nothing is idle for an hour yet.
        assert_eq!(
            r.expire_uploads(std::time::Duration::from_secs(3600))
                .await
                .unwrap(),
            0
        );
        st.id
    };
    // An orphan upload file (as a crash during a monolithic push leaves it).
    std::fs::write(dir.path().join("uploads").join("0rphan-file"), b"partial").unwrap();
    let r = registry(dir.path());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(
        r.expire_uploads(std::time::Duration::from_millis(1))
            .await
            .unwrap(),
        2
    );
    assert!(matches!(
        r.upload_status(&repo, &id).await,
        Err(RegistryError::UploadNotFound(_))
    ));
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn stats_count_cache_lookups_and_open_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path());
    let repo = crate::test_repo("stats");
    assert_eq!(r.stats(), crate::RegistryStats::default());
    let st = r.start_upload(&repo).await.unwrap();
    assert_eq!(r.stats().uploads_in_progress, 1);
    r.cancel_upload(&repo, &st.id).await.unwrap();
    assert_eq!(r.stats().uploads_in_progress, 0);

    let cfg = b"{}";
    let cfg_d = Digest::sha256_of(cfg);
    r.push_blob(&repo, &cfg_d, body(&[cfg])).await.unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{cfg_d}","size":2}},"layers":[]}}"#
    );
    let tag: Reference = "latest".parse().unwrap();
    r.put_manifest(&repo, &tag, None, Bytes::from(manifest))
        .await
        .unwrap();
    let before = r.stats();
    // The first read fills the cache, the second is served from it.
    r.get_manifest(&repo, &tag).await.unwrap();
    r.get_manifest(&repo, &tag).await.unwrap();
    let after = r.stats();
    assert_eq!(after.tag_cache_misses - before.tag_cache_misses, 1);
    assert_eq!(after.tag_cache_hits - before.tag_cache_hits, 1);
    assert_eq!(
        after.manifest_cache_misses - before.manifest_cache_misses,
        1
    );
    assert_eq!(after.manifest_cache_hits - before.manifest_cache_hits, 1);
}

/// The core compares every config and layer descriptor's size with the stored blob's
/// before the push transaction: 999 for 1,000 bytes, or 2^63, is refused and nothing is stored.
#[tokio::test]
async fn descriptor_sizes_are_checked_against_stored_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path());
    let repo = crate::test_repo("sizes");
    let layer = vec![7u8; 1000];
    let layer_d = Digest::sha256_of(&layer);
    r.push_blob(&repo, &layer_d, body(&[&layer])).await.unwrap();
    let cfg = b"{}";
    let cfg_d = Digest::sha256_of(cfg);
    r.push_blob(&repo, &cfg_d, body(&[cfg])).await.unwrap();
    let m = |layer_size: u64| {
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg_d}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_d}","size":{layer_size}}}]}}"#
        ))
    };
    let tag: Reference = "t".parse().unwrap();
    for declared in [999, 1 << 63, u64::MAX] {
        match r.put_manifest(&repo, &tag, None, m(declared)).await {
            Err(RegistryError::DescriptorSizeMismatch {
                digest,
                declared: d,
                stored: 1000,
            }) => {
                assert_eq!(digest, layer_d);
                assert_eq!(d, declared);
            }
            other => panic!("{declared}: {other:?}"),
        }
    }
    assert!(matches!(
        r.get_manifest(&repo, &tag).await,
        Err(RegistryError::ManifestNotFound(_))
    ));
    r.put_manifest(&repo, &tag, None, m(1000)).await.unwrap();
}

/// Two `Registry` values on one data directory stand in for two nodes sharing their
/// stores: node B knows nothing of node A's requests, yet its sweep (periodic, or at its
/// start) must spare A's single-request push, which has no upload row, and still remove
/// an upload abandoned for longer than the idle limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_sweep_spares_a_push_in_flight_and_removes_abandoned_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::test_repo("cluster/sweep");
    let node_a = Arc::new(registry(dir.path()));
    let node_b = registry(dir.path());
    let data: Vec<u8> = (0..600_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let digest = Digest::sha256_of(&data);

    // Node A's push sends its first half, then stalls (a slow client).
    let (tx, rx) = futures::channel::mpsc::unbounded::<std::io::Result<Bytes>>();
    tx.unbounded_send(Ok(Bytes::copy_from_slice(&data[..300_000])))
        .unwrap();
    let push = tokio::spawn({
        let (node_a, repo, digest) = (node_a.clone(), repo.clone(), digest.clone());
        async move { node_a.push_blob(&repo, &digest, rx).await }
    });
    let uploads = dir.path().join("uploads");
    let written = |n: u64| {
        std::fs::read_dir(&uploads)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.metadata().unwrap().len() == n)
    };
    for _ in 0..500 {
        if written(300_000) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(written(300_000), "node A's push never reached the store");

    // An upload abandoned two hours ago, without a row (a node died mid-push).
    let abandoned = uploads.join("0ld-orphan");
    std::fs::write(&abandoned, b"partial").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&abandoned)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();

    // Node B sweeps with a one-hour limit: only the abandoned upload goes.
    assert_eq!(
        node_b
            .expire_uploads(std::time::Duration::from_secs(3600))
            .await
            .unwrap(),
        1
    );
    assert!(!abandoned.exists());

    // Node A's push finishes and its blob is whole.
    tx.unbounded_send(Ok(Bytes::copy_from_slice(&data[300_000..])))
        .unwrap();
    drop(tx);
    assert_eq!(push.await.unwrap().unwrap(), data.len() as u64);
    assert_eq!(read_all(&node_b, &repo, &digest).await, data);
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0);
}

/// The staleness bound across nodes: two `Registry` values on one metadata database stand
/// in for two nodes. Node B runs its follower as `berth serve` does; a tag moved through
/// node A is served by B within one follow interval (with slack for a loaded machine),
/// while a node without a follower keeps serving its cached, stale answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_moved_on_one_node_is_served_by_another_within_the_follow_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (node_a, node_c) = (registry(dir.path()), registry(dir.path()));
    let node_b = Arc::new(registry(dir.path()));
    let repo = crate::test_repo("cluster/app");
    let cfg = b"{}";
    let cfg_d = Digest::sha256_of(cfg);
    node_a.push_blob(&repo, &cfg_d, body(&[cfg])).await.unwrap();
    let m = |n: u32| {
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{cfg_d}","size":2}},"layers":[],"annotations":{{"n":"{n}"}}}}"#
        ))
    };
    let tag: Reference = "prod".parse().unwrap();
    let first = node_a.put_manifest(&repo, &tag, None, m(1)).await.unwrap();
    // B and C cache the tag.
    for node in [&*node_b, &node_c] {
        assert_eq!(
            node.get_manifest(&repo, &tag).await.unwrap().digest,
            first.digest
        );
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = tokio::spawn({
        let node_b = node_b.clone();
        async move {
            node_b
                .follow_cache(crate::CACHE_FOLLOW_EVERY, async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    // Let the follower find the outbox's end before the move.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let moved = std::time::Instant::now();
    let second = node_a.put_manifest(&repo, &tag, None, m(2)).await.unwrap();
    let bound = crate::CACHE_FOLLOW_EVERY * 2 + std::time::Duration::from_secs(2);
    loop {
        let served = node_b
            .get_manifest(&repo, &tag)
            .await
            .unwrap()
            .digest
            .clone();
        if served == second.digest {
            break;
        }
        assert_eq!(served, first.digest);
        assert!(
            moved.elapsed() < bound,
            "node B still served the old tag {:?} after the move",
            moved.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Without a follower the cache stays stale: the follower is what keeps nodes coherent.
    assert_eq!(
        node_c.get_manifest(&repo, &tag).await.unwrap().digest,
        first.digest
    );
    stop.send(()).unwrap();
    follower.await.unwrap();
}

/// At the start of a process that alone writes its store, an upload without a row is what
/// its own crash cut off and goes at once; an upload with a row waits for the idle limit.
#[tokio::test]
async fn the_start_of_a_sole_writer_removes_its_crashs_uploads_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::test_repo("solo");
    let r = registry(dir.path());
    let open = r.start_upload(&repo).await.unwrap();
    let cut_off = dir.path().join("uploads").join("cut-0ff");
    std::fs::write(&cut_off, b"partial").unwrap();
    let hour = std::time::Duration::from_secs(3600);
    // A sweep that other nodes may share spares the young upload...
    assert_eq!(r.expire_uploads(hour).await.unwrap(), 0);
    assert!(cut_off.exists());
    // ...the sole writer's start-up sweep does not.
    assert_eq!(r.expire_uploads_of_own_crash(hour).await.unwrap(), 1);
    assert!(!cut_off.exists());
    assert_eq!(r.upload_status(&repo, &open.id).await.unwrap().offset, 0);
}
