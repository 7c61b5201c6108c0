//! Accounts and IAM administration on the data directory: first-start bootstrap (the
//! default account and its administrator key in `<data-dir>/admin.credentials`) and the
//! offline `berth iam ...` commands, which need a registry `berth serve` created. They open `meta.db` directly; SQLite in WAL mode lets
//! them run while `berth serve` is running.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use berth_config::Config;
use berth_meta::iam::{
    AccessKeyRecord, Account, IamError, KeyOwner, KeyStatus, NewAccessKey, NewUser, User,
};
use berth_meta::settings::{AppliedFor, CreationTemplate, ROOT_PREFIX};
use berth_meta::{EcrSettingsStore, IamStore, SettingsError};

/// The administrator's AWS shared-credentials file, in the data directory.
pub const ADMIN_CREDENTIALS: &str = "admin.credentials";
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn iso8601(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A credentials file written to a temporary name (mode 0600, fsynced), published with
/// [`PendingCredentials::publish`] once the key it holds is committed to the database.
/// Dropped unpublished, it is removed.
struct PendingCredentials {
    tmp: PathBuf,
    path: PathBuf,
    published: bool,
}

impl PendingCredentials {
    fn write(data_dir: &Path, key: &NewAccessKey, region: &str) -> anyhow::Result<Self> {
        let path = data_dir.join(ADMIN_CREDENTIALS);
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tmp = data_dir.join(format!(
            ".{ADMIN_CREDENTIALS}.{}.{}.{}",
            std::process::id(),
            now_ms(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let body = format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\nregion = {}\n",
            key.access_key_id,
            key.secret.expose(),
            region
        );
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        let pending = PendingCredentials {
            tmp,
            path,
            published: false,
        };
        f.write_all(body.as_bytes())
            .and_then(|_| f.sync_all())
            .with_context(|| format!("writing {}", pending.tmp.display()))?;
        Ok(pending)
    }

    fn publish(mut self) -> anyhow::Result<PathBuf> {
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.published = true;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(self.path.clone())
    }
}

impl Drop for PendingCredentials {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// On an empty data directory: creates the configured account with an administrator
/// access key for its root, writes `admin.credentials` and prints the key once to stderr;
/// also gives the account a `ROOT` repository creation template for `CREATE_ON_PUSH`
/// (MUTABLE tags), so that a push to a new repository creates it, as newcomers to a
/// registry expect. Deleting that template (`aws ecr delete-repository-creation-template
/// --prefix ROOT`) gives ECR's strict behaviour; it is never recreated, because this does
/// nothing when the account exists (so a restart never creates another key either).
pub async fn bootstrap(
    iam: &dyn IamStore,
    settings: &dyn EcrSettingsStore,
    cfg: &Config,
) -> anyhow::Result<()> {
    let account_id = &cfg.registry.account_id;
    if iam.get_account(account_id).await?.is_some() {
        return Ok(());
    }
    // Before the account: a crash in between leaves the template, and the restart (which
    // still finds no account) tolerates it.
    create_root_template(settings, account_id).await?;
    let key = match (
        &cfg.auth.bootstrap_access_key_id,
        &cfg.auth.bootstrap_secret_access_key,
    ) {
        (Some(id), Some(secret)) => NewAccessKey {
            access_key_id: id.clone(),
            secret: berth_meta::secrets::SecretAccessKey::new(secret.expose().to_string()),
        },
        _ => NewAccessKey::generate(),
    };
    let pending = PendingCredentials::write(&cfg.storage.data_dir, &key, &cfg.registry.region)?;
    let account = Account {
        id: account_id.clone(),
        alias: None,
        created_ms: now_ms(),
    };
    match iam.create_account(&account, Some(&key)).await {
        Ok(()) => {}
        // Another berth process on the same data directory got there first.
        Err(IamError::AccountAlreadyExists(_)) => return Ok(()),
        Err(e) => return Err(e).context("creating the default account"),
    }
    let path = pending.publish()?;
    tracing::info!(
        account = %account_id,
        access_key_id = %key.access_key_id,
        path = %path.display(),
        "created the default account and its administrator access key"
    );
    eprintln!(
        "\nberth: created account {account_id} and an administrator access key for its root.\n\
         This is the only time the secret is printed; it is also saved, mode 0600, in\n  {}\n\n\
         \x20 aws_access_key_id     = {}\n\
         \x20 aws_secret_access_key = {}\n\
         \x20 region                = {}\n\n\
         Use it with AWS_SHARED_CREDENTIALS_FILE={} aws ... --endpoint-url ...\n\
         Rotate it with `berth iam rotate-admin-key`.\n",
        path.display(),
        key.access_key_id,
        key.secret.expose(),
        cfg.registry.region,
        path.display(),
    );
    Ok(())
}

/// `berth iam create-account`: a new account with a root access key (printed in the
/// output, the only time) and a `ROOT` creation template, as the default account gets.
async fn create_account(
    iam: &dyn IamStore,
    settings: &dyn EcrSettingsStore,
    cfg: &Config,
    account_id: &str,
    alias: Option<String>,
) -> anyhow::Result<Value> {
    if account_id.parse::<berth_types::AccountId>().is_err() {
        bail!("an account id is 12 digits, got {account_id:?}");
    }
    if iam.get_account(account_id).await?.is_some() {
        bail!("account {account_id} already exists");
    }
    create_root_template(settings, account_id).await?;
    let key = NewAccessKey::generate();
    let account = Account {
        id: account_id.to_string(),
        alias,
        created_ms: now_ms(),
    };
    iam.create_account(&account, Some(&key))
        .await
        .with_context(|| format!("creating account {account_id}"))?;
    let registry_host = cfg
        .registry
        .base_domain
        .as_deref()
        .map(|d| format!("{account_id}.{d}"));
    Ok(json!({
        "Account": {
            "Id": account.id,
            "Alias": account.alias,
            "Arn": format!("arn:aws:iam::{account_id}:root"),
            "RegistryHost": registry_host,
        },
        "AccessKey": {
            "AccessKeyId": key.access_key_id,
            "SecretAccessKey": key.secret.expose(),
            "Status": "Active",
        },
    }))
}

/// The `ROOT` template of a new account (creating it twice is not an error).
async fn create_root_template(
    settings: &dyn EcrSettingsStore,
    account_id: &str,
) -> anyhow::Result<()> {
    let mut template = CreationTemplate::new(ROOT_PREFIX, vec![AppliedFor::CreateOnPush], now_ms());
    template.description = Some(
        "Created by berth on first start: a push to a missing repository creates it. \
         Delete this template for ECR's behaviour (such pushes fail)."
            .into(),
    );
    match settings.create_template(account_id, &template).await {
        Ok(()) | Err(SettingsError::TemplateAlreadyExists(_)) => Ok(()),
        Err(e) => Err(e).context("creating the ROOT repository creation template"),
    }
}

fn user_json(u: &User) -> Value {
    json!({
        "Path": u.path,
        "UserName": u.name,
        "UserId": u.user_id,
        "Arn": u.arn,
        "CreateDate": iso8601(u.created_ms),
    })
}

fn key_json(k: &AccessKeyRecord) -> Value {
    let mut v = json!({
        "AccessKeyId": k.access_key_id,
        "Status": k.status.as_str(),
        "CreateDate": iso8601(k.created_ms),
    });
    if let KeyOwner::User(name) = &k.owner {
        v["UserName"] = json!(name);
    }
    v
}

/// One `berth iam` command.
#[derive(Debug)]
pub enum IamAction {
    CreateUser {
        name: String,
        path: String,
    },
    CreateAccessKey {
        user: String,
    },
    ListUsers {
        path_prefix: Option<String>,
    },
    /// Keys of a user, or of the account root when `user` is `None`.
    ListAccessKeys {
        user: Option<String>,
    },
    DeleteAccessKey {
        access_key_id: String,
        user: Option<String>,
    },
    RotateAdminKey,
    /// Creates the account `--account` names.
    CreateAccount {
        alias: Option<String>,
    },
    ListAccounts,
}

fn owner_of(user: Option<String>) -> KeyOwner {
    user.map(KeyOwner::User).unwrap_or(KeyOwner::Root)
}

/// Runs a `berth iam` command against the data directory; prints AWS-CLI-shaped JSON.
pub fn run_iam(cfg: Config, account: Option<String>, action: IamAction) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let out = rt.block_on(async move {
        // The registry exists (`crate::data_dir::require_existing`): its master key is
        // loaded, never created, and no account or key is made behind the operator's back.
        let stores = crate::stores::open(&cfg).await?;
        let key = crate::master_key::load(&cfg.storage, crate::master_key::Missing::Refuse)?;
        let iam = stores.iam(key);
        if let IamAction::CreateAccount { alias } = action {
            let Some(account) = account else {
                bail!("name the new account with --account <12 digits>");
            };
            return create_account(&*iam, &*stores.settings, &cfg, &account, alias).await;
        }
        let account = account.unwrap_or_else(|| cfg.registry.account_id.clone());
        if iam.get_account(&account).await?.is_none() {
            bail!("account {account} does not exist");
        }
        iam_action(&*iam, &cfg, &account, action).await
    })?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

async fn iam_action(
    iam: &dyn IamStore,
    cfg: &Config,
    account: &str,
    action: IamAction,
) -> anyhow::Result<Value> {
    Ok(match action {
        IamAction::CreateUser { name, path } => {
            let user = iam
                .create_user(&NewUser {
                    account_id: account.to_string(),
                    arn: berth_iam::iam_user_arn(account, &path, &name),
                    name,
                    path,
                })
                .await?;
            json!({ "User": user_json(&user) })
        }
        IamAction::CreateAccessKey { user } => {
            let key = NewAccessKey::generate();
            let rec = iam
                .create_access_key(account, &KeyOwner::User(user), &key)
                .await?;
            let mut v = key_json(&rec);
            v["SecretAccessKey"] = json!(key.secret.expose());
            json!({ "AccessKey": v })
        }
        IamAction::ListUsers { path_prefix } => {
            let users = iam.list_users(account, path_prefix.as_deref()).await?;
            json!({ "Users": users.iter().map(user_json).collect::<Vec<_>>() })
        }
        IamAction::ListAccessKeys { user } => {
            let keys = iam.list_access_keys(account, &owner_of(user)).await?;
            json!({ "AccessKeyMetadata": keys.iter().map(key_json).collect::<Vec<_>>() })
        }
        IamAction::DeleteAccessKey {
            access_key_id,
            user,
        } => {
            iam.delete_access_key(account, &owner_of(user), &access_key_id)
                .await?;
            json!({})
        }
        IamAction::ListAccounts => {
            let accounts = iam.list_accounts().await?;
            json!({ "Accounts": accounts.iter().map(|a| json!({
                "Id": a.id,
                "Alias": a.alias,
                "Arn": format!("arn:aws:iam::{}:root", a.id),
            })).collect::<Vec<_>>() })
        }
        IamAction::CreateAccount { .. } => bail!("create-account is handled before"),
        IamAction::RotateAdminKey => rotate_admin_key(iam, cfg, account).await?,
    })
}

/// A new root key; `admin.credentials` rewritten; every previous root key deactivated,
/// then deleted.
async fn rotate_admin_key(
    iam: &dyn IamStore,
    cfg: &Config,
    account: &str,
) -> anyhow::Result<Value> {
    let old = iam.list_access_keys(account, &KeyOwner::Root).await?;
    if old.len() >= berth_meta::iam::MAX_ACCESS_KEYS_PER_OWNER {
        bail!(
            "the root of account {account} already has {} access keys ({}); a rotation needs a free slot: \
             remove one with `berth iam delete-access-key ID`",
            old.len(),
            old.iter()
                .map(|k| k.access_key_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let key = NewAccessKey::generate();
    let pending = PendingCredentials::write(&cfg.storage.data_dir, &key, &cfg.registry.region)?;
    let rec = iam
        .create_access_key(account, &KeyOwner::Root, &key)
        .await?;
    let path = pending.publish()?;
    for k in &old {
        iam.update_access_key_status(
            account,
            &KeyOwner::Root,
            &k.access_key_id,
            KeyStatus::Inactive,
        )
        .await?;
        iam.delete_access_key(account, &KeyOwner::Root, &k.access_key_id)
            .await?;
    }
    tracing::info!(
        account,
        access_key_id = %rec.access_key_id,
        deleted = old.len(),
        "rotated the administrator access key"
    );
    Ok(json!({
        "AccessKey": key_json(&rec),
        "CredentialsFile": path.display().to_string(),
        "DeletedAccessKeyIds": old.iter().map(|k| k.access_key_id.clone()).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IAM store of `stores`, with the configured master key (the data directory's is
    /// created on first use), as `berth serve` opens it.
    fn open_iam(
        storage: &berth_config::StorageConfig,
        stores: &crate::stores::MetaStores,
    ) -> anyhow::Result<std::sync::Arc<dyn IamStore>> {
        let key = crate::master_key::load(storage, crate::master_key::Missing::Create)?;
        Ok(stores.iam(key))
    }

    fn config(dir: &Path) -> Config {
        let mut cfg = Config::default();
        cfg.storage.data_dir = dir.to_path_buf();
        cfg.storage.fsync = false;
        cfg
    }

    fn file_key_id(dir: &Path) -> String {
        let text = std::fs::read_to_string(dir.join(ADMIN_CREDENTIALS)).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("aws_access_key_id = "))
            .unwrap()
            .to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_bootstraps_leave_one_key_matching_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let stores = crate::stores::open(&cfg).await.unwrap();
        let iam = open_iam(&cfg.storage, &stores).unwrap();
        let meta = stores.settings.clone();
        let (a, b) = (iam.clone(), iam.clone());
        let (ma, mb) = (meta.clone(), meta.clone());
        let (ca, cb) = (cfg.clone(), cfg.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { bootstrap(&*a, &*ma, &ca).await }),
            tokio::spawn(async move { bootstrap(&*b, &*mb, &cb).await }),
        );
        ra.unwrap().unwrap();
        rb.unwrap().unwrap();
        let keys = iam
            .list_access_keys(&cfg.registry.account_id, &KeyOwner::Root)
            .await
            .unwrap();
        assert_eq!(keys.len(), 1);
        let id = file_key_id(dir.path());
        assert_eq!(keys[0].access_key_id, id);
        let text = std::fs::read_to_string(dir.path().join(ADMIN_CREDENTIALS)).unwrap();
        let found = iam.lookup_access_key(&id).await.unwrap().unwrap();
        assert!(text.contains(&format!(
            "aws_secret_access_key = {}\n",
            found.secret.expose()
        )));
        // No temporary credentials file is left behind by the loser.
        let hidden: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(hidden.is_empty(), "{hidden:?}");
        // Idempotent afterwards.
        bootstrap(&*iam, &*meta, &cfg).await.unwrap();
        assert_eq!(file_key_id(dir.path()), id);
    }

    #[tokio::test]
    async fn first_start_creates_a_root_template_that_stays_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let stores = crate::stores::open(&cfg).await.unwrap();
        let iam = open_iam(&cfg.storage, &stores).unwrap();
        let meta = stores.settings.clone();
        let acc = cfg.registry.account_id.clone();
        bootstrap(&*iam, &*meta, &cfg).await.unwrap();
        let templates = meta.describe_templates(&acc, None, None, 10).await.unwrap();
        assert_eq!(templates.len(), 1);
        assert_eq!(templates[0].prefix, "ROOT");
        assert_eq!(templates[0].applied_for, vec![AppliedFor::CreateOnPush]);
        assert_eq!(templates[0].image_tag_mutability, "MUTABLE");
        // Deleted by the operator: a restart does not bring it back.
        meta.delete_template(&acc, "ROOT").await.unwrap();
        bootstrap(&*iam, &*meta, &cfg).await.unwrap();
        assert!(meta
            .describe_templates(&acc, None, None, 10)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn rotation_replaces_the_root_key_and_restores_a_lost_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let stores = crate::stores::open(&cfg).await.unwrap();
        let iam = open_iam(&cfg.storage, &stores).unwrap();
        let meta = stores.settings.clone();
        bootstrap(&*iam, &*meta, &cfg).await.unwrap();
        let acc = cfg.registry.account_id.clone();
        let first = file_key_id(dir.path());
        std::fs::remove_file(dir.path().join(ADMIN_CREDENTIALS)).unwrap();
        // A restart does not recreate it...
        bootstrap(&*iam, &*meta, &cfg).await.unwrap();
        assert!(!dir.path().join(ADMIN_CREDENTIALS).exists());
        // ...a rotation does, and the old key stops working.
        let out = rotate_admin_key(&*iam, &cfg, &acc).await.unwrap();
        let second = file_key_id(dir.path());
        assert_eq!(out["AccessKey"]["AccessKeyId"], second.as_str());
        assert!(iam.lookup_access_key(&first).await.unwrap().is_none());
        // With both root slots taken, rotation refuses and changes nothing.
        iam.create_access_key(&acc, &KeyOwner::Root, &NewAccessKey::generate())
            .await
            .unwrap();
        let err = rotate_admin_key(&*iam, &cfg, &acc).await.unwrap_err();
        assert!(err.to_string().contains("delete-access-key"), "{err}");
        assert_eq!(file_key_id(dir.path()), second);
    }
}
