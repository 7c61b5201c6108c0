//! [`GcStore`] and [`ArchiveStore`] of [`PgMetaStore`] against a real server (the throwaway
//! cluster of `berth-testkit`, a fresh database per test), before the other metadata traits
//! exist on this backend: rows the other traits would write (repositories, blobs, links,
//! manifests and their references) are inserted with SQL, and the shared suites
//! (`gc_suite`, `archive_suite`) run once every trait is implemented. Several pools on one
//! database stand for several nodes in `gc_race_tests`.

use std::sync::{Arc, Mutex};

use berth_testkit::postgres::{shared, PgDatabase};
use berth_types::{Digest, RepositoryName};

use super::{PgDb, PgMetaStore, PgOptions};
use crate::archive::{ArchiveOutcome, ArchiveStore, ImageStatus};
use crate::gc::{BlobDeleter, GcStore};
use crate::MetaError;

const ACC: &str = "111122223333";

pub(super) fn database() -> PgDatabase<'static> {
    shared().create_database().unwrap()
}

/// One node: its own pool on `db`.
pub(super) async fn node(db: &PgDatabase<'_>) -> PgMetaStore {
    PgMetaStore::new(PgDb::connect(&PgOptions::new(db.url())).await.unwrap())
}

pub(super) fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

pub(super) fn repo(name: &str) -> RepositoryName {
    RepositoryName::from_qualified(&format!("{ACC}/{name}")).unwrap()
}

fn sorted(mut v: Vec<Digest>) -> Vec<Digest> {
    v.sort_by_key(|d| d.to_string());
    v
}

/// Rows the other metadata traits write, written here with SQL.
pub(super) struct Rows<'a>(pub(super) &'a PgMetaStore);

impl Rows<'_> {
    pub(super) async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> u64 {
        self.0
            .db
            .client()
            .await
            .unwrap()
            .execute(sql, params)
            .await
            .unwrap()
    }

    pub(super) async fn repo(&self, name: &str) -> i64 {
        let c = self.0.db.client().await.unwrap();
        c.query_one(
            "INSERT INTO repositories (name, created_ms) VALUES ($1, 0)
             ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
            &[&repo(name).qualified()],
        )
        .await
        .unwrap()
        .get(0)
    }

    /// `commit_blob` without its checks: the blob row and a link.
    pub(super) async fn blob(&self, repo_id: i64, digest: &Digest, size: i64) {
        self.exec(
            "INSERT INTO blobs (digest, size, created_ms) VALUES ($1, $2, 0)
             ON CONFLICT (digest) DO UPDATE SET orphaned_ms = NULL",
            &[&digest.to_string(), &size],
        )
        .await;
        self.link(repo_id, digest).await;
    }

    pub(super) async fn link(&self, repo_id: i64, digest: &Digest) {
        self.exec(
            "INSERT INTO blob_links (repo_id, digest, created_ms) VALUES ($1, $2, 0)
             ON CONFLICT (repo_id, digest) DO UPDATE SET orphaned_ms = NULL",
            &[&repo_id, &digest.to_string()],
        )
        .await;
    }

    pub(super) async fn unlink(&self, repo_id: i64, digest: &Digest) {
        self.exec(
            "DELETE FROM blob_links WHERE repo_id = $1 AND digest = $2",
            &[&repo_id, &digest.to_string()],
        )
        .await;
    }

    /// `put_manifest` without its checks: the manifest and its blob references.
    pub(super) async fn manifest(&self, repo_id: i64, body: &str, blobs: &[&Digest]) -> Digest {
        let m = d(body);
        self.exec(
            "INSERT INTO manifests (repo_id, digest, media_type, size, body, pushed_ms)
             VALUES ($1, $2, 'application/vnd.oci.image.manifest.v1+json', 1, $3, 1)",
            &[&repo_id, &m.to_string(), &body.as_bytes()],
        )
        .await;
        for b in blobs {
            self.exec(
                "INSERT INTO manifest_refs (repo_id, manifest, kind, target) VALUES ($1, $2, 0, $3)",
                &[&repo_id, &m.to_string(), &b.to_string()],
            )
            .await;
        }
        m
    }

    pub(super) async fn delete_repository(&self, repo_id: i64) {
        self.exec("DELETE FROM manifest_refs WHERE repo_id = $1", &[&repo_id])
            .await;
        self.exec("DELETE FROM manifests WHERE repo_id = $1", &[&repo_id])
            .await;
        self.exec("DELETE FROM repositories WHERE id = $1", &[&repo_id])
            .await;
    }

    pub(super) async fn count(&self, sql: &str) -> i64 {
        let c = self.0.db.client().await.unwrap();
        c.query_one(sql, &[]).await.unwrap().get(0)
    }
}

async fn mark_all(store: &PgMetaStore, now: i64) -> (usize, usize) {
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

async fn candidates(store: &PgMetaStore, now: i64, cutoff: i64) -> Vec<Digest> {
    let (mut out, mut after) = (Vec::new(), None::<Digest>);
    loop {
        let page = store
            .gc_candidates(now, cutoff, after.as_ref(), 2)
            .await
            .unwrap();
        let Some(last) = page.last() else {
            return sorted(out);
        };
        after = Some(last.digest.clone());
        out.extend(page.into_iter().map(|b| b.digest));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_sweeps_pins_and_rechecked_deletes() {
    let db = database();
    let store = node(&db).await;
    let rows = Rows(&store);
    let a = rows.repo("gc/a").await;
    let (x, y, z) = (d("gc x"), d("gc y"), d("gc z"));
    rows.blob(a, &x, 10).await;
    rows.blob(a, &y, 20).await;
    rows.blob(a, &z, 30).await;
    rows.manifest(a, "gc image", &[&x, &y]).await;

    assert_eq!(store.gc_pending().await.unwrap(), (0, 0));
    assert_eq!(mark_all(&store, 100).await, (1, 0));
    assert_eq!(store.gc_pending().await.unwrap(), (1, 30));
    assert_eq!(mark_all(&store, 150).await, (0, 0), "marks are not renewed");
    assert_eq!(store.gc_count_sweepable_links(150, 100).await.unwrap(), 1);
    assert_eq!(store.gc_count_sweepable_links(150, 99).await.unwrap(), 0);
    assert!(candidates(&store, 150, 149).await.is_empty());
    assert_eq!(candidates(&store, 150, 150).await, vec![z.clone()]);

    // The sweep respects the cut-off and marks the blob that lost its last link.
    assert_eq!(store.gc_sweep_links(99, 200, 10).await.unwrap(), 0);
    assert_eq!(store.gc_sweep_links(100, 200, 10).await.unwrap(), 1);
    assert_eq!(
        rows.count("SELECT COUNT(*) FROM blob_links").await,
        2,
        "only z's link went"
    );
    assert_eq!(store.gc_pending().await.unwrap(), (1, 30));
    assert!(candidates(&store, 300, 199).await.is_empty());
    let page = store.gc_candidates(300, 200, None, 10).await.unwrap();
    assert_eq!(
        page.iter()
            .map(|b| (b.digest.clone(), b.size, b.orphaned_ms))
            .collect::<Vec<_>>(),
        vec![(z.clone(), 30, Some(200))]
    );

    // A pin protects it and clears its mark.
    store.pin_blob("up1", &z, 250).await.unwrap();
    assert_eq!(store.gc_pending().await.unwrap(), (0, 0), "a pin holds");
    assert!(store
        .gc_begin_delete(std::slice::from_ref(&z), i64::MAX - 1, 300)
        .await
        .unwrap()
        .is_empty());
    store.unpin_blob("up1").await.unwrap();
    assert_eq!(mark_all(&store, 300).await, (0, 1));

    // A manifest reference in another repository holds x and y once a's links are gone.
    rows.delete_repository(a).await;
    assert_eq!(
        mark_all(&store, 500).await,
        (0, 2),
        "x and y, z kept its mark"
    );
    assert_eq!(
        candidates(&store, 600, 500).await,
        sorted(vec![x.clone(), y.clone(), z.clone()])
    );
    let all = [x.clone(), y.clone(), z.clone()];
    assert!(
        store
            .gc_begin_delete(&all, 299, 600)
            .await
            .unwrap()
            .is_empty(),
        "every mark is after the cut-off"
    );
    store.pin_blob("up-y", &y, 600).await.unwrap();
    let begun = store.gc_begin_delete(&all, 500, 600).await.unwrap();
    assert_eq!(
        sorted(begun.iter().map(|b| b.digest.clone()).collect()),
        sorted(vec![x.clone(), z.clone()])
    );
    assert_eq!(begun.iter().map(|b| b.size).sum::<u64>(), 40);
    assert!(store
        .gc_begin_delete(&all, 500, 600)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        sorted(store.gc_deletions_in_progress(&all).await.unwrap()),
        sorted(vec![x.clone(), z.clone()])
    );
    store.unpin_blob("up-y").await.unwrap();
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

    // A reference in any repository holds a blob.
    let b = rows.repo("gc/b").await;
    rows.blob(b, &x, 10).await;
    rows.manifest(b, "gc image b", &[&x]).await;
    assert_eq!(
        mark_all(&store, 700).await,
        (0, 1),
        "y, unpinned, is marked; x is held"
    );
    assert!(!candidates(&store, 800, i64::MAX - 1).await.contains(&x));

    // Unrecorded bytes: deletable unless pinned; pins of a dead process expire.
    let fresh = d("gc unrecorded");
    assert_eq!(
        store
            .gc_unrecorded(&[fresh.clone(), x.clone()])
            .await
            .unwrap(),
        vec![fresh.clone()]
    );
    store.pin_blob("up2", &fresh, 900).await.unwrap();
    assert_eq!(
        rows.count("SELECT COUNT(*) FROM blobs WHERE created_ms < 0")
            .await,
        0,
        "a pin's claim leaves no row"
    );
    assert!(store
        .gc_begin_delete_unrecorded(std::slice::from_ref(&fresh), 900)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.gc_expire_pins(900).await.unwrap(), 0);
    assert_eq!(store.gc_expire_pins(901).await.unwrap(), 1);
    assert_eq!(
        store
            .gc_begin_delete_unrecorded(&[fresh.clone(), x.clone(), fresh.clone()], 901)
            .await
            .unwrap(),
        vec![fresh.clone()]
    );
    assert!(store
        .gc_begin_delete_unrecorded(std::slice::from_ref(&fresh), 902)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        rows.count("SELECT COUNT(*) FROM blobs WHERE created_ms < 0")
            .await,
        0,
        "a decider's claim leaves no row"
    );

    // While a deletion is in progress a pin is refused and leaves nothing behind.
    assert!(matches!(
        store.pin_blob("up3", &fresh, 950).await,
        Err(MetaError::BlobBeingDeleted(g)) if g == fresh
    ));
    assert_eq!(store.gc_expire_pins(i64::MAX).await.unwrap(), 0);
    assert_eq!(
        store.gc_unfinished_deletions(900, 10).await.unwrap(),
        vec![]
    );
    assert_eq!(
        store.gc_unfinished_deletions(901, 10).await.unwrap(),
        vec![fresh.clone()]
    );
    store
        .gc_finish_deletions(std::slice::from_ref(&fresh))
        .await
        .unwrap();
    store.pin_blob("up3", &fresh, 950).await.unwrap();
    store.unpin_blob("nobody").await.unwrap();
}

/// A deleter recording what it deleted.
pub(super) fn recorder() -> (BlobDeleter, Arc<Mutex<Vec<Digest>>>) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_drop_restore_and_sweep() {
    let db = database();
    let store = node(&db).await;
    let rows = Rows(&store);
    let (a, b, c) = (
        rows.repo("arch/a").await,
        rows.repo("arch/b").await,
        rows.repo("arch/c").await,
    );
    let (config, shared_blob, own, other) = (d("config"), d("shared"), d("own"), d("other"));
    for blob in [&config, &shared_blob, &own] {
        rows.blob(a, blob, 10).await;
    }
    for blob in [&other, &shared_blob] {
        rows.blob(b, blob, 10).await;
    }
    let m1 = rows.manifest(a, "m1", &[&config, &shared_blob, &own]).await;
    let m2 = rows.manifest(b, "m2", &[&other, &shared_blob]).await;
    let (ra, rb) = (repo("arch/a"), repo("arch/b"));

    let states = store
        .image_storage(&ra, &[m1.clone(), d("nope")])
        .await
        .unwrap();
    assert_eq!(states[0].unwrap().status, ImageStatus::Active);
    assert_eq!(states[1], None);
    assert!(store.storage_states(&ra).await.unwrap().is_empty());
    let blobs = store.image_blobs(&ra, &m1).await.unwrap().unwrap();
    assert_eq!(blobs.len(), 3);
    assert!(blobs.iter().all(|b| b.size == 10));
    assert_eq!(
        store.image_blobs(&repo("arch/none"), &m1).await.unwrap(),
        None
    );

    let out = store.archive_image(&ra, &m1, 100).await.unwrap();
    assert!(
        matches!(out, ArchiveOutcome::CopyMissing(ref v) if v.len() == 3),
        "{out:?}"
    );
    for blob in [&config, &shared_blob, &own] {
        store.record_archive_copy(blob, 10, 4, 5).await.unwrap();
    }
    assert_eq!(
        store
            .archived_copies(&[config.clone(), other.clone()])
            .await
            .unwrap(),
        vec![true, false]
    );

    // A bare link (push in progress) keeps `own`, a pin keeps `config`, ACTIVE m2 `shared`.
    rows.link(c, &own).await;
    store.pin_blob("upload-1", &config, 1).await.unwrap();
    assert_eq!(
        store.archive_image(&ra, &m1, 100).await.unwrap(),
        ArchiveOutcome::Archived { dropped: vec![] }
    );
    assert_eq!(
        store.archive_image(&ra, &m1, 101).await.unwrap(),
        ArchiveOutcome::NotActive(ImageStatus::Archived)
    );
    assert_eq!(
        store.archive_image(&ra, &d("nope"), 101).await.unwrap(),
        ArchiveOutcome::NotFound
    );
    assert!(store.blob_archived_in(&ra, &own).await.unwrap());
    assert!(!store.blob_archived_in(&rb, &shared_blob).await.unwrap());
    assert_eq!(
        rows.count("SELECT COUNT(*) FROM events WHERE kind = 'image.storage_changed'")
            .await,
        1
    );

    // Once the pin and the bare link go, the sweep drops those two standard copies.
    store.unpin_blob("upload-1").await.unwrap();
    rows.unlink(c, &own).await;
    let (copy_del, copies_deleted) = recorder();
    let sweep = store.archive_sweep(100, copy_del.clone()).await.unwrap();
    assert_eq!(
        sorted(sweep.standard_dropped.clone()),
        sorted(vec![config.clone(), own.clone()])
    );
    assert!(sweep.copies_deleted.is_empty());
    assert_eq!(
        sorted(
            store
                .gc_deletions_in_progress(&sweep.standard_dropped)
                .await
                .unwrap()
        ),
        sorted(sweep.standard_dropped.clone())
    );
    assert!(matches!(
        store.pin_blob("arch-pin", &own, 1).await,
        Err(MetaError::BlobBeingDeleted(_))
    ));
    store
        .gc_finish_deletions(&sweep.standard_dropped)
        .await
        .unwrap();
    assert_eq!(
        rows.count("SELECT COUNT(*) FROM blob_links WHERE repo_id = 1")
            .await,
        1,
        "only a's link of shared stays"
    );
    assert_eq!(
        store.archive_sweep(100, copy_del.clone()).await.unwrap(),
        Default::default()
    );

    // Archiving m2 drops `shared` and `other`.
    for blob in [&other, &shared_blob] {
        store.record_archive_copy(blob, 10, 4, 5).await.unwrap();
    }
    let out = store.archive_image(&rb, &m2, 200).await.unwrap();
    assert_eq!(
        out,
        ArchiveOutcome::Archived {
            dropped: sorted(vec![other.clone(), shared_blob.clone()])
        }
    );
    store
        .gc_finish_deletions(&[other.clone(), shared_blob.clone()])
        .await
        .unwrap();

    // Restore m1.
    assert!(!store.finish_activation(&ra, &m1, 300).await.unwrap());
    assert_eq!(
        store.begin_activation(&ra, &m1).await.unwrap(),
        Some(ImageStatus::Archived)
    );
    assert_eq!(
        store.begin_activation(&ra, &m1).await.unwrap(),
        Some(ImageStatus::Activating)
    );
    assert_eq!(store.begin_activation(&ra, &d("nope")).await.unwrap(), None);
    assert_eq!(
        store.activating_images().await.unwrap(),
        vec![(ra.clone(), m1.clone())]
    );
    assert!(store
        .archive_sweep(100, copy_del.clone())
        .await
        .unwrap()
        .copies_deleted
        .is_empty());
    assert!(store.finish_activation(&ra, &m1, 300).await.unwrap());
    let st = store
        .image_storage(&ra, std::slice::from_ref(&m1))
        .await
        .unwrap()[0]
        .unwrap();
    assert_eq!(
        (st.status, st.archived_ms, st.activated_ms),
        (ImageStatus::Active, Some(100), Some(300))
    );
    assert_eq!(
        rows.count("SELECT COUNT(*) FROM blob_links WHERE repo_id = 1")
            .await,
        3,
        "m1's blobs are linked again"
    );
    let sweep = store.archive_sweep(100, copy_del.clone()).await.unwrap();
    assert_eq!(
        sorted(sweep.copies_deleted),
        sorted(vec![config.clone(), own.clone()])
    );
    assert_eq!(
        store
            .archived_copies(&[
                config.clone(),
                own.clone(),
                shared_blob.clone(),
                other.clone()
            ])
            .await
            .unwrap(),
        vec![false, false, true, true]
    );
    // Deleting the archived image lets the sweep delete the copies nobody needs.
    rows.delete_repository(b).await;
    let sweep = store.archive_sweep(100, copy_del).await.unwrap();
    assert_eq!(
        sorted(sweep.copies_deleted),
        sorted(vec![other, shared_blob])
    );
    assert_eq!(copies_deleted.lock().unwrap().len(), 4);
}

/// A pass's store work over 20,000 blobs (half unreferenced): the mark walk in pages (one
/// statement each), the candidate scan and the deletions. Counts are checked; the times
/// are printed for the record, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_over_twenty_thousand_blobs() {
    const N: i64 = 20_000;
    let db = database();
    let store = node(&db).await;
    let rows = Rows(&store);
    let repo_id = rows.repo("big/r").await;
    let m = rows.manifest(repo_id, "big m", &[]).await.to_string();
    let digest = "'sha256:' || lpad(to_hex(i), 64, '0')";
    rows.exec(
        &format!("INSERT INTO blobs (digest, size, created_ms) SELECT {digest}, 10, 0 FROM generate_series(1, $1::bigint) AS i"),
        &[&N],
    )
    .await;
    rows.exec(
        &format!("INSERT INTO blob_links (repo_id, digest, created_ms) SELECT $1, {digest}, 0 FROM generate_series(2, $2::bigint, 2) AS i"),
        &[&repo_id, &N],
    )
    .await;
    rows.exec(
        &format!("INSERT INTO manifest_refs (repo_id, manifest, kind, target) SELECT $1, $2, 0, {digest} FROM generate_series(2, $3::bigint, 2) AS i"),
        &[&repo_id, &m, &N],
    )
    .await;
    store
        .db
        .client()
        .await
        .unwrap()
        .batch_execute("ANALYZE")
        .await
        .unwrap();

    let start = std::time::Instant::now();
    let (mut after, mut marked, mut pages) = (None, 0, 0);
    loop {
        let page = store.gc_mark(after.as_ref(), 1000, 5).await.unwrap();
        marked += page.blobs_marked;
        pages += 1;
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mark = start.elapsed();
    let start = std::time::Instant::now();
    let (mut after, mut found) = (None, Vec::new());
    loop {
        let page = store
            .gc_candidates(10, 5, after.as_ref(), 1000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.digest.clone());
        found.extend(page.into_iter().map(|b| b.digest));
    }
    let scan = start.elapsed();
    let start = std::time::Instant::now();
    let mut deleted = 0;
    for chunk in found.chunks(64) {
        let begun = store.gc_begin_delete(chunk, 5, 10).await.unwrap();
        deleted += begun.len();
        let digests: Vec<_> = begun.into_iter().map(|b| b.digest).collect();
        store.gc_finish_deletions(&digests).await.unwrap();
    }
    let delete = start.elapsed();
    eprintln!(
        "{N} blobs: mark {mark:?} ({pages} pages), candidates {scan:?}, delete {deleted} in {delete:?}"
    );
    let half = (N / 2) as usize;
    assert_eq!((marked, found.len(), deleted), (half, half, half));
    assert_eq!(rows.count("SELECT COUNT(*) FROM blobs").await, N / 2);
}
