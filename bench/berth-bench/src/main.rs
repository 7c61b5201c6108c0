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
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Cmd::Report(a) = &cli.cmd {
        return report::run(a);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async_main(cli))
}

async fn async_main(cli: Cli) -> Result<()> {
    let reg = client::Registry::new(&cli.registry, Duration::from_secs(cli.timeout_secs))?;
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
        Cmd::Report(_) => unreachable!("handled before the runtime starts"),
    };
    report.emit(&cli.tag, &cli.registry);
    Ok(())
}
