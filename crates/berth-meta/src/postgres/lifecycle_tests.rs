//! [`PgMetaStore`]'s [`LifecycleStore`] against a real server (see [`super::settings_tests`]
//! for the harness): policies, facts in one statement, previews by generation, the
//! conditional expiry, and nodes racing for one preview and one expiry.

use std::sync::Arc;
use std::time::Duration;

use super::settings_tests::{
    child_of, count, create_repo, database, expiry, image, node, nodes, on_every_node, repo, sql,
    ACC, NODES,
};
use crate::lifecycle::*;
use crate::MetaError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_policies_keep_their_evaluation_for_the_same_text() {
    let db = database();
    let s = node(&db).await;
    let r = repo("lc/p");
    assert!(matches!(
        s.put_lifecycle_policy(ACC, &r, "a", 1).await,
        Err(MetaError::RepositoryNotFound(n)) if n == "lc/p"
    ));
    create_repo(&s, "lc/p").await;
    s.put_lifecycle_policy(ACC, &r, "a", 1).await.unwrap();
    assert!(s.mark_lifecycle_evaluated(&r, "a", 5).await.unwrap());
    assert!(!s.mark_lifecycle_evaluated(&r, "other", 6).await.unwrap());
    s.put_lifecycle_policy(ACC, &r, "a", 7).await.unwrap();
    let p = s.lifecycle_policy(&r).await.unwrap().unwrap();
    assert_eq!((p.updated_ms, p.last_evaluated_ms), (7, Some(5)));
    s.put_lifecycle_policy(ACC, &r, "b", 8).await.unwrap();
    assert_eq!(
        s.lifecycle_policy(&r)
            .await
            .unwrap()
            .unwrap()
            .last_evaluated_ms,
        None
    );
    assert_eq!(
        s.repositories_with_lifecycle_policies().await.unwrap(),
        vec![r.clone()]
    );
    assert_eq!(
        s.delete_lifecycle_policy(&r).await.unwrap().unwrap().text,
        "b"
    );
    assert!(s.delete_lifecycle_policy(&r).await.unwrap().is_none());
    assert!(s
        .repositories_with_lifecycle_policies()
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_come_in_one_query_with_tags_parents_pulls_and_status() {
    let db = database();
    let s = node(&db).await;
    assert!(s.image_facts(&repo("f/none")).await.unwrap().is_none());
    let id = create_repo(&s, "f/a").await;
    assert_eq!(s.image_facts(&repo("f/a")).await.unwrap(), Some(vec![]));
    let a = image(&s, id, "a", 10, &["v2", "latest", "v1"]).await;
    let idx = image(&s, id, "index", 20, &["idx"]).await;
    child_of(&s, id, &idx, &a).await;
    sql(
        &s,
        "INSERT INTO image_pulls (repo_id, digest, last_pull_ms) VALUES ($1, $2, 77)",
        &[&id, &a.to_string()],
    )
    .await;
    sql(
        &s,
        "INSERT INTO image_storage (repo_id, digest, status, archived_ms) VALUES ($1, $2, 'ARCHIVED', 88)",
        &[&id, &idx.to_string()],
    )
    .await;
    let facts = s.image_facts(&repo("f/a")).await.unwrap().unwrap();
    let mut digests = vec![a.to_string(), idx.to_string()];
    digests.sort();
    assert_eq!(
        facts.iter().map(|f| f.digest.clone()).collect::<Vec<_>>(),
        digests
    );
    let fa = facts.iter().find(|f| f.digest == a.to_string()).unwrap();
    assert_eq!(fa.tags, vec!["latest", "v1", "v2"]);
    assert_eq!(fa.parents, vec![idx.to_string()]);
    assert_eq!(
        (fa.last_pull_ms, fa.size, fa.pushed_ms),
        (Some(77), 100, 10)
    );
    assert_eq!((fa.status.as_str(), fa.archived_ms), ("ACTIVE", None));
    let fi = facts.iter().find(|f| f.digest == idx.to_string()).unwrap();
    assert_eq!((fi.status.as_str(), fi.archived_ms), ("ARCHIVED", Some(88)));
    assert!(fi.parents.is_empty());
}

fn result(position: i64, digest: &str, tags: &[&str], action: &str) -> PreviewResultRecord {
    PreviewResultRecord {
        position,
        digest: digest.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pushed_ms: position * 10,
        action: action.into(),
        target_storage_class: (action == "TRANSITION").then(|| "ARCHIVE".to_string()),
        rule_priority: 1,
        storage_class: "STANDARD".into(),
        size: 5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previews_replace_each_other_by_generation() {
    let db = database();
    let s = node(&db).await;
    let r = repo("pv/a");
    assert!(matches!(
        s.start_preview(ACC, &r, "p", 1).await,
        Err(MetaError::RepositoryNotFound(_))
    ));
    create_repo(&s, "pv/a").await;
    let StartPreview::Started { generation: g1 } =
        s.start_preview(ACC, &r, "p", 100).await.unwrap()
    else {
        panic!("not started")
    };
    assert_eq!(
        s.start_preview(ACC, &r, "q", 200).await.unwrap(),
        StartPreview::InProgress
    );
    let rows = vec![
        result(1, "sha256:a", &["v1"], "EXPIRE"),
        result(2, "sha256:b", &[], "EXPIRE"),
        result(3, "sha256:c", &["x"], "TRANSITION"),
    ];
    assert!(s
        .finish_preview(&r, g1, &PreviewOutcome::Complete(rows.clone()), 300)
        .await
        .unwrap());
    assert!(!s
        .finish_preview(&r, g1, &PreviewOutcome::Failed("late".into()), 301)
        .await
        .unwrap());
    let p = s.preview(&r).await.unwrap().unwrap();
    assert_eq!(p.status, PreviewStatus::Complete);
    assert_eq!(
        (p.expiring_count, p.transitioning_count, p.finished_ms),
        (2, 1, Some(300))
    );
    assert_eq!(
        s.preview_results(&r, PreviewTagFilter::Any, None, 10)
            .await
            .unwrap(),
        rows
    );
    let tagged = s
        .preview_results(&r, PreviewTagFilter::Tagged, Some(1), 10)
        .await
        .unwrap();
    assert_eq!(tagged, vec![rows[2].clone()]);
    let untagged = s
        .preview_results(&r, PreviewTagFilter::Untagged, None, 1)
        .await
        .unwrap();
    assert_eq!(untagged, vec![rows[1].clone()]);
    let StartPreview::Started { generation: g2 } =
        s.start_preview(ACC, &r, "q", 400).await.unwrap()
    else {
        panic!("not started")
    };
    assert!(g2 > g1);
    assert!(s
        .preview_results(&r, PreviewTagFilter::Any, None, 10)
        .await
        .unwrap()
        .is_empty());
    let StartPreview::Started { generation: g3 } = s
        .start_preview(ACC, &r, "z", 400 + PREVIEW_STALE_MS)
        .await
        .unwrap()
    else {
        panic!("a stale run blocked a new one")
    };
    assert!(!s
        .finish_preview(&r, g2, &PreviewOutcome::Complete(rows), 500)
        .await
        .unwrap());
    assert!(s
        .finish_preview(&r, g3, &PreviewOutcome::Failed("boom".into()), 600)
        .await
        .unwrap());
    let p = s.preview(&r).await.unwrap().unwrap();
    assert_eq!(
        (p.status, p.failure.as_deref(), p.policy_text.as_str()),
        (PreviewStatus::Failed, Some("boom"), "z")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_deletes_only_what_still_matches_and_logs_it() {
    let db = database();
    let s = node(&db).await;
    let r = repo("ex/a");
    let id = create_repo(&s, "ex/a").await;
    let a = image(&s, id, "a", 10, &["old"]).await;
    let child = image(&s, id, "child", 10, &[]).await;
    let idx = image(&s, id, "idx", 10, &["idx"]).await;
    child_of(&s, id, &idx, &child).await;
    assert_eq!(
        s.expire_image(&r, &expiry(&a, &[])).await.unwrap(),
        ExpireOutcome::Changed
    );
    assert_eq!(
        s.expire_image(
            &r,
            &Expiry {
                expected_status: "ARCHIVED".into(),
                ..expiry(&a, &["old"])
            }
        )
        .await
        .unwrap(),
        ExpireOutcome::Changed
    );
    assert_eq!(
        s.expire_image(&r, &expiry(&child, &[])).await.unwrap(),
        ExpireOutcome::ReferencedByIndex(idx.to_string())
    );
    let events_before = count(&s, "SELECT COUNT(*) FROM events").await;
    let ExpireOutcome::Expired { event_id } =
        s.expire_image(&r, &expiry(&a, &["old"])).await.unwrap()
    else {
        panic!("not expired")
    };
    let c = s.db.client().await.unwrap();
    let kinds: Vec<String> = c
        .query("SELECT kind FROM events ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .skip(events_before as usize)
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kinds, ["tag.deleted", "manifest.deleted"]);
    assert_eq!(
        s.expire_image(&r, &expiry(&a, &["old"])).await.unwrap(),
        ExpireOutcome::Gone
    );
    assert_eq!(
        s.expire_image(&repo("ex/none"), &expiry(&a, &[]))
            .await
            .unwrap(),
        ExpireOutcome::Gone
    );
    // A batch in order: the child is still held, then its index goes, then it is free.
    let out = s
        .expire_images(
            &r,
            &[
                expiry(&child, &[]),
                expiry(&idx, &["idx"]),
                expiry(&child, &[]),
            ],
        )
        .await
        .unwrap();
    assert!(matches!(out[0], ExpireOutcome::ReferencedByIndex(_)));
    assert!(matches!(out[1], ExpireOutcome::Expired { .. }));
    assert!(matches!(out[2], ExpireOutcome::Expired { .. }));
    let t = s.log_transition(&r, &expiry(&a, &["t"])).await.unwrap();
    let events = s.lifecycle_events(Some(&r), 0, 10).await.unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0].id, event_id);
    assert_eq!(
        (
            events[0].tags.clone(),
            events[0].rule_priority,
            events[0].action.as_str()
        ),
        (vec!["old".to_string()], 2, "EXPIRE")
    );
    assert_eq!((events[3].id, events[3].action.as_str()), (t, "TRANSITION"));
    assert_eq!(
        s.lifecycle_events(None, event_id, 2).await.unwrap().len(),
        2
    );
    assert!(s
        .lifecycle_events(Some(&repo("ex/none")), 0, 10)
        .await
        .unwrap()
        .is_empty());
    let recent = s.recent_lifecycle_events(None, 2).await.unwrap();
    assert_eq!(
        recent.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![t, events[2].id]
    );
    assert_eq!(count(&s, "SELECT COUNT(*) FROM manifests").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_racing_start_one_preview_and_expire_an_image_once() {
    let db = database();
    let nodes = nodes(&db, NODES).await;
    let s = nodes[0].clone();
    let id = create_repo(&s, "race/lc").await;
    let started = on_every_node(&nodes, |_, n| async move {
        n.start_preview(ACC, &repo("race/lc"), "p", 100)
            .await
            .unwrap()
    })
    .await;
    let generations: Vec<i64> = started
        .iter()
        .filter_map(|s| match s {
            StartPreview::Started { generation } => Some(*generation),
            StartPreview::InProgress => None,
        })
        .collect();
    assert_eq!(generations, vec![1], "{started:?}");
    // Every node finishing the one run at once: it is written once.
    let finished = on_every_node(&nodes, |i, n| async move {
        let rows = vec![result(1, &format!("sha256:{i}"), &[], "EXPIRE")];
        n.finish_preview(&repo("race/lc"), 1, &PreviewOutcome::Complete(rows), 200)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(finished.iter().filter(|f| **f).count(), 1, "{finished:?}");
    assert_eq!(
        s.preview_results(&repo("race/lc"), PreviewTagFilter::Any, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    let d = image(&s, id, "once", 10, &["t"]).await;
    let expired = on_every_node(&nodes, |_, n| {
        let d = d.clone();
        async move {
            n.expire_image(&repo("race/lc"), &expiry(&d, &["t"]))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(
        expired
            .iter()
            .filter(|e| matches!(e, ExpireOutcome::Expired { .. }))
            .count(),
        1,
        "{expired:?}"
    );
    assert!(expired
        .iter()
        .all(|e| matches!(e, ExpireOutcome::Expired { .. } | ExpireOutcome::Gone)));
    assert_eq!(count(&s, "SELECT COUNT(*) FROM lifecycle_events").await, 1);
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM events WHERE kind = 'manifest.deleted'"
        )
        .await,
        1
    );
}

/// Another node's uncommitted write to the image being expired: the expiry waits for it and
/// then sees it, so an image retagged (or untagged) meanwhile is left alone and the tag
/// survives where it now points.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expiry_sees_a_tag_moved_or_added_by_another_node_and_leaves_the_image() {
    let db = database();
    let (a, b) = (Arc::new(node(&db).await), node(&db).await);
    let id = create_repo(&a, "mv/a").await;
    let x = image(&a, id, "x", 10, &["t"]).await;
    let y = image(&a, id, "y", 10, &[]).await;
    let (x_text, y_text) = (x.to_string(), y.to_string());

    for (what, statement) in [
        (
            "move",
            "UPDATE tags SET digest = $3 WHERE repo_id = $1 AND name = 't' AND digest = $2",
        ),
        (
            "add",
            "INSERT INTO tags (repo_id, name, digest, updated_ms) VALUES ($1, 'u', $2, 2)",
        ),
    ] {
        let mut other = b.db.client().await.unwrap();
        let tx = other.transaction().await.unwrap();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = match what {
            "move" => vec![&id, &x_text, &y_text],
            _ => vec![&id, &x_text],
        };
        assert_eq!(tx.execute(statement, &params).await.unwrap(), 1);
        let expecting: Vec<&str> = if what == "move" { vec!["t"] } else { vec![] };
        let expire = {
            let (a, e) = (a.clone(), expiry(&x, &expecting));
            tokio::spawn(async move { a.expire_image(&repo("mv/a"), &e).await.unwrap() })
        };
        // Gives the expiry time to reach the row lock; the outcome does not depend on it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.commit().await.unwrap();
        assert_eq!(expire.await.unwrap(), ExpireOutcome::Changed, "{what}");
        assert_eq!(
            count(
                &a,
                &format!("SELECT COUNT(*) FROM manifests WHERE digest = '{x}'")
            )
            .await,
            1,
            "{what}"
        );
    }
    assert_eq!(
        count(
            &a,
            &format!("SELECT COUNT(*) FROM tags WHERE name = 't' AND digest = '{y}'")
        )
        .await,
        1
    );
}

/// The facts of a repository of 50,000 images (half tagged, every tenth in an index,
/// every hundredth pulled) are one statement whose plan reaches tags and parents by their
/// indexes (no sequential scan of either table) beside other repositories' rows. The time
/// is printed, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_of_fifty_thousand_images_are_one_indexed_statement() {
    const N: i64 = 50_000;
    let db = database();
    let s = node(&db).await;
    let id = create_repo(&s, "big/app").await;
    let other = create_repo(&s, "big/other").await;
    let idx = image(&s, id, "the index", 0, &[]).await.to_string();
    // A test shortcut: the rows are what put_manifest and the pull-time recorder write.
    for (repo, n) in [(id, N), (other, N)] {
        sql(
            &s,
            "INSERT INTO manifests (repo_id, digest, media_type, size, body, pushed_ms, image_size)
             SELECT $1, 'sha256:' || lpad(to_hex(i), 64, '0'),
                    'application/vnd.oci.image.manifest.v1+json', 2, '\\x7b7d', i, 1000
             FROM generate_series(1, $2::bigint) AS i",
            &[&repo, &n],
        )
        .await;
        sql(
            &s,
            "INSERT INTO tags (repo_id, name, digest, updated_ms)
             SELECT $1, 't' || i, 'sha256:' || lpad(to_hex(i), 64, '0'), 1
             FROM generate_series(2, $2::bigint, 2) AS i",
            &[&repo, &n],
        )
        .await;
    }
    sql(
        &s,
        "INSERT INTO manifest_refs (repo_id, manifest, kind, target)
         SELECT $1, $2, 1, 'sha256:' || lpad(to_hex(i), 64, '0') FROM generate_series(10, $3::bigint, 10) AS i",
        &[&id, &idx, &N],
    )
    .await;
    sql(
        &s,
        "INSERT INTO image_pulls (repo_id, digest, last_pull_ms)
         SELECT $1, 'sha256:' || lpad(to_hex(i), 64, '0'), 5 FROM generate_series(100, $2::bigint, 100) AS i",
        &[&id, &N],
    )
    .await;
    sql(&s, "ANALYZE", &[]).await;

    let c = s.db.client().await.unwrap();
    let name = format!("{ACC}/big/app");
    let plan: Vec<String> = c
        .query(
            &format!("EXPLAIN {}", super::lifecycle::FACTS_SELECT),
            &[&name, &super::lifecycle::REF_MANIFEST],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(!plan.contains("Seq Scan on tags"), "{plan}");
    assert!(!plan.contains("Seq Scan on manifest_refs"), "{plan}");
    assert!(plan.contains("tags_digest"), "{plan}");
    assert!(plan.contains("manifest_refs_target"), "{plan}");

    let start = std::time::Instant::now();
    let facts = s.image_facts(&repo("big/app")).await.unwrap().unwrap();
    eprintln!(
        "image_facts: {} images in {:?}",
        facts.len(),
        start.elapsed()
    );
    assert_eq!(facts.len() as i64, N + 1);
    assert_eq!(
        facts.iter().filter(|f| !f.tags.is_empty()).count() as i64,
        N / 2
    );
    assert_eq!(
        facts
            .iter()
            .filter(|f| f.parents == vec![idx.clone()])
            .count() as i64,
        N / 10
    );
    assert_eq!(
        facts.iter().filter(|f| f.last_pull_ms == Some(5)).count() as i64,
        N / 100
    );
}
