//! Races between nodes (several pools on one database), round after round, for what the
//! digest lock of [`super::gc`] must keep: a deletion against pins and links, a link sweep
//! against manifest pushes, archiving against the copy sweep and against a pin. The
//! referencing writes of the other traits are written here as the protocol has them; each
//! test fails without the lock it is about.

use std::sync::Arc;

use berth_types::Digest;
use tokio::sync::Barrier;

use super::gc_tests::{d, database, node, recorder, repo, Rows};
use super::PgMetaStore;
use crate::archive::{ArchiveOutcome, ArchiveStore};
use crate::gc::GcStore;
use crate::MetaError;

/// `commit_blob` as the locking protocol has it (module doc of `super::gc`): the upsert of
/// the blob row is its lock; the deletion record is read after it; then the link.
async fn commit_per_protocol(
    store: &PgMetaStore,
    repo_id: i64,
    digest: &Digest,
) -> crate::Result<()> {
    let text = digest.to_string();
    let mut client = store.db.client().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO blobs (digest, size, created_ms) VALUES ($1, 7, 0)
         ON CONFLICT (digest) DO UPDATE SET orphaned_ms = NULL",
        &[&text],
    )
    .await?;
    super::gc::refuse_if_being_deleted(&*tx, digest).await?;
    tx.execute(
        "INSERT INTO blob_links (repo_id, digest, created_ms) VALUES ($1, $2, 0)
         ON CONFLICT (repo_id, digest) DO NOTHING",
        &[&repo_id, &text],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

const NODES: usize = 4;
const ROUNDS: usize = 40;

/// What one round's race left: (deletion begun, the referencing write accepted).
type Outcome = (bool, bool);

/// Several nodes, round after round: a garbage-collection node decides the deletion of a
/// blob (recorded and unreferenced, or bytes no row records) while other nodes pin it or
/// commit a link to it, all released at once. Never both: either the deletion is begun and
/// every pin and commit is refused with `BlobBeingDeleted` (leaving no pin, link or row),
/// or the deletion is not begun and every pin and link is there, on a kept row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deletion_racing_pins_and_links_never_loses_a_reference() {
    let db = database();
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Arc::new(node(&db).await));
    }
    let rows = Rows(&nodes[0]);
    let repo_id = rows.repo("race/r").await;
    let mut seen = std::collections::HashMap::<(bool, &str), usize>::new();
    for round in 0..ROUNDS {
        for recorded in [true, false] {
            let blob = d(&format!("race {round} {recorded}"));
            if recorded {
                rows.exec(
                    "INSERT INTO blobs (digest, size, created_ms, orphaned_ms) VALUES ($1, 7, 0, 1)",
                    &[&blob.to_string()],
                )
                .await;
            }
            let start = Arc::new(Barrier::new(NODES));
            let mut tasks = Vec::new();
            for (i, n) in nodes.iter().enumerate() {
                let (start, n, blob) = (start.clone(), n.clone(), blob.clone());
                tasks.push(tokio::spawn(async move {
                    start.wait().await;
                    let one = std::slice::from_ref(&blob);
                    match i {
                        // The collector.
                        0 if recorded => (
                            !n.gc_begin_delete(one, 10, 20).await.unwrap().is_empty(),
                            false,
                        ),
                        0 => (
                            !n.gc_begin_delete_unrecorded(one, 20)
                                .await
                                .unwrap()
                                .is_empty(),
                            false,
                        ),
                        // Pins and commits.
                        _ => {
                            let r = if i % 2 == 1 {
                                n.pin_blob(&format!("holder-{i}"), &blob, 30).await
                            } else {
                                commit_per_protocol(&n, repo_id, &blob).await
                            };
                            match r {
                                Ok(()) => (false, true),
                                Err(MetaError::BlobBeingDeleted(g)) if g == blob => (false, false),
                                Err(e) => panic!("unexpected {e:?}"),
                            }
                        }
                    }
                }));
            }
            let mut outcomes: Vec<Outcome> = Vec::new();
            for t in tasks {
                outcomes.push(t.await.unwrap());
            }
            let deleted = outcomes[0].0;
            let accepted: Vec<bool> = outcomes[1..].iter().map(|o| o.1).collect();
            let text = blob.to_string();
            let count = |table: &'static str| {
                let rows = &rows;
                let text = text.clone();
                async move {
                    let c = rows.0.db.client().await.unwrap();
                    let n: i64 = c
                        .query_one(
                            &format!("SELECT COUNT(*) FROM {table} WHERE digest = $1"),
                            &[&text],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    n
                }
            };
            let (row, pins, links, deletions) = (
                count("blobs").await,
                count("blob_pins").await,
                count("blob_links").await,
                count("blob_deletions").await,
            );
            if deleted {
                assert!(
                    accepted.iter().all(|a| !a),
                    "round {round} (recorded {recorded}): deleted, yet a pin or link was accepted: {accepted:?}"
                );
                assert_eq!((row, pins, links, deletions), (0, 0, 0, 1), "round {round}");
            } else {
                assert!(
                    accepted.iter().all(|a| *a),
                    "round {round} (recorded {recorded}): kept, yet a pin or link was refused: {accepted:?}"
                );
                assert_eq!(
                    (row, pins, links, deletions),
                    (1, (NODES / 2) as i64, ((NODES - 1) / 2) as i64, 0),
                    "round {round}"
                );
            }
            *seen
                .entry((recorded, if deleted { "deleted" } else { "kept" }))
                .or_default() += 1;
            // Clean up the round's pins, so a later round's blob is judged on its own.
            for i in 1..NODES {
                nodes[0].unpin_blob(&format!("holder-{i}")).await.unwrap();
            }
        }
    }
    assert_eq!(
        rows.count("SELECT COUNT(*) FROM blobs WHERE created_ms < 0")
            .await,
        0,
        "no claim's placeholder row was ever committed"
    );
    eprintln!("outcomes over {ROUNDS} rounds: {seen:?}");
}

/// `put_manifest` of one blob as the locking protocol has it, and no more: the blob row
/// `FOR SHARE` first, then a plain read of the link it relies on (no lock on the link, so
/// the digest lock alone keeps the sweep away), then the manifest and its reference.
async fn put_manifest_per_protocol(
    store: &PgMetaStore,
    repo_id: i64,
    body: &str,
    blob: &Digest,
) -> crate::Result<()> {
    let text = blob.to_string();
    let mut client = store.db.client().await?;
    let tx = client.transaction().await?;
    tx.query("SELECT 1 FROM blobs WHERE digest = $1 FOR SHARE", &[&text])
        .await?;
    let linked = tx
        .query_opt(
            "SELECT 1 FROM blob_links WHERE repo_id = $1 AND digest = $2",
            &[&repo_id, &text],
        )
        .await?
        .is_some();
    if !linked {
        return Err(MetaError::BlobNotLinked(blob.clone()));
    }
    let m = d(body).to_string();
    tx.execute(
        "INSERT INTO manifests (repo_id, digest, media_type, size, body, pushed_ms)
         VALUES ($1, $2, 'application/vnd.oci.image.manifest.v1+json', 1, $3, 1)",
        &[&repo_id, &m, &body.as_bytes()],
    )
    .await?;
    tx.execute(
        "INSERT INTO manifest_refs (repo_id, manifest, kind, target) VALUES ($1, $2, 0, $3)",
        &[&repo_id, &m, &text],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Several nodes, round after round: a link sweep of a marked, unreferenced link races
/// manifest pushes that use it. No manifest is ever accepted whose link the sweep removed:
/// either the sweep removes the link and every push is refused (`BlobNotLinked`), or it
/// keeps the link and every push is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_sweep_racing_manifest_pushes_never_loses_a_used_link() {
    let db = database();
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Arc::new(node(&db).await));
    }
    let rows = Rows(&nodes[0]);
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    for round in 0..ROUNDS {
        let repo_id = rows.repo(&format!("sweep/r{round}")).await;
        let blob = d(&format!("sweep {round}"));
        rows.blob(repo_id, &blob, 7).await;
        rows.exec(
            "UPDATE blob_links SET orphaned_ms = 1 WHERE repo_id = $1",
            &[&repo_id],
        )
        .await;
        let start = Arc::new(Barrier::new(NODES));
        let mut tasks = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let (start, n, blob) = (start.clone(), n.clone(), blob.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                if i == 0 {
                    return n.gc_sweep_links(10, 20, 100).await.unwrap() == 1;
                }
                let body = format!("sweep {round} manifest {i}");
                let pushed =
                    n.db.retry(|| put_manifest_per_protocol(&n, repo_id, &body, &blob))
                        .await;
                match pushed {
                    Ok(()) => true,
                    Err(MetaError::BlobNotLinked(_)) => false,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        let (swept, accepted) = (results[0], &results[1..]);
        let links = rows
            .count(&format!(
                "SELECT COUNT(*) FROM blob_links WHERE repo_id = {repo_id}"
            ))
            .await;
        if swept {
            assert!(accepted.iter().all(|a| !a), "round {round}: {accepted:?}");
            assert_eq!(links, 0);
        } else {
            assert!(accepted.iter().all(|a| *a), "round {round}: {accepted:?}");
            assert_eq!(links, 1);
        }
        *seen
            .entry(if swept { "swept" } else { "kept" })
            .or_default() += 1;
    }
    eprintln!("outcomes over {ROUNDS} rounds: {seen:?}");
}

/// Round after round, one node archives an image while another sweeps archive copies that
/// no archived image needs yet (the image's own, until it is archived): a copy is never
/// deleted under an image that ends up `ARCHIVED`. Either the archive wins (the copy stays)
/// or the sweep deletes the copy first and archiving answers `CopyMissing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archiving_racing_the_copy_sweep_never_archives_without_a_copy() {
    let db = database();
    let (a, b) = (Arc::new(node(&db).await), Arc::new(node(&db).await));
    let rows = Rows(&a);
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    for round in 0..ROUNDS {
        let name = format!("archrace/r{round}");
        let repo_id = rows.repo(&name).await;
        let blob = d(&format!("archrace {round}"));
        rows.blob(repo_id, &blob, 10).await;
        let m = rows
            .manifest(repo_id, &format!("archrace m {round}"), &[&blob])
            .await;
        a.record_archive_copy(&blob, 10, 4, 1).await.unwrap();
        let start = Arc::new(Barrier::new(2));
        let archiving = {
            let (start, a, m, r) = (start.clone(), a.clone(), m.clone(), repo(&name));
            tokio::spawn(async move {
                start.wait().await;
                a.archive_image(&r, &m, 100).await.unwrap()
            })
        };
        let sweeping = {
            let (start, b) = (start.clone(), b.clone());
            tokio::spawn(async move {
                start.wait().await;
                // The sweep's copy transaction alone (its standard-copy one comes first and
                // would give the archive a head start).
                let (deleter, _) = recorder();
                b.delete_unneeded_copies(100, &deleter).await.unwrap()
            })
        };
        let (archived, swept) = (archiving.await.unwrap(), sweeping.await.unwrap());
        let copy = a
            .archived_copies(std::slice::from_ref(&blob))
            .await
            .unwrap()[0];
        match &archived {
            ArchiveOutcome::Archived { dropped } => {
                assert!(copy, "round {round}: archived without its copy");
                assert!(!swept.contains(&blob), "round {round}");
                a.gc_finish_deletions(dropped).await.unwrap();
                *seen.entry("archived").or_default() += 1;
            }
            ArchiveOutcome::CopyMissing(missing) => {
                assert_eq!(missing, &vec![blob.clone()], "round {round}");
                assert!(!copy && swept.contains(&blob), "round {round}");
                *seen.entry("copy swept first").or_default() += 1;
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
    eprintln!("outcomes over {ROUNDS} rounds: {seen:?}");
}

/// Round after round, one node archives an image whose blob nothing else needs while
/// another pins that blob (an upload of the same bytes committing): never both. Either the
/// standard copy is dropped (a deletion in progress) and the pin is refused, or the pin is
/// taken and the copy kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archiving_racing_a_pin_never_drops_a_pinned_standard_copy() {
    let db = database();
    let (a, b) = (Arc::new(node(&db).await), Arc::new(node(&db).await));
    let rows = Rows(&a);
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    // More rounds than the others: the window between the check and the commit is short.
    const ROUNDS: usize = 100;
    for round in 0..ROUNDS {
        let name = format!("archpin/r{round}");
        let repo_id = rows.repo(&name).await;
        let blob = d(&format!("archpin {round}"));
        rows.blob(repo_id, &blob, 10).await;
        let m = rows
            .manifest(repo_id, &format!("archpin m {round}"), &[&blob])
            .await;
        a.record_archive_copy(&blob, 10, 4, 1).await.unwrap();
        let start = Arc::new(Barrier::new(2));
        let archiving = {
            let (start, a, m, r) = (start.clone(), a.clone(), m.clone(), repo(&name));
            tokio::spawn(async move {
                start.wait().await;
                a.archive_image(&r, &m, 100).await.unwrap()
            })
        };
        let pinning = {
            let (start, b, blob) = (start.clone(), b.clone(), blob.clone());
            tokio::spawn(async move {
                start.wait().await;
                match b.pin_blob("archpin-upload", &blob, 100).await {
                    Ok(()) => true,
                    Err(MetaError::BlobBeingDeleted(_)) => false,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            })
        };
        let (archived, pinned) = (archiving.await.unwrap(), pinning.await.unwrap());
        let ArchiveOutcome::Archived { dropped } = archived else {
            panic!("round {round}: {archived:?}");
        };
        let deleting = a
            .gc_deletions_in_progress(std::slice::from_ref(&blob))
            .await
            .unwrap();
        if pinned {
            assert!(dropped.is_empty() && deleting.is_empty(), "round {round}");
            *seen.entry("pinned, kept").or_default() += 1;
        } else {
            assert_eq!(dropped, vec![blob.clone()], "round {round}");
            assert_eq!(deleting, vec![blob.clone()], "round {round}");
            a.gc_finish_deletions(&dropped).await.unwrap();
            *seen.entry("dropped, pin refused").or_default() += 1;
        }
        a.unpin_blob("archpin-upload").await.unwrap();
    }
    eprintln!("outcomes over {ROUNDS} rounds: {seen:?}");
}
