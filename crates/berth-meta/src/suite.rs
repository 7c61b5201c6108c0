//! The behaviour every [`MetaStore`] backend must show, as named cases: a backend's tests
//! emit one test per case with [`crate::meta_store_suite`], or call [`run`] for all in order.
// A suite is test code that backends run from their tests: a failed unwrap is a failed case.
#![allow(clippy::unwrap_used)]

use berth_types::{Digest, RepositoryName, Tag};

use crate::{
    DeleteImageOutcome, ImageId, MetaError, MetaStore, NewManifest, PullTimeUpdate,
    RegisterExclusionOutcome, RepositorySettings, TagStatus, UploadRecord,
};

/// The account of the repositories the suites create.
pub(crate) const SUITE_ACCOUNT: &str = "111122223333";

fn acct() -> berth_types::AccountId {
    SUITE_ACCOUNT.parse().unwrap()
}

/// A repository of the suite's account (`111122223333`).
pub(crate) fn repo(s: &str) -> RepositoryName {
    RepositoryName::new(crate::suite::SUITE_ACCOUNT.parse().unwrap(), s).unwrap()
}
fn tag(s: &str) -> Tag {
    s.parse().unwrap()
}
fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

fn manifest(
    body: &str,
    blobs: Vec<Digest>,
    children: Vec<Digest>,
    tag_: Option<&str>,
) -> NewManifest {
    NewManifest {
        digest: Digest::sha256_of(body.as_bytes()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        body: body.as_bytes().to_vec(),
        artifact_type: None,
        subject: None,
        annotations_json: None,
        layers: blobs.iter().skip(1).cloned().collect(),
        blobs,
        children,
        tag: tag_.map(tag),
        now_ms: 1,
    }
}

/// Runs every case in order against one fresh, empty store (each case also passes on its
/// own fresh store: [`crate::meta_store_suite`] runs them so).
pub async fn run(store: &dyn MetaStore) {
    uploads_blobs_manifests_tags_and_events(store).await;
    repositories(store).await;
    images(store).await;
    tag_mutability(store).await;
    pull_times(store).await;
    account_namespaces(store).await;
}

/// Uploads, commits and links, manifests with their references, tags, mounts, indexes,
/// referrers, the catalog, deletes and the events they write.
pub async fn uploads_blobs_manifests_tags_and_events(store: &dyn MetaStore) {
    let a = repo("team/a");
    let b = repo("team/b");
    let (cfg, layer) = (d("cfg"), d("layer"));

    // Nothing yet.
    assert!(!store.repository_exists(&a).await.unwrap());
    assert!(store.list_tags(&a, None, 10).await.unwrap().is_none());
    assert!(store.linked_blob(&a, &cfg).await.unwrap().is_none());

    // Uploads.
    let up = UploadRecord {
        id: "u1".into(),
        repository: a.clone(),
        started_ms: 10,
        updated_ms: 10,
    };
    store.create_upload(&up).await.unwrap();
    assert_eq!(store.get_upload("u1").await.unwrap(), Some(up.clone()));
    store.touch_upload("u1", 50).await.unwrap();
    assert_eq!(store.stale_uploads(40).await.unwrap(), Vec::<String>::new());
    assert_eq!(
        store.stale_uploads(60).await.unwrap(),
        vec!["u1".to_string()]
    );

    // Blobs and links; committing removes the upload row.
    store.commit_blob(&a, &cfg, 2, Some("u1")).await.unwrap();
    assert!(store.get_upload("u1").await.unwrap().is_none());
    assert_eq!(store.linked_blob(&a, &cfg).await.unwrap(), Some(2));
    assert!(store.linked_blob(&b, &cfg).await.unwrap().is_none());

    // A manifest with a missing layer is refused and nothing is stored.
    let m1 = manifest("m1", vec![cfg.clone(), layer.clone()], vec![], Some("v1"));
    assert!(matches!(
        store.put_manifest(&a, &m1).await,
        Err(MetaError::BlobNotLinked(x)) if x == layer
    ));
    assert!(store.resolve_tag(&a, &tag("v1")).await.unwrap().is_none());
    // Repositories holding no manifest are not in the catalog.
    assert!(store
        .list_repositories(acct(), None, 10)
        .await
        .unwrap()
        .is_empty());

    store.commit_blob(&a, &layer, 5, None).await.unwrap();
    let out = store.put_manifest(&a, &m1).await.unwrap();
    assert!(out.created);
    assert_eq!(
        store.resolve_tag(&a, &tag("v1")).await.unwrap(),
        Some(m1.digest.clone())
    );
    let rec = store.get_manifest(&a, &m1.digest).await.unwrap().unwrap();
    assert_eq!(rec.body, b"m1");
    assert!(!store.put_manifest(&a, &m1).await.unwrap().created);

    // Moving a tag reports the previous target.
    let m2 = manifest("m2", vec![cfg.clone()], vec![], Some("v1"));
    let out = store.put_manifest(&a, &m2).await.unwrap();
    assert_eq!(out.previous_tag_target, Some(m1.digest.clone()));

    // Mount: from a repository holding the blob, and from one that does not.
    assert_eq!(store.mount_blob(&b, &a, &layer).await.unwrap(), Some(5));
    assert_eq!(store.linked_blob(&b, &layer).await.unwrap(), Some(5));
    assert_eq!(
        store.mount_blob(&b, &repo("nobody"), &cfg).await.unwrap(),
        None
    );
    assert!(store.linked_blob(&b, &cfg).await.unwrap().is_none());

    // Indexes need their children; a referenced child cannot be deleted.
    let idx = manifest(
        "idx",
        vec![],
        vec![m1.digest.clone(), d("absent")],
        Some("multi"),
    );
    assert!(matches!(
        store.put_manifest(&a, &idx).await,
        Err(MetaError::ChildManifestMissing(_))
    ));
    let idx = manifest("idx", vec![], vec![m1.digest.clone()], Some("multi"));
    store.put_manifest(&a, &idx).await.unwrap();
    assert!(matches!(
        store.delete_manifest(&a, &m1.digest).await,
        Err(MetaError::ManifestReferenced { .. })
    ));

    // Tags list in order with pagination.
    for t in ["c", "a", "b"] {
        store
            .put_manifest(&a, &manifest("m2", vec![cfg.clone()], vec![], Some(t)))
            .await
            .unwrap();
    }
    assert_eq!(
        store.list_tags(&a, None, 3).await.unwrap().unwrap(),
        vec!["a", "b", "c"]
    );
    assert_eq!(
        store.list_tags(&a, Some("c"), 10).await.unwrap().unwrap(),
        vec!["multi", "v1"]
    );

    // Referrers.
    let mut sig = manifest("sig", vec![cfg.clone()], vec![], None);
    sig.subject = Some(m1.digest.clone());
    sig.artifact_type = Some("application/x.sig".into());
    store.put_manifest(&a, &sig).await.unwrap();
    let refs = store.referrers(&a, &m1.digest).await.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].digest, sig.digest);
    assert_eq!(refs[0].artifact_type.as_deref(), Some("application/x.sig"));
    assert!(store.referrers(&b, &m1.digest).await.unwrap().is_empty());

    // Catalog.
    store
        .put_manifest(&b, &manifest("mb", vec![layer.clone()], vec![], Some("x")))
        .await
        .unwrap();
    assert_eq!(
        store.list_repositories(acct(), None, 10).await.unwrap(),
        vec!["team/a", "team/b"]
    );
    assert_eq!(
        store
            .list_repositories(acct(), Some("team/a"), 10)
            .await
            .unwrap(),
        vec!["team/b"]
    );

    // Deletes: tag, then manifest (with its remaining tags).
    assert!(store.delete_tag(&a, &tag("a")).await.unwrap());
    assert!(!store.delete_tag(&a, &tag("a")).await.unwrap());
    assert!(store.delete_manifest(&a, &idx.digest).await.unwrap());
    assert!(store
        .resolve_tag(&a, &tag("multi"))
        .await
        .unwrap()
        .is_none());
    // A blob a manifest uses keeps its link (m1 uses the layer) ...
    assert!(matches!(
        store.unlink_blob(&a, &layer).await,
        Err(MetaError::BlobReferenced { digest, manifest }) if digest == layer && manifest == m1.digest
    ));
    assert_eq!(store.linked_blob(&a, &layer).await.unwrap(), Some(5));
    assert!(store.delete_manifest(&a, &m1.digest).await.unwrap());
    assert!(!store.delete_manifest(&a, &m1.digest).await.unwrap());
    // ... until no manifest of the repository does.
    assert!(store.unlink_blob(&a, &layer).await.unwrap());
    assert!(!store.unlink_blob(&a, &layer).await.unwrap());

    // Events were written for pushes and deletes.
    let events = store.events_after(0, 1000).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "manifest.pushed"));
    assert!(events.iter().any(|e| e.kind == "manifest.deleted"));
    assert!(events.iter().any(|e| e.kind == "tag.deleted"));
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(
        store.last_event_id().await.unwrap(),
        events.last().unwrap().id
    );
}

/// Each account's registry is its own namespace: the same name in two accounts is two
/// repositories, each listed only in its own registry.
pub async fn account_namespaces(store: &dyn MetaStore) {
    let (mine, theirs): (berth_types::AccountId, berth_types::AccountId) = (
        "121212121212".parse().unwrap(),
        "343434343434".parse().unwrap(),
    );
    let here = RepositoryName::new(mine, "shared/name").unwrap();
    let there = RepositoryName::new(theirs, "shared/name").unwrap();
    let (cfg, layer) = (d("ns-cfg"), d("ns-layer"));
    store.commit_blob(&here, &cfg, 3, None).await.unwrap();
    store.commit_blob(&here, &layer, 4, None).await.unwrap();
    let m = manifest("ns-m", vec![cfg.clone(), layer.clone()], vec![], Some("v1"));
    store.put_manifest(&here, &m).await.unwrap();

    assert!(store.repository_exists(&here).await.unwrap());
    assert!(!store.repository_exists(&there).await.unwrap());
    assert!(store.linked_blob(&there, &layer).await.unwrap().is_none());
    assert!(store
        .get_manifest(&there, &m.digest)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.list_repositories(mine, None, 10).await.unwrap(),
        vec!["shared/name"]
    );
    assert!(store
        .list_repositories(theirs, None, 10)
        .await
        .unwrap()
        .is_empty());
    // The suite's own account does not see it either, nor does it see theirs.
    assert!(!store
        .list_repositories(acct(), None, 1000)
        .await
        .unwrap()
        .contains(&"shared/name".to_string()));

    // The same name in the other account is created, filled and deleted on its own.
    store
        .create_repository(&there, &settings("MUTABLE", &[]), 5)
        .await
        .unwrap();
    let listed = store.describe_repositories(theirs, None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "shared/name");
    store.delete_repository(&there, true).await.unwrap();
    assert!(store.repository_exists(&here).await.unwrap());
    assert!(store
        .get_manifest(&here, &m.digest)
        .await
        .unwrap()
        .is_some());
    let deleted = store.events_after(0, 10_000).await.unwrap();
    assert!(deleted
        .iter()
        .any(|e| e.kind == "repository.deleted" && e.repository == there));
}

fn settings(mode: &str, filters: &[&str]) -> RepositorySettings {
    RepositorySettings {
        image_tag_mutability: mode.into(),
        image_tag_mutability_exclusion_filters: filters.iter().map(|f| f.to_string()).collect(),
    }
}

/// The ECR image view: sizes computed at push, tags, filters, keyset pages, deletes.
pub async fn images(store: &dyn MetaStore) {
    let r = repo("img/app");
    assert!(store
        .describe_images(&r, TagStatus::Any, None, 10)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .list_images(&r, TagStatus::Any, None, 10)
        .await
        .unwrap()
        .is_none());
    let (cfg, l1, l2) = (d("img-cfg"), d("img-l1"), d("img-l2"));
    for (b, size) in [(&cfg, 7), (&l1, 100), (&l2, 1000)] {
        store.commit_blob(&r, b, size, None).await.unwrap();
    }
    assert_eq!(
        store
            .linked_blobs(&r, &[l1.clone(), d("nope"), l2.clone()])
            .await
            .unwrap(),
        vec![Some(100), None, Some(1000)]
    );
    assert!(!store.blob_referenced(&r, &l1).await.unwrap());
    // Image size: the stored layer sizes, config excluded.
    let mut small = manifest(
        "img-small",
        vec![cfg.clone(), l1.clone()],
        vec![],
        Some("v1"),
    );
    small.now_ms = 1_000;
    small.artifact_type = Some("application/vnd.oci.image.config.v1+json".into());
    let out = store.put_manifest(&r, &small).await.unwrap();
    assert!(out.created && out.tag_updated);
    assert!(store.blob_referenced(&r, &l1).await.unwrap());
    assert!(!store.blob_referenced(&r, &l2).await.unwrap());
    // The same push again changes nothing; a new tag on it does.
    let out = store.put_manifest(&r, &small).await.unwrap();
    assert!(!out.created && !out.tag_updated && out.previous_tag_target.is_none());
    let mut also = small.clone();
    also.tag = Some(tag("stable"));
    assert!(store.put_manifest(&r, &also).await.unwrap().tag_updated);
    let mut big = manifest(
        "img-big",
        vec![cfg.clone(), l1.clone(), l2.clone()],
        vec![],
        None,
    );
    big.now_ms = 2_000;
    store.put_manifest(&r, &big).await.unwrap();
    let mut index = manifest(
        "img-index",
        vec![],
        vec![small.digest.clone(), big.digest.clone()],
        Some("multi"),
    );
    index.media_type = "application/vnd.oci.image.index.v1+json".into();
    store.put_manifest(&r, &index).await.unwrap();

    let all = store
        .describe_images(&r, TagStatus::Any, None, 10)
        .await
        .unwrap()
        .unwrap();
    let mut digests: Vec<Digest> = vec![
        small.digest.clone(),
        big.digest.clone(),
        index.digest.clone(),
    ];
    digests.sort_by_key(|d| d.to_string());
    assert_eq!(
        all.iter().map(|i| i.digest.clone()).collect::<Vec<_>>(),
        digests
    );
    let by = |d: &Digest| all.iter().find(|i| &i.digest == d).unwrap().clone();
    assert_eq!(by(&small.digest).size, 100);
    assert_eq!(by(&small.digest).tags, vec!["stable", "v1"]);
    assert_eq!(by(&small.digest).pushed_ms, 1_000);
    assert_eq!(
        by(&small.digest).artifact_type.as_deref(),
        Some("application/vnd.oci.image.config.v1+json")
    );
    assert_eq!(by(&big.digest).size, 1100);
    assert!(by(&big.digest).tags.is_empty());
    assert_eq!(
        by(&index.digest).size,
        1100,
        "an index is its largest child"
    );
    assert_eq!(
        by(&index.digest).media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    assert!(all.iter().all(|i| i.last_pull_ms.is_none()));

    // Keyset pages in digest order, and the tag status filters.
    let first = store
        .describe_images(&r, TagStatus::Any, None, 2)
        .await
        .unwrap()
        .unwrap();
    let rest = store
        .describe_images(&r, TagStatus::Any, Some(&first[1].digest), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.len() + rest.len(), 3);
    assert_eq!(rest[0].digest, digests[2]);
    let untagged = store
        .describe_images(&r, TagStatus::Untagged, None, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untagged.len(), 1);
    assert_eq!(untagged[0].digest, big.digest);
    assert_eq!(
        store
            .describe_images(&r, TagStatus::Tagged, None, 10)
            .await
            .unwrap()
            .unwrap()
            .len(),
        2
    );
    let found = store
        .describe_images_by_digest(&r, &[big.digest.clone(), d("absent")])
        .await
        .unwrap();
    assert_eq!(found[0].as_ref().unwrap().digest, big.digest);
    assert!(found[1].is_none());

    // ListImages: one entry per tag plus one per untagged image, ordered, paged.
    let listed = store
        .list_images(&r, TagStatus::Any, None, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.len(), 4);
    let mut expected = vec![
        (small.digest.to_string(), "stable".to_string()),
        (small.digest.to_string(), "v1".to_string()),
        (big.digest.to_string(), String::new()),
        (index.digest.to_string(), "multi".to_string()),
    ];
    expected.sort();
    let got: Vec<(String, String)> = listed
        .iter()
        .map(|i| (i.digest.to_string(), i.tag.clone().unwrap_or_default()))
        .collect();
    assert_eq!(got, expected);
    let mut paged = Vec::new();
    let mut after: Option<ImageId> = None;
    loop {
        let page = store
            .list_images(&r, TagStatus::Any, after.as_ref(), 1)
            .await
            .unwrap()
            .unwrap();
        let Some(last) = page.last().cloned() else {
            break;
        };
        paged.extend(page);
        after = Some(last);
    }
    assert_eq!(paged, listed);
    let tagged = store
        .list_images(&r, TagStatus::Tagged, None, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tagged.len(), 3);
    assert!(tagged.iter().all(|i| i.tag.is_some()));
    assert_eq!(
        store
            .list_images(&r, TagStatus::Untagged, None, 100)
            .await
            .unwrap()
            .unwrap(),
        vec![ImageId {
            digest: big.digest.clone(),
            tag: None
        }]
    );

    // Deletes.
    assert_eq!(
        store
            .delete_image(&r, None, Some(&tag("gone")))
            .await
            .unwrap(),
        DeleteImageOutcome::NotFound
    );
    assert_eq!(
        store
            .delete_image(&r, Some(&d("absent")), None)
            .await
            .unwrap(),
        DeleteImageOutcome::NotFound
    );
    assert_eq!(
        store
            .delete_image(&r, Some(&big.digest), Some(&tag("v1")))
            .await
            .unwrap(),
        DeleteImageOutcome::TagDoesNotMatchDigest
    );
    // A child of an index stays, untouched.
    assert_eq!(
        store
            .delete_image(&r, Some(&big.digest), None)
            .await
            .unwrap(),
        DeleteImageOutcome::ReferencedByIndex(index.digest.clone())
    );
    // Removing one of two tags keeps the image; its last tag takes it (unless referenced).
    assert_eq!(
        store
            .delete_image(&r, Some(&small.digest), Some(&tag("stable")))
            .await
            .unwrap(),
        DeleteImageOutcome::Deleted {
            digest: small.digest.clone(),
            tags: vec!["stable".into()],
            manifest_deleted: false
        }
    );
    assert_eq!(
        store
            .delete_image(&r, None, Some(&tag("v1")))
            .await
            .unwrap(),
        DeleteImageOutcome::ReferencedByIndex(index.digest.clone())
    );
    assert!(store.resolve_tag(&r, &tag("v1")).await.unwrap().is_some());
    assert_eq!(
        store
            .delete_image(&r, None, Some(&tag("multi")))
            .await
            .unwrap(),
        DeleteImageOutcome::Deleted {
            digest: index.digest.clone(),
            tags: vec!["multi".into()],
            manifest_deleted: true
        }
    );
    assert_eq!(
        store
            .delete_image(&r, Some(&small.digest), None)
            .await
            .unwrap(),
        DeleteImageOutcome::Deleted {
            digest: small.digest.clone(),
            tags: vec!["v1".into()],
            manifest_deleted: true
        }
    );
    assert!(store
        .get_manifest(&r, &small.digest)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .delete_image(&repo("img/none"), Some(&small.digest), None)
            .await
            .unwrap(),
        DeleteImageOutcome::NotFound
    );
}

/// Tag mutability is enforced by the push transaction, in all four modes.
pub async fn tag_mutability(store: &dyn MetaStore) {
    let r = repo("img/immutable");
    let rec = store
        .create_repository(&r, &settings("IMMUTABLE", &[]), 5)
        .await
        .unwrap();
    assert!(rec.image_tag_mutability_exclusion_filters.is_empty());
    let one = manifest("mut-1", vec![], vec![], Some("v1"));
    let two = manifest("mut-2", vec![], vec![], Some("v1"));
    store.put_manifest(&r, &one).await.unwrap();
    // The same image to the same tag again is fine; another image is refused, unchanged.
    store.put_manifest(&r, &one).await.unwrap();
    assert!(matches!(
        store.put_manifest(&r, &two).await,
        Err(MetaError::TagImmutable { repository, tag }) if repository == "img/immutable" && tag == "v1"
    ));
    assert_eq!(
        store.resolve_tag(&r, &tag("v1")).await.unwrap(),
        Some(one.digest.clone())
    );
    assert!(store.get_manifest(&r, &two.digest).await.unwrap().is_none());
    // A new tag is never a move.
    let mut fresh = two.clone();
    fresh.tag = Some(tag("v2"));
    store.put_manifest(&r, &fresh).await.unwrap();

    // IMMUTABLE_WITH_EXCLUSION: excluded tags move.
    let rec = store
        .set_tag_mutability(
            &r,
            &settings("IMMUTABLE_WITH_EXCLUSION", &["latest", "dev-*"]),
        )
        .await
        .unwrap();
    assert_eq!(rec.image_tag_mutability, "IMMUTABLE_WITH_EXCLUSION");
    assert_eq!(
        rec.image_tag_mutability_exclusion_filters,
        vec!["latest", "dev-*"]
    );
    assert_eq!(store.get_repository(&r).await.unwrap(), Some(rec));
    for t in ["latest", "dev-1"] {
        let mut a = one.clone();
        a.tag = Some(tag(t));
        store.put_manifest(&r, &a).await.unwrap();
        let mut b = two.clone();
        b.tag = Some(tag(t));
        store.put_manifest(&r, &b).await.unwrap();
    }
    assert!(matches!(
        store.put_manifest(&r, &two).await,
        Err(MetaError::TagImmutable { .. })
    ));
    // MUTABLE_WITH_EXCLUSION: only excluded tags are fixed.
    store
        .set_tag_mutability(&r, &settings("MUTABLE_WITH_EXCLUSION", &["v*"]))
        .await
        .unwrap();
    let mut back = one.clone();
    back.tag = Some(tag("latest"));
    store.put_manifest(&r, &back).await.unwrap();
    assert!(matches!(
        store.put_manifest(&r, &two).await,
        Err(MetaError::TagImmutable { .. })
    ));
    // MUTABLE: anything moves.
    store
        .set_tag_mutability(&r, &settings("MUTABLE", &[]))
        .await
        .unwrap();
    let out = store.put_manifest(&r, &two).await.unwrap();
    assert_eq!(out.previous_tag_target, Some(one.digest.clone()));
    assert!(matches!(
        store
            .set_tag_mutability(&repo("img/missing"), &settings("MUTABLE", &[]))
            .await,
        Err(MetaError::RepositoryNotFound(_))
    ));
}

/// Pull times are recorded in batches, newest wins, and exclusions are kept per registry.
pub async fn pull_times(store: &dyn MetaStore) {
    let r = repo("img/pulled");
    let m = manifest("pulled-1", vec![], vec![], Some("v1"));
    store.put_manifest(&r, &m).await.unwrap();
    let pull = |at_ms| PullTimeUpdate {
        repository: r.clone(),
        digest: m.digest.clone(),
        at_ms,
    };
    let gone = PullTimeUpdate {
        repository: r.clone(),
        digest: d("never-pushed"),
        at_ms: 9,
    };
    assert_eq!(store.record_pull_times(&[]).await.unwrap(), 0);
    assert_eq!(
        store
            .record_pull_times(&[pull(5_000), gone.clone()])
            .await
            .unwrap(),
        1
    );
    store.record_pull_times(&[pull(3_000)]).await.unwrap();
    let img = store
        .describe_images_by_digest(&r, std::slice::from_ref(&m.digest))
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(img.last_pull_ms, Some(5_000), "an older pull never wins");
    store.record_pull_times(&[pull(8_000)]).await.unwrap();
    let listed = store
        .describe_images(&r, TagStatus::Any, None, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed[0].last_pull_ms, Some(8_000));
    // The pull time goes with the image.
    store.delete_manifest(&r, &m.digest).await.unwrap();
    store.put_manifest(&r, &m).await.unwrap();
    let again = store
        .describe_images(&r, TagStatus::Any, None, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again[0].last_pull_ms, None);

    // Exclusions.
    let (acct, other) = ("111111111111", "222222222222");
    let arn = |n: &str| format!("arn:aws:iam::{acct}:user/{n}");
    assert_eq!(
        store
            .add_pull_time_exclusion(acct, &arn("b"), 10, 3)
            .await
            .unwrap(),
        RegisterExclusionOutcome::Registered(crate::PullTimeExclusion {
            principal_arn: arn("b"),
            created_ms: 10
        })
    );
    assert_eq!(
        store
            .add_pull_time_exclusion(acct, &arn("b"), 11, 3)
            .await
            .unwrap(),
        RegisterExclusionOutcome::AlreadyExists
    );
    for n in ["a", "c"] {
        store
            .add_pull_time_exclusion(acct, &arn(n), 12, 3)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .add_pull_time_exclusion(acct, &arn("d"), 13, 3)
            .await
            .unwrap(),
        RegisterExclusionOutcome::LimitExceeded
    );
    store
        .add_pull_time_exclusion(other, "arn:aws:iam::222222222222:root", 14, 3)
        .await
        .unwrap();
    let mine: Vec<String> = store
        .pull_time_exclusions(Some(acct), None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.principal_arn)
        .collect();
    assert_eq!(mine, vec![arn("a"), arn("b"), arn("c")]);
    let page = store
        .pull_time_exclusions(Some(acct), Some(&arn("a")), 1)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].principal_arn, arn("b"));
    assert_eq!(
        store
            .pull_time_exclusions(None, None, 10)
            .await
            .unwrap()
            .len(),
        4
    );
    assert!(store
        .remove_pull_time_exclusion(acct, &arn("b"))
        .await
        .unwrap());
    assert!(!store
        .remove_pull_time_exclusion(acct, &arn("b"))
        .await
        .unwrap());
    assert!(!store
        .remove_pull_time_exclusion(other, &arn("a"))
        .await
        .unwrap());
    assert_eq!(
        store
            .pull_time_exclusions(Some(acct), None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

/// Explicit repositories (the ECR API): create, describe, delete with and without force.
pub async fn repositories(store: &dyn MetaStore) {
    let (e1, e2) = (repo("ecr/one"), repo("ecr/two"));
    // A repository made by a push, holding the blob `layer` and an image tagged `x` (on a
    // fresh store; run after the first case, that case already left them so).
    let pushed_b = repo("team/b");
    if store
        .resolve_tag(&pushed_b, &tag("x"))
        .await
        .unwrap()
        .is_none()
    {
        store
            .commit_blob(&pushed_b, &d("layer"), 5, None)
            .await
            .unwrap();
        let m = manifest("pushed-b", vec![d("layer")], vec![], Some("x"));
        store.put_manifest(&pushed_b, &m).await.unwrap();
    }
    let immutable = RepositorySettings {
        image_tag_mutability: "IMMUTABLE".into(),
        ..Default::default()
    };
    let one = store.create_repository(&e1, &immutable, 77).await.unwrap();
    assert_eq!(one.name, "ecr/one");
    assert_eq!(one.created_ms, 77);
    assert_eq!(one.image_tag_mutability, "IMMUTABLE");
    assert!(one.created_by_api);
    assert!(matches!(
        store.create_repository(&e1, &RepositorySettings::default(), 78).await,
        Err(MetaError::RepositoryAlreadyExists(n)) if n == "ecr/one"
    ));
    // A repository created implicitly by a push also exists for the API.
    assert!(matches!(
        store
            .create_repository(&repo("team/b"), &RepositorySettings::default(), 78)
            .await,
        Err(MetaError::RepositoryAlreadyExists(_))
    ));
    assert_eq!(store.get_repository(&e1).await.unwrap(), Some(one.clone()));
    assert!(store.repository_exists(&e1).await.unwrap());
    let pushed = store
        .get_repository(&repo("team/b"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pushed.image_tag_mutability, "MUTABLE");
    assert!(!pushed.created_by_api);
    store
        .create_repository(&e2, &RepositorySettings::default(), 79)
        .await
        .unwrap();

    // Empty repositories are described too, in name order, paged.
    let all: Vec<String> = store
        .describe_repositories(acct(), None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert!(all.starts_with(&["ecr/one".to_string(), "ecr/two".to_string()]));
    assert!(all.contains(&"team/b".to_string()));
    let page = store
        .describe_repositories(acct(), Some("ecr/one"), 1)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].name, "ecr/two");

    // Delete: missing, empty, non-empty without and with force.
    assert!(matches!(
        store.delete_repository(&repo("ecr/missing"), false).await,
        Err(MetaError::RepositoryNotFound(_))
    ));
    assert_eq!(
        store.delete_repository(&e2, false).await.unwrap().name,
        "ecr/two"
    );
    assert!(store.get_repository(&e2).await.unwrap().is_none());
    let b = repo("team/b");
    assert!(matches!(
        store.delete_repository(&b, false).await,
        Err(MetaError::RepositoryNotEmpty(n)) if n == "team/b"
    ));
    assert!(store.resolve_tag(&b, &tag("x")).await.unwrap().is_some());
    let deleted = store.delete_repository(&b, true).await.unwrap();
    assert_eq!(deleted.name, "team/b");
    assert!(!store.repository_exists(&b).await.unwrap());
    assert!(store.resolve_tag(&b, &tag("x")).await.unwrap().is_none());
    assert!(store.linked_blob(&b, &d("layer")).await.unwrap().is_none());
    // A push recreates it implicitly, empty of the old images.
    store
        .put_manifest(&b, &manifest("mb2", vec![], vec![], Some("y")))
        .await
        .unwrap();
    assert!(store.resolve_tag(&b, &tag("x")).await.unwrap().is_none());
    let events = store.events_after(0, 10_000).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind == "repository.deleted" && e.repository.as_str() == "team/b"));
}

/// Runs the IAM suite ([`crate::iam_suite::run`]): every case in order on one store.
pub async fn iam_suite(store: &dyn crate::IamStore) {
    crate::iam_suite::run(store).await;
}

/// Runs the settings suite ([`crate::settings_suite::run`]): every case in order on one store.
pub async fn settings_suite(meta: &dyn MetaStore, settings: &dyn crate::EcrSettingsStore) {
    crate::settings_suite::run(meta, settings).await;
}
