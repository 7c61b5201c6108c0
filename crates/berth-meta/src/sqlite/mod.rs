//! The embedded SQLite backend (WAL mode, `synchronous=FULL`: a commit that returned is
//! on disk). One writer connection serialises writes; a few reader connections serve
//! reads concurrently. Every call runs on a blocking thread.

mod migrate;
mod queries;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::Connection;

use crate::{MetaError, Result};

pub use migrate::{latest_version, MigrateError};

const READERS: usize = 4;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Clone)]
pub struct SqliteMetaStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open metadata database {path}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

/// Options of the SQLite backend.
#[derive(Debug, Clone, Copy)]
pub struct SqliteOptions {
    /// `synchronous=FULL`: a returned commit survives power loss. Otherwise `NORMAL`,
    /// which in WAL mode survives a process crash but may lose the last commits on power loss.
    pub fsync: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { fsync: true }
    }
}

fn configure(conn: &Connection, options: SqliteOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(if options.fsync {
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
    } else {
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
    })?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -8000;",
    )
}

impl SqliteMetaStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, SqliteOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let open = |p: &Path| {
            let c = Connection::open(p).map_err(|source| OpenError::Open {
                path: p.display().to_string(),
                source,
            })?;
            configure(&c, options).map_err(|source| OpenError::Open {
                path: p.display().to_string(),
                source,
            })?;
            Ok::<_, OpenError>(c)
        };
        let mut writer = open(path)?;
        migrate::migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| open(path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SqliteMetaStore {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let start = inner.next_reader.fetch_add(1, Ordering::Relaxed);
            for i in 0..inner.readers.len() {
                if let Some(conn) = inner.readers[(start + i) % inner.readers.len()].try_lock() {
                    return f(&conn);
                }
            }
            let conn = inner.readers[start % inner.readers.len()].lock();
            f(&conn)
        })
        .await
        .map_err(|e| MetaError::Database(Box::new(e)))?
    }

    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock();
            f(&mut conn)
        })
        .await
        .map_err(|e| MetaError::Database(Box::new(e)))?
    }
}

impl From<rusqlite::Error> for MetaError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => MetaError::StorageFull,
            _ => MetaError::Database(Box::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_backend_passes_the_shared_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
        crate::suite::run(&store).await;
    }

    #[test]
    fn migrations_are_idempotent_and_refuse_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        drop(SqliteMetaStore::open(&path).unwrap());
        drop(SqliteMetaStore::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.execute(
            "INSERT INTO schema_migrations (version, applied_ms) VALUES (999, 0)",
            [],
        )
        .unwrap();
        drop(c);
        assert!(matches!(
            SqliteMetaStore::open(&path),
            Err(OpenError::Migrate(MigrateError::TooNew { found: 999, .. }))
        ));
    }
}
