//! [`PgMetaStore`]: the metadata traits (repositories, links, uploads, manifests, images,
//! pull times, events, garbage collection, the archive class, ECR settings, lifecycle) on
//! PostgreSQL, one file per trait group (`meta_*.rs`, `gc.rs`, `archive.rs`,
//! `settings.rs`, `lifecycle.rs`). Every decision is the shared Rust of
//! [`crate::rules`] and the trait modules; this backend reads facts under row locks and
//! writes, in one transaction per trait method, as the SQLite backend does.

use super::PgDb;

/// The metadata stores on one PostgreSQL database (cheap to clone: a pool handle).
#[derive(Clone, Debug)]
pub struct PgMetaStore {
    pub(crate) db: PgDb,
}

impl PgMetaStore {
    pub fn new(db: PgDb) -> Self {
        PgMetaStore { db }
    }

    /// The database's pool, shared with the backend's other stores (IAM, jobs).
    pub fn db(&self) -> &PgDb {
        &self.db
    }
}
