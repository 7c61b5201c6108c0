//! `MetaTransfer` between SQLite and PostgreSQL (a real server): the schema check, and a
//! round trip SQLite → PostgreSQL → SQLite that keeps every row, re-seals secrets for
//! another master key and leaves the identity sequences past the copied ids.

use tokio::sync::mpsc;

use berth_testkit::postgres::shared;
use berth_types::{AccountId, RepositoryName};

use super::*;
use crate::iam::*;
use crate::secrets::MasterKey;
use crate::sqlite::{SqliteIamStore, SqliteMetaStore};
use crate::transfer::{Fingerprint, Message, MetaTransfer, Reseal, TransferError, TABLES};
use crate::{RepositorySettings, RepositoryStore};

const ACC: &str = "111122223333";

#[tokio::test]
async fn every_postgres_table_and_column_is_copied_or_skipped_on_purpose() {
    let db = shared().create_database().unwrap();
    drop(PgDb::connect(&PgOptions::new(db.url())).await.unwrap());
    let listing = db
        .psql(
            "SELECT table_name || ':' || string_agg(column_name::text, ',' ORDER BY ordinal_position) \
             FROM information_schema.columns WHERE table_schema = 'public' \
             GROUP BY table_name ORDER BY table_name",
        )
        .unwrap();
    let found: Vec<(String, Vec<String>)> = listing
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (t, cols) = l.trim().split_once(':').unwrap();
            (t.to_string(), cols.split(',').map(str::to_string).collect())
        })
        .collect();
    assert!(found.len() > 20, "{listing}");
    crate::transfer::tests::check_schema("PostgreSQL", &found, super::transfer::DERIVED);
}

/// Copies everything from `from` to `to`, re-sealing from `k1` to `k2`.
async fn copy(
    from: &dyn MetaTransfer,
    to: &dyn MetaTransfer,
    k1: &MasterKey,
    k2: &MasterKey,
    replace: bool,
) -> Result<u64, TransferError> {
    let (tx, mut rx) = mpsc::channel(4);
    let (tx2, rx2) = mpsc::channel(4);
    let export = from.export(TABLES.iter().collect(), tx);
    let relay = async {
        while let Some(m) = rx.recv().await {
            let m = match m {
                Message::Rows(t, mut rows) => {
                    Reseal { from: k1, to: k2 }.apply(t, &mut rows)?;
                    Message::Rows(t, rows)
                }
                Message::Done => Message::Done,
            };
            if tx2.send(m).await.is_err() {
                break;
            }
        }
        drop(tx2);
        Ok::<(), TransferError>(())
    };
    let (e, r, i) = tokio::join!(export, relay, to.import(rx2, replace));
    e?;
    r?;
    i
}

async fn fingerprint(db: &dyn MetaTransfer, key: &MasterKey) -> (u64, [u8; 32]) {
    let (tx, mut rx) = mpsc::channel(4);
    let export = db.export(TABLES.iter().collect(), tx);
    let collect = async {
        let mut f = Fingerprint::default();
        while let Some(Message::Rows(t, rows)) = rx.recv().await {
            f.add(t, &rows, key);
        }
        f.finish()
    };
    let (e, f) = tokio::join!(export, collect);
    e.unwrap();
    f
}

#[tokio::test]
async fn sqlite_to_postgres_and_back_keeps_every_row_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let key_of = |b: u8| MasterKey::from_bytes([b; 32]);
    let (k1, k2) = (key_of(7), key_of(8));
    let lite = SqliteMetaStore::open(dir.path().join("a.db")).unwrap();
    let iam = SqliteIamStore::new(lite.clone(), key_of(7));
    iam.create_account(
        &Account {
            id: ACC.into(),
            alias: Some("acme".into()),
            created_ms: 1,
        },
        None,
    )
    .await
    .unwrap();
    let user = |name: &str| NewUser {
        account_id: ACC.into(),
        name: name.into(),
        path: "/".into(),
        arn: format!("arn:aws:iam::{ACC}:user/{name}"),
    };
    iam.create_user(&user("Alice")).await.unwrap();
    iam.create_group(&NewGroup {
        account_id: ACC.into(),
        name: "devs".into(),
        path: "/".into(),
        arn: format!("arn:aws:iam::{ACC}:group/devs"),
    })
    .await
    .unwrap();
    iam.add_user_to_group(ACC, "devs", "Alice").await.unwrap();
    let key = NewAccessKey::generate();
    iam.create_access_key(ACC, &KeyOwner::User("Alice".into()), &key)
        .await
        .unwrap();
    let account: AccountId = ACC.parse().unwrap();
    let settings = RepositorySettings {
        image_tag_mutability: "IMMUTABLE".into(),
        image_tag_mutability_exclusion_filters: vec!["dev-*".into()],
    };
    for name in ["app", "lib"] {
        lite.create_repository(&RepositoryName::new(account, name).unwrap(), &settings, 5)
            .await
            .unwrap();
    }

    let db = shared().create_database().unwrap();
    let pg = PgDb::connect(&PgOptions::new(db.url())).await.unwrap();
    assert_eq!(
        pg.schema_version().await.unwrap(),
        lite.schema_version().await.unwrap()
    );
    let written = copy(&lite, &pg, &k1, &k2, false).await.unwrap();
    assert!(written >= 7, "{written}");
    assert_eq!(fingerprint(&lite, &k1).await, fingerprint(&pg, &k2).await);

    // The copied key opens under the target's key; identities continue past the copy.
    let pg_iam = PgIamStore::new(pg.clone(), key_of(7));
    assert!(pg_iam.lookup_access_key(&key.access_key_id).await.is_err());
    let pg_iam = PgIamStore::new(pg.clone(), key_of(8));
    let found = pg_iam
        .lookup_access_key(&key.access_key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.secret.expose(), key.secret.expose());
    pg_iam.create_user(&user("Bob")).await.unwrap();
    let pg_meta = PgMetaStore::new(pg.clone());
    pg_meta
        .create_repository(&RepositoryName::new(account, "new").unwrap(), &settings, 6)
        .await
        .unwrap();
    // A case-insensitive duplicate is refused on the copy: name_key was derived.
    assert!(pg_iam.create_user(&user("ALICE")).await.is_err());

    // A second import into the now non-empty target is refused, and leaves it unchanged.
    let before = fingerprint(&pg, &k2).await;
    let err = copy(&lite, &pg, &k1, &k2, false).await.unwrap_err();
    assert!(matches!(err, TransferError::TargetNotEmpty { .. }), "{err}");
    assert_eq!(before, fingerprint(&pg, &k2).await);
    assert_ne!(
        before,
        fingerprint(&lite, &k1).await,
        "Bob and the new repository"
    );

    // Replacing (--force) makes the target equal the source again.
    copy(&lite, &pg, &k1, &k2, true).await.unwrap();
    assert_eq!(fingerprint(&lite, &k1).await, fingerprint(&pg, &k2).await);

    // And back, keeping the key: the SQLite copy equals the PostgreSQL database.
    let back = SqliteMetaStore::open(dir.path().join("b.db")).unwrap();
    copy(&pg, &back, &k2, &k2, false).await.unwrap();
    assert_eq!(fingerprint(&pg, &k2).await, fingerprint(&back, &k2).await);
    let back_iam = SqliteIamStore::new(back.clone(), key_of(8));
    let found = back_iam
        .lookup_access_key(&key.access_key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.secret.expose(), key.secret.expose());
    back_iam.create_user(&user("Carol")).await.unwrap();
}

/// An export that stops before `Done` (the source failed) commits nothing.
#[tokio::test]
async fn an_import_without_done_commits_nothing() {
    let db = shared().create_database().unwrap();
    let pg = PgDb::connect(&PgOptions::new(db.url())).await.unwrap();
    let (tx, rx) = mpsc::channel(4);
    let accounts = crate::transfer::table("accounts").unwrap();
    tx.send(Message::Rows(
        accounts,
        vec![vec![
            crate::transfer::Value::Text(ACC.into()),
            crate::transfer::Value::Null,
            crate::transfer::Value::Int(1),
        ]],
    ))
    .await
    .unwrap();
    drop(tx);
    let err = pg.import(rx, false).await.unwrap_err();
    assert!(matches!(err, TransferError::Incomplete), "{err}");
    assert_eq!(pg.row_counts(&[accounts]).await.unwrap(), vec![0]);
}
