//! The PostgreSQL backend against a real server: the throwaway cluster of
//! `berth-testkit`, a fresh database per test. Several [`PgDb`]s on one database stand for
//! several Berth nodes.

use berth_testkit::postgres::{shared, PgDatabase};

use super::*;

fn database() -> PgDatabase<'static> {
    shared().create_database().unwrap()
}

async fn open(db: &PgDatabase<'_>) -> PgDb {
    PgDb::connect(&PgOptions::new(db.url())).await.unwrap()
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
