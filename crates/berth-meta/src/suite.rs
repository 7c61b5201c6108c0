//! The behaviour every [`MetaStore`] backend must show. Each backend's tests call [`run`].

use berth_types::{Digest, RepositoryName, Tag};

use crate::{MetaError, MetaStore, NewManifest, UploadRecord};

fn repo(s: &str) -> RepositoryName {
    s.parse().unwrap()
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
        repository: a.to_string(),
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
    assert!(store.list_repositories(None, 10).await.unwrap().is_empty());

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
        store.list_repositories(None, 10).await.unwrap(),
        vec!["team/a", "team/b"]
    );
    assert_eq!(
        store.list_repositories(Some("team/a"), 10).await.unwrap(),
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
    assert!(store.delete_manifest(&a, &m1.digest).await.unwrap());
    assert!(!store.delete_manifest(&a, &m1.digest).await.unwrap());
    assert!(store.unlink_blob(&a, &layer).await.unwrap());
    assert!(!store.unlink_blob(&a, &layer).await.unwrap());

    // Events were written for pushes and deletes.
    let events = store.events_after(0, 1000).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "manifest.pushed"));
    assert!(events.iter().any(|e| e.kind == "manifest.deleted"));
    assert!(events.iter().any(|e| e.kind == "tag.deleted"));
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
}
