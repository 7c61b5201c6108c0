//! The garbage-collection behaviour every [`MetaStore`] backend must show (marks, grace
//! cut-offs, re-checks at deletion, pins). Each backend's tests emit one
//! test per case with [`crate::meta_store_suite`] (or call [`run`]).
// A suite is test code that backends run from their tests: a failed unwrap is a failed case.
#![allow(clippy::unwrap_used)]

use berth_types::Digest;

use crate::{MetaStore, NewManifest};

use crate::suite::repo;
fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

fn manifest(body: &str, blobs: Vec<Digest>) -> NewManifest {
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

async fn mark_all(store: &dyn MetaStore, now: i64) -> (usize, usize) {
    let (mut links, mut blobs, mut after) = (0, 0, None::<Digest>);
    loop {
        let page = store.gc_mark(after.as_ref(), 2, now).await.unwrap();
        links += page.links_marked;
        blobs += page.blobs_marked;
        match page.next {
            Some(n) => after = Some(n),
            None => return (links, blobs),
        }
    }
}

async fn candidates(store: &dyn MetaStore, now: i64, cutoff: i64) -> Vec<Digest> {
    let (mut out, mut after) = (Vec::new(), None::<Digest>);
    loop {
        let page = store
            .gc_candidates(now, cutoff, after.as_ref(), 2)
            .await
            .unwrap();
        let Some(last) = page.last() else {
            let mut out: Vec<Digest> = out;
            out.sort_by_key(|d: &Digest| d.to_string());
            return out;
        };
        after = Some(last.digest.clone());
        out.extend(page.into_iter().map(|b| b.digest));
    }
}

fn sorted(mut v: Vec<Digest>) -> Vec<Digest> {
    v.sort_by_key(|d| d.to_string());
    v
}

/// Runs every case in order against one fresh, empty store.
pub async fn run(store: &dyn MetaStore) {
    marks_sweeps_pins_and_rechecked_deletes(store).await;
    a_deletion_in_progress_refuses_pins_and_commits(store).await;
}

/// Marks, grace cut-offs, dry-run predictions, pins, what clears a mark, deletion
/// re-checks, unrecorded bytes and pin expiry.
pub async fn marks_sweeps_pins_and_rechecked_deletes(store: &dyn MetaStore) {
    let (a, b) = (repo("gc/a"), repo("gc/b"));
    let (x, y, z) = (d("gc x"), d("gc y"), d("gc z"));
    store.commit_blob(&a, &x, 10, None).await.unwrap();
    store.commit_blob(&a, &y, 20, None).await.unwrap();
    store.commit_blob(&a, &z, 30, None).await.unwrap();
    store
        .put_manifest(&a, &manifest("gc image", vec![x.clone(), y.clone()]))
        .await
        .unwrap();

    // The first pass marks the link no manifest uses; blobs all still have links.
    assert_eq!(
        store.gc_pending().await.unwrap(),
        (0, 0),
        "nothing marked yet"
    );
    assert_eq!(mark_all(store, 100).await, (1, 0));
    assert_eq!(
        store.gc_pending().await.unwrap(),
        (1, 30),
        "held by a marked link only"
    );
    assert_eq!(mark_all(store, 150).await, (0, 0), "marks are not renewed");
    assert_eq!(store.gc_count_sweepable_links(150, 100).await.unwrap(), 1);
    assert_eq!(store.gc_count_sweepable_links(150, 99).await.unwrap(), 0);
    assert!(candidates(store, 150, 149).await.is_empty());
    // A dry run with no grace predicts z: its only link is sweepable.
    assert_eq!(candidates(store, 150, 150).await, vec![z.clone()]);

    // Sweeping respects the cut-off, and marks the blob that lost its last link.
    assert_eq!(store.gc_sweep_links(99, 200, 10).await.unwrap(), 0);
    assert_eq!(store.gc_sweep_links(100, 200, 10).await.unwrap(), 1);
    assert!(store.linked_blob(&a, &z).await.unwrap().is_none());
    assert_eq!(store.linked_blob(&a, &x).await.unwrap(), Some(10));

    // So the blob is deletable once its own mark is old enough; until then it is pending.
    assert_eq!(store.gc_pending().await.unwrap(), (1, 30));
    assert_eq!(mark_all(store, 250).await, (0, 0));
    assert!(candidates(store, 300, 199).await.is_empty());
    let page = store.gc_candidates(300, 200, None, 10).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(
        (page[0].digest.clone(), page[0].size, page[0].orphaned_ms),
        (z.clone(), 30, Some(200))
    );

    // A pin (a commit of the same digest in progress) protects it, and clears the mark.
    store.pin_blob("up1", &z, 250).await.unwrap();
    assert_eq!(store.gc_pending().await.unwrap(), (0, 0), "a pin holds");
    assert!(candidates(store, 300, i64::MAX - 1).await.is_empty());
    let begun = store
        .gc_begin_delete(std::slice::from_ref(&z), i64::MAX - 1, 300)
        .await
        .unwrap();
    assert!(begun.is_empty(), "a pinned blob's deletion is never begun");
    // The commit records the blob, links it and drops its pin.
    store.commit_blob(&a, &z, 30, Some("up1")).await.unwrap();
    assert!(store
        .gc_unrecorded(std::slice::from_ref(&z))
        .await
        .unwrap()
        .is_empty());
    store.unpin_blob("up1").await.unwrap();
    assert_eq!(mark_all(store, 300).await, (1, 0));

    // Seeing a marked link (a HEAD before a manifest push) clears its mark.
    assert_eq!(store.linked_blob(&a, &z).await.unwrap(), Some(30));
    assert_eq!(store.gc_count_sweepable_links(400, 350).await.unwrap(), 0);
    // So does BatchCheckLayerAvailability's lookup.
    assert_eq!(mark_all(store, 350).await, (1, 0));
    assert_eq!(
        store
            .linked_blobs(&a, &[d("absent"), z.clone(), x.clone()])
            .await
            .unwrap(),
        vec![None, Some(30), Some(10)]
    );
    assert_eq!(store.gc_count_sweepable_links(400, 360).await.unwrap(), 0);
    // So does a manifest that uses it.
    assert_eq!(mark_all(store, 400).await, (1, 0));
    store
        .put_manifest(&a, &manifest("gc image 2", vec![x.clone(), z.clone()]))
        .await
        .unwrap();
    assert_eq!(store.gc_count_sweepable_links(500, 450).await.unwrap(), 0);

    // Deleting the repository leaves every blob unreferenced.
    store.delete_repository(&a, true).await.unwrap();
    assert_eq!(mark_all(store, 500).await, (0, 3));
    assert_eq!(
        candidates(store, 600, 500).await,
        sorted(vec![x.clone(), y.clone(), z.clone()])
    );
    let all = [x.clone(), y.clone(), z.clone()];
    let begun = store.gc_begin_delete(&all, 499, 600).await.unwrap();
    assert!(begun.is_empty(), "marked after the cut-off");
    // A pin taken first keeps `y`; the others' rows go and their deletions are recorded.
    store.pin_blob("up-y", &y, 600).await.unwrap();
    let begun = store.gc_begin_delete(&all, 500, 600).await.unwrap();
    assert_eq!(
        sorted(begun.iter().map(|b| b.digest.clone()).collect()),
        sorted(vec![x.clone(), z.clone()])
    );
    assert_eq!(begun.iter().map(|b| b.size).sum::<u64>(), 40);
    // Deciding twice deletes nothing more (the rows are gone).
    assert!(store
        .gc_begin_delete(&all, 500, 600)
        .await
        .unwrap()
        .is_empty());
    store.unpin_blob("up-y").await.unwrap();
    assert_eq!(mark_all(store, 600).await, (0, 1));
    assert_eq!(candidates(store, 700, 600).await, vec![y.clone()]);
    // The caller deletes the bytes, then finishes.
    store
        .gc_finish_deletions(&[x.clone(), z.clone()])
        .await
        .unwrap();
    assert!(store
        .gc_unfinished_deletions(i64::MAX, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        sorted(store.gc_unrecorded(&all).await.unwrap()),
        sorted(vec![x.clone(), z.clone()])
    );

    // A deleted blob pushed again is an ordinary new blob.
    store.commit_blob(&b, &x, 10, None).await.unwrap();
    assert_eq!(store.linked_blob(&b, &x).await.unwrap(), Some(10));
    // A manifest reference holds a blob, and its link cannot be removed under it.
    store
        .put_manifest(&b, &manifest("gc image b", vec![x.clone()]))
        .await
        .unwrap();
    assert!(matches!(
        store.unlink_blob(&b, &x).await,
        Err(crate::MetaError::BlobReferenced { .. })
    ));
    assert_eq!(mark_all(store, 700).await, (0, 0));
    assert!(!candidates(store, 800, i64::MAX - 1).await.contains(&x));
    assert!(store
        .gc_begin_delete(std::slice::from_ref(&x), i64::MAX - 1, 800)
        .await
        .unwrap()
        .is_empty());

    // A fresh link of an upload whose manifest is not pushed yet: with no grace a dry run
    // counts it; with any grace it waits.
    let w = d("gc w");
    store.commit_blob(&b, &w, 5, None).await.unwrap();
    assert!(candidates(store, 900, 900).await.contains(&w));
    assert!(!candidates(store, 900, 899).await.contains(&w));

    // Unrecorded bytes (no row): deletable unless pinned.
    let fresh = d("gc unrecorded");
    assert_eq!(
        store
            .gc_unrecorded(&[fresh.clone(), w.clone()])
            .await
            .unwrap(),
        vec![fresh.clone()]
    );
    store.pin_blob("up2", &fresh, 900).await.unwrap();
    assert!(store
        .gc_unrecorded(std::slice::from_ref(&fresh))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .gc_begin_delete_unrecorded(std::slice::from_ref(&fresh), 900)
        .await
        .unwrap()
        .is_empty());
    // Pins left by a dead process expire.
    assert_eq!(store.gc_expire_pins(900).await.unwrap(), 0);
    assert_eq!(store.gc_expire_pins(901).await.unwrap(), 1);
    assert_eq!(
        store
            .gc_begin_delete_unrecorded(&[fresh.clone(), w.clone()], 901)
            .await
            .unwrap(),
        vec![fresh.clone()]
    );
    // Begun once only.
    assert!(store
        .gc_begin_delete_unrecorded(std::slice::from_ref(&fresh), 902)
        .await
        .unwrap()
        .is_empty());
    store
        .gc_finish_deletions(std::slice::from_ref(&fresh))
        .await
        .unwrap();
    // Unpinning an absent pin is fine.
    store.unpin_blob("nobody").await.unwrap();
}

/// The window between deciding a deletion and deleting the bytes (a crash there leaves
/// the record): no pin or commit of the digest is accepted, so no commit can rely on the
/// bytes being deleted; a later pass finds the unfinished deletion; finishing it makes the
/// digest an ordinary new blob again.
pub async fn a_deletion_in_progress_refuses_pins_and_commits(store: &dyn MetaStore) {
    let a = repo("gc/window");
    let (v, u) = (d("gc window v"), d("gc window unrecorded"));
    store.commit_blob(&a, &v, 7, None).await.unwrap();
    assert!(store.unlink_blob(&a, &v).await.unwrap());
    mark_all(store, 100).await;
    assert!(candidates(store, 200, 100).await.contains(&v));
    let begun = store
        .gc_begin_delete(std::slice::from_ref(&v), 100, 200)
        .await
        .unwrap();
    assert_eq!(begun.len(), 1);
    assert_eq!(
        store
            .gc_begin_delete_unrecorded(std::slice::from_ref(&u), 300)
            .await
            .unwrap(),
        vec![u.clone()]
    );

    // The process "dies" here: the bytes may or may not be gone.
    for digest in [&v, &u] {
        assert!(matches!(
            store.pin_blob("up-window", digest, 400).await,
            Err(crate::MetaError::BlobBeingDeleted(d)) if &d == digest
        ));
        assert!(matches!(
            store.commit_blob(&a, digest, 7, None).await,
            Err(crate::MetaError::BlobBeingDeleted(_))
        ));
    }
    assert!(store.linked_blob(&a, &v).await.unwrap().is_none());
    // Nothing refused left a pin or a row behind.
    assert_eq!(store.gc_expire_pins(i64::MAX).await.unwrap(), 0);
    assert_eq!(
        sorted(store.gc_unrecorded(&[v.clone(), u.clone()]).await.unwrap()),
        sorted(vec![v.clone(), u.clone()])
    );

    // A later pass finds what was begun before its threshold, oldest decisions included.
    assert!(store
        .gc_unfinished_deletions(199, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.gc_unfinished_deletions(200, 10).await.unwrap(),
        vec![v.clone()]
    );
    assert_eq!(
        store.gc_unfinished_deletions(300, 10).await.unwrap(),
        sorted(vec![v.clone(), u.clone()])
    );
    assert_eq!(
        store.gc_unfinished_deletions(300, 1).await.unwrap().len(),
        1
    );
    store
        .gc_finish_deletions(&[v.clone(), u.clone()])
        .await
        .unwrap();
    assert!(store
        .gc_unfinished_deletions(i64::MAX, 10)
        .await
        .unwrap()
        .is_empty());
    // Finished: the digest is an ordinary new blob again.
    store.pin_blob("up-window", &v, 500).await.unwrap();
    store
        .commit_blob(&a, &v, 7, Some("up-window"))
        .await
        .unwrap();
    assert_eq!(store.linked_blob(&a, &v).await.unwrap(), Some(7));
    store.commit_blob(&a, &u, 3, None).await.unwrap();
}
