//! The behaviour every [`MetaStore`] backend must show. Each backend's tests call [`run`].
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

/// Runs the whole suite against a fresh, empty store.
pub async fn run(store: &dyn MetaStore) {
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

    repositories(store).await;
    images(store).await;
    tag_mutability(store).await;
    pull_times(store).await;
    account_namespaces(store).await;
}

/// Each account's registry is its own namespace: the same name in two accounts is two
/// repositories, each listed only in its own registry.
async fn account_namespaces(store: &dyn MetaStore) {
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
async fn images(store: &dyn MetaStore) {
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
async fn tag_mutability(store: &dyn MetaStore) {
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
async fn pull_times(store: &dyn MetaStore) {
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
async fn repositories(store: &dyn MetaStore) {
    let (e1, e2) = (repo("ecr/one"), repo("ecr/two"));
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

/// The behaviour every [`IamStore`](crate::IamStore) backend must show, against a fresh,
/// empty store. Backends add their own encrypted-at-rest check (it needs their storage).
pub async fn iam_suite(store: &dyn crate::IamStore) {
    use crate::iam::*;

    const ACC: &str = "111122223333";
    let user = |name: &str, path: &str| NewUser {
        account_id: ACC.into(),
        name: name.into(),
        path: path.into(),
        arn: format!("arn:aws:iam::{ACC}:user{path}{name}"),
    };

    // Accounts, with a root key created in the same transaction.
    assert!(store.get_account(ACC).await.unwrap().is_none());
    assert!(matches!(
        store.create_user(&user("alice", "/")).await,
        Err(IamError::AccountNotFound(_))
    ));
    let root_key = NewAccessKey::generate();
    let account = Account {
        id: ACC.into(),
        alias: None,
        created_ms: 7,
    };
    store
        .create_account(&account, Some(&root_key))
        .await
        .unwrap();
    assert_eq!(store.get_account(ACC).await.unwrap(), Some(account.clone()));
    assert!(matches!(
        store.create_account(&account, None).await,
        Err(IamError::AccountAlreadyExists(_))
    ));
    assert!(matches!(
        store
            .create_account(
                &Account {
                    id: "12ab".into(),
                    alias: None,
                    created_ms: 0
                },
                None
            )
            .await,
        Err(IamError::InvalidInput(_))
    ));
    let other = Account {
        id: "444455556666".into(),
        alias: Some("other".into()),
        created_ms: 8,
    };
    store.create_account(&other, None).await.unwrap();
    assert_eq!(
        store.list_accounts().await.unwrap(),
        vec![account.clone(), other.clone()]
    );

    // The root key looks up with its decrypted secret.
    let found = store
        .lookup_access_key(&root_key.access_key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.account_id, ACC);
    assert_eq!(found.principal, KeyPrincipal::Root);
    assert_eq!(found.status, KeyStatus::Active);
    assert_eq!(found.secret, root_key.secret);
    assert!(!format!("{found:?}").contains(root_key.secret.expose()));
    assert!(store
        .lookup_access_key("AKIANOSUCHKEY0000000")
        .await
        .unwrap()
        .is_none());

    // Users: create, duplicates (case-insensitive), get, list with path prefix.
    let alice = store.create_user(&user("alice", "/")).await.unwrap();
    assert!(alice.user_id.starts_with("AIDA") && alice.user_id.len() == 21);
    assert_eq!(alice.arn, format!("arn:aws:iam::{ACC}:user/alice"));
    assert!(matches!(
        store.create_user(&user("alice", "/")).await,
        Err(IamError::UserAlreadyExists(n)) if n == "alice"
    ));
    assert!(matches!(
        store.create_user(&user("ALICE", "/")).await,
        Err(IamError::UserAlreadyExists(_))
    ));
    assert!(matches!(
        store.create_user(&user("bad name", "/")).await,
        Err(IamError::InvalidInput(_))
    ));
    assert!(matches!(
        store.create_user(&user("x", "nopath")).await,
        Err(IamError::InvalidInput(_))
    ));
    store.create_user(&user("ci", "/bots/")).await.unwrap();
    assert_eq!(store.get_user(ACC, "Alice").await.unwrap(), alice);
    assert!(matches!(
        store.get_user(ACC, "bob").await,
        Err(IamError::UserNotFound(n)) if n == "bob"
    ));
    // Users are per account.
    assert!(matches!(
        store.get_user(&other.id, "alice").await,
        Err(IamError::UserNotFound(_))
    ));
    let names = |v: Vec<User>| v.into_iter().map(|u| u.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.list_users(ACC, None).await.unwrap()),
        vec!["alice", "ci"]
    );
    assert_eq!(
        names(store.list_users(ACC, Some("/bots/")).await.unwrap()),
        vec!["ci"]
    );
    assert!(store.list_users(&other.id, None).await.unwrap().is_empty());

    // Access keys: two per user at most, status changes, ownership checks.
    let alice_owner = KeyOwner::User("alice".into());
    let k1 = NewAccessKey::generate();
    let k2 = NewAccessKey::generate();
    let rec = store
        .create_access_key(ACC, &alice_owner, &k1)
        .await
        .unwrap();
    assert_eq!(rec.owner, alice_owner);
    assert_eq!(rec.status, KeyStatus::Active);
    assert!(matches!(
        store
            .create_access_key(ACC, &KeyOwner::User("ci".into()), &k1)
            .await,
        Err(IamError::AccessKeyAlreadyExists(_))
    ));
    store
        .create_access_key(ACC, &KeyOwner::User("ALICE".into()), &k2)
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_access_key(ACC, &alice_owner, &NewAccessKey::generate())
            .await,
        Err(IamError::LimitExceeded(_))
    ));
    assert!(matches!(
        store
            .create_access_key(
                ACC,
                &KeyOwner::User("nobody".into()),
                &NewAccessKey::generate()
            )
            .await,
        Err(IamError::UserNotFound(_))
    ));
    let listed = store.list_access_keys(ACC, &alice_owner).await.unwrap();
    let mut ids: Vec<_> = listed.iter().map(|k| k.access_key_id.clone()).collect();
    ids.sort();
    let mut want = vec![k1.access_key_id.clone(), k2.access_key_id.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(
        store
            .list_access_keys(ACC, &KeyOwner::Root)
            .await
            .unwrap()
            .len(),
        1
    );

    let found = store
        .lookup_access_key(&k1.access_key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.secret, k1.secret);
    assert!(matches!(
        &found.principal,
        KeyPrincipal::User { name, user_id, arn, .. }
            if name == "alice" && *user_id == alice.user_id && *arn == alice.arn
    ));

    store
        .update_access_key_status(ACC, &alice_owner, &k1.access_key_id, KeyStatus::Inactive)
        .await
        .unwrap();
    let found = store
        .lookup_access_key(&k1.access_key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.status, KeyStatus::Inactive);
    // Someone else's key is not found through another owner.
    assert!(matches!(
        store
            .update_access_key_status(ACC, &KeyOwner::Root, &k1.access_key_id, KeyStatus::Active)
            .await,
        Err(IamError::AccessKeyNotFound(_))
    ));
    assert!(matches!(
        store
            .delete_access_key(ACC, &KeyOwner::User("ci".into()), &k1.access_key_id)
            .await,
        Err(IamError::AccessKeyNotFound(_))
    ));
    store
        .record_access_key_use(&k2.access_key_id, 1234)
        .await
        .unwrap();
    store
        .record_access_key_use(&k2.access_key_id, 1000)
        .await
        .unwrap();
    let k2rec = store
        .list_access_keys(ACC, &alice_owner)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.access_key_id == k2.access_key_id)
        .unwrap();
    assert_eq!(k2rec.last_used_ms, Some(1234));

    // Inline policies.
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#;
    store
        .put_user_policy(ACC, "alice", "all-ecr", doc)
        .await
        .unwrap();
    store
        .put_user_policy(ACC, "alice", "all-ecr", "{}")
        .await
        .unwrap();
    store
        .put_user_policy(ACC, "alice", "another", doc)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_user_policy(ACC, "alice", "all-ecr")
            .await
            .unwrap(),
        "{}"
    );
    assert_eq!(
        store.list_user_policies(ACC, "alice").await.unwrap(),
        vec!["all-ecr", "another"]
    );
    assert!(matches!(
        store.get_user_policy(ACC, "alice", "none").await,
        Err(IamError::PolicyNotFound { .. })
    ));
    assert!(matches!(
        store.put_user_policy(ACC, "nobody", "p", doc).await,
        Err(IamError::UserNotFound(_))
    ));
    store
        .delete_user_policy(ACC, "alice", "another")
        .await
        .unwrap();
    assert!(matches!(
        store.delete_user_policy(ACC, "alice", "another").await,
        Err(IamError::PolicyNotFound { .. })
    ));

    // Groups, memberships and group policies.
    let devs = store
        .create_group(&NewGroup {
            account_id: ACC.into(),
            name: "devs".into(),
            path: "/".into(),
            arn: format!("arn:aws:iam::{ACC}:group/devs"),
        })
        .await
        .unwrap();
    assert!(devs.group_id.starts_with("AGPA"));
    assert!(matches!(
        store
            .create_group(&NewGroup {
                account_id: ACC.into(),
                name: "DEVS".into(),
                path: "/".into(),
                arn: String::new(),
            })
            .await,
        Err(IamError::GroupAlreadyExists(_))
    ));
    assert_eq!(store.get_group(ACC, "devs").await.unwrap(), devs);
    store.add_user_to_group(ACC, "devs", "alice").await.unwrap();
    store.add_user_to_group(ACC, "devs", "alice").await.unwrap();
    assert!(matches!(
        store.add_user_to_group(ACC, "nogroup", "alice").await,
        Err(IamError::GroupNotFound(_))
    ));
    assert_eq!(
        store.list_groups_for_user(ACC, "alice").await.unwrap(),
        vec![devs.clone()]
    );
    assert!(store
        .list_groups_for_user(ACC, "ci")
        .await
        .unwrap()
        .is_empty());
    store
        .put_group_policy(ACC, "devs", "pull", doc)
        .await
        .unwrap();
    assert_eq!(
        store.get_group_policy(ACC, "devs", "pull").await.unwrap(),
        doc
    );
    assert_eq!(
        store.list_group_policies(ACC, "devs").await.unwrap(),
        vec!["pull"]
    );
    let all = store.policies_for_user(ACC, "alice").await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].attached_to, PolicyAttachment::User);
    assert_eq!(all[1].attached_to, PolicyAttachment::Group("devs".into()));
    assert_eq!(all[1].document, doc);
    store
        .delete_group_policy(ACC, "devs", "pull")
        .await
        .unwrap();
    assert!(store
        .list_group_policies(ACC, "devs")
        .await
        .unwrap()
        .is_empty());

    // Deleting a user needs its keys, policies and memberships gone first.
    assert!(matches!(
        store.delete_user(ACC, "alice").await,
        Err(IamError::DeleteConflict(_))
    ));
    for k in [&k1, &k2] {
        store
            .delete_access_key(ACC, &alice_owner, &k.access_key_id)
            .await
            .unwrap();
    }
    assert!(store
        .lookup_access_key(&k1.access_key_id)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.delete_user(ACC, "alice").await,
        Err(IamError::DeleteConflict(_))
    ));
    store
        .delete_user_policy(ACC, "alice", "all-ecr")
        .await
        .unwrap();
    store
        .remove_user_from_group(ACC, "devs", "alice")
        .await
        .unwrap();
    store.delete_user(ACC, "alice").await.unwrap();
    assert!(matches!(
        store.delete_user(ACC, "alice").await,
        Err(IamError::UserNotFound(_))
    ));
    assert_eq!(
        names(store.list_users(ACC, None).await.unwrap()),
        vec!["ci"]
    );

    // The root key limit is the same, and the root key can be rotated by the usual steps.
    let root2 = NewAccessKey::generate();
    store
        .create_access_key(ACC, &KeyOwner::Root, &root2)
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_access_key(ACC, &KeyOwner::Root, &NewAccessKey::generate())
            .await,
        Err(IamError::LimitExceeded(_))
    ));
    store
        .update_access_key_status(
            ACC,
            &KeyOwner::Root,
            &root_key.access_key_id,
            KeyStatus::Inactive,
        )
        .await
        .unwrap();
    store
        .delete_access_key(ACC, &KeyOwner::Root, &root_key.access_key_id)
        .await
        .unwrap();
    let roots = store.list_access_keys(ACC, &KeyOwner::Root).await.unwrap();
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0].access_key_id, root2.access_key_id);
    assert!(matches!(
        store
            .list_access_keys("999999999999", &KeyOwner::Root)
            .await,
        Err(IamError::AccountNotFound(_))
    ));
}
