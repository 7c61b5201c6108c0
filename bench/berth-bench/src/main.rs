//! `berth-bench`: a load generator for the OCI Distribution API over plain HTTP, used to compare
//! Berth with the reference registry (CNCF distribution). Each scenario prints one JSON line on
//! stdout and a human summary on stderr; `report` turns collected JSON lines into a Markdown table.
// A developer's load generator, not network-facing: it calls libc for process statistics and
// signals, and stops on the first unexpected answer.
#![allow(unsafe_code, clippy::unwrap_used, clippy::string_slice)]

mod auth;
mod aws;
mod client;
mod procstat;
mod report;
mod runner;
mod scenarios;
mod server;
mod stats;
mod units;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth-bench", about = "OCI Distribution API load generator")]
struct Cli {
    /// Base URL of the registry under test.
    #[arg(long, global = true, default_value = "http://127.0.0.1:5000")]
    registry: String,
    /// PID of the server process: its CPU seconds and peak RSS during the measured phase are reported.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Label written into the JSON line (e.g. `reference` or `berth`).
    #[arg(long, global = true, default_value = "registry")]
    tag: String,
    /// Per-request timeout in seconds.
    #[arg(long, global = true, default_value_t = 120)]
    timeout_secs: u64,
    /// Prefix of every repository the bench creates.
    #[arg(long, global = true, default_value = "bench")]
    repo_prefix: String,
    /// Access key id for a registry that requires credentials (Berth). Without it the bench
    /// sends no credentials and the ECR API scenarios cannot run.
    #[arg(long, global = true, env = "BERTH_BENCH_ACCESS_KEY_ID")]
    access_key_id: Option<String>,
    /// Its secret (prefer the environment variable: flags show in `ps`).
    #[arg(
        long,
        global = true,
        env = "BERTH_BENCH_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    secret_access_key: Option<String>,
    /// Region the ECR API requests are signed for.
    #[arg(
        long,
        global = true,
        env = "BERTH_BENCH_REGION",
        default_value = "us-east-1"
    )]
    region: String,
    /// How `/v2` requests authenticate when an access key is given: `token` (Basic with the
    /// `GetAuthorizationToken` password, as after `docker login`), `key` (Basic with the
    /// access key itself) or `none`.
    #[arg(long, global = true, value_enum, default_value = "token")]
    v2_login: auth::V2Login,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Push random blobs (monolithic or chunked) with concurrent clients.
    BlobPush(scenarios::blob::PushArgs),
    /// Push blobs (untimed), then pull them with digest verification.
    BlobPull(scenarios::blob::PullArgs),
    /// Push N images (config + layers + manifest) concurrently.
    ImagePush(scenarios::image::Args),
    /// Many clients pull the same multi-layer image at once.
    PullStorm(scenarios::storm::Args),
    /// HEAD one manifest by tag over many connections for a fixed duration.
    ManifestHead(scenarios::hot::Args),
    /// GET one manifest by tag over many connections for a fixed duration.
    ManifestGet(scenarios::hot::Args),
    /// Walk /v2/_catalog page by page at growing repository counts.
    CatalogWalk(scenarios::listing::CatalogArgs),
    /// Walk /v2/<name>/tags/list page by page at growing tag counts.
    TagsWalk(scenarios::listing::TagsArgs),
    /// Mixed read/write load: tag re-pushes, manifest GETs, blob GETs, tag lists.
    Mixed(scenarios::mixed::Args),
    /// ECR GetAuthorizationToken (SigV4-signed) over many connections for a fixed duration.
    AuthToken(scenarios::auth::TokenArgs),
    /// Manifest HEAD as an IAM user with an identity policy, as root, and without access control.
    ManifestHeadAuth(scenarios::auth::HeadArgs),
    /// ECR DescribeImages over one repository of many images: paging and single-image lookups.
    DescribeImages(scenarios::describe::Args),
    /// Lifecycle policy preview (ECR API) and execution (`berth lifecycle run`) over one
    /// repository of many images, on a Berth the bench starts.
    LifecyclePreview(scenarios::lifecycle::Args),
    /// One full garbage-collection pass over a store of many blobs (Berth's `berth gc`, or
    /// the reference's offline `garbage-collect`), on a server the bench starts.
    GcScale(scenarios::gc::ScaleArgs),
    /// Push and pull throughput of a Berth without GC, then with GC passes running
    /// continuously in the server (restarted on the same data dir).
    GcOnline(scenarios::gc::OnlineArgs),
    /// Print a Markdown comparison table from JSON result lines (files or stdin).
    Report(report::Args),
    /// Exit 0 if the registry answers GET /v2/ (used by run.sh to wait for a server).
    Ping,
    /// Print a free loopback TCP port (used by run.sh).
    FreePort,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match &cli.cmd {
        Cmd::Report(a) => return report::run(a),
        Cmd::FreePort => {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            println!("{}", l.local_addr()?.port());
            return Ok(());
        }
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async_main(cli))
}

async fn async_main(cli: Cli) -> Result<()> {
    let conn = scenarios::Connect {
        prefix: cli.repo_prefix.clone(),
        region: cli.region.clone(),
        timeout: Duration::from_secs(cli.timeout_secs),
        v2_login: cli.v2_login,
    };
    // Scenarios that start their own servers: one JSON line per server they measured.
    let own = match &cli.cmd {
        Cmd::LifecyclePreview(a) => Some(scenarios::lifecycle::run(&conn, a).await?),
        Cmd::GcScale(a) => Some(scenarios::gc::scale(&conn, a).await?),
        Cmd::GcOnline(a) => Some(scenarios::gc::online(&conn, a).await?),
        _ => None,
    };
    if let Some(reports) = own {
        for (tag, url, report) in reports {
            report.emit(&tag, &url);
        }
        return Ok(());
    }
    let timeout = match cli.cmd {
        Cmd::Ping => Duration::from_secs(1),
        _ => Duration::from_secs(cli.timeout_secs),
    };
    let reg = client::Registry::new(&cli.registry, timeout)?;
    reg.ping()
        .await
        .with_context(|| format!("registry {} does not answer GET /v2/", cli.registry))?;
    if matches!(cli.cmd, Cmd::Ping) {
        return Ok(());
    }
    let key = match (&cli.access_key_id, &cli.secret_access_key) {
        (Some(id), Some(secret)) => Some(auth::AccessKey {
            id: id.clone(),
            secret: secret.clone(),
        }),
        (None, None) => None,
        _ => anyhow::bail!("--access-key-id and --secret-access-key go together"),
    };
    let ctx = conn.login(reg, cli.server_pid, key).await?;
    let report = match &cli.cmd {
        Cmd::BlobPush(a) => scenarios::blob::push(&ctx, a).await?,
        Cmd::BlobPull(a) => scenarios::blob::pull(&ctx, a).await?,
        Cmd::ImagePush(a) => scenarios::image::run(&ctx, a).await?,
        Cmd::PullStorm(a) => scenarios::storm::run(&ctx, a).await?,
        Cmd::ManifestHead(a) => scenarios::hot::run(&ctx, a, true).await?,
        Cmd::ManifestGet(a) => scenarios::hot::run(&ctx, a, false).await?,
        Cmd::CatalogWalk(a) => scenarios::listing::catalog(&ctx, a).await?,
        Cmd::TagsWalk(a) => scenarios::listing::tags(&ctx, a).await?,
        Cmd::Mixed(a) => scenarios::mixed::run(&ctx, a).await?,
        Cmd::AuthToken(a) => scenarios::auth::token(&ctx, a).await?,
        Cmd::ManifestHeadAuth(a) => scenarios::auth::head(&ctx, a).await?,
        Cmd::DescribeImages(a) => scenarios::describe::run(&ctx, a).await?,
        Cmd::Report(_)
        | Cmd::FreePort
        | Cmd::Ping
        | Cmd::LifecyclePreview(_)
        | Cmd::GcScale(_)
        | Cmd::GcOnline(_) => {
            unreachable!("handled before the scenarios")
        }
    };
    report.emit(&cli.tag, &cli.registry);
    Ok(())
}
