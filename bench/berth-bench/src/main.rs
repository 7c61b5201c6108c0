//! `berth-bench`: a load generator for the OCI Distribution API over plain HTTP, used to compare
//! Berth with the reference registry (CNCF distribution). Each scenario prints one JSON line on
//! stdout and a human summary on stderr; `report` turns collected JSON lines into a Markdown table.

mod client;
mod procstat;
mod report;
mod runner;
mod scenarios;
mod stats;
mod units;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use scenarios::Ctx;

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
    let timeout = match cli.cmd {
        Cmd::Ping => Duration::from_secs(1),
        _ => Duration::from_secs(cli.timeout_secs),
    };
    let reg = client::Registry::new(&cli.registry, timeout)?;
    reg.ping()
        .await
        .with_context(|| format!("registry {} does not answer GET /v2/", cli.registry))?;
    let ctx = Ctx {
        reg,
        prefix: cli.repo_prefix.clone(),
        server_pid: cli.server_pid,
    };
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
        Cmd::Ping => return Ok(()),
        Cmd::Report(_) | Cmd::FreePort => unreachable!("handled before the runtime starts"),
    };
    report.emit(&cli.tag, &cli.registry);
    Ok(())
}
