//! The behaviour every [`LifecycleStore`] backend must show. `meta` and `store` are the same
//! database seen through its two traits; each backend's tests call [`run`] on a fresh,
//! empty store.
// A suite is test code that backends run from their tests: a failed unwrap is a failed case.
#![allow(clippy::unwrap_used)]

use berth_types::{Digest, RepositoryName};

use crate::lifecycle::{
    ExpireOutcome, Expiry, LifecycleStore, PreviewOutcome, PreviewResultRecord, PreviewStatus,
    PreviewTagFilter, StartPreview, PREVIEW_STALE_MS,
};
use crate::{MetaError, MetaStore, NewManifest};

const ACCOUNT: &str = "111122223333";

use crate::suite::repo;

/// Pushes an image manifest with one layer of `size` bytes (optionally tagged, optionally a
/// referrer of `subject`) at `now_ms`; returns its digest.
async fn push(
    meta: &dyn MetaStore,
    r: &RepositoryName,
    seed: &str,
    tag: Option<&str>,
    subject: Option<&Digest>,
    size: u64,
    now_ms: i64,
) -> Digest {
    let layer = Digest::sha256_of(format!("layer {seed}").as_bytes());
    meta.commit_blob(r, &layer, size, None).await.unwrap();
    let body = format!("{{\"image\":\"{seed}\"}}").into_bytes();
    let digest = Digest::sha256_of(&body);
    meta.put_manifest(
        r,
        &NewManifest {
            digest: digest.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body,
            artifact_type: None,
            subject: subject.cloned(),
            annotations_json: None,
            blobs: vec![layer.clone()],
            children: vec![],
            layers: vec![layer],
            tag: tag.map(|t| t.parse().unwrap()),
            now_ms,
        },
    )
    .await
    .unwrap();
    digest
}

/// Pushes an index over `children`.
async fn push_index(
    meta: &dyn MetaStore,
    r: &RepositoryName,
    children: &[&Digest],
    tag: &str,
) -> Digest {
    let body = format!(
        "{{\"index\":{:?}}}",
        children.iter().map(|d| d.to_string()).collect::<Vec<_>>()
    )
    .into_bytes();
    let digest = Digest::sha256_of(&body);
    meta.put_manifest(
        r,
        &NewManifest {
            digest: digest.clone(),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            body,
            artifact_type: None,
            subject: None,
            annotations_json: None,
            blobs: vec![],
            children: children.iter().map(|d| (*d).clone()).collect(),
            layers: vec![],
            tag: Some(tag.parse().unwrap()),
            now_ms: 50,
        },
    )
    .await
    .unwrap();
    digest
}

/// Runs the whole suite.
pub async fn run(meta: &dyn MetaStore, store: &dyn LifecycleStore) {
    policies(meta, store).await;
    facts(meta, store).await;
    previews(meta, store).await;
    expiry(meta, store).await;
    deleting_a_repository_takes_its_policy_and_preview(meta, store).await;
}

pub async fn policies(meta: &dyn MetaStore, s: &dyn LifecycleStore) {
    let r = repo("lc/policies");
    assert!(matches!(
        s.put_lifecycle_policy(ACCOUNT, &r, "p1", 1).await,
        Err(MetaError::RepositoryNotFound(n)) if n == "lc/policies"
    ));
    assert!(s.lifecycle_policy(&r).await.unwrap().is_none());
    assert!(s.delete_lifecycle_policy(&r).await.unwrap().is_none());
    meta.create_repository(&r, &Default::default(), 1)
        .await
        .unwrap();
    s.put_lifecycle_policy(ACCOUNT, &r, "p1", 2).await.unwrap();
    let p = s.lifecycle_policy(&r).await.unwrap().unwrap();
    assert_eq!(
        (
            p.account.as_str(),
            p.text.as_str(),
            p.updated_ms,
            p.last_evaluated_ms
        ),
        (ACCOUNT, "p1", 2, None)
    );
    // lastEvaluatedAt is recorded only for the text that was evaluated.
    assert!(!s.mark_lifecycle_evaluated(&r, "other", 5).await.unwrap());
    assert!(s.mark_lifecycle_evaluated(&r, "p1", 5).await.unwrap());
    assert_eq!(
        s.lifecycle_policy(&r)
            .await
            .unwrap()
            .unwrap()
            .last_evaluated_ms,
        Some(5)
    );
    // Putting the same text keeps it; a new text was never evaluated.
    s.put_lifecycle_policy(ACCOUNT, &r, "p1", 6).await.unwrap();
    assert_eq!(
        s.lifecycle_policy(&r)
            .await
            .unwrap()
            .unwrap()
            .last_evaluated_ms,
        Some(5)
    );
    s.put_lifecycle_policy(ACCOUNT, &r, "p2", 7).await.unwrap();
    let p = s.lifecycle_policy(&r).await.unwrap().unwrap();
    assert_eq!((p.text.as_str(), p.last_evaluated_ms), ("p2", None));
    assert!(s
        .repositories_with_lifecycle_policies()
        .await
        .unwrap()
        .contains(&repo("lc/policies")));
    let old = s.delete_lifecycle_policy(&r).await.unwrap().unwrap();
    assert_eq!(old.text, "p2");
    assert!(s.lifecycle_policy(&r).await.unwrap().is_none());
    assert!(!s
        .repositories_with_lifecycle_policies()
        .await
        .unwrap()
        .contains(&repo("lc/policies")));
}

pub async fn facts(meta: &dyn MetaStore, s: &dyn LifecycleStore) {
    let r = repo("lc/facts");
    assert!(s.image_facts(&r).await.unwrap().is_none());
    let a = push(meta, &r, "a", Some("v1"), None, 100, 10).await;
    meta.put_manifest(
        &r,
        &NewManifest {
            tag: Some("latest".parse().unwrap()),
            ..meta_manifest(meta, &r, &a).await
        },
    )
    .await
    .unwrap();
    let b = push(meta, &r, "b", None, None, 200, 20).await;
    let sig = push(meta, &r, "sig", None, Some(&a), 5, 30).await;
    let idx = push_index(meta, &r, &[&b], "multi").await;
    meta.record_pull_times(&[crate::PullTimeUpdate {
        repository: r.clone(),
        digest: b.clone(),
        at_ms: 999_000,
    }])
    .await
    .unwrap();
    let facts = s.image_facts(&r).await.unwrap().unwrap();
    assert_eq!(facts.len(), 4);
    let get = |d: &Digest| facts.iter().find(|f| f.digest == d.to_string()).unwrap();
    let fa = get(&a);
    assert_eq!(fa.tags, vec!["latest".to_string(), "v1".to_string()]);
    assert_eq!((fa.pushed_ms, fa.size, fa.last_pull_ms), (10, 100, None));
    assert!(fa.parents.is_empty() && fa.subject.is_none());
    assert_eq!(
        (fa.status.as_str(), fa.archived_ms, fa.activated_ms),
        ("ACTIVE", None, None)
    );
    let fb = get(&b);
    assert!(fb.tags.is_empty());
    assert_eq!(fb.parents, vec![idx.to_string()]);
    assert_eq!(fb.last_pull_ms, Some(999_000));
    assert_eq!(get(&sig).subject.as_deref(), Some(a.to_string().as_str()));
    assert_eq!(get(&idx).tags, vec!["multi".to_string()]);
    // Digest order.
    let digests: Vec<&str> = facts.iter().map(|f| f.digest.as_str()).collect();
    let mut sorted = digests.clone();
    sorted.sort();
    assert_eq!(digests, sorted);
}

/// The stored manifest `d` as a [`NewManifest`] (to re-tag it).
async fn meta_manifest(meta: &dyn MetaStore, r: &RepositoryName, d: &Digest) -> NewManifest {
    let m = meta.get_manifest(r, d).await.unwrap().unwrap();
    NewManifest {
        digest: d.clone(),
        media_type: m.media_type.clone(),
        body: m.body.to_vec(),
        artifact_type: None,
        subject: None,
        annotations_json: None,
        blobs: vec![],
        children: vec![],
        layers: vec![],
        tag: None,
        now_ms: 11,
    }
}

fn result_row(position: i64, digest: &str, tags: &[&str], action: &str) -> PreviewResultRecord {
    PreviewResultRecord {
        position,
        digest: digest.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pushed_ms: position * 10,
        action: action.into(),
        target_storage_class: (action == "TRANSITION").then(|| "ARCHIVE".to_string()),
        rule_priority: 1,
        storage_class: "STANDARD".into(),
        size: 7,
    }
}

pub async fn previews(meta: &dyn MetaStore, s: &dyn LifecycleStore) {
    let r = repo("lc/previews");
    assert!(matches!(
        s.start_preview(ACCOUNT, &r, "p", 1).await,
        Err(MetaError::RepositoryNotFound(_))
    ));
    meta.create_repository(&r, &Default::default(), 1)
        .await
        .unwrap();
    assert!(s.preview(&r).await.unwrap().is_none());
    let StartPreview::Started { generation: g1 } =
        s.start_preview(ACCOUNT, &r, "p", 100).await.unwrap()
    else {
        panic!("first preview did not start")
    };
    let p = s.preview(&r).await.unwrap().unwrap();
    assert_eq!(p.status, PreviewStatus::InProgress);
    assert_eq!((p.policy_text.as_str(), p.started_ms), ("p", 100));
    // A second start while the first runs is refused, until the first is stale.
    assert_eq!(
        s.start_preview(ACCOUNT, &r, "q", 200).await.unwrap(),
        StartPreview::InProgress
    );
    let rows = vec![
        result_row(1, "sha256:a", &["v1"], "EXPIRE"),
        result_row(2, "sha256:b", &[], "EXPIRE"),
        result_row(3, "sha256:c", &["v3", "x"], "TRANSITION"),
        result_row(4, "sha256:d", &[], "EXPIRE"),
    ];
    assert!(s
        .finish_preview(&r, g1, &PreviewOutcome::Complete(rows.clone()), 300)
        .await
        .unwrap());
    let p = s.preview(&r).await.unwrap().unwrap();
    assert_eq!(p.status, PreviewStatus::Complete);
    assert_eq!((p.expiring_count, p.transitioning_count), (3, 1));
    assert_eq!(p.finished_ms, Some(300));
    // Finishing twice writes nothing.
    assert!(!s
        .finish_preview(&r, g1, &PreviewOutcome::Failed("late".into()), 301)
        .await
        .unwrap());
    // Pages in position order, with the tag filter.
    let all = s
        .preview_results(&r, PreviewTagFilter::Any, None, 100)
        .await
        .unwrap();
    assert_eq!(all, rows);
    let page = s
        .preview_results(&r, PreviewTagFilter::Any, Some(1), 2)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|x| x.position).collect::<Vec<_>>(),
        vec![2, 3]
    );
    let tagged = s
        .preview_results(&r, PreviewTagFilter::Tagged, None, 100)
        .await
        .unwrap();
    assert_eq!(
        tagged.iter().map(|x| x.digest.as_str()).collect::<Vec<_>>(),
        vec!["sha256:a", "sha256:c"]
    );
    let untagged = s
        .preview_results(&r, PreviewTagFilter::Untagged, Some(2), 100)
        .await
        .unwrap();
    assert_eq!(
        untagged
            .iter()
            .map(|x| x.digest.as_str())
            .collect::<Vec<_>>(),
        vec!["sha256:d"]
    );
    // A new preview replaces the old one and its rows; a stale in-progress run is replaced.
    let StartPreview::Started { generation: g2 } =
        s.start_preview(ACCOUNT, &r, "q", 400).await.unwrap()
    else {
        panic!("second preview did not start")
    };
    assert!(g2 > g1);
    assert!(s
        .preview_results(&r, PreviewTagFilter::Any, None, 100)
        .await
        .unwrap()
        .is_empty());
    let StartPreview::Started { generation: g3 } = s
        .start_preview(ACCOUNT, &r, "z", 400 + PREVIEW_STALE_MS)
        .await
        .unwrap()
    else {
        panic!("a stale preview blocked a new one")
    };
    // The lost run cannot overwrite the newer one.
    assert!(!s
        .finish_preview(&r, g2, &PreviewOutcome::Complete(rows), 500)
        .await
        .unwrap());
    assert!(s
        .finish_preview(&r, g3, &PreviewOutcome::Failed("boom".into()), 600)
        .await
        .unwrap());
    let p = s.preview(&r).await.unwrap().unwrap();
    assert_eq!(p.status, PreviewStatus::Failed);
    assert_eq!(p.failure.as_deref(), Some("boom"));
    assert_eq!(p.policy_text, "z");
}

pub async fn expiry(meta: &dyn MetaStore, s: &dyn LifecycleStore) {
    let r = repo("lc/expiry");
    let a = push(meta, &r, "ea", Some("old"), None, 100, 10).await;
    let b = push(meta, &r, "eb", None, None, 200, 20).await;
    let child = push(meta, &r, "ec", None, None, 300, 30).await;
    push_index(meta, &r, &[&child], "idx").await;
    let exp = |d: &Digest, tags: &[&str]| Expiry {
        digest: d.clone(),
        expected_tags: tags.iter().map(|t| t.to_string()).collect(),
        expected_status: "ACTIVE".into(),
        rule_priority: 3,
        size: 100,
        pushed_ms: 10,
        at_ms: 1_000,
    };
    // Tags differ from what was evaluated (a concurrent push tagged it): left alone.
    assert_eq!(
        s.expire_image(&r, &exp(&a, &[])).await.unwrap(),
        ExpireOutcome::Changed
    );
    assert_eq!(
        s.expire_image(&r, &exp(&a, &["old", "new"])).await.unwrap(),
        ExpireOutcome::Changed
    );
    // Archived (or restored) since evaluation: left alone.
    assert_eq!(
        s.expire_image(
            &r,
            &Expiry {
                expected_status: "ARCHIVED".into(),
                ..exp(&a, &["old"])
            }
        )
        .await
        .unwrap(),
        ExpireOutcome::Changed
    );
    // Referenced by an index: left alone.
    assert!(matches!(
        s.expire_image(&r, &exp(&child, &[])).await.unwrap(),
        ExpireOutcome::ReferencedByIndex(_)
    ));
    let before = meta.events_after(0, 10_000).await.unwrap().len();
    let ExpireOutcome::Expired { event_id } = s.expire_image(&r, &exp(&a, &["old"])).await.unwrap()
    else {
        panic!("not expired")
    };
    assert!(meta.get_manifest(&r, &a).await.unwrap().is_none());
    assert!(meta
        .resolve_tag(&r, &"old".parse().unwrap())
        .await
        .unwrap()
        .is_none());
    // The outbox has the tag and manifest deletions, like any image delete.
    let events = meta.events_after(0, 10_000).await.unwrap();
    let kinds: Vec<&str> = events[before..].iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["tag.deleted", "manifest.deleted"]);
    // Idempotent: a second run finds it gone.
    assert_eq!(
        s.expire_image(&r, &exp(&a, &["old"])).await.unwrap(),
        ExpireOutcome::Gone
    );
    assert!(matches!(
        s.expire_image(&r, &exp(&b, &[])).await.unwrap(),
        ExpireOutcome::Expired { .. }
    ));
    assert_eq!(
        s.expire_image(&repo("lc/none"), &exp(&b, &[]))
            .await
            .unwrap(),
        ExpireOutcome::Gone
    );
    // A batch runs in order in one transaction: a child before its index is still held;
    // an index before its child frees it.
    let c1 = push(meta, &r, "bc1", None, None, 10, 40).await;
    let i1 = push_index(meta, &r, &[&c1], "b1").await;
    let batch = |d: &Digest, tags: &[&str]| Expiry {
        rule_priority: 4,
        ..exp(d, tags)
    };
    let out = s
        .expire_images(&r, &[batch(&c1, &[]), batch(&i1, &["b1"])])
        .await
        .unwrap();
    assert!(
        matches!(out[0], ExpireOutcome::ReferencedByIndex(_)),
        "{out:?}"
    );
    assert!(matches!(out[1], ExpireOutcome::Expired { .. }), "{out:?}");
    let c2 = push(meta, &r, "bc2", None, None, 10, 40).await;
    let i2 = push_index(meta, &r, &[&c2], "b2").await;
    let out = s
        .expire_images(&r, &[batch(&i2, &["b2"]), batch(&c2, &[])])
        .await
        .unwrap();
    assert!(
        out.iter()
            .all(|o| matches!(o, ExpireOutcome::Expired { .. })),
        "{out:?}"
    );
    assert!(meta.get_manifest(&r, &c2).await.unwrap().is_none());
    assert!(meta.get_manifest(&r, &c1).await.unwrap().is_some());
    assert_eq!(
        s.expire_images(&repo("lc/none"), &[batch(&c1, &[]), batch(&c2, &[])])
            .await
            .unwrap(),
        vec![ExpireOutcome::Gone, ExpireOutcome::Gone]
    );

    // The log, oldest first after an id, or newest first.
    let log = s
        .lifecycle_events(Some(&repo("lc/expiry")), 0, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 5);
    assert_eq!(log[0].id, event_id);
    assert_eq!(log[0].digest, a.to_string());
    assert_eq!(log[0].tags, vec!["old".to_string()]);
    assert_eq!(
        (
            log[0].rule_priority,
            log[0].action.as_str(),
            log[0].size,
            log[0].at_ms
        ),
        (3, "EXPIRE", 100, 1_000)
    );
    assert_eq!(log[1].digest, b.to_string());
    let later = s
        .lifecycle_events(Some(&repo("lc/expiry")), event_id, 10)
        .await
        .unwrap();
    assert_eq!(later.len(), 4);
    let recent = s.recent_lifecycle_events(None, 1).await.unwrap();
    assert_eq!(recent[0].digest, c2.to_string());
    assert_eq!(recent[0].rule_priority, 4);
    assert!(s
        .lifecycle_events(Some(&repo("lc/other")), 0, 10)
        .await
        .unwrap()
        .is_empty());
    // Transitions are logged by the caller after the archive moved the image.
    let t = s.log_transition(&r, &exp(&child, &["x"])).await.unwrap();
    let recent = s
        .recent_lifecycle_events(Some(&repo("lc/expiry")), 1)
        .await
        .unwrap();
    assert_eq!(recent[0].id, t);
    assert_eq!(recent[0].action, "TRANSITION");
    assert_eq!(recent[0].tags, vec!["x".to_string()]);
}

pub async fn deleting_a_repository_takes_its_policy_and_preview(
    meta: &dyn MetaStore,
    s: &dyn LifecycleStore,
) {
    let r = repo("lc/gone");
    let a = push(meta, &r, "ga", None, None, 1, 1).await;
    s.put_lifecycle_policy(ACCOUNT, &r, "p", 1).await.unwrap();
    let StartPreview::Started { generation } = s.start_preview(ACCOUNT, &r, "p", 1).await.unwrap()
    else {
        panic!()
    };
    s.finish_preview(
        &r,
        generation,
        &PreviewOutcome::Complete(vec![result_row(1, &a.to_string(), &[], "EXPIRE")]),
        2,
    )
    .await
    .unwrap();
    meta.delete_repository(&r, true).await.unwrap();
    assert!(s.lifecycle_policy(&r).await.unwrap().is_none());
    assert!(s.preview(&r).await.unwrap().is_none());
    // A new repository of the same name starts clean.
    meta.create_repository(&r, &Default::default(), 3)
        .await
        .unwrap();
    assert!(s.lifecycle_policy(&r).await.unwrap().is_none());
    assert!(s.preview(&r).await.unwrap().is_none());
    assert!(s
        .preview_results(&r, PreviewTagFilter::Any, None, 10)
        .await
        .unwrap()
        .is_empty());
}
