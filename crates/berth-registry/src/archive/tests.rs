//! Archiving and restoring against the embedded backends: which standard copies go,
//! what pulls answer, that a restore is byte-identical, and that garbage collection and
//! concurrent pushes keep their guarantees.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{stream, TryStreamExt};

use berth_blobstore::{ArchiveTier, BlobStore, DiskArchive, DiskBlobStore};
use berth_meta::archive::ImageStatus;
use berth_meta::sqlite::SqliteMetaStore;
use berth_types::{Digest, Reference, RepositoryName};

use crate::gc::GcOptions;
use crate::{Registry, RegistryError, RegistryOptions};

struct Fixture {
    registry: Registry,
    blobs: DiskBlobStore,
    archive: DiskArchive,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
    let blobs = DiskBlobStore::open(dir.path()).unwrap();
    let archive = DiskArchive::open(dir.path().join("archive"), true).unwrap();
    let registry = Registry::new(
        Arc::new(meta),
        Arc::new(blobs.clone()),
        RegistryOptions::default(),
    );
    registry.set_archive_tier(Arc::new(archive.clone()));
    Fixture {
        registry,
        blobs,
        archive,
        _dir: dir,
    }
}

fn repo(s: &str) -> RepositoryName {
    crate::test_repo(s)
}

async fn push(r: &Registry, repo: &RepositoryName, data: &[u8]) -> Digest {
    let d = Digest::sha256_of(data);
    let body = stream::iter(vec![Ok::<_, std::io::Error>(Bytes::copy_from_slice(data))]);
    r.push_blob(repo, &d, body).await.unwrap();
    d
}

fn manifest_body(cfg: &[u8], layers: &[&[u8]]) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|l| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}"#,
                Digest::sha256_of(l),
                l.len()
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]}}"#,
        Digest::sha256_of(cfg),
        cfg.len(),
        layers.join(",")
    )
}

async fn image(
    r: &Registry,
    repo: &RepositoryName,
    tag: &str,
    cfg: &[u8],
    layers: &[&[u8]],
) -> Digest {
    push(r, repo, cfg).await;
    for l in layers {
        push(r, repo, l).await;
    }
    let reference: Reference = tag.parse().unwrap();
    r.put_manifest(
        repo,
        &reference,
        None,
        Bytes::from(manifest_body(cfg, layers)),
    )
    .await
    .unwrap()
    .digest
}

async fn read(r: &Registry, repo: &RepositoryName, d: &Digest) -> Result<Vec<u8>, RegistryError> {
    let b = r.open_blob(repo, d, None).await?;
    let chunks: Vec<Bytes> = b.stream.try_collect().await.unwrap();
    Ok(chunks.concat())
}

async fn status(r: &Registry, repo: &RepositoryName, d: &Digest) -> ImageStatus {
    r.meta()
        .image_storage(repo, std::slice::from_ref(d))
        .await
        .unwrap()[0]
        .unwrap()
        .status
}

async fn wait_active(r: &Registry, repo: &RepositoryName, d: &Digest) {
    for _ in 0..500 {
        if status(r, repo, d).await == ImageStatus::Active {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the restore of {d} did not finish");
}

fn layer(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_drops_unshared_bytes_refuses_pulls_and_restores_byte_identical() {
    let f = fixture();
    let r = &f.registry;
    let app = repo("team/app");
    let (shared, own, other) = (layer(300_000, 1), layer(200_000, 2), layer(1000, 3));
    let m1 = image(r, &app, "old", b"cfg-old", &[&shared, &own]).await;
    let m2 = image(r, &app, "new", b"cfg-new", &[&shared, &other]).await;
    let (sd, od) = (Digest::sha256_of(&shared), Digest::sha256_of(&own));
    let old: Reference = "old".parse().unwrap();
    // Cache the manifest first: archiving must invalidate it.
    r.get_manifest(&app, &old).await.unwrap();

    r.archive_image(&app, &m1).await.unwrap();
    assert_eq!(status(r, &app, &m1).await, ImageStatus::Archived);
    // The unshared layer and config left the blob store; the shared layer stayed.
    assert_eq!(f.blobs.stat(&od).await.unwrap(), None);
    assert_eq!(
        f.blobs.stat(&Digest::sha256_of(b"cfg-old")).await.unwrap(),
        None
    );
    assert_eq!(f.blobs.stat(&sd).await.unwrap(), Some(300_000));
    assert!(f.archive.stat(&od).await.unwrap().is_some());
    assert!(f.archive.stat(&sd).await.unwrap().is_some());

    // Pulls: the archived manifest (by tag and digest) and its own layer are refused with
    // the clear error; the other image and the shared layer pull fine.
    for reference in [old.clone(), Reference::Digest(m1.clone())] {
        let err = r.get_manifest(&app, &reference).await.unwrap_err();
        assert!(
            matches!(
                err,
                RegistryError::ImageArchived {
                    restoring: false,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("--target-storage-class STANDARD"),
            "{err}"
        );
    }
    let err = read(r, &app, &od).await.unwrap_err();
    assert!(matches!(err, RegistryError::BlobArchived(_)), "{err:?}");
    assert_eq!(
        r.get_manifest(&app, &"new".parse().unwrap())
            .await
            .unwrap()
            .digest,
        m2
    );
    assert_eq!(read(r, &app, &sd).await.unwrap(), shared);

    // Archiving again, restoring an active image: refused (the lifecycle's variant
    // reports "nothing done" instead).
    assert!(!r.archive_if_active(&app, &m1).await.unwrap());
    assert!(!r
        .archive_if_active(&app, &Digest::sha256_of(b"gone"))
        .await
        .unwrap());
    let err = r.archive_image(&app, &m1).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::StorageClassUnchanged(_)),
        "{err:?}"
    );
    let err = r.restore_image(&app, &m2).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::StorageClassUnchanged(_)),
        "{err:?}"
    );
    let err = r
        .archive_image(&app, &Digest::sha256_of(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::ManifestNotFound(_)), "{err:?}");

    // Restore: ACTIVATING at once, then ACTIVE with the bytes back, byte-identical.
    assert_eq!(
        r.restore_image(&app, &m1).await.unwrap(),
        ImageStatus::Activating
    );
    wait_active(r, &app, &m1).await;
    assert_eq!(r.get_manifest(&app, &old).await.unwrap().digest, m1);
    assert_eq!(read(r, &app, &od).await.unwrap(), own);
    assert_eq!(
        read(r, &app, &Digest::sha256_of(b"cfg-old")).await.unwrap(),
        b"cfg-old"
    );
    let st = r
        .meta()
        .image_storage(&app, std::slice::from_ref(&m1))
        .await
        .unwrap()[0]
        .unwrap();
    assert!(
        st.archived_ms.is_some() && st.activated_ms >= st.archived_ms,
        "{st:?}"
    );

    // The sweep then deletes the copies no archived image needs.
    let sweep = r.sweep_archive().await.unwrap();
    assert_eq!(sweep.copies_deleted.len(), 3);
    assert_eq!(f.archive.stat(&od).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_layer_goes_once_every_image_using_it_is_archived_and_gc_keeps_archived_blobs() {
    let f = fixture();
    let r = &f.registry;
    let (a, b) = (repo("a/one"), repo("b/two"));
    let shared = layer(50_000, 9);
    let sd = Digest::sha256_of(&shared);
    let m1 = image(r, &a, "v1", b"cfg-1", &[&shared]).await;
    let m2 = image(r, &b, "v1", b"cfg-2", &[&shared]).await;
    r.archive_image(&a, &m1).await.unwrap();
    assert!(f.blobs.stat(&sd).await.unwrap().is_some());
    r.archive_image(&b, &m2).await.unwrap();
    assert_eq!(f.blobs.stat(&sd).await.unwrap(), None);

    // Garbage collection with no grace neither deletes the archived images' rows nor
    // trips over the missing standard copies.
    r.garbage_collector()
        .run(GcOptions {
            grace: Duration::ZERO,
            dry_run: false,
            duty: None,
            file_scan_every: None,
        })
        .await
        .unwrap();
    r.restore_image(&b, &m2).await.unwrap();
    wait_active(r, &b, &m2).await;
    assert_eq!(read(r, &b, &sd).await.unwrap(), shared);
    // m1 is still archived in `a`: its link there stays gone.
    assert!(matches!(
        read(r, &a, &sd).await.unwrap_err(),
        RegistryError::BlobArchived(_)
    ));

    // Deleting the archived image lets the sweep delete the copies no archived image
    // needs any more: all three (m2 was restored).
    r.delete_manifest(&a, &Reference::Digest(m1)).await.unwrap();
    let sweep = r.sweep_archive().await.unwrap();
    assert_eq!(sweep.copies_deleted.len(), 3, "{sweep:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_reusing_an_archived_layer_uploads_it_again() {
    let f = fixture();
    let r = &f.registry;
    let app = repo("team/app");
    let l = layer(10_000, 4);
    let m1 = image(r, &app, "v1", b"cfg", &[&l]).await;
    r.archive_image(&app, &m1).await.unwrap();
    // A client's HEAD finds nothing (the link went with the standard copy) ...
    assert!(matches!(
        r.blob_size(&app, &Digest::sha256_of(&l)).await,
        Err(RegistryError::BlobNotFound(_))
    ));
    // ... a manifest naming it without uploading is refused ...
    let err = r
        .put_manifest(
            &app,
            &"v2".parse().unwrap(),
            None,
            Bytes::from(manifest_body(b"cfg", &[&l])),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::ManifestBlobUnknown(_)),
        "{err:?}"
    );
    // ... and after uploading again the new image pulls, while the archived one stays
    // archived and the sweep leaves the re-uploaded bytes alone (an ACTIVE image uses them).
    let m2 = image(r, &app, "v2", b"cfg2", &[&l]).await;
    r.sweep_archive().await.unwrap();
    assert_eq!(read(r, &app, &Digest::sha256_of(&l)).await.unwrap(), l);
    assert_eq!(
        r.get_manifest(&app, &"v2".parse().unwrap())
            .await
            .unwrap()
            .digest,
        m2
    );
    assert_eq!(status(r, &app, &m1).await, ImageStatus::Archived);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_restore_is_resumed() {
    let f = fixture();
    let r = &f.registry;
    let app = repo("team/app");
    let l = layer(70_000, 5);
    let m1 = image(r, &app, "v1", b"cfg", &[&l]).await;
    r.archive_image(&app, &m1).await.unwrap();
    // As if a process died after marking the image ACTIVATING.
    r.meta().begin_activation(&app, &m1).await.unwrap();
    assert_eq!(status(r, &app, &m1).await, ImageStatus::Activating);
    let err = r
        .get_manifest(&app, &"v1".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::ImageArchived {
                restoring: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(r.resume_activations().await.unwrap(), 1);
    wait_active(r, &app, &m1).await;
    assert_eq!(read(r, &app, &Digest::sha256_of(&l)).await.unwrap(), l);
}

#[tokio::test]
async fn without_an_archive_tier_archiving_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
    let blobs = DiskBlobStore::open(dir.path()).unwrap();
    let r = Registry::new(Arc::new(meta), Arc::new(blobs), RegistryOptions::default());
    let app = repo("team/app");
    let m = image(&r, &app, "v1", b"cfg", &[b"l"]).await;
    assert!(matches!(
        r.archive_image(&app, &m).await,
        Err(RegistryError::Unsupported(_))
    ));
}

/// Pushes of images reusing a layer (by HEAD-skip, by mount and by upload) while every
/// image using that layer is archived again and again (so its standard copy is dropped
/// under the pushes), with sweeps and garbage collection with no grace, all at once:
/// every push either succeeds or is refused and retried as a client would, and afterwards
/// every acknowledged image, once restored, pulls intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_mounts_archiving_and_gc_never_break_an_active_image() {
    let f = fixture();
    let r = f.registry.clone();
    let (src, dst) = (repo("race/src"), repo("race/dst"));
    let shared = layer(40_000, 42);
    let sd = Digest::sha256_of(&shared);
    let base = image(&r, &src, "base", b"cfg-base", &[&shared]).await;
    let acknowledged = Arc::new(parking_lot::Mutex::new(vec![(src.clone(), base)]));
    let pushing = Arc::new(std::sync::atomic::AtomicBool::new(true));

    let archiver = {
        let (r, acknowledged, pushing) = (r.clone(), acknowledged.clone(), pushing.clone());
        tokio::spawn(async move {
            let mut rounds = 0;
            while pushing.load(std::sync::atomic::Ordering::Acquire) || rounds < 3 {
                let images = acknowledged.lock().clone();
                for (repo, digest) in &images {
                    r.archive_if_active(repo, digest).await.unwrap();
                }
                r.sweep_archive().await.unwrap();
                // Restore one, so that restores race with the pushes too.
                let (repo, digest) = &images[rounds % images.len()];
                r.restore_image(repo, digest).await.unwrap();
                wait_active(&r, repo, digest).await;
                rounds += 1;
            }
            rounds
        })
    };
    let collector = {
        let (gc, pushing) = (r.garbage_collector(), pushing.clone());
        tokio::spawn(async move {
            while pushing.load(std::sync::atomic::Ordering::Acquire) {
                gc.run(GcOptions {
                    grace: Duration::ZERO,
                    dry_run: false,
                    duty: None,
                    file_scan_every: None,
                })
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut pushers = Vec::new();
    for worker in 0..2u8 {
        let r = r.clone();
        let (src, dst) = (src.clone(), dst.clone());
        let (shared, sd, acknowledged) = (shared.clone(), sd.clone(), acknowledged.clone());
        pushers.push(tokio::spawn(async move {
            let mut pushed = Vec::new();
            for i in 0..20u8 {
                // Alternate repositories: `src` skips the upload when a HEAD finds the
                // layer; `dst` mounts it from `src`. A manifest refused because a blob
                // went meanwhile (to the archive, or a fresh upload's link to collection
                // with no grace) is retried after pushing that blob, as a client would.
                let target = if i % 2 == 0 { &src } else { &dst };
                let own = layer(500 + i as usize, worker * 50 + i);
                let cfg = format!("cfg-{worker}-{i}").into_bytes();
                push(&r, target, &cfg).await;
                push(&r, target, &own).await;
                let present = if i % 2 == 0 {
                    r.blob_size(target, &sd).await.is_ok()
                } else {
                    r.mount_blob(target, &src, &sd).await.unwrap().is_some()
                };
                if !present {
                    push(&r, target, &shared).await;
                }
                let tag: Reference = format!("w{worker}-{i}").parse().unwrap();
                let body = manifest_body(&cfg, &[&shared, &own]);
                let mut retries = 0;
                let digest = loop {
                    match r
                        .put_manifest(target, &tag, None, Bytes::from(body.clone()))
                        .await
                    {
                        Ok(p) => break p.digest,
                        Err(RegistryError::ManifestBlobUnknown(missing)) => {
                            retries += 1;
                            assert!(retries < 100, "a push kept being refused");
                            let blob = [&shared, &own, &cfg]
                                .into_iter()
                                .find(|b| Digest::sha256_of(b) == missing)
                                .expect("the manifest names only these blobs");
                            push(&r, target, blob).await;
                        }
                        Err(e) => panic!("push failed: {e:?}"),
                    }
                };
                acknowledged.lock().push((target.clone(), digest.clone()));
                pushed.push((target.clone(), digest, cfg, own));
            }
            pushed
        }));
    }
    let mut expected = Vec::new();
    for p in pushers {
        expected.extend(p.await.unwrap());
    }
    pushing.store(false, std::sync::atomic::Ordering::Release);
    assert!(archiver.await.unwrap() >= 3);
    collector.await.unwrap();
    r.garbage_collector()
        .run(GcOptions {
            grace: Duration::ZERO,
            dry_run: false,
            duty: None,
            file_scan_every: None,
        })
        .await
        .unwrap();
    // Restore everything still archived, then every acknowledged image pulls intact.
    let all = acknowledged.lock().clone();
    for (repo, digest) in &all {
        if status(&r, repo, digest).await == ImageStatus::Archived {
            r.restore_image(repo, digest).await.unwrap();
        }
    }
    for (repo, digest) in &all {
        wait_active(&r, repo, digest).await;
    }
    assert_eq!(expected.len(), 40);
    for (target, digest, cfg, own) in expected {
        r.get_manifest(&target, &Reference::Digest(digest.clone()))
            .await
            .unwrap();
        assert_eq!(
            read(&r, &target, &Digest::sha256_of(&cfg)).await.unwrap(),
            cfg
        );
        assert_eq!(
            read(&r, &target, &Digest::sha256_of(&own)).await.unwrap(),
            own
        );
        assert_eq!(
            read(&r, &target, &sd).await.unwrap(),
            shared,
            "{target} {digest}"
        );
    }
}

/// A process that dies between dropping a standard copy (links gone, deletion recorded)
/// and deleting its bytes: a restore started meanwhile waits instead of writing a copy the
/// pending deletion could remove; a garbage-collection pass finishes the abandoned
/// deletion; the retried restore then brings the image back byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_waits_for_a_standard_copy_deletion_a_dead_process_left() {
    let f = fixture();
    let r = &f.registry;
    let app = repo("team/crash");
    let own = layer(50_000, 7);
    let m = image(r, &app, "v1", b"cfg-crash", &[&own]).await;
    let od = Digest::sha256_of(&own);
    let tier = r.archive_tier().unwrap().clone();
    let meta = r.meta().clone();
    for blob in meta.image_blobs(&app, &m).await.unwrap().unwrap() {
        let stored = tier
            .archive(Arc::new(f.blobs.clone()), &blob.digest, blob.size)
            .await
            .unwrap();
        meta.record_archive_copy(&blob.digest, blob.size, stored, 1)
            .await
            .unwrap();
    }
    // The dead process decided long ago, then died before deleting any bytes.
    let long_ago = crate::now_ms() - 2 * crate::gc::DELETION_LIFETIME.as_millis() as i64;
    let out = meta.archive_image(&app, &m, long_ago).await.unwrap();
    let berth_meta::archive::ArchiveOutcome::Archived { dropped } = out else {
        panic!("{out:?}");
    };
    assert!(dropped.contains(&od));
    assert!(f.blobs.stat(&od).await.unwrap().is_some());

    // The restore waits for the deletion and gives up (the image stays ACTIVATING).
    assert_eq!(
        r.restore_image(&app, &m).await.unwrap(),
        ImageStatus::Activating
    );
    assert!(r.activate(&app, &m).await.is_err());
    assert_eq!(status(r, &app, &m).await, ImageStatus::Activating);

    // A garbage-collection pass finishes the abandoned deletion (the bytes go) ...
    let report = r
        .garbage_collector()
        .run(GcOptions {
            grace: Duration::from_secs(3600),
            dry_run: false,
            duty: None,
            file_scan_every: None,
        })
        .await
        .unwrap();
    assert_eq!(report.deletions_finished as usize, dropped.len());
    assert!(f.blobs.stat(&od).await.unwrap().is_none());
    // ... and the retried restore brings the image back (once the background attempt
    // restore_image started has given up too).
    for _ in 0..300 {
        if r.inner.activations.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r.resume_activations().await.unwrap();
    wait_active(r, &app, &m).await;
    assert_eq!(read(r, &app, &od).await.unwrap(), own);
}
