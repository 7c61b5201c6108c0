//! The behaviour every [`MetaStore`] backend must show. Each backend's tests call [`run`].

use berth_types::{Digest, RepositoryName, Tag};

use crate::{MetaError, MetaStore, NewManifest, RepositorySettings, UploadRecord};

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

    repositories(store).await;
}

/// Explicit repositories (the ECR API): create, describe, delete with and without force.
async fn repositories(store: &dyn MetaStore) {
    let (e1, e2) = (repo("ecr/one"), repo("ecr/two"));
    let immutable = RepositorySettings {
        image_tag_mutability: "IMMUTABLE".into(),
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
        .describe_repositories(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert!(all.starts_with(&["ecr/one".to_string(), "ecr/two".to_string()]));
    assert!(all.contains(&"team/b".to_string()));
    let page = store
        .describe_repositories(Some("ecr/one"), 1)
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
        .any(|e| e.kind == "repository.deleted" && e.repository == "team/b"));
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
