//! The PostgreSQL backend (feature `postgres`), for several Berth nodes sharing one
//! database: a pool of connections ([`deadpool_postgres`]), TLS to the database (rustls,
//! see [`connect`]), the schema versions of [`crate::schema`] in PostgreSQL's dialect
//! (`migrations/`), and each store trait implemented in its own file.
//!
//! Invariants that span rows hold across nodes through explicit row locks in READ
//! COMMITTED transactions (the owner's row is locked before a rule about its children is
//! checked) and unique constraints; a transaction that loses a deadlock or a serialization
//! check is retried whole ([`PgDb::retry`]).
//!
//! Every store trait is implemented: [`crate::IamStore`] ([`PgIamStore`]),
//! [`crate::jobs::JobStore`] ([`PgJobStore`]), and on [`PgMetaStore`] the metadata traits
//! that [`crate::MetaStore`] sums up, [`crate::EcrSettingsStore`] and
//! [`crate::LifecycleStore`]; every shared suite runs on it (`suite_tests.rs`). The lock
//! protocol between writers that reference a blob and garbage collection is in `gc.rs`;
//! outbox events keep commit order through the lock in `meta_events.rs`.

mod archive;
mod connect;
mod gc;
mod iam;
mod jobs;
mod lifecycle;
mod lifecycle_expire;
mod meta;
mod meta_blobs;
mod meta_events;
mod meta_images;
mod meta_manifests;
mod meta_repos;
mod migrate;
mod settings;
mod settings_rows;
mod transfer;

use std::future::Future;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;

use crate::MetaError;

pub use connect::{PgOpenError, PgOptions};
pub use iam::PgIamStore;
pub use jobs::PgJobStore;
pub use meta::PgMetaStore;
pub use migrate::MIGRATIONS;

/// Attempts of a transaction that keeps losing deadlocks or serialization checks.
const MAX_ATTEMPTS: usize = 5;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An open, migrated PostgreSQL database: the pool every store of this backend shares.
#[derive(Clone)]
pub struct PgDb {
    pool: Pool,
}

impl std::fmt::Debug for PgDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDb")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PgDb {
    /// Connects (proving the database is reachable now, not at the first request) and
    /// brings the schema to this binary's version, waiting for another node migrating
    /// at the same time.
    pub async fn connect(options: &PgOptions) -> Result<Self, PgOpenError> {
        let parsed = connect::parse_url(&options.url)?;
        let extra: Vec<&std::path::Path> = parsed
            .root_cert
            .iter()
            .chain(options.ca_file.iter())
            .map(|p| p.as_path())
            .collect();
        let tls = connect::tls_connector(&extra, parsed.verify_host)?;
        let manager = Manager::from_config(
            parsed.config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.acquire_timeout))
            .build()
            .map_err(|e| PgOpenError::Pool(Box::new(e)))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| PgOpenError::Connect(Box::new(e)))?;
        migrate::migrate(&mut client).await?;
        Ok(PgDb { pool })
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, MetaError> {
        self.pool
            .get()
            .await
            .map_err(|e| MetaError::Database(Box::new(e)))
    }

    /// Runs `attempt` (one whole transaction) again while it fails on a deadlock or a
    /// serialization failure, which PostgreSQL resolves by aborting one of the
    /// transactions involved; any other result is returned as it is.
    pub(crate) async fn retry<T, E, F, Fut>(&self, mut attempt: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: AsMetaError,
    {
        let mut tries = 1;
        loop {
            match attempt().await {
                Err(e) if tries < MAX_ATTEMPTS && e.as_meta().is_some_and(is_transient) => {
                    tries += 1;
                    tracing::debug!(tries, "retrying a PostgreSQL transaction");
                }
                result => return result,
            }
        }
    }
}

/// The [`MetaError`] inside a store's error, if it is one (for [`PgDb::retry`]).
pub(crate) trait AsMetaError {
    fn as_meta(&self) -> Option<&MetaError>;
}

impl AsMetaError for MetaError {
    fn as_meta(&self) -> Option<&MetaError> {
        Some(self)
    }
}

impl AsMetaError for crate::IamError {
    fn as_meta(&self) -> Option<&MetaError> {
        match self {
            crate::IamError::Meta(m) => Some(m),
            _ => None,
        }
    }
}

/// The SQLSTATE of a database error, when it is one.
pub(crate) fn sql_state(e: &MetaError) -> Option<&SqlState> {
    match e {
        MetaError::Database(source) => source
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(|e| e.code()),
        _ => None,
    }
}

fn is_transient(e: &MetaError) -> bool {
    sql_state(e).is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    })
}

impl From<tokio_postgres::Error> for MetaError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code() == Some(&SqlState::DISK_FULL) {
            MetaError::StorageFull
        } else {
            MetaError::Database(Box::new(e))
        }
    }
}

#[cfg(test)]
mod gc_race_tests;
#[cfg(test)]
mod gc_tests;
#[cfg(test)]
mod jobs_tests;
#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod meta_page_tests;
#[cfg(test)]
mod meta_tests;
#[cfg(test)]
mod settings_tests;
#[cfg(test)]
mod suite_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transfer_tests;
