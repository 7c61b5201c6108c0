//! Versioned schema migrations. Each migration runs once, in a transaction, and is
//! recorded in `schema_migrations`. A database newer than this binary is refused.

use rusqlite::{Connection, OptionalExtension};

/// (version, SQL) in ascending order. Append only; never edit a released migration.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_accounts_iam.sql")),
    (3, include_str!("migrations/0003_repository_settings.sql")),
    (4, include_str!("migrations/0004_image_details.sql")),
    (5, include_str!("migrations/0005_ecr_settings.sql")),
    (6, include_str!("migrations/0006_gc.sql")),
    (7, include_str!("migrations/0007_lifecycle.sql")),
    (8, include_str!("migrations/0008_archive.sql")),
    (9, include_str!("migrations/0009_account_namespaces.sql")),
    (10, include_str!("migrations/0010_jobs.sql")),
    (11, include_str!("migrations/0011_blob_deletions.sql")),
];

pub fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

pub fn migrate(conn: &mut Connection) -> Result<i64, MigrateError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             applied_ms INTEGER NOT NULL
         )",
    )?;
    let current: i64 = conn
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0);
    if current > latest_version() {
        return Err(MigrateError::TooNew(crate::schema::SchemaTooNew {
            found: current,
            supported: latest_version(),
        }));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, ?2)",
            rusqlite::params![version, crate::sqlite::now_ms()],
        )?;
        tx.commit()?;
        tracing::info!(version, "applied metadata migration");
    }
    Ok(latest_version())
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The refusal every backend gives.
    #[error(transparent)]
    TooNew(crate::schema::SchemaTooNew),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}
