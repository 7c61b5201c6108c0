//! The behaviour every [`IamStore`](crate::IamStore) backend must show, as named cases
//! ([`crate::iam_store_suite`] emits one test per case; [`run`] runs them in order).
// A suite is test code that backends run from their tests: a failed unwrap is a failed case.
#![allow(clippy::unwrap_used)]

/// The behaviour every [`IamStore`](crate::IamStore) backend must show, against a fresh,
/// empty store. Backends add their own encrypted-at-rest check (it needs their storage).
pub async fn run(store: &dyn crate::IamStore) {
    accounts_and_root_keys(store).await;
    users_keys_policies_groups_and_deletion_order(store).await;
}

/// The two accounts the cases use, each created (the first with a root key) unless it
/// exists; returns the first account's root key id.
async fn ensure_accounts(store: &dyn crate::IamStore) -> String {
    use crate::iam::*;
    if store.get_account(ACC).await.unwrap().is_none() {
        let account = Account {
            id: ACC.into(),
            alias: None,
            created_ms: 7,
        };
        store
            .create_account(&account, Some(&NewAccessKey::generate()))
            .await
            .unwrap();
    }
    if store.get_account(OTHER).await.unwrap().is_none() {
        let other = Account {
            id: OTHER.into(),
            alias: Some("other".into()),
            created_ms: 8,
        };
        store.create_account(&other, None).await.unwrap();
    }
    let roots = store.list_access_keys(ACC, &KeyOwner::Root).await.unwrap();
    assert_eq!(roots.len(), 1);
    roots[0].access_key_id.clone()
}

const ACC: &str = "111122223333";
const OTHER: &str = "444455556666";

/// Accounts with a root key created in the same transaction, duplicates and bad ids
/// refused, and the root key's lookup with its decrypted secret.
pub async fn accounts_and_root_keys(store: &dyn crate::IamStore) {
    use crate::iam::*;

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
        id: OTHER.into(),
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
}

/// Users (per account, case-insensitive names, paths), access keys (two per owner, status,
/// ownership, last use), inline policies, groups and memberships, the order in which a user
/// may be deleted, and the root key's rotation.
pub async fn users_keys_policies_groups_and_deletion_order(store: &dyn crate::IamStore) {
    use crate::iam::*;

    let root_key_id = ensure_accounts(store).await;
    let user = |name: &str, path: &str| NewUser {
        account_id: ACC.into(),
        name: name.into(),
        path: path.into(),
        arn: format!("arn:aws:iam::{ACC}:user{path}{name}"),
    };

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
        store.get_user(OTHER, "alice").await,
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
    assert!(store.list_users(OTHER, None).await.unwrap().is_empty());

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
        .update_access_key_status(ACC, &KeyOwner::Root, &root_key_id, KeyStatus::Inactive)
        .await
        .unwrap();
    store
        .delete_access_key(ACC, &KeyOwner::Root, &root_key_id)
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
