//! The embedded SQLite backend (WAL mode, `synchronous=FULL`: a commit that returned is
//! on disk). One writer connection serialises writes; a few reader connections serve
//! reads concurrently. Every call runs on a blocking thread.

mod archive_queries;
mod gc_queries;
mod iam_queries;
mod jobs_queries;
mod lifecycle_queries;
mod migrate;
mod queries;
mod settings_queries;
mod transfer_queries;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::Connection;

use crate::{MetaError, Result};

pub use iam_queries::SqliteIamStore;
pub use migrate::{latest_version, MigrateError};

const READERS: usize = 4;

/// The name clients see, from a stored `<account>/<name>` (repositories are stored under
/// their qualified name: see [`berth_types::RepositoryName::qualified`]).
pub(crate) fn client_name(qualified: &str) -> String {
    match qualified.split_once('/') {
        Some((account, name))
            if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name.to_string()
        }
        _ => qualified.to_string(),
    }
}

/// A stored qualified name (`<account>/<name>`) read back as a repository.
pub(crate) fn qualified_repository(
    stored: String,
) -> rusqlite::Result<berth_types::RepositoryName> {
    berth_types::RepositoryName::from_qualified(&stored).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

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
    /// The writer's normal `synchronous` setting (see [`SqliteOptions`]).
    synchronous: &'static str,
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
                synchronous: if options.fsync { "FULL" } else { "NORMAL" },
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    pub(crate) async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<MetaError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // The first free reader, in a fixed order: reads that do not overlap share one
            // connection and its page cache (a walk in pages, such as a GC pass, rotated over
            // every reader re-reads ~3.5 times as many pages from the file). Only when all
            // are busy, wait on one in turn.
            for conn in &inner.readers {
                if let Some(conn) = conn.try_lock() {
                    return f(&conn);
                }
            }
            let start = inner.next_reader.fetch_add(1, Ordering::Relaxed);
            let conn = inner.readers[start % inner.readers.len()].lock();
            f(&conn)
        })
        .await
        .map_err(|e| E::from(MetaError::Database(Box::new(e))))?
    }

    pub(crate) async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<MetaError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock();
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(MetaError::Database(Box::new(e))))?
    }

    /// Like [`SqliteMetaStore::write`] for rows worth nothing after a power loss (blob
    /// pins guard work in progress, which a power loss ends anyway): the commit is not
    /// fsynced (`synchronous = OFF`; still safe against a process crash in WAL mode), and
    /// the next ordinary commit makes it durable with its own.
    pub(crate) async fn write_volatile<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<MetaError> + Send + 'static,
    {
        let normal = self.inner.synchronous;
        self.write(move |conn| {
            let pragma = |c: &Connection, mode: &str| {
                c.execute_batch(&format!("PRAGMA synchronous = {mode}"))
                    .map_err(|e| E::from(MetaError::from(e)))
            };
            pragma(conn, "OFF")?;
            let result = f(conn);
            let restored = pragma(conn, normal);
            result.and_then(|v| restored.map(|()| v))
        })
        .await
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

    /// A fresh database in its own temporary directory, seen through every store trait.
    struct Fixture {
        store: SqliteMetaStore,
        iam: SqliteIamStore,
        _dir: tempfile::TempDir,
    }

    async fn fresh() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
        let iam = SqliteIamStore::new(store.clone(), crate::secrets::MasterKey::generate());
        Fixture {
            store,
            iam,
            _dir: dir,
        }
    }

    impl crate::suite_macros::MetaFixture for Fixture {
        fn meta(&self) -> &dyn crate::MetaStore {
            &self.store
        }
    }
    impl crate::suite_macros::SettingsFixture for Fixture {
        fn settings(&self) -> &dyn crate::EcrSettingsStore {
            &self.store
        }
    }
    impl crate::suite_macros::LifecycleFixture for Fixture {
        fn lifecycle(&self) -> &dyn crate::LifecycleStore {
            &self.store
        }
    }
    impl crate::suite_macros::IamFixture for Fixture {
        fn iam(&self) -> &dyn crate::IamStore {
            &self.iam
        }
    }

    crate::meta_store_suite!(fresh);
    crate::settings_store_suite!(fresh);
    crate::lifecycle_store_suite!(fresh);
    crate::iam_store_suite!(fresh);

    /// Each suite's in-order runner still passes on one fresh store (a backend may call
    /// them as functions instead of emitting per-case tests).
    #[tokio::test]
    async fn sqlite_backend_passes_each_suite_run_in_order() {
        crate::suite::run(&fresh().await.store).await;
        crate::gc_suite::run(&fresh().await.store).await;
        crate::archive_suite::run(&fresh().await.store).await;
        let f = fresh().await;
        crate::suite::settings_suite(&f.store, &f.store).await;
        let f = fresh().await;
        crate::lifecycle_suite::run(&f.store, &f.store).await;
        crate::suite::iam_suite(&fresh().await.iam).await;
    }

    #[tokio::test]
    async fn secrets_are_encrypted_at_rest_and_need_the_master_key() {
        use crate::iam::{Account, IamStore, NewAccessKey};
        use crate::secrets::{MasterKey, SecretError};
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("meta.db");
        let key_path = dir.path().join("master.key");
        let key = NewAccessKey::generate();
        {
            let store = SqliteMetaStore::open(&db).unwrap();
            let iam = SqliteIamStore::new(store, MasterKey::load_or_create(&key_path).unwrap());
            let account = Account {
                id: "000000000000".into(),
                alias: None,
                created_ms: 1,
            };
            iam.create_account(&account, Some(&key)).await.unwrap();
        }
        // The stored row holds neither the secret nor any long run of it.
        let c = Connection::open(&db).unwrap();
        let sealed: Vec<u8> = c
            .query_row(
                "SELECT secret_enc FROM access_keys WHERE access_key_id = ?1",
                [&key.access_key_id],
                |r| r.get(0),
            )
            .unwrap();
        let secret = key.secret.expose().as_bytes();
        assert_eq!(sealed[0], crate::secrets::SEALED_VERSION);
        assert!(sealed
            .windows(8)
            .all(|w| !secret.windows(8).any(|s| s == w)));
        let dump: String = c
            .query_row(
                "SELECT group_concat(quote(secret_enc) || access_key_id || status) FROM access_keys",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!dump.contains(key.secret.expose()));
        drop(c);
        let raw = std::fs::read(&db).unwrap();
        assert!(!raw.windows(secret.len()).any(|w| w == secret));

        // The same master key opens it again after a reopen.
        let store = SqliteMetaStore::open(&db).unwrap();
        let iam = SqliteIamStore::new(store.clone(), MasterKey::load(&key_path).unwrap());
        let found = iam
            .lookup_access_key(&key.access_key_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.secret, key.secret);

        // Another master key fails with a clear error naming the key.
        let wrong = SqliteIamStore::new(store, MasterKey::generate());
        let err = wrong
            .lookup_access_key(&key.access_key_id)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                crate::IamError::Secret { access_key_id, source: SecretError::WrongMasterKey { .. } }
                    if *access_key_id == key.access_key_id
            ),
            "{err:?}"
        );
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(chain.contains("wrong or replaced master.key"), "{chain}");
    }

    #[test]
    fn access_key_lookup_is_one_indexed_query() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        drop(SqliteMetaStore::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        let mut st = c
            .prepare(&format!("EXPLAIN QUERY PLAN {}", iam_queries::LOOKUP_SQL))
            .unwrap();
        let plan: Vec<String> = st
            .query_map(["AKIAEXAMPLE"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(plan.len(), 2, "{plan:?}");
        assert!(
            plan[0].starts_with("SEARCH k USING PRIMARY KEY"),
            "{plan:?}"
        );
        assert!(
            plan[1].starts_with("SEARCH u USING INTEGER PRIMARY KEY"),
            "{plan:?}"
        );
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
            Err(OpenError::Migrate(MigrateError::TooNew(
                crate::schema::SchemaTooNew { found: 999, .. }
            )))
        ));
    }
}
