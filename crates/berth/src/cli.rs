//! The command line: `berth serve`, `berth config check`, `berth iam ...`, `berth gc`,
//! `berth lifecycle ...`, `berth policy ...`, `berth migrate`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use berth_config::{Config, Overrides};

/// Berth: a self-hosted container registry that speaks the OCI Distribution API
/// (docker, podman, skopeo, containerd, oras) and the Amazon ECR API, with IAM and STS
/// (`aws ecr|iam|sts ... --endpoint-url`, boto3).
#[derive(Parser, Debug)]
#[command(name = "berth", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the registry.
    ///
    /// With no options it listens on http://127.0.0.1:5000 and keeps everything under
    /// ./berth-data (SQLite metadata + blobs on local disk). The first start creates an
    /// administrator access key in ./berth-data/admin.credentials; every request needs
    /// credentials. Push to it with e.g. `skopeo copy --dest-tls-verify=false --dest-creds
    /// KEY_ID:SECRET docker://SOURCE docker://127.0.0.1:5000/NAME:TAG`, where KEY_ID and
    /// SECRET are that file's aws_access_key_id and aws_secret_access_key. One server per
    /// data directory (it holds <data-dir>/berth.lock).
    Serve(ServeArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage accounts, IAM users and access keys in the data directory (works whether
    /// or not `berth serve` is running). Output is JSON shaped like the AWS CLI's.
    Iam(IamArgs),
    /// Delete blobs no repository link, manifest or upload references (one garbage
    /// collection pass, as `berth serve` runs every `[gc] interval_secs`), and report the
    /// blobs and bytes reclaimed. Safe while `berth serve` runs.
    Gc(GcArgs),
    /// Lifecycle policies by hand: preview a policy's effect per rule, run it now, or list
    /// the images lifecycle policies expired (see docs/ARCHITECTURE.md).
    Lifecycle(crate::lifecycle_cli::LifecycleArgs),
    /// Read and remove repository and registry policies in the data directory, as the
    /// operator (works whether or not `berth serve` is running): the way back when a
    /// policy denies everyone, the account root included. Output is JSON shaped like the
    /// AWS CLI's.
    Policy(crate::policy_cli::PolicyArgs),
    /// Copy a whole installation into other backends (SQLite + disk into PostgreSQL +
    /// S3, back, or any pair): blobs streamed with every digest verified, then the
    /// metadata (repositories, images, tags, policies, IAM users and access keys, ...) in
    /// one transaction. Stop the source first. An interrupted run is resumed by running
    /// it again: blobs already copied are verified, not copied again.
    Migrate(crate::migrate::MigrateArgs),
}

#[derive(Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    pub registry: crate::cli::OperatorArgs,
    /// Report what would be reclaimed; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long a blob must have been unreferenced [default: gc.grace_secs, 86400].
    #[arg(long)]
    pub grace_secs: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct IamArgs {
    #[command(flatten)]
    pub registry: crate::cli::OperatorArgs,
    /// The account to act on [default: registry.account_id].
    #[arg(long, global = true)]
    pub account: Option<String>,
    #[command(subcommand)]
    pub command: IamCommand,
}

#[derive(Subcommand, Debug)]
pub enum IamCommand {
    /// Create the account given by --account (its own registry namespace), with an access
    /// key for its root, printed once, and a ROOT repository creation template. Reach its
    /// registry through the ECR API with `registryId`, and through /v2 on
    /// `<account>.<registry.base_domain>` when that is set.
    CreateAccount {
        /// An alias for the account (unique).
        #[arg(long)]
        alias: Option<String>,
    },
    /// List the accounts of this server.
    ListAccounts,
    /// Create an IAM user.
    CreateUser {
        name: String,
        /// The user's path, `/` or `/a/b/`.
        #[arg(long, default_value = "/")]
        path: String,
    },
    /// Create an access key for a user and print its secret (the only time it is shown).
    CreateAccessKey { user: String },
    /// List the account's IAM users.
    ListUsers {
        #[arg(long)]
        path_prefix: Option<String>,
    },
    /// List the access keys of a user, or of the account root when no user is given.
    ListAccessKeys { user: Option<String> },
    /// Delete an access key of a user (--user), or of the account root.
    DeleteAccessKey {
        access_key_id: String,
        #[arg(long)]
        user: Option<String>,
    },
    /// Give the account root a new access key, rewrite <data-dir>/admin.credentials, then
    /// deactivate and delete the root's previous keys.
    RotateAdminKey,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the effective configuration (defaults < file < BERTH_* env < flags), secrets redacted.
    Check(ServeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// A TOML configuration file (see docs/CONFIG.md).
    #[arg(long, short = 'c', env = "BERTH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:5000]. Port 0 picks a free port.
    #[arg(long, env = "BERTH_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for blobs, uploads and the metadata database [default: ./berth-data].
    #[arg(long, env = "BERTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Write the bound address to this file once listening (useful with port 0).
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a generated local CA and certificate (kept in <data-dir>/tls);
    /// prints how to make clients trust it.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: bool,
}

impl ServeArgs {
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut cfg = Config::load(self.config.as_deref()).context("loading configuration")?;
        cfg.apply(&Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            addr_file: self.addr_file.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_self_signed: self.tls_self_signed,
        });
        cfg.validate()?;
        cfg.storage.data_dir = crate::data_dir::absolute(&cfg.storage.data_dir)?;
        Ok(cfg)
    }
}

/// Where an operator command finds its registry: `--config` and `--data-dir`, shared by
/// `berth iam`, `gc`, `lifecycle` and `policy`.
#[derive(Args, Debug)]
pub struct OperatorArgs {
    /// A TOML configuration file (see docs/CONFIG.md).
    #[arg(long, short = 'c', env = "BERTH_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The data directory [default: ./berth-data].
    #[arg(long, env = "BERTH_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

impl OperatorArgs {
    /// The configuration, as [`operator_config`] loads it.
    pub fn load(&self) -> anyhow::Result<Config> {
        operator_config(self.config.as_deref(), self.data_dir.as_deref())
    }
}

/// The configuration of a command that operates on an existing registry (`berth iam`,
/// `gc`, `lifecycle`, `policy`): loaded like `berth serve`'s, with the data directory made
/// absolute and required to hold a registry; logging set to warnings only.
pub fn operator_config(config: Option<&Path>, data_dir: Option<&Path>) -> anyhow::Result<Config> {
    let mut cfg = Config::load(config).context("loading configuration")?;
    cfg.apply(&Overrides {
        data_dir: data_dir.map(Path::to_path_buf),
        ..Default::default()
    });
    cfg.validate()?;
    cfg.storage.data_dir = crate::data_dir::absolute(&cfg.storage.data_dir)?;
    let mut log = cfg.log.clone();
    log.level = "warn".into();
    crate::logging::init(&log)?;
    let meta_in_data_dir = cfg.meta.backend == berth_config::MetaBackend::Sqlite;
    crate::data_dir::require_existing(&cfg.storage, meta_in_data_dir)?;
    Ok(cfg)
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let cfg = args.load()?;
            crate::logging::init(&cfg.log)?;
            crate::serve::run(cfg)
        }
        Command::Config(ConfigCommand::Check(args)) => {
            let cfg = args.load()?;
            print!("{}", cfg.redacted_toml());
            eprintln!("configuration is valid");
            Ok(())
        }
        Command::Gc(args) => {
            let cfg = args.registry.load()?;
            crate::gc::run(cfg, args.grace_secs, args.dry_run, args.json)
        }
        Command::Lifecycle(args) => crate::lifecycle_cli::run(args),
        Command::Policy(args) => crate::policy_cli::run(args),
        Command::Migrate(args) => crate::migrate::run(args),
        Command::Iam(args) => {
            let cfg = args.registry.load()?;
            let action = match args.command {
                IamCommand::CreateUser { name, path } => {
                    crate::admin::IamAction::CreateUser { name, path }
                }
                IamCommand::CreateAccessKey { user } => {
                    crate::admin::IamAction::CreateAccessKey { user }
                }
                IamCommand::ListUsers { path_prefix } => {
                    crate::admin::IamAction::ListUsers { path_prefix }
                }
                IamCommand::ListAccessKeys { user } => {
                    crate::admin::IamAction::ListAccessKeys { user }
                }
                IamCommand::DeleteAccessKey {
                    access_key_id,
                    user,
                } => crate::admin::IamAction::DeleteAccessKey {
                    access_key_id,
                    user,
                },
                IamCommand::RotateAdminKey => crate::admin::IamAction::RotateAdminKey,
                IamCommand::CreateAccount { alias } => {
                    crate::admin::IamAction::CreateAccount { alias }
                }
                IamCommand::ListAccounts => crate::admin::IamAction::ListAccounts,
            };
            crate::admin::run_iam(cfg, args.account, action)
        }
    }
}
