//! Where the master key comes from, and the start-up check that it is the key the
//! database's secrets are sealed under.
//!
//! The master key seals secret access keys and derives the key that signs login tokens
//! and download grants (`berth_meta::secrets`). Every node sharing a metadata database
//! must load the same key, so that a token one node issued is accepted by every other: a
//! cluster names one key in its configuration (`[storage] master_key_file`, or
//! `master_key` as base64, e.g. `BERTH_STORAGE__MASTER_KEY`); a single node keeps
//! `<data-dir>/master.key`, created on its first start.

use anyhow::{bail, Context};
use base64::Engine;

use berth_config::StorageConfig;
use berth_meta::iam::{IamError, KeyOwner};
use berth_meta::secrets::{MasterKey, SecretError};
use berth_meta::IamStore;

/// The file in the data directory holding the key when the configuration names none.
pub const MASTER_KEY: &str = "master.key";

/// Whether a missing data-directory key may be created (only `berth serve` creates one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Create,
    Refuse,
}

/// Loads the master key from where the configuration says.
pub fn load(storage: &StorageConfig, missing: Missing) -> anyhow::Result<MasterKey> {
    let key = if let Some(secret) = &storage.master_key {
        // The decoder's messages never include the input.
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(secret.expose().trim())
            .map_err(|e| {
                anyhow::anyhow!("storage.master_key (BERTH_STORAGE__MASTER_KEY) is not base64: {e}")
            })?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            anyhow::anyhow!(
                "storage.master_key (BERTH_STORAGE__MASTER_KEY) must be 32 bytes in base64, found {} bytes",
                b.len()
            )
        })?;
        MasterKey::from_bytes(key)
    } else if let Some(path) = &storage.master_key_file {
        // A configured key is shared by the cluster: never made up by one node.
        MasterKey::load(path).with_context(|| {
            format!(
                "loading the master key named by storage.master_key_file ({})",
                path.display()
            )
        })?
    } else {
        let path = storage.data_dir.join(MASTER_KEY);
        match missing {
            Missing::Create => MasterKey::load_or_create(&path),
            Missing::Refuse => MasterKey::load(&path),
        }
        .context("loading the master key")?
    };
    Ok(key)
}

/// The key's 32 bytes, from where [`load`] takes it (an existing key only): `berth
/// migrate` installs the source's key in a new single node's data directory.
pub fn bytes(storage: &StorageConfig) -> anyhow::Result<[u8; 32]> {
    let bytes = if let Some(secret) = &storage.master_key {
        base64::engine::general_purpose::STANDARD
            .decode(secret.expose().trim())
            .map_err(|e| anyhow::anyhow!("storage.master_key is not base64: {e}"))?
    } else {
        let path = storage
            .master_key_file
            .clone()
            .unwrap_or_else(|| storage.data_dir.join(MASTER_KEY));
        std::fs::read(&path)
            .with_context(|| format!("reading the master key {}", path.display()))?
    };
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| anyhow::anyhow!("a master key has 32 bytes, found {}", b.len()))
}

/// Where [`load`] takes the key from, for messages (never the key itself).
pub fn source(storage: &StorageConfig) -> String {
    match (&storage.master_key, &storage.master_key_file) {
        (Some(_), _) => "storage.master_key".to_string(),
        (None, Some(path)) => path.display().to_string(),
        (None, None) => storage.data_dir.join(MASTER_KEY).display().to_string(),
    }
}

/// Opens one stored secret access key, so that a node whose key is not the database's
/// refuses to start, naming both key ids, rather than failing every login later. A
/// database without any access key passes (nothing is sealed yet).
pub async fn check_matches_database(
    iam: &dyn IamStore,
    key_id: &str,
    source: &str,
) -> anyhow::Result<()> {
    let Some(access_key_id) = any_access_key(iam).await? else {
        tracing::info!(key_id, from = %source, "master key loaded (no secret stored yet)");
        return Ok(());
    };
    match iam.lookup_access_key(&access_key_id).await {
        Ok(_) => Ok(()),
        Err(IamError::Secret {
            source: SecretError::WrongMasterKey { found, loaded },
            ..
        }) => bail!(
            "the master key loaded from {source} (key id {loaded}) is not the key this \
             database's secrets are sealed under (key id {found}); every node sharing a \
             database must load the same master key (storage.master_key_file or \
             storage.master_key)"
        ),
        Err(e) => Err(e).context("checking the master key against the database"),
    }
    .inspect(|()| tracing::info!(key_id, from = %source, "master key matches the database"))
}

/// The id of some stored access key: the first account's root keys, else its users'.
async fn any_access_key(iam: &dyn IamStore) -> anyhow::Result<Option<String>> {
    for account in iam.list_accounts().await? {
        let root = iam.list_access_keys(&account.id, &KeyOwner::Root).await?;
        if let Some(k) = root.into_iter().next() {
            return Ok(Some(k.access_key_id));
        }
        for user in iam.list_users(&account.id, None).await? {
            let keys = iam
                .list_access_keys(&account.id, &KeyOwner::User(user.name))
                .await?;
            if let Some(k) = keys.into_iter().next() {
                return Ok(Some(k.access_key_id));
            }
        }
    }
    Ok(None)
}
