//! `berth policy ...`: the operator reads and removes repository and registry policies on
//! the data directory directly, as `berth iam` does for users and keys. This is the way
//! back when a policy locks everyone out, the account root included (the ECR API would
//! need a caller the policy allows). A running server sees a removal within
//! `[auth] credential_cache_secs` (2 s by default), the lifetime of its parsed-policy cache.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::stores::MetaStores;
use berth_meta::SettingsError;
use berth_types::{AccountId, RepositoryName};

#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub registry: crate::cli::OperatorArgs,
    /// The account whose registry to act on [default: registry.account_id].
    #[arg(long, global = true)]
    pub account: Option<String>,
    #[command(subcommand)]
    pub command: PolicyCommand,
}

/// The variants name the subcommands after the ECR actions they mirror, hence the shared
/// `Policy` suffix.
#[derive(Subcommand, Debug)]
#[allow(clippy::enum_variant_names)]
pub enum PolicyCommand {
    /// Print a repository's policy (JSON shaped like `aws ecr get-repository-policy`).
    GetRepositoryPolicy {
        #[arg(long)]
        repository: String,
    },
    /// Remove a repository's policy and print what it was.
    DeleteRepositoryPolicy {
        #[arg(long)]
        repository: String,
    },
    /// Print the account's registry policy.
    GetRegistryPolicy,
    /// Remove the account's registry policy and print what it was.
    DeleteRegistryPolicy,
}

pub fn run(args: PolicyArgs) -> anyhow::Result<()> {
    let cfg = args.registry.load()?;
    let account: AccountId = args
        .account
        .as_deref()
        .unwrap_or(&cfg.registry.account_id)
        .parse()
        .context("--account must be a 12-digit account id")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let out = rt.block_on(async {
        let stores = crate::stores::open(&cfg).await?;
        policy_action(&stores, account, args.command).await
    })?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

async fn policy_action(
    stores: &MetaStores,
    account: AccountId,
    command: PolicyCommand,
) -> anyhow::Result<Value> {
    let registry = account.to_string();
    Ok(match command {
        PolicyCommand::GetRepositoryPolicy { repository } => {
            existing_repository(stores, account, &repository).await?;
            let Some(text) = stores
                .settings
                .repository_policy(&registry, &repository)
                .await?
            else {
                bail!(SettingsError::RepositoryPolicyNotFound(repository));
            };
            json!({"registryId": registry, "repositoryName": repository, "policyText": text})
        }
        PolicyCommand::DeleteRepositoryPolicy { repository } => {
            existing_repository(stores, account, &repository).await?;
            let text = stores
                .settings
                .delete_repository_policy(&registry, &repository)
                .await?;
            json!({"registryId": registry, "repositoryName": repository, "policyText": text})
        }
        PolicyCommand::GetRegistryPolicy => {
            let Some(text) = stores.settings.registry_policy(&registry).await? else {
                bail!(SettingsError::RegistryPolicyNotFound(registry));
            };
            json!({"registryId": registry, "policyText": text})
        }
        PolicyCommand::DeleteRegistryPolicy => {
            let text = stores.settings.delete_registry_policy(&registry).await?;
            json!({"registryId": registry, "policyText": text})
        }
    })
}

/// Refuses a name that is not a repository of `account`, naming the account.
async fn existing_repository(
    stores: &MetaStores,
    account: AccountId,
    name: &str,
) -> anyhow::Result<()> {
    let repo = RepositoryName::new(account, name)
        .map_err(|e| anyhow::anyhow!("invalid repository name {name:?}: {e}"))?;
    if stores.meta.get_repository(&repo).await?.is_none() {
        bail!("repository {name} does not exist in account {account}");
    }
    Ok(())
}
