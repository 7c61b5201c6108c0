//! [`PgMetaStore`]'s core metadata traits against a real server (the throwaway cluster of
//! `berth-testkit`, a fresh database per test), through the trait methods: several nodes
//! — each its own pool on one database — race for one tag, one repository, one immutable
//! tag, a link being removed, a manifest being deleted, an exclusion limit; a blob commit
//! meets a garbage-collection deletion holding the blob's row; and a reader following
//! the event outbox while nodes write never skips an event.
//! (The shared suites run on this backend once every trait is implemented.)

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use berth_testkit::postgres::{shared, PgDatabase};
use berth_types::{Digest, RepositoryName, Tag};
use tokio::sync::Barrier;

use super::{PgDb, PgMetaStore, PgOptions};
use crate::{
    BlobLinkStore, EventStore, ManifestStore, MetaError, NewManifest, PullTimeStore,
    RegisterExclusionOutcome, RepositorySettings, RepositoryStore,
};

const NODES: usize = 4;
const ROUNDS: usize = 12;

pub(super) fn database() -> PgDatabase<'static> {
    shared().create_database().unwrap()
}

/// One node: its own pool on `db`.
pub(super) async fn node(db: &PgDatabase<'_>) -> Arc<PgMetaStore> {
    Arc::new(PgMetaStore::new(
        PgDb::connect(&PgOptions::new(db.url())).await.unwrap(),
    ))
}

async fn nodes(db: &PgDatabase<'_>) -> Vec<Arc<PgMetaStore>> {
    let mut out = Vec::new();
    for _ in 0..NODES {
        out.push(node(db).await);
    }
    out
}

pub(super) fn repo(name: &str) -> RepositoryName {
    RepositoryName::from_qualified(&format!("111122223333/{name}")).unwrap()
}

fn tag(t: &str) -> Tag {
    t.parse().unwrap()
}

fn manifest(body: &str, blobs: Vec<Digest>, children: Vec<Digest>, t: Option<&str>) -> NewManifest {
    NewManifest {
        digest: Digest::sha256_of(body.as_bytes()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        body: body.as_bytes().to_vec(),
        artifact_type: None,
        subject: None,
        annotations_json: None,
        layers: blobs.clone(),
        blobs,
        children,
        tag: t.map(tag),
        now_ms: 1,
    }
}

/// Runs `op(node index, node)` on every node at once (released together by a barrier)
/// and returns the results in node order.
async fn on_every_node<T, F, Fut>(nodes: &[Arc<PgMetaStore>], op: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, Arc<PgMetaStore>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let start = Arc::new(Barrier::new(nodes.len()));
    let tasks: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (start, work) = (start.clone(), op(i, n.clone()));
            tokio::spawn(async move {
                start.wait().await;
                work.await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Returns once some other session of this database waits for a lock.
async fn wait_for_a_lock_wait(store: &PgMetaStore) {
    let c = store.db().client().await.unwrap();
    loop {
        let waiting: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

pub(super) async fn count(db: &PgDatabase<'_>, sql: &str) -> i64 {
    db.psql(sql).unwrap().trim().parse().unwrap()
}

/// Nodes pushing one tag to different images at once: every push moves the tag, and the
/// moves form one chain (each reports the target the previous move left), so no update
/// is lost; the tag ends at the image no move replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_moving_one_tag_at_once_lose_no_update() {
    let db = database();
    let nodes = nodes(&db).await;
    let app = repo("race/tag");
    for round in 0..ROUNDS {
        let app2 = app.clone();
        let outcomes = on_every_node(&nodes, move |i, n| {
            let app = app2.clone();
            async move {
                let m = manifest(&format!("r{round}n{i}"), vec![], vec![], Some("latest"));
                let out = n.put_manifest(&app, &m).await.unwrap();
                (m.digest, out)
            }
        })
        .await;
        assert!(outcomes.iter().all(|(_, o)| o.created && o.tag_updated));
        let previous: Vec<Option<Digest>> = outcomes
            .iter()
            .map(|(_, o)| o.previous_tag_target.clone())
            .collect();
        let pushed: HashSet<&Digest> = outcomes.iter().map(|(d, _)| d).collect();
        // Exactly one move started from what the tag held before the round; every other
        // one from another push of this round, each replaced once.
        let from_before = previous
            .iter()
            .filter(|p| p.as_ref().is_none_or(|d| !pushed.contains(d)))
            .count();
        assert_eq!(from_before, 1, "round {round}: {previous:?}");
        let replaced: HashSet<&Digest> = previous.iter().flatten().collect();
        assert_eq!(
            replaced.iter().filter(|d| pushed.contains(*d)).count(),
            NODES - 1,
            "round {round}: {previous:?}"
        );
        let last: Vec<&Digest> = pushed
            .iter()
            .copied()
            .filter(|d| !replaced.contains(d))
            .collect();
        assert_eq!(last.len(), 1);
        assert_eq!(
            nodes[0]
                .resolve_tag(&app, &tag("latest"))
                .await
                .unwrap()
                .as_ref(),
            Some(last[0]),
            "round {round}"
        );
    }
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM events WHERE kind = 'manifest.pushed'"
        )
        .await,
        (ROUNDS * NODES) as i64
    );
}

/// Nodes creating one repository through the API at once: one creates it, the others are
/// told it exists; nodes pushing into one new repository at once create it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repository_is_created_once_by_the_api_and_once_by_pushes() {
    let db = database();
    let nodes = nodes(&db).await;
    for round in 0..ROUNDS {
        let results = on_every_node(&nodes, move |_, n| async move {
            n.create_repository(
                &repo(&format!("api{round}")),
                &RepositorySettings::default(),
                5,
            )
            .await
        })
        .await;
        let created = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(created, 1, "round {round}: {results:?}");
        assert!(results.iter().all(|r| match r {
            Ok(rec) => rec.created_by_api,
            Err(e) =>
                matches!(e, MetaError::RepositoryAlreadyExists(n) if *n == format!("api{round}")),
        }));

        // Creation on push: blob commits, mounts and manifests into a new repository.
        let pushes = on_every_node(&nodes, move |i, n| async move {
            let to = repo(&format!("push{round}"));
            let layer = Digest::sha256_of(format!("layer{round}-{i}").as_bytes());
            n.commit_blob(&to, &layer, 10, None).await?;
            n.put_manifest(
                &to,
                &manifest(&format!("p{round}-{i}"), vec![layer], vec![], Some("v1")),
            )
            .await
        })
        .await;
        assert!(pushes.iter().all(|r| r.is_ok()), "{pushes:?}");
        let rec = nodes[1]
            .get_repository(&repo(&format!("push{round}")))
            .await
            .unwrap()
            .unwrap();
        assert!(!rec.created_by_api);
    }
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM repositories").await,
        (2 * ROUNDS) as i64
    );

    // A push racing an explicit creation: one row, and the API call either made it or was
    // told it exists.
    let results = on_every_node(&nodes, move |i, n| async move {
        let r = repo("mixed");
        if i % 2 == 0 {
            n.create_repository(&r, &RepositorySettings::default(), 5)
                .await
                .map(|_| ())
        } else {
            let layer = Digest::sha256_of(b"mixed layer");
            n.commit_blob(&r, &layer, 3, None).await
        }
    })
    .await;
    for (i, r) in results.iter().enumerate() {
        assert!(
            r.is_ok() || (i % 2 == 0 && matches!(r, Err(MetaError::RepositoryAlreadyExists(_)))),
            "{results:?}"
        );
    }
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM repositories WHERE name = '111122223333/mixed'"
        )
        .await,
        1
    );
}

/// In an `IMMUTABLE` repository, nodes pushing one new tag to different images at once:
/// one push creates it, every other is refused, and the tag stays the winner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_immutable_tag_is_set_once_under_races() {
    let db = database();
    let nodes = nodes(&db).await;
    let app = repo("race/immutable");
    let settings = RepositorySettings {
        image_tag_mutability: "IMMUTABLE".into(),
        image_tag_mutability_exclusion_filters: vec![],
    };
    nodes[0]
        .create_repository(&app, &settings, 1)
        .await
        .unwrap();
    for round in 0..ROUNDS {
        let app2 = app.clone();
        let results = on_every_node(&nodes, move |i, n| {
            let app = app2.clone();
            async move {
                let m = manifest(
                    &format!("i{round}n{i}"),
                    vec![],
                    vec![],
                    Some(&format!("t{round}")),
                );
                (m.digest.clone(), n.put_manifest(&app, &m).await)
            }
        })
        .await;
        let winners: Vec<&Digest> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(d, _)| d)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert!(results.iter().all(|(_, r)| match r {
            Ok(o) => o.tag_updated && o.previous_tag_target.is_none(),
            Err(e) => matches!(e, MetaError::TagImmutable { .. }),
        }));
        assert_eq!(
            nodes[2]
                .resolve_tag(&app, &tag(&format!("t{round}")))
                .await
                .unwrap()
                .as_ref(),
            Some(winners[0])
        );
    }
    // Refused pushes stored nothing (their manifest went with the refused transaction).
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM manifests").await,
        ROUNDS as i64
    );
}

/// A manifest push using a blob and the blob's unlink at once: never both succeed, and a
/// stored manifest's blob is still linked. Likewise an index push and the deletion of its
/// child: never an index whose child is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_and_children_a_push_relies_on_are_not_removed_under_it() {
    let db = database();
    let (a, b) = (node(&db).await, node(&db).await);
    let app = repo("race/links");
    for round in 0..ROUNDS * 2 {
        let layer = Digest::sha256_of(format!("l{round}").as_bytes());
        a.commit_blob(&app, &layer, 7, None).await.unwrap();
        let m = manifest(&format!("m{round}"), vec![layer.clone()], vec![], None);
        let (pa, pb) = (a.clone(), b.clone());
        let (app1, app2, m1, layer2) = (app.clone(), app.clone(), m.clone(), layer.clone());
        let push = tokio::spawn(async move { pa.put_manifest(&app1, &m1).await });
        let unlink = tokio::spawn(async move { pb.unlink_blob(&app2, &layer2).await });
        let (push, unlink) = (push.await.unwrap(), unlink.await.unwrap());
        match (&push, &unlink) {
            (Ok(_), Err(MetaError::BlobReferenced { .. })) => {
                assert_eq!(a.linked_blob(&app, &layer).await.unwrap(), Some(7));
            }
            (Err(MetaError::BlobNotLinked(d)), Ok(true)) => assert_eq!(*d, layer),
            other => panic!("round {round}: {other:?}"),
        }

        // An index over a child being deleted.
        let child = manifest(&format!("c{round}"), vec![], vec![], None);
        a.put_manifest(&app, &child).await.unwrap();
        let index = manifest(
            &format!("x{round}"),
            vec![],
            vec![child.digest.clone()],
            None,
        );
        let (pa, pb) = (a.clone(), b.clone());
        let (app1, app2, child_digest) = (app.clone(), app.clone(), child.digest.clone());
        let push = tokio::spawn(async move { pa.put_manifest(&app1, &index).await });
        let delete = tokio::spawn(async move { pb.delete_manifest(&app2, &child_digest).await });
        match (push.await.unwrap(), delete.await.unwrap()) {
            (Ok(_), Err(MetaError::ManifestReferenced { .. })) => {
                assert!(a.get_manifest(&app, &child.digest).await.unwrap().is_some());
            }
            (Err(MetaError::ChildManifestMissing(d)), Ok(true)) => assert_eq!(d, child.digest),
            other => panic!("round {round}: {other:?}"),
        }
    }
}

/// A blob commit meeting garbage collection's deletion of that blob (which, as `gc.rs`
/// does, holds the `blobs` row `FOR UPDATE`, removes it and records the deletion): the
/// commit, already waiting on the row, is refused with `BlobBeingDeleted` once the
/// deletion commits, never recording a blob whose bytes are going.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blob_commit_waits_for_a_deletion_holding_the_row_and_is_refused() {
    let db = database();
    let store = node(&db).await;
    let app = repo("gc/race");
    let blob = Digest::sha256_of(b"going");
    store.commit_blob(&app, &blob, 5, None).await.unwrap();
    db.psql("DELETE FROM blob_links").unwrap();

    let mut gc = store.db().client().await.unwrap();
    let tx = gc.transaction().await.unwrap();
    let d = blob.to_string();
    tx.query_one("SELECT 1 FROM blobs WHERE digest = $1 FOR UPDATE", &[&d])
        .await
        .unwrap();
    let (s, a, b2) = (store.clone(), app.clone(), blob.clone());
    let commit = tokio::spawn(async move { s.commit_blob(&a, &b2, 5, Some("u1")).await });
    // Let the commit reach the row and wait for it (the deletion commits after that).
    wait_for_a_lock_wait(&store).await;
    tx.execute("DELETE FROM blobs WHERE digest = $1", &[&d])
        .await
        .unwrap();
    tx.execute(
        "INSERT INTO blob_deletions (digest, started_ms) VALUES ($1, 1)",
        &[&d],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let err = commit.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, MetaError::BlobBeingDeleted(x) if *x == blob),
        "{err:?}"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM blobs").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM blob_links").await, 0);
}

/// Nodes adding different pull-time exclusions to one registry at once never exceed its
/// limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_exclusion_limit_holds_when_nodes_add_at_once() {
    let db = database();
    let nodes = nodes(&db).await;
    for round in 0..ROUNDS {
        let account = format!("{:012}", round);
        let acc = account.clone();
        let results = on_every_node(&nodes, move |i, n| {
            let account = acc.clone();
            async move {
                n.add_pull_time_exclusion(&account, &format!("arn:aws:iam::1:user/u{i}"), 1, 2)
                    .await
                    .unwrap()
            }
        })
        .await;
        let registered = results
            .iter()
            .filter(|r| matches!(r, RegisterExclusionOutcome::Registered(_)))
            .count();
        assert_eq!(registered, 2, "round {round}: {results:?}");
        let listed = nodes[0]
            .pull_time_exclusions(Some(&account), None, 10)
            .await
            .unwrap();
        assert_eq!(listed.len(), 2);
    }
}

/// A reader following the outbox (`events_after` its cursor) while every node pushes and
/// deletes: it sees every event, each once, in id order — no event commits with an id
/// below one already read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_following_the_outbox_never_skips_an_event() {
    let db = database();
    let nodes = nodes(&db).await;
    let reader = node(&db).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follow = {
        let (reader, done) = (reader.clone(), done.clone());
        tokio::spawn(async move {
            let (mut seen, mut cursor) = (Vec::new(), 0);
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = reader.events_after(cursor, 50).await.unwrap();
                if let Some(last) = page.last() {
                    cursor = last.id;
                }
                seen.extend(page.into_iter().map(|e| e.id));
                if finished && cursor == reader.last_event_id().await.unwrap() {
                    return seen;
                }
            }
        })
    };
    on_every_node(&nodes, |i, n| async move {
        let app = repo(&format!("events/n{}", i % 2));
        for k in 0..40 {
            let m = manifest(
                &format!("e{i}-{k}"),
                vec![],
                vec![],
                Some(&format!("t{}", k % 3)),
            );
            n.put_manifest(&app, &m).await.unwrap();
            if k % 4 == 3 {
                n.delete_tag(&app, &tag(&format!("t{}", k % 3)))
                    .await
                    .unwrap();
            }
        }
    })
    .await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = follow.await.unwrap();
    let all: BTreeSet<i64> = reader
        .events_after(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        seen.len(),
        all.len(),
        "the reader skipped or repeated events"
    );
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), all);
}

/// Pushes, pull-time flushes, image deletes and forced repository deletes on one
/// repository from several nodes at once: every push and flush succeeds (a write that
/// finds its repository or manifest deleted meanwhile creates it again or drops its pull,
/// as one writer would order them), every delete succeeds or finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_flushes_and_deletes_on_one_repository_all_complete() {
    use crate::{DeleteImageOutcome, ImageStore, PullTimeUpdate};
    let db = database();
    let nodes = nodes(&db).await;
    let app = repo("churn/app");
    let m = manifest("churn", vec![], vec![], Some("v1"));
    for round in 0..ROUNDS * 3 {
        let (app2, m2) = (app.clone(), m.clone());
        let results = on_every_node(&nodes, move |i, n| {
            let (app, m) = (app2.clone(), m2.clone());
            async move {
                match i {
                    0 => n.put_manifest(&app, &m).await.map(|_| "pushed"),
                    1 => n
                        .record_pull_times(&[PullTimeUpdate {
                            repository: app.clone(),
                            digest: m.digest.clone(),
                            at_ms: round as i64,
                        }])
                        .await
                        .map(|_| "flushed"),
                    2 => match n.delete_image(&app, Some(&m.digest), None).await {
                        Ok(DeleteImageOutcome::Deleted { .. } | DeleteImageOutcome::NotFound) => {
                            Ok("deleted image")
                        }
                        other => panic!("round {round}: {other:?}"),
                    },
                    _ => match n.delete_repository(&app, true).await {
                        Ok(_) | Err(MetaError::RepositoryNotFound(_)) => Ok("deleted repository"),
                        Err(e) => Err(e),
                    },
                }
            }
        })
        .await;
        assert!(
            results.iter().all(|r| r.is_ok()),
            "round {round}: {results:?}"
        );
    }
    // What is left is consistent: a tag only on a stored manifest, in an existing repository.
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM tags t LEFT JOIN manifests m
               ON m.repo_id = t.repo_id AND m.digest = t.digest WHERE m.digest IS NULL"
        )
        .await,
        0
    );
}

/// Bytes no row records being deleted (garbage collection holds the digest's advisory
/// lock and records the deletion): a commit of that digest waits for it and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blob_commit_waits_for_a_deletion_of_unrecorded_bytes_and_is_refused() {
    let db = database();
    let store = node(&db).await;
    let app = repo("gc/unrecorded");
    let blob = Digest::sha256_of(b"stray bytes");
    let d = blob.to_string();
    let mut gc = store.db().client().await.unwrap();
    let tx = gc.transaction().await.unwrap();
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&d])
        .await
        .unwrap();
    let (s, a, b2) = (store.clone(), app.clone(), blob.clone());
    let commit = tokio::spawn(async move { s.commit_blob(&a, &b2, 5, None).await });
    wait_for_a_lock_wait(&store).await;
    tx.execute(
        "INSERT INTO blob_deletions (digest, started_ms) VALUES ($1, 1)",
        &[&d],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let err = commit.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, MetaError::BlobBeingDeleted(x) if *x == blob),
        "{err:?}"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM blobs").await, 0);
}
