//! The metadata backend selected by `[meta] backend`, opened in one place: [`open`]
//! returns the stores as the trait objects the rest of the binary uses, so adding a
//! backend is one arm here (and one in [`MetaStores::iam`], which needs the master key).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};

use berth_config::{Config, MetaBackend};
use berth_meta::jobs::JobStore;
use berth_meta::postgres::{PgDb, PgIamStore, PgJobStore, PgMetaStore, PgOptions};
use berth_meta::secrets::MasterKey;
use berth_meta::sqlite::{SqliteIamStore, SqliteMetaStore, SqliteOptions};
use berth_meta::transfer::MetaTransfer;
use berth_meta::{EcrSettingsStore, IamStore, LifecycleStore, MetaStore};

/// One metadata database seen through each trait the binary needs.
#[derive(Clone)]
pub struct MetaStores {
    pub meta: Arc<dyn MetaStore>,
    pub settings: Arc<dyn EcrSettingsStore>,
    pub lifecycle: Arc<dyn LifecycleStore>,
    pub jobs: Arc<dyn JobStore>,
    /// Whole-database export and import (`berth migrate`).
    pub transfer: Arc<dyn MetaTransfer>,
    backend: Backend,
}

/// What [`MetaStores::iam`] builds the IAM store on.
#[derive(Clone)]
enum Backend {
    Sqlite(SqliteMetaStore),
    Postgres(PgDb),
}

/// Opens (creating and migrating if needed) the configured metadata backend. A database
/// that cannot be reached, or whose schema is newer than this binary, fails here, before
/// anything is served.
pub async fn open(cfg: &Config) -> anyhow::Result<MetaStores> {
    match cfg.meta.backend {
        MetaBackend::Sqlite => {
            let data_dir = &cfg.storage.data_dir;
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating data directory {}", data_dir.display()))?;
            let db = SqliteMetaStore::open_with(
                data_dir.join("meta.db"),
                SqliteOptions {
                    fsync: cfg.storage.fsync,
                },
            )
            .context("opening metadata database")?;
            Ok(MetaStores {
                meta: Arc::new(db.clone()),
                settings: Arc::new(db.clone()),
                lifecycle: Arc::new(db.clone()),
                jobs: Arc::new(db.clone()),
                transfer: Arc::new(db.clone()),
                backend: Backend::Sqlite(db),
            })
        }
        MetaBackend::Postgres => {
            let url = cfg
                .meta
                .url
                .as_ref()
                .ok_or_else(|| anyhow!("meta.backend = \"postgres\" needs meta.url"))?;
            let options = PgOptions {
                url: url.expose().to_string(),
                ca_file: cfg.meta.ca_file.clone(),
                max_connections: cfg.meta.max_connections,
                acquire_timeout: Duration::from_secs(cfg.meta.acquire_timeout_secs),
            };
            // PgOpenError's messages never include the URL (it may hold a password).
            let db = PgDb::connect(&options)
                .await
                .context("opening the PostgreSQL metadata database (meta.url)")?;
            let meta = PgMetaStore::new(db.clone());
            Ok(MetaStores {
                meta: Arc::new(meta.clone()),
                settings: Arc::new(meta.clone()),
                lifecycle: Arc::new(meta),
                jobs: Arc::new(PgJobStore::new(db.clone())),
                transfer: Arc::new(db.clone()),
                backend: Backend::Postgres(db),
            })
        }
    }
}

impl MetaStores {
    /// The IAM store on the same database, sealing secrets under `key`.
    pub fn iam(&self, key: MasterKey) -> Arc<dyn IamStore> {
        match &self.backend {
            Backend::Sqlite(db) => Arc::new(SqliteIamStore::new(db.clone(), key)),
            Backend::Postgres(db) => Arc::new(PgIamStore::new(db.clone(), key)),
        }
    }
}
