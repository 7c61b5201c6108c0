//! Versioned schema migrations for PostgreSQL: the versions of [`crate::schema`], in
//! PostgreSQL's dialect. Each runs once, in its own transaction, and is recorded in
//! `schema_migrations`; a database newer than this binary is refused.
//!
//! Several nodes may start at once: each migration transaction first takes a
//! transaction-scoped advisory lock, then re-reads the version, so exactly one node applies
//! each migration and the others wait for it and find it done.

use tokio_postgres::Client;

use super::connect::PgOpenError;

/// (version, name, SQL), ascending; the same versions as [`crate::schema::SCHEMA_VERSIONS`]
/// (a test checks). Append only; never edit a released migration.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (
        2,
        "accounts_iam",
        include_str!("migrations/0002_accounts_iam.sql"),
    ),
    (
        3,
        "repository_settings",
        include_str!("migrations/0003_repository_settings.sql"),
    ),
    (
        4,
        "image_details",
        include_str!("migrations/0004_image_details.sql"),
    ),
    (
        5,
        "ecr_settings",
        include_str!("migrations/0005_ecr_settings.sql"),
    ),
    (6, "gc", include_str!("migrations/0006_gc.sql")),
    (
        7,
        "lifecycle",
        include_str!("migrations/0007_lifecycle.sql"),
    ),
    (8, "archive", include_str!("migrations/0008_archive.sql")),
    (
        9,
        "account_namespaces",
        include_str!("migrations/0009_account_namespaces.sql"),
    ),
    (10, "jobs", include_str!("migrations/0010_jobs.sql")),
    (
        11,
        "blob_deletions",
        include_str!("migrations/0011_blob_deletions.sql"),
    ),
];

/// The advisory lock key serialising migrations ("berthmig" in ASCII).
const MIGRATION_LOCK: i64 = 0x6265_7274_686d_6967;

/// Brings the schema to the latest version; returns it.
pub(crate) async fn migrate(client: &mut Client) -> Result<i64, PgOpenError> {
    loop {
        let tx = client.transaction().await.map_err(PgOpenError::Migrate)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(PgOpenError::Migrate)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version     BIGINT PRIMARY KEY,
                 applied_ms  BIGINT NOT NULL
             )",
        )
        .await
        .map_err(PgOpenError::Migrate)?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(PgOpenError::Migrate)?
            .try_get(0)
            .map_err(PgOpenError::Migrate)?;
        crate::schema::check_not_newer(current)?;
        let Some((version, name, sql)) = MIGRATIONS.iter().find(|m| m.0 > current) else {
            tx.commit().await.map_err(PgOpenError::Migrate)?;
            return Ok(current);
        };
        tx.batch_execute(sql).await.map_err(PgOpenError::Migrate)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)",
            &[version, &super::now_ms()],
        )
        .await
        .map_err(PgOpenError::Migrate)?;
        tx.commit().await.map_err(PgOpenError::Migrate)?;
        tracing::info!(version, name, "applied metadata migration (PostgreSQL)");
    }
}
