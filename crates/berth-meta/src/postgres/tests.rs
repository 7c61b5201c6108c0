//! The PostgreSQL backend against a real server: the throwaway cluster of
//! `berth-testkit`, a fresh database per test. Several [`PgDb`]s on one database stand for
//! several Berth nodes.

use std::sync::Arc;

use berth_testkit::postgres::{shared, PgDatabase};

use super::*;
use crate::iam::*;
use crate::secrets::MasterKey;

fn database() -> PgDatabase<'static> {
    shared().create_database().unwrap()
}

async fn open(db: &PgDatabase<'_>) -> PgDb {
    PgDb::connect(&PgOptions::new(db.url())).await.unwrap()
}

const ACC: &str = "111122223333";

async fn iam_with_account(db: &PgDatabase<'_>, key: [u8; 32]) -> PgIamStore {
    let iam = PgIamStore::new(open(db).await, MasterKey::from_bytes(key));
    iam.create_account(
        &Account {
            id: ACC.into(),
            alias: None,
            created_ms: 1,
        },
        None,
    )
    .await
    .unwrap();
    iam
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        account_id: ACC.into(),
        name: name.into(),
        path: "/".into(),
        arn: format!("arn:aws:iam::{ACC}:user/{name}"),
    }
}

#[tokio::test]
async fn postgres_backend_passes_the_iam_suite() {
    let db = database();
    let iam = PgIamStore::new(open(&db).await, MasterKey::generate());
    crate::suite::iam_suite(&iam).await;
}

#[tokio::test]
async fn migrations_are_idempotent_and_refuse_newer_schemas() {
    let db = database();
    drop(open(&db).await);
    drop(open(&db).await);
    let versions = db
        .psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations")
        .unwrap();
    let want: Vec<String> = crate::schema::SCHEMA_VERSIONS
        .iter()
        .map(|v| v.0.to_string())
        .collect();
    assert_eq!(versions.trim(), want.join(","));
    db.psql("INSERT INTO schema_migrations (version, applied_ms) VALUES (999, 0)")
        .unwrap();
    let err = PgDb::connect(&PgOptions::new(db.url())).await.unwrap_err();
    assert!(
        matches!(
            err,
            PgOpenError::SchemaTooNew(crate::schema::SchemaTooNew { found: 999, .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer than this binary"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_at_once_migrate_once() {
    let db = database();
    let url = db.url();
    let nodes: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgDb::connect(&PgOptions::new(url)).await })
        })
        .collect();
    for node in nodes {
        node.await.unwrap().unwrap();
    }
    let rows = db
        .psql("SELECT count(*), count(DISTINCT version) FROM schema_migrations")
        .unwrap();
    let n = crate::schema::latest_version();
    assert_eq!(rows.trim(), format!("{n}|{n}"));
}

/// `n` nodes (each its own pool) on one database, sharing a master key.
async fn nodes(db: &PgDatabase<'_>, key: [u8; 32], n: usize) -> Vec<Arc<PgIamStore>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Arc::new(PgIamStore::new(
            open(db).await,
            MasterKey::from_bytes(key),
        )));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_access_key_quota_holds_across_nodes() {
    let db = database();
    let key = [7u8; 32];
    let first = iam_with_account(&db, key).await;
    first.create_user(&new_user("alice")).await.unwrap();
    let nodes = nodes(&db, key, 4).await;
    for round in 0..5 {
        let owner = if round % 2 == 0 {
            KeyOwner::User("alice".into())
        } else {
            KeyOwner::Root
        };
        // Empty the owner's slots, then let every node race for them, several times each.
        for k in first.list_access_keys(ACC, &owner).await.unwrap() {
            first
                .delete_access_key(ACC, &owner, &k.access_key_id)
                .await
                .unwrap();
        }
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let node = nodes[i % nodes.len()].clone();
                let owner = owner.clone();
                tokio::spawn(async move {
                    node.create_access_key(ACC, &owner, &NewAccessKey::generate())
                        .await
                })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => created += 1,
                Err(IamError::LimitExceeded(_)) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(created, MAX_ACCESS_KEYS_PER_OWNER, "round {round}");
        assert_eq!(
            first.list_access_keys(ACC, &owner).await.unwrap().len(),
            MAX_ACCESS_KEYS_PER_OWNER
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_names_stay_unique_regardless_of_case_across_nodes() {
    let db = database();
    let key = [7u8; 32];
    let first = iam_with_account(&db, key).await;
    let nodes = nodes(&db, key, 4).await;
    let spellings = ["deploy", "DEPLOY", "Deploy", "dePloy", "deplOY", "DePlOy"];
    let tasks: Vec<_> = spellings
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let node = nodes[i % nodes.len()].clone();
            let user = new_user(name);
            tokio::spawn(async move { node.create_user(&user).await })
        })
        .collect();
    let mut created = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(u) => created.push(u.name),
            Err(IamError::UserAlreadyExists(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    let listed = first.list_users(ACC, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, created[0]);
    // Groups alike.
    let tasks: Vec<_> = ["ops", "OPS", "Ops"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let node = nodes[i % nodes.len()].clone();
            let group = NewGroup {
                account_id: ACC.into(),
                name: name.to_string(),
                path: "/".into(),
                arn: format!("arn:aws:iam::{ACC}:group/{name}"),
            };
            tokio::spawn(async move { node.create_group(&group).await })
        })
        .collect();
    let mut groups = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => groups += 1,
            Err(IamError::GroupAlreadyExists(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(groups, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_deleted_on_one_node_never_keeps_what_another_node_added() {
    // Deleting a user races with adding a key, a policy or a membership on other nodes:
    // either the addition wins (and the deletion is refused) or the deletion wins (and the
    // addition finds no user). Never a deleted user with leftovers, never both succeeding.
    let db = database();
    let key = [7u8; 32];
    let first = iam_with_account(&db, key).await;
    first
        .create_group(&NewGroup {
            account_id: ACC.into(),
            name: "devs".into(),
            path: "/".into(),
            arn: format!("arn:aws:iam::{ACC}:group/devs"),
        })
        .await
        .unwrap();
    let nodes = nodes(&db, key, 2).await;
    for round in 0..30 {
        let name = format!("u{round}");
        first.create_user(&new_user(&name)).await.unwrap();
        let (a, b) = (nodes[0].clone(), nodes[1].clone());
        let n2 = name.clone();
        let adder = tokio::spawn(async move {
            match round % 3 {
                0 => a
                    .create_access_key(ACC, &KeyOwner::User(n2), &NewAccessKey::generate())
                    .await
                    .map(drop),
                1 => a.put_user_policy(ACC, &n2, "p", "{}").await,
                _ => a.add_user_to_group(ACC, "devs", &n2).await,
            }
        });
        let n3 = name.clone();
        let deleter = tokio::spawn(async move { b.delete_user(ACC, &n3).await });
        let added = adder.await.unwrap();
        let deleted = deleter.await.unwrap();
        match (&added, &deleted) {
            (Ok(()), Err(IamError::DeleteConflict(_))) => {
                assert!(first.get_user(ACC, &name).await.is_ok());
            }
            (Err(IamError::UserNotFound(_)), Ok(())) => {
                assert!(matches!(
                    first.get_user(ACC, &name).await,
                    Err(IamError::UserNotFound(_))
                ));
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
    // No row refers to a user that is gone.
    let orphans = db
        .psql(
            "SELECT (SELECT count(*) FROM access_keys k WHERE k.user_ref IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM iam_users u WHERE u.id = k.user_ref))
                  + (SELECT count(*) FROM iam_user_policies p
                       WHERE NOT EXISTS (SELECT 1 FROM iam_users u WHERE u.id = p.user_ref))
                  + (SELECT count(*) FROM iam_group_members m
                       WHERE NOT EXISTS (SELECT 1 FROM iam_users u WHERE u.id = m.user_ref))",
        )
        .unwrap();
    assert_eq!(orphans.trim(), "0");
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_need_the_master_key() {
    let db = database();
    let iam = PgIamStore::new(open(&db).await, MasterKey::generate());
    let k = NewAccessKey::generate();
    iam.create_account(
        &Account {
            id: ACC.into(),
            alias: None,
            created_ms: 1,
        },
        Some(&k),
    )
    .await
    .unwrap();
    let dump = db
        .psql("SELECT encode(secret_enc, 'escape') || access_key_id || status FROM access_keys")
        .unwrap();
    assert!(!dump.contains(k.secret.expose()));
    let hex = db
        .psql("SELECT encode(secret_enc, 'hex') FROM access_keys")
        .unwrap();
    let secret_hex: String = k
        .secret
        .expose()
        .bytes()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!hex.contains(&secret_hex));
    assert!(hex
        .trim()
        .starts_with(&format!("{:02x}", crate::secrets::SEALED_VERSION)));

    let found = iam
        .lookup_access_key(&k.access_key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.secret, k.secret);
    let wrong = PgIamStore::new(open(&db).await, MasterKey::generate());
    let err = wrong.lookup_access_key(&k.access_key_id).await.unwrap_err();
    assert!(
        matches!(&err, IamError::Secret { access_key_id, .. } if *access_key_id == k.access_key_id),
        "{err:?}"
    );
}

#[tokio::test]
async fn access_key_lookup_is_one_primary_key_search() {
    let db = database();
    drop(open(&db).await);
    let plan = db
        .psql(&format!(
            "SET enable_seqscan = off; EXPLAIN {}",
            super::iam::LOOKUP_SQL.replace("$1", "'AKIAEXAMPLE'")
        ))
        .unwrap();
    assert!(plan.contains("access_keys_pkey"), "{plan}");
    assert!(plan.contains("iam_users_pkey"), "{plan}");
}

#[tokio::test]
async fn tls_to_the_database_is_verified() {
    let db = database();
    let cluster = db.cluster();
    let ca = cluster.ca_cert_path();
    let tls_url = |host: &str, mode: &str| {
        format!(
            "postgres://postgres@{host}:{}/{}?sslmode={mode}",
            cluster.port(),
            db.name()
        )
    };
    // verify-full with the CA (from the URL or from the options): encrypted.
    let with_ca = format!(
        "{}&sslrootcert={}",
        tls_url("localhost", "verify-full"),
        ca.display()
    );
    let pg = PgDb::connect(&PgOptions::new(with_ca)).await.unwrap();
    let ssl: bool = pg
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
    let mut options = PgOptions::new(tls_url("127.0.0.1", "require"));
    options.ca_file = Some(ca.clone());
    PgDb::connect(&options).await.unwrap();

    // A host name the certificate does not carry: refused by verify-full, accepted by
    // verify-ca (the chain is still checked: without the CA it is refused too).
    let elsewhere = |mode: &str, ca: bool| {
        let mut o = PgOptions::new(format!(
            "postgres://postgres@db.invalid:{}/{}?hostaddr=127.0.0.1&sslmode={mode}",
            cluster.port(),
            db.name()
        ));
        if ca {
            o.ca_file = Some(cluster.ca_cert_path());
        }
        o.acquire_timeout = std::time::Duration::from_secs(5);
        o
    };
    let err = PgDb::connect(&elsewhere("verify-full", true))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
    PgDb::connect(&elsewhere("verify-ca", true)).await.unwrap();
    assert!(PgDb::connect(&elsewhere("verify-ca", false)).await.is_err());

    // Without the CA the server's certificate is not trusted: refused, not downgraded.
    let mut options = PgOptions::new(tls_url("localhost", "require"));
    options.acquire_timeout = std::time::Duration::from_secs(5);
    let err = PgDb::connect(&options).await.unwrap_err();
    assert!(matches!(err, PgOpenError::Connect(_)), "{err:?}");
    let chain = format!("{:?}", err);
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");

    // A missing CA file is named.
    let mut options = PgOptions::new(tls_url("localhost", "require"));
    options.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(matches!(
        PgDb::connect(&options).await,
        Err(PgOpenError::CaFile { .. })
    ));
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error_at_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = PgOptions::new(format!(
        "postgres://berth:secret@127.0.0.1:{port}/berth?sslmode=disable"
    ));
    options.acquire_timeout = std::time::Duration::from_secs(5);
    let err = PgDb::connect(&options).await.unwrap_err();
    assert!(matches!(err, PgOpenError::Connect(_)), "{err:?}");
    assert!(!format!("{err:?}").contains("secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_bootstrapped_by_several_nodes_at_once_is_created_once() {
    // Every node of a fresh cluster may try to create the configured account with a root
    // key at start: one wins, the others are told it exists, and one root key results.
    let db = database();
    let nodes = nodes(&db, [9u8; 32], 5).await;
    let tasks: Vec<_> = nodes
        .iter()
        .map(|node| {
            let node = node.clone();
            tokio::spawn(async move {
                let account = Account {
                    id: ACC.into(),
                    alias: None,
                    created_ms: 1,
                };
                node.create_account(&account, Some(&NewAccessKey::generate()))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => created += 1,
            Err(IamError::AccountAlreadyExists(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(
        nodes[0]
            .list_access_keys(ACC, &KeyOwner::Root)
            .await
            .unwrap()
            .len(),
        1
    );
}
