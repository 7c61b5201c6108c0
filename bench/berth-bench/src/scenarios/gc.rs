//! Garbage collection at scale, on servers the bench starts itself (so it can stop, restart
//! and reconfigure them):
//!
//! - `gc-scale`: fills a store with M tiny distinct blobs through `/v2` (monolithic
//!   `POST ?digest=`; most of them referenced by manifests of many layers each, a share left
//!   unreferenced), then times one full collection: Berth's `berth gc --grace-secs 0 --json`
//!   (first `--dry-run`) beside its running, idle server — it is made to run online — or the
//!   reference's `docker-registry garbage-collect` with the server stopped (distribution's
//!   collector is stop-the-world), then restarts the reference. Both then spot-check through
//!   `/v2` that referenced blobs still pull intact and unreferenced ones are gone.
//! - `gc-online` (Berth only): push and pull throughput of one Berth data dir measured with
//!   garbage collection off and with passes every second in the server, alternating
//!   (off, on, on, off, ...) with a restart between slots; the server log must show a pass
//!   running through each GC window (started or ended in it, or in progress at its start).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rand::seq::index::sample;
use serde_json::{json, Value};

use super::{Connect, Ctx};
use crate::auth::AccessKey;
use crate::client::{config_blob, image_manifest, BenchError, Blob, Registry, OCI_MANIFEST};
use crate::procstat::server_cpu_seconds;
use crate::runner::{self, Tally};
use crate::server::{count_files, random_key, run_measured, OwnServerArgs, Server};
use crate::stats::{mb_per_s, Better, Report};
use crate::units::{parse_duration, parse_size};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerKind {
    Berth,
    Reference,
}

impl ServerKind {
    fn tag(self) -> &'static str {
        match self {
            ServerKind::Berth => "berth",
            ServerKind::Reference => "reference",
        }
    }
}

/// The layout of a store of tiny blobs: `referenced` blobs in groups of one config and up to
/// `layers` layers, each group one manifest, then `garbage` blobs no manifest names. Blob
/// contents are derived from the index and a per-run salt, so nothing is held in memory.
#[derive(Clone)]
struct Layout {
    salt: String,
    prefix: String,
    repos: usize,
    referenced: usize,
    garbage: usize,
    /// Blobs per group: its config and `group - 1` layers.
    group: usize,
    blob_size: usize,
}

impl Layout {
    fn new(prefix: &str, total: usize, garbage: usize, layers: usize, repos: usize) -> Self {
        Layout {
            salt: format!("{:08x}", rand::random::<u32>()),
            prefix: prefix.to_string(),
            repos: repos.max(1),
            referenced: total - garbage.min(total),
            garbage: garbage.min(total),
            group: layers.max(1) + 1,
            blob_size: 48,
        }
    }

    fn total(&self) -> usize {
        self.referenced + self.garbage
    }

    fn manifests(&self) -> usize {
        self.referenced.div_ceil(self.group)
    }

    fn repo_of_group(&self, g: usize) -> String {
        format!("{}/gc-{}-{}", self.prefix, self.salt, g % self.repos)
    }

    /// The repository blob `i` is pushed to.
    fn repo_of(&self, i: usize) -> String {
        if i < self.referenced {
            self.repo_of_group(i / self.group)
        } else {
            format!("{}/gc-{}-{}", self.prefix, self.salt, i % self.repos)
        }
    }

    fn blob(&self, i: usize) -> Blob {
        if i < self.referenced && i.is_multiple_of(self.group) {
            return config_blob(&format!("gc {} {}", self.salt, i / self.group));
        }
        let mut s = format!("berth-bench gc {} {i:012}\n", self.salt);
        while s.len() < self.blob_size {
            s.push('.');
        }
        Blob::new(s.into_bytes())
    }

    /// Manifest `g`: its repository, tag and body.
    fn manifest(&self, g: usize) -> (String, String, bytes::Bytes) {
        let start = g * self.group;
        let end = (start + self.group).min(self.referenced);
        let config = self.blob(start);
        let layers: Vec<Blob> = (start + 1..end).map(|i| self.blob(i)).collect();
        let refs: Vec<&Blob> = layers.iter().collect();
        let body = image_manifest(&config, &refs, &format!("gc {} {g}", self.salt));
        (self.repo_of_group(g), format!("m{g:07}"), body)
    }
}

/// Prints progress of a long fill to stderr every 30 s.
fn progress(
    what: &'static str,
    total: usize,
    done: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            let n = done.load(Ordering::Relaxed);
            eprintln!(
                "#   {what}: {n} of {total} after {:.0} s ({:.0}/s)",
                start.elapsed().as_secs_f64(),
                n as f64 / start.elapsed().as_secs_f64()
            );
        }
    })
}

/// What a fill did.
struct Filled {
    wall: Duration,
    requests: usize,
}

/// Pushes every blob of `layout` (`concurrency` at a time), then its manifests.
async fn fill(reg: &Registry, layout: &Layout, concurrency: usize) -> Result<Filled> {
    let start = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let ticker = progress("blobs pushed", layout.total(), done.clone());
    let requests = Arc::new(AtomicUsize::new(0));
    let (reg2, lay, req2) = (reg.clone(), Arc::new(layout.clone()), requests.clone());
    let (t, _) = runner::indexed(layout.total(), concurrency, move |i, mut t| {
        let (reg, lay, done, req) = (reg2.clone(), lay.clone(), done.clone(), req2.clone());
        async move {
            let blob = lay.blob(i);
            let r = reg.push_blob_post(&lay.repo_of(i), &blob).await;
            if let Ok(n) = &r {
                req.fetch_add(*n as usize, Ordering::Relaxed);
            }
            t.record("blob", Duration::ZERO, r.map(|_| 0));
            done.fetch_add(1, Ordering::Relaxed);
            t
        }
    })
    .await;
    ticker.abort();
    t.all_ok("pushing blobs")?;
    let (reg2, lay) = (reg.clone(), Arc::new(layout.clone()));
    let (t, _) = runner::indexed(layout.manifests(), concurrency.min(8), move |g, mut t| {
        let (reg, lay) = (reg2.clone(), lay.clone());
        async move {
            let r = async {
                let (repo, tag, body) =
                    tokio::task::spawn_blocking(move || lay.manifest(g)).await?;
                reg.put_manifest(&repo, &tag, OCI_MANIFEST, body).await?;
                Ok(0)
            }
            .await;
            t.record("manifest", Duration::ZERO, r);
            t
        }
    })
    .await;
    t.all_ok("pushing manifests")?;
    Ok(Filled {
        wall: start.elapsed(),
        requests: requests.load(Ordering::Relaxed) + layout.manifests(),
    })
}

/// Through `/v2`: sampled referenced blobs must pull intact, sampled unreferenced ones must
/// be gone. Returns (referenced missing or wrong, garbage still present, checks made).
async fn spot_check(reg: &Registry, layout: &Layout, n: usize, t: &mut Tally) -> (u64, u64, usize) {
    let mut rng = rand::thread_rng();
    let mut missing = 0u64;
    let mut present = 0u64;
    let refs = sample(&mut rng, layout.referenced.max(1), n.min(layout.referenced));
    let garbage = sample(&mut rng, layout.garbage.max(1), n.min(layout.garbage));
    let checks = refs.len() + garbage.len();
    for i in refs.iter() {
        let b = layout.blob(i);
        if let Err(e) = reg.get_blob_verified(&layout.repo_of(i), &b.digest).await {
            missing += 1;
            t.error(
                "spot_referenced",
                &e.context(format!("referenced blob {i} after GC")),
            );
        }
    }
    for i in garbage.iter() {
        let i = layout.referenced + i;
        let b = layout.blob(i);
        match reg.blob_exists(&layout.repo_of(i), &b.digest).await {
            Ok(false) => {}
            Ok(true) => {
                present += 1;
                t.error(
                    "spot_garbage",
                    &BenchError::Verify(format!(
                        "unreferenced blob {} still served after GC",
                        b.digest
                    ))
                    .into(),
                );
            }
            Err(e) => t.error("spot_garbage", &e),
        }
    }
    (missing, present, checks)
}

#[derive(clap::Args)]
pub struct ScaleArgs {
    /// The server to measure.
    #[arg(long, value_enum)]
    server: ServerKind,
    #[command(flatten)]
    own: OwnServerArgs,
    /// Blobs in the store.
    #[arg(long, default_value_t = 1_000_000)]
    blobs: usize,
    /// Share of them that no manifest references (the garbage).
    #[arg(long, default_value_t = 0.1)]
    garbage_share: f64,
    /// Layers per manifest (each manifest also has a config blob of its own).
    #[arg(long, default_value_t = 999)]
    layers_per_manifest: usize,
    /// Repositories the blobs are spread over.
    #[arg(long, default_value_t = 10)]
    repos: usize,
    /// Concurrent blob pushes while filling.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Referenced and unreferenced blobs checked through `/v2` after the collection (each).
    #[arg(long, default_value_t = 1000)]
    spot_checks: usize,
}

/// Where a server keeps blob files, for counting them.
fn blob_dir(kind: ServerKind, data: &Path) -> PathBuf {
    match kind {
        ServerKind::Berth => data.join("blobs"),
        ServerKind::Reference => data.join("docker/registry/v2/blobs"),
    }
}

async fn start(
    kind: ServerKind,
    bin: &Path,
    dir: &Path,
    key: &AccessKey,
    env: &[(String, String)],
) -> Result<Server> {
    let log = dir.join("server.log");
    match kind {
        ServerKind::Berth => Server::start_berth(bin, &dir.join("data"), key, env, &log).await,
        ServerKind::Reference => Server::start_reference(bin, dir, &log).await,
    }
}

/// Berth's `berth gc` JSON report (`GcReport`) from the lines it printed.
fn gc_json(lines: &[String]) -> Result<Value> {
    serde_json::from_str(&lines.join("\n")).context("berth gc --json printed no JSON report")
}

/// Distribution's summary line: `N blobs marked, M blobs and K manifests eligible for deletion`.
fn reference_summary(lines: &[String]) -> Option<(u64, u64)> {
    let l = lines.iter().find(|l| l.contains("blobs marked"))?;
    let nums: Vec<u64> = l
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    Some((*nums.first()?, *nums.get(1)?))
}

pub async fn scale(conn: &Connect, a: &ScaleArgs) -> Result<Vec<(String, String, Report)>> {
    let dir = &a.own.work_dir;
    std::fs::create_dir_all(dir)?;
    let key = random_key();
    // Berth: no background pass may run during the fill (the default interval is an hour and
    // a fill of a million blobs can take longer); `berth gc` is the pass measured.
    let env = vec![("BERTH_GC__ENABLED".to_string(), "false".to_string())];
    let mut server = start(a.server, &a.own.bin, dir, &key, &env).await?;
    let url = server.url.clone();
    let with_key = (a.server == ServerKind::Berth).then_some(&key);
    let ctx = conn.ctx_for(&server, with_key).await?;
    let garbage = ((a.blobs as f64) * a.garbage_share.clamp(0.0, 1.0)).round() as usize;
    let layout = Layout::new(
        &ctx.prefix,
        a.blobs,
        garbage,
        a.layers_per_manifest,
        a.repos,
    );
    eprintln!(
        "# [{}] gc-scale: filling {} blobs ({} referenced by {} manifests, {} unreferenced)",
        a.server.tag(),
        layout.total(),
        layout.referenced,
        layout.manifests(),
        layout.garbage
    );
    let filled = fill(&ctx.reg, &layout, a.concurrency).await?;
    let data = dir.join("data");
    let (files_before, bytes_before) = count_files(&blob_dir(a.server, &data));

    // The size is part of the name: the reference is compared at a size it can be filled
    // to in reasonable time, Berth is also measured at the size.
    let mut r = Report::new(
        format!("gc-scale/{}", layout.total()),
        json!({"blobs": layout.total(), "garbage": layout.garbage, "manifests": layout.manifests(),
               "layers_per_manifest": a.layers_per_manifest, "repos": a.repos,
               "concurrency": a.concurrency, "blob_size": layout.blob_size}),
    );
    let (dry, real, deleted, marked) = match a.server {
        ServerKind::Berth => {
            let cmd = |dry: bool| {
                let mut c = std::process::Command::new(&a.own.bin);
                c.arg("gc")
                    .arg("--json")
                    .arg("--grace-secs")
                    .arg("0")
                    .arg("--data-dir")
                    .arg(&data);
                if dry {
                    c.arg("--dry-run");
                }
                c
            };
            let dry = run_measured(cmd(true), |_| true).await?;
            let real = run_measured(cmd(false), |_| true).await?;
            for run in [&dry, &real] {
                if !run.success {
                    bail!("berth gc failed ({}): {}", run.status, run.stderr_tail);
                }
            }
            let rep = gc_json(&real.kept)?;
            let deleted =
                rep["blobs"].as_u64().unwrap_or(0) + rep["unrecorded_files"].as_u64().unwrap_or(0);
            let would = gc_json(&dry.kept)?["blobs"].as_u64().unwrap_or(0);
            r.metric("dry_run_would_delete", would as f64, "blobs", Better::None);
            r.metric(
                "gc_links_deleted",
                rep["links"].as_f64().unwrap_or(f64::NAN),
                "links",
                Better::None,
            );
            (dry, real, deleted, None)
        }
        ServerKind::Reference => {
            // Distribution's collector must not run beside its server.
            server.stop().await;
            let config = dir.join("config.yml");
            let cmd = |dry: bool| {
                let mut c = std::process::Command::new(&a.own.bin);
                c.arg("garbage-collect");
                if dry {
                    c.arg("--dry-run");
                }
                c.arg(&config);
                c
            };
            let keep = |l: &str| l.contains("blobs marked");
            let dry = run_measured(cmd(true), keep).await?;
            let real = run_measured(cmd(false), keep).await?;
            for run in [&dry, &real] {
                if !run.success {
                    bail!(
                        "garbage-collect failed ({}): {}",
                        run.status,
                        run.stderr_tail
                    );
                }
            }
            let (marked, deleted) = reference_summary(&real.kept)
                .ok_or_else(|| anyhow!("garbage-collect printed no summary line"))?;
            if let Some((_, would)) = reference_summary(&dry.kept) {
                r.metric("dry_run_would_delete", would as f64, "blobs", Better::None);
            }
            (dry, real, deleted, Some(marked))
        }
    };
    let (files_after, bytes_after) = count_files(&blob_dir(a.server, &data));
    // The reference is restarted for the spot checks (Berth kept serving throughout).
    if a.server == ServerKind::Reference {
        server = start(a.server, &a.own.bin, dir, &key, &env).await?;
    }
    let ctx: Ctx = conn.ctx_for(&server, with_key).await?;
    let mut t = Tally::default();
    let (missing, present, checks) = spot_check(&ctx.reg, &layout, a.spot_checks, &mut t).await;
    server.stop().await;

    r.metric("fill_s", filled.wall.as_secs_f64(), "s", Better::None);
    r.metric(
        "fill_blobs_per_s",
        layout.total() as f64 / filled.wall.as_secs_f64(),
        "blobs/s",
        Better::Higher,
    );
    r.metric(
        "fill_requests",
        filled.requests as f64,
        "requests",
        Better::None,
    );
    r.metric("gc_wall_s", real.wall.as_secs_f64(), "s", Better::Lower);
    r.metric("gc_cpu_s", real.cpu_s, "s", Better::Lower);
    r.metric("gc_peak_rss_mib", real.peak_rss_mib, "MiB", Better::Lower);
    r.metric(
        "gc_blobs_per_s",
        layout.total() as f64 / real.wall.as_secs_f64(),
        "blobs/s",
        Better::Higher,
    );
    r.metric("dry_run_wall_s", dry.wall.as_secs_f64(), "s", Better::Lower);
    r.metric(
        "dry_run_peak_rss_mib",
        dry.peak_rss_mib,
        "MiB",
        Better::Lower,
    );
    r.metric("blobs_deleted", deleted as f64, "blobs", Better::None);
    r.metric(
        "garbage_blobs",
        layout.garbage as f64,
        "blobs",
        Better::None,
    );
    if let Some(m) = marked {
        r.metric("blobs_marked", m as f64, "blobs", Better::None);
    }
    r.metric(
        "blob_files_before",
        files_before as f64,
        "files",
        Better::None,
    );
    r.metric(
        "blob_files_after",
        files_after as f64,
        "files",
        Better::None,
    );
    r.metric(
        "bytes_freed_mib",
        bytes_before.saturating_sub(bytes_after) as f64 / (1024.0 * 1024.0),
        "MiB",
        Better::None,
    );
    r.metric("spot_checks", checks as f64, "blobs", Better::None);
    r.metric(
        "spot_referenced_missing",
        missing as f64,
        "count",
        Better::Lower,
    );
    r.metric(
        "spot_garbage_present",
        present as f64,
        "count",
        Better::Lower,
    );
    if deleted != layout.garbage as u64 {
        t.error(
            "gc",
            &BenchError::Verify(format!(
                "the collection deleted {deleted} blobs; {} were unreferenced",
                layout.garbage
            ))
            .into(),
        );
    }
    r.absorb(&t);
    if !a.own.keep_data {
        std::fs::remove_dir_all(&data).ok();
    }
    Ok(vec![(a.server.tag().to_string(), url, r)])
}

#[derive(clap::Args)]
pub struct OnlineArgs {
    #[command(flatten)]
    own: OwnServerArgs,
    /// Tiny blobs in the store, referenced by manifests (every pass walks them all).
    #[arg(long, default_value_t = 100_000)]
    store_blobs: usize,
    /// Tiny unreferenced blobs in the store at the start.
    #[arg(long, default_value_t = 10_000)]
    garbage_blobs: usize,
    /// Measuring time of each push and each pull phase, per slot.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Rounds of two slots, one without and one with GC (order alternating: off on, on off).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Size of the blobs pushed and pulled.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    blob_size: usize,
    /// Concurrent clients in each phase.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Blobs in the pull set (referenced by a manifest, so GC keeps them).
    #[arg(long, default_value_t = 64)]
    pull_blobs: usize,
    /// `[gc] interval_secs` of the slots with GC.
    #[arg(long, default_value_t = 1)]
    gc_interval_secs: u64,
    /// `[gc] grace_secs` of the slots with GC (the blobs pushed during a slot are garbage;
    /// a short grace lets passes delete them within the slot).
    #[arg(long, default_value_t = 2)]
    gc_grace_secs: u64,
}

/// One slot's measurements.
#[derive(Default)]
struct Slot {
    push: Tally,
    push_wall: Duration,
    pull: Tally,
    pull_wall: Duration,
    server_cpu_s: f64,
    passes: u64,
    freed: u64,
    pass_ms: Vec<f64>,
}

/// Whether a GC pass was in progress at the end of `lines` (its start logged, its end not).
fn pass_in_progress(lines: &[String]) -> bool {
    let mut running = false;
    for l in lines {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        let msg = v["fields"]["message"].as_str().unwrap_or("");
        if msg == "garbage collection pass started" {
            running = true;
        } else if msg.starts_with("garbage collection freed") {
            running = false;
        }
    }
    running
}

/// GC passes the server logged (JSON log lines of `berth::serve`): count, blobs freed, and
/// each logged pass's `elapsed_ms`.
fn passes_in(lines: &[String]) -> (u64, u64, Vec<f64>) {
    let (mut n, mut freed, mut ms) = (0, 0, Vec::new());
    for l in lines {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        let msg = v["fields"]["message"].as_str().unwrap_or("");
        if msg.starts_with("garbage collection freed") {
            n += 1;
            freed += v["fields"]["blobs"].as_u64().unwrap_or(0);
            if let Some(e) = v["fields"]["elapsed_ms"].as_f64() {
                ms.push(e);
            }
        }
    }
    (n, freed, ms)
}

async fn measure_slot(ctx: &Ctx, a: &OnlineArgs, pull_repo: &str, pulls: Arc<Vec<String>>) -> Slot {
    let mut s = Slot::default();
    let cpu0 = server_cpu_seconds(ctx.server_pid);
    let (reg, repo, size) = (ctx.reg.clone(), ctx.repo("gc-online-push"), a.blob_size);
    let (push, push_wall) = runner::timed(a.duration, a.concurrency, move |_, _, mut t| {
        let (reg, repo) = (reg.clone(), repo.clone());
        async move {
            // Fresh content each time, so nothing deduplicates (the same bench cost in both modes).
            let blob = match tokio::task::spawn_blocking(move || Blob::random(size)).await {
                Ok(b) => b,
                Err(e) => {
                    t.error("push", &anyhow!("generator: {e}"));
                    return t;
                }
            };
            t.time("push", async {
                reg.push_blob_monolithic(&repo, &blob).await?;
                Ok(((), blob.data.len() as u64))
            })
            .await;
            t
        }
    })
    .await;
    let (reg, repo) = (ctx.reg.clone(), pull_repo.to_string());
    let (pull, pull_wall) = runner::timed(a.duration, a.concurrency, move |_, _, mut t| {
        let (reg, repo, pulls) = (reg.clone(), repo.clone(), pulls.clone());
        async move {
            let d = &pulls[rand::random::<usize>() % pulls.len()];
            t.time("pull", async {
                Ok(((), reg.get_blob_verified(&repo, d).await?))
            })
            .await;
            t
        }
    })
    .await;
    if let (Some(c0), Some(c1)) = (cpu0, server_cpu_seconds(ctx.server_pid)) {
        s.server_cpu_s = c1 - c0;
    }
    s.push = push;
    s.push_wall = push_wall;
    s.pull = pull;
    s.pull_wall = pull_wall;
    s
}

pub async fn online(conn: &Connect, a: &OnlineArgs) -> Result<Vec<(String, String, Report)>> {
    let dir = &a.own.work_dir;
    std::fs::create_dir_all(dir)?;
    let data = dir.join("data");
    let key = random_key();
    let off_env = vec![("BERTH_GC__ENABLED".to_string(), "false".to_string())];
    let on_env = vec![
        ("BERTH_GC__ENABLED".to_string(), "true".to_string()),
        (
            "BERTH_GC__INTERVAL_SECS".to_string(),
            a.gc_interval_secs.to_string(),
        ),
        (
            "BERTH_GC__GRACE_SECS".to_string(),
            a.gc_grace_secs.to_string(),
        ),
    ];
    // Both modes log JSON with the GC task's debug lines, so every pass shows (a pass that
    // frees nothing logs at debug).
    let log_env = [
        ("BERTH_LOG__FORMAT".to_string(), "json".to_string()),
        (
            "BERTH_LOG__LEVEL".to_string(),
            "info,berth::serve=debug".to_string(),
        ),
    ];

    // Prepare with GC off: the store of tiny blobs and the pull set.
    let log = dir.join("server.log");
    let env: Vec<_> = off_env.iter().chain(&log_env).cloned().collect();
    let mut server = Server::start_berth(&a.own.bin, &data, &key, &env, &log).await?;
    let url = server.url.clone();
    let ctx = conn.ctx_for(&server, Some(&key)).await?;
    let layout = Layout::new(
        &ctx.prefix,
        a.store_blobs + a.garbage_blobs,
        a.garbage_blobs,
        999,
        10,
    );
    eprintln!(
        "# [berth] gc-online: filling {} tiny blobs ({} unreferenced) and {} × {} B to pull",
        layout.total(),
        layout.garbage,
        a.pull_blobs,
        a.blob_size
    );
    let filled = fill(&ctx.reg, &layout, 64).await?;
    let pull_repo = ctx.repo(&format!("gc-online-pull-{}", layout.salt));
    let pull_set = super::random_blobs(a.pull_blobs, a.blob_size).await?;
    for b in &pull_set {
        ctx.reg.push_blob_post(&pull_repo, b).await?;
    }
    let config = config_blob(&pull_repo);
    ctx.reg.push_blob_post(&pull_repo, &config).await?;
    let refs: Vec<&Blob> = pull_set.iter().collect();
    ctx.reg
        .put_manifest(
            &pull_repo,
            "pull",
            OCI_MANIFEST,
            image_manifest(&config, &refs, "pull"),
        )
        .await?;
    let pulls: Arc<Vec<String>> = Arc::new(pull_set.iter().map(|b| b.digest.clone()).collect());
    drop(pull_set);
    server.stop().await;

    let mut off = Vec::new();
    let mut on = Vec::new();
    let mut errors = Tally::default();
    for round in 0..a.rounds.max(1) {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for gc in order {
            let env: Vec<_> = if gc { &on_env } else { &off_env }
                .iter()
                .chain(&log_env)
                .cloned()
                .collect();
            let log_start = std::fs::metadata(&log).map_or(0, |m| m.len());
            let server = Server::start_berth(&a.own.bin, &data, &key, &env, &log).await?;
            let ctx = conn.ctx_for(&server, Some(&key)).await?;
            // Let the first passes start (the first one runs an interval after the start).
            tokio::time::sleep(Duration::from_secs(a.gc_interval_secs.max(1) + 1)).await;
            let from = server.log_len();
            let mut slot = measure_slot(&ctx, a, &pull_repo, pulls.clone()).await;
            let lines = server.log_lines(from, server.log_len());
            // A pass that began before the window and outlasts it still ran through it.
            let running_at_start = pass_in_progress(&server.log_lines(log_start, from));
            let mut server = server;
            server.stop().await;
            (slot.passes, slot.freed, slot.pass_ms) = passes_in(&lines);
            let started_in = lines
                .iter()
                .filter(|l| l.contains("\"garbage collection pass started\""))
                .count();
            eprintln!(
                "#   round {} gc {}: push {:.0} MB/s, pull {:.0} MB/s, {} passes logged, {} blobs freed",
                round + 1,
                if gc { "on" } else { "off" },
                mb_per_s(slot.push.bytes, slot.push_wall),
                mb_per_s(slot.pull.bytes, slot.pull_wall),
                slot.passes,
                slot.freed
            );
            if gc && slot.passes == 0 && started_in == 0 && !running_at_start {
                errors.error(
                    "gc",
                    &BenchError::Verify(format!(
                        "no GC pass ran during the GC window of round {}",
                        round + 1
                    ))
                    .into(),
                );
            }
            if !gc && (slot.passes > 0 || started_in > 0) {
                errors.error(
                    "gc",
                    &BenchError::Verify("GC passes logged in a window without GC".into()).into(),
                );
            }
            if gc {
                on.push(slot)
            } else {
                off.push(slot)
            }
        }
    }

    let mut r = Report::new(
        "gc-online",
        json!({"store_blobs": a.store_blobs, "garbage_blobs": a.garbage_blobs,
               "duration_s": a.duration.as_secs_f64(), "rounds": a.rounds,
               "blob_size": a.blob_size, "concurrency": a.concurrency,
               "gc_interval_secs": a.gc_interval_secs, "gc_grace_secs": a.gc_grace_secs,
               "berth_only": true}),
    );
    let sum = |v: &[Slot], push: bool| -> (Tally, Duration) {
        let mut t = Tally::default();
        let mut wall = Duration::ZERO;
        for s in v {
            let (src, w) = if push {
                (&s.push, s.push_wall)
            } else {
                (&s.pull, s.pull_wall)
            };
            t.merge(Tally {
                lat: src.lat.clone(),
                bytes: src.bytes,
                errors: src.errors,
                first_error: src.first_error.clone(),
            });
            wall += w;
        }
        (t, wall)
    };
    let (push_off, pw_off) = sum(&off, true);
    let (push_on, pw_on) = sum(&on, true);
    let (pull_off, lw_off) = sum(&off, false);
    let (pull_on, lw_on) = sum(&on, false);
    let rate = |t: &Tally, w: Duration| mb_per_s(t.bytes, w);
    let (p0, p1, l0, l1) = (
        rate(&push_off, pw_off),
        rate(&push_on, pw_on),
        rate(&pull_off, lw_off),
        rate(&pull_on, lw_on),
    );
    r.metric("push_mb_s_without_gc", p0, "MB/s", Better::Higher);
    r.metric("push_mb_s_with_gc", p1, "MB/s", Better::Higher);
    r.metric("push_with_vs_without", p1 / p0, "ratio", Better::Higher);
    r.metric("pull_mb_s_without_gc", l0, "MB/s", Better::Higher);
    r.metric("pull_mb_s_with_gc", l1, "MB/s", Better::Higher);
    r.metric("pull_with_vs_without", l1 / l0, "ratio", Better::Higher);
    r.latency("push_without_gc_", &push_off.get("push").summary());
    r.latency("push_with_gc_", &push_on.get("push").summary());
    r.latency("pull_without_gc_", &pull_off.get("pull").summary());
    r.latency("pull_with_gc_", &pull_on.get("pull").summary());
    let cpu = |v: &[Slot]| v.iter().map(|s| s.server_cpu_s).sum::<f64>();
    let ops = |v: &[Slot]| {
        v.iter()
            .map(|s| s.push.ops() + s.pull.ops())
            .sum::<usize>()
            .max(1) as f64
    };
    r.metric(
        "server_cpu_ms_per_op_without_gc",
        cpu(&off) * 1e3 / ops(&off),
        "ms",
        Better::Lower,
    );
    r.metric(
        "server_cpu_ms_per_op_with_gc",
        cpu(&on) * 1e3 / ops(&on),
        "ms",
        Better::Lower,
    );
    let passes: u64 = on.iter().map(|s| s.passes).sum();
    let windows: f64 = on
        .iter()
        .map(|s| (s.push_wall + s.pull_wall).as_secs_f64())
        .sum();
    r.metric(
        "gc_passes_in_windows",
        passes as f64,
        "passes",
        Better::None,
    );
    r.metric(
        "gc_passes_per_s",
        passes as f64 / windows.max(1e-9),
        "passes/s",
        Better::None,
    );
    let ms: Vec<f64> = on.iter().flat_map(|s| s.pass_ms.iter().copied()).collect();
    if !ms.is_empty() {
        r.metric(
            "gc_pass_mean_ms",
            ms.iter().sum::<f64>() / ms.len() as f64,
            "ms",
            Better::Lower,
        );
    }
    r.metric(
        "gc_blobs_freed_in_windows",
        on.iter().map(|s| s.freed).sum::<u64>() as f64,
        "blobs",
        Better::None,
    );
    r.metric(
        "prepare_blobs_per_s",
        layout.total() as f64 / filled.wall.as_secs_f64(),
        "blobs/s",
        Better::None,
    );
    r.absorb(&push_off);
    r.absorb(&push_on);
    r.absorb(&pull_off);
    r.absorb(&pull_on);
    r.absorb(&errors);
    if !a.own.keep_data {
        std::fs::remove_dir_all(&data).ok();
    }
    Ok(vec![("berth".to_string(), url, r)])
}
