//! The archive storage-class behaviour every [`MetaStore`] backend must show: status
//! transitions, when a standard copy may be dropped (never while an `ACTIVE` image, a pin
//! or a push in progress needs it), re-linking on activation, and the sweep. Each
//! backend's tests emit one test per case with [`crate::meta_store_suite`] (or call [`run`]).
// A suite is test code that backends run from their tests: a failed unwrap is a failed case.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use berth_types::{Digest, RepositoryName};

use crate::archive::{ArchiveOutcome, ArchiveSweep, ImageStatus};
use crate::gc::BlobDeleter;
use crate::{MetaError, MetaStore, NewManifest};

use crate::suite::repo;
fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

fn manifest(body: &str, blobs: &[&Digest]) -> NewManifest {
    let blobs: Vec<Digest> = blobs.iter().map(|b| (*b).clone()).collect();
    NewManifest {
        digest: Digest::sha256_of(body.as_bytes()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        body: body.as_bytes().to_vec(),
        artifact_type: None,
        subject: None,
        annotations_json: None,
        layers: blobs.iter().skip(1).cloned().collect(),
        blobs,
        children: vec![],
        tag: None,
        now_ms: 1,
    }
}

/// Archives as a caller does: the store records the standard copies it drops as
/// deletions in progress; the caller deletes their bytes (noted in `deleted`), then
/// finishes them.
async fn archive(
    store: &dyn MetaStore,
    r: &RepositoryName,
    m: &Digest,
    now: i64,
    deleted: &Mutex<Vec<Digest>>,
) -> crate::Result<ArchiveOutcome> {
    let out = store.archive_image(r, m, now).await?;
    if let ArchiveOutcome::Archived { dropped } = &out {
        finish_drops(store, dropped, deleted).await;
    }
    Ok(out)
}

/// Sweeps as a caller does (see [`archive`]).
async fn sweep_once(
    store: &dyn MetaStore,
    limit: usize,
    delete_copy: BlobDeleter,
    deleted: &Mutex<Vec<Digest>>,
) -> crate::Result<ArchiveSweep> {
    let out = store.archive_sweep(limit, delete_copy).await?;
    finish_drops(store, &out.standard_dropped, deleted).await;
    Ok(out)
}

/// Dropped standard copies are deletions in progress until finished: meanwhile a commit
/// of the same digest is refused (it must not rely on bytes being deleted).
async fn finish_drops(store: &dyn MetaStore, dropped: &[Digest], deleted: &Mutex<Vec<Digest>>) {
    assert_eq!(
        sorted(store.gc_deletions_in_progress(dropped).await.unwrap()),
        sorted(dropped.to_vec())
    );
    for d in dropped {
        assert!(matches!(
            store.pin_blob("arch-pin", d, 1).await,
            Err(MetaError::BlobBeingDeleted(_))
        ));
    }
    deleted.lock().unwrap().extend(dropped.iter().cloned());
    store.gc_finish_deletions(dropped).await.unwrap();
    assert!(store
        .gc_deletions_in_progress(dropped)
        .await
        .unwrap()
        .is_empty());
}

/// A deleter recording what it deleted.
fn recorder() -> (BlobDeleter, Arc<Mutex<Vec<Digest>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (
        Arc::new(move |digest: &Digest| {
            s.lock().unwrap().push(digest.clone());
            Ok(())
        }),
        seen,
    )
}

fn sorted(mut v: Vec<Digest>) -> Vec<Digest> {
    v.sort_by_key(|d| d.to_string());
    v
}

async fn push(store: &dyn MetaStore, r: &RepositoryName, body: &str, blobs: &[&Digest]) -> Digest {
    for b in blobs {
        store.commit_blob(r, b, 10, None).await.unwrap();
    }
    let m = manifest(body, blobs);
    store.put_manifest(r, &m).await.unwrap();
    m.digest
}

async fn copy_all(store: &dyn MetaStore, blobs: &[&Digest]) {
    for b in blobs {
        store.record_archive_copy(b, 10, 4, 5).await.unwrap();
    }
}

async fn status(store: &dyn MetaStore, r: &RepositoryName, m: &Digest) -> Option<ImageStatus> {
    store
        .image_storage(r, std::slice::from_ref(m))
        .await
        .unwrap()[0]
        .map(|s| s.status)
}

pub async fn run(store: &dyn MetaStore) {
    archive_drop_restore_and_sweep(store).await;
}

/// Status transitions, when a standard copy may be dropped, re-linking on activation and
/// the sweep of copies nothing needs.
pub async fn archive_drop_restore_and_sweep(store: &dyn MetaStore) {
    let (a, b) = (repo("arch/a"), repo("arch/b"));
    let (config, shared, own, other) = (d("config"), d("shared"), d("own"), d("other"));
    let m1 = push(store, &a, "m1", &[&config, &shared, &own]).await;
    let m2 = push(store, &b, "m2", &[&other, &shared]).await;

    // Never archived: ACTIVE, no times; absent images are None.
    let states = store
        .image_storage(&a, &[m1.clone(), d("nope")])
        .await
        .unwrap();
    assert_eq!(states[0].unwrap().status, ImageStatus::Active);
    assert_eq!(states[0].unwrap().archived_ms, None);
    assert_eq!(states[1], None);
    assert!(store.storage_states(&a).await.unwrap().is_empty());
    let blobs = store.image_blobs(&a, &m1).await.unwrap().unwrap();
    assert_eq!(
        sorted(blobs.iter().map(|b| b.digest.clone()).collect()),
        sorted(vec![config.clone(), shared.clone(), own.clone()])
    );
    assert!(blobs.iter().all(|b| b.size == 10));
    assert_eq!(store.image_blobs(&a, &d("nope")).await.unwrap(), None);
    assert_eq!(
        store.image_blobs(&repo("arch/none"), &m1).await.unwrap(),
        None
    );

    // Archiving needs every blob's copy first.
    let deleted = Mutex::new(Vec::new());
    let out = archive(store, &a, &m1, 100, &deleted).await.unwrap();
    assert!(
        matches!(out, ArchiveOutcome::CopyMissing(ref v) if v.len() == 3),
        "{out:?}"
    );
    assert_eq!(status(store, &a, &m1).await, Some(ImageStatus::Active));
    copy_all(store, &[&config, &shared, &own]).await;
    assert_eq!(
        store
            .archived_copies(&[config.clone(), other.clone()])
            .await
            .unwrap(),
        vec![true, false]
    );

    // A push in progress in a third repository holds `own` by a bare link; a commit holds
    // `config` by a pin: both keep their standard copies. `shared` is used by ACTIVE m2.
    let c = repo("arch/c");
    store.commit_blob(&c, &own, 10, None).await.unwrap();
    store.pin_blob("upload-1", &config, 1).await.unwrap();
    let out = archive(store, &a, &m1, 100, &deleted).await.unwrap();
    assert_eq!(out, ArchiveOutcome::Archived { dropped: vec![] });
    assert!(deleted.lock().unwrap().is_empty());
    let st = store
        .image_storage(&a, std::slice::from_ref(&m1))
        .await
        .unwrap()[0]
        .unwrap();
    assert_eq!(
        (st.status, st.archived_ms),
        (ImageStatus::Archived, Some(100))
    );
    assert_eq!(
        store.storage_states(&a).await.unwrap(),
        vec![(m1.clone(), st)]
    );
    assert!(store.blob_archived_in(&a, &own).await.unwrap());
    assert!(!store.blob_archived_in(&b, &shared).await.unwrap());
    // Archiving again is refused with the current status.
    assert_eq!(
        archive(store, &a, &m1, 101, &deleted).await.unwrap(),
        ArchiveOutcome::NotActive(ImageStatus::Archived)
    );
    assert_eq!(
        store.archive_image(&a, &d("nope"), 101).await.unwrap(),
        ArchiveOutcome::NotFound
    );

    // Once the pin and the bare link are gone, the sweep drops those two standard copies
    // (bytes and the archived repository's links); `shared` stays for m2.
    store.unpin_blob("upload-1").await.unwrap();
    store.unlink_blob(&c, &own).await.unwrap();
    let (copy_del, copies_deleted) = recorder();
    let sweep = sweep_once(store, 100, copy_del.clone(), &deleted)
        .await
        .unwrap();
    assert_eq!(
        sorted(sweep.standard_dropped.clone()),
        sorted(vec![config.clone(), own.clone()])
    );
    assert!(sweep.copies_deleted.is_empty());
    assert_eq!(
        sorted(deleted.lock().unwrap().clone()),
        sorted(vec![config.clone(), own.clone()])
    );
    assert_eq!(store.linked_blob(&a, &own).await.unwrap(), None);
    assert_eq!(store.linked_blob(&a, &shared).await.unwrap(), Some(10));
    assert_eq!(store.linked_blob(&b, &shared).await.unwrap(), Some(10));
    // Idempotent: nothing more to drop.
    let again = sweep_once(store, 100, copy_del.clone(), &deleted)
        .await
        .unwrap();
    assert_eq!(again, Default::default());

    // After the drop, a manifest push naming a dropped blob is refused (no link), and a
    // mount from the archived repository mounts nothing: no ACTIVE image can reference a
    // blob without its standard copy.
    let err = store
        .put_manifest(&a, &manifest("m3", &[&own]))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::BlobNotLinked(_)), "{err:?}");
    assert_eq!(store.mount_blob(&c, &a, &own).await.unwrap(), None);

    // Archiving m2 drops `shared` (no ACTIVE user left) and its own blob.
    copy_all(store, &[&other, &shared]).await;
    deleted.lock().unwrap().clear();
    let out = archive(store, &b, &m2, 200, &deleted).await.unwrap();
    assert_eq!(
        out,
        ArchiveOutcome::Archived {
            dropped: sorted(vec![other.clone(), shared.clone()])
        }
    );
    assert_eq!(store.linked_blob(&a, &shared).await.unwrap(), None);

    // Restore m1: ARCHIVED → ACTIVATING → ACTIVE with its links back.
    assert!(!store.finish_activation(&a, &m1, 300).await.unwrap());
    assert_eq!(
        store.begin_activation(&a, &m1).await.unwrap(),
        Some(ImageStatus::Archived)
    );
    assert_eq!(status(store, &a, &m1).await, Some(ImageStatus::Activating));
    assert_eq!(
        store.begin_activation(&a, &m1).await.unwrap(),
        Some(ImageStatus::Activating)
    );
    assert_eq!(store.begin_activation(&a, &d("nope")).await.unwrap(), None);
    assert_eq!(
        store.activating_images().await.unwrap(),
        vec![(repo("arch/a"), m1.clone())]
    );
    // While ACTIVATING the archive copies are needed: the sweep keeps them.
    let sweep = sweep_once(store, 100, copy_del.clone(), &deleted)
        .await
        .unwrap();
    assert!(sweep.copies_deleted.is_empty(), "{sweep:?}");
    assert!(store.finish_activation(&a, &m1, 300).await.unwrap());
    let st = store
        .image_storage(&a, std::slice::from_ref(&m1))
        .await
        .unwrap()[0]
        .unwrap();
    assert_eq!(
        (st.status, st.archived_ms, st.activated_ms),
        (ImageStatus::Active, Some(100), Some(300))
    );
    assert!(store.activating_images().await.unwrap().is_empty());
    for blob in [&config, &shared, &own] {
        assert_eq!(
            store.linked_blob(&a, blob).await.unwrap(),
            Some(10),
            "{blob}"
        );
    }
    // m1's own copies are unneeded now; `shared` and `other` stay for archived m2.
    let sweep = sweep_once(store, 100, copy_del.clone(), &deleted)
        .await
        .unwrap();
    assert_eq!(
        sorted(sweep.copies_deleted),
        sorted(vec![config.clone(), own.clone()])
    );
    assert!(sweep.standard_dropped.is_empty());
    assert_eq!(
        store
            .archived_copies(&[config.clone(), own.clone(), shared.clone(), other.clone()])
            .await
            .unwrap(),
        vec![false, false, true, true]
    );
    // m1 is ACTIVE and uses `shared` again: archiving it later finds the copy already there.
    assert!(store.blob_archived_in(&b, &shared).await.unwrap());

    // Deleting an archived image removes its state with it; the sweep then deletes the
    // copies nobody needs.
    assert!(store.delete_manifest(&b, &m2).await.unwrap());
    assert!(store.storage_states(&b).await.unwrap().is_empty());
    let sweep = sweep_once(store, 100, copy_del, &deleted).await.unwrap();
    assert_eq!(sorted(sweep.copies_deleted), sorted(vec![other, shared]));
    assert_eq!(copies_deleted.lock().unwrap().len(), 4);
}
