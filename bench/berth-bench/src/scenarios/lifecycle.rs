//! `lifecycle-preview` (Berth only), on a Berth the bench starts: one repository of N images
//! (100,000 by default) pushed through `/v2` — each a distinct small config, one shared tiny
//! layer and a manifest; a share tagged `release-…`, a share `dev-…`, the rest untagged;
//! the first half pushed "40 days ago" on Berth's test clock (`BERTH_TEST_CLOCK_FILE`, which
//! only shifts the push, pull and lifecycle times the server records) — then:
//!
//! 1. `PutLifecyclePolicy` with three rules (keep the 100 newest `release-*`, expire `dev-*`
//!    pushed more than 30 days ago, keep the 10 newest untagged), `StartLifecyclePolicyPreview`,
//!    `GetLifecyclePolicyPreview` polled until `COMPLETE` (timed from the start call), then
//!    paged to the end (`maxResults` 100, following `nextToken`); every result must be
//!    distinct, and their number must equal the summary and the count the bench expects from
//!    what it pushed;
//! 2. execution: the server is stopped and `berth lifecycle run --repository R --json` runs
//!    on its data dir (a `berth serve` keeps a per-process manifest cache that the command
//!    cannot invalidate, so it is not run beside one); the expired count must equal the
//!    preview's; then `berth lifecycle preview --json` must find the survivors with nothing
//!    left to expire.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::Connect;
use crate::aws::AwsClient;
use crate::client::{config_blob, image_manifest, BenchError, Blob, OCI_MANIFEST};
use crate::procstat::server_cpu_seconds;
use crate::runner::{self, Tally};
use crate::server::{random_key, run_measured, OwnServerArgs, Server};
use crate::stats::{Better, Report};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    own: OwnServerArgs,
    /// Images in the repository.
    #[arg(long, default_value_t = 100_000)]
    images: usize,
    /// Concurrent pushes while filling.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// `maxResults` of GetLifecyclePolicyPreview (ECR allows at most 100).
    #[arg(long, default_value_t = 100)]
    page_size: usize,
}

/// What image `i` is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Release,
    Dev,
    Untagged,
}

/// 10% `release-`, 30% `dev-`, 60% untagged, interleaved so both age groups hold all kinds.
fn kind(i: usize) -> Kind {
    match i % 10 {
        0 => Kind::Release,
        1..=3 => Kind::Dev,
        _ => Kind::Untagged,
    }
}

const POLICY: &str = r#"{"rules":[
 {"rulePriority":1,"description":"keep the 100 newest release images",
  "selection":{"tagStatus":"tagged","tagPatternList":["release-*"],"countType":"imageCountMoreThan","countNumber":100},
  "action":{"type":"expire"}},
 {"rulePriority":2,"description":"expire dev images after 30 days",
  "selection":{"tagStatus":"tagged","tagPrefixList":["dev-"],"countType":"sinceImagePushed","countUnit":"days","countNumber":30},
  "action":{"type":"expire"}},
 {"rulePriority":3,"description":"keep 10 untagged images",
  "selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":10},
  "action":{"type":"expire"}}]}"#;

/// Seconds the "old" half is pushed in the past (40 days).
const OLD_OFFSET_SECS: i64 = -40 * 86_400;

/// The images the policy must expire, from what was pushed.
fn expected(n: usize) -> usize {
    let old = n / 2;
    let count = |k: Kind, range: std::ops::Range<usize>| range.filter(|&i| kind(i) == k).count();
    let release = count(Kind::Release, 0..n);
    let untagged = count(Kind::Untagged, 0..n);
    let old_dev = count(Kind::Dev, 0..old);
    release.saturating_sub(100) + old_dev + untagged.saturating_sub(10)
}

/// Pushes images `range` of `repo` (`concurrency` at a time); returns the wall time.
async fn push_images(
    reg: &crate::client::Registry,
    repo: &str,
    layer: &Blob,
    range: std::ops::Range<usize>,
    concurrency: usize,
    salt: &str,
) -> Result<Duration> {
    let (reg, repo, layer, salt) = (
        reg.clone(),
        repo.to_string(),
        Arc::new(layer.clone()),
        salt.to_string(),
    );
    let start = range.start;
    let (t, wall) = runner::indexed(range.len(), concurrency, move |k, mut t| {
        let (reg, repo, layer, salt) = (reg.clone(), repo.clone(), layer.clone(), salt.clone());
        async move {
            let i = start + k;
            let r = async {
                let config = config_blob(&format!("lifecycle {salt} {i}"));
                reg.push_blob_post(&repo, &config).await?;
                let m = image_manifest(&config, &[&layer], &format!("{salt}#{i}"));
                let reference = match kind(i) {
                    Kind::Release => format!("release-{i:06}"),
                    Kind::Dev => format!("dev-{i:06}"),
                    Kind::Untagged => crate::client::sha256_digest(&m),
                };
                reg.put_manifest(&repo, &reference, OCI_MANIFEST, m).await?;
                Ok(0)
            }
            .await;
            t.record("image", Duration::ZERO, r);
            t
        }
    })
    .await;
    t.all_ok("pushing images")?;
    Ok(wall)
}

/// The preview's pages from `first` on; returns (results, distinct digests, pages).
async fn page_all(
    aws: &AwsClient,
    repo: &str,
    page_size: usize,
    first: Value,
) -> Result<(usize, usize, usize)> {
    let mut seen = HashSet::new();
    let (mut results, mut pages) = (0usize, 0usize);
    let mut page = first;
    loop {
        pages += 1;
        for r in page["previewResults"].as_array().into_iter().flatten() {
            results += 1;
            if let Some(d) = r["imageDigest"].as_str() {
                seen.insert(d.to_string());
            }
        }
        let Some(token) = page["nextToken"].as_str().map(str::to_string) else {
            break;
        };
        page = aws
            .ecr(
                "GetLifecyclePolicyPreview",
                &json!({"repositoryName": repo, "maxResults": page_size, "nextToken": token}),
            )
            .await?;
    }
    Ok((results, seen.len(), pages))
}

pub async fn run(conn: &Connect, a: &Args) -> Result<Vec<(String, String, Report)>> {
    let dir = &a.own.work_dir;
    std::fs::create_dir_all(dir)?;
    let data = dir.join("data");
    let clock = dir.join("clock");
    std::fs::write(&clock, "0")?;
    let key = random_key();
    // No scheduled execution may interfere (the default interval is an hour; a fill of
    // 100,000 images takes minutes, but be sure): execution is measured by hand below.
    let env = vec![
        ("BERTH_LIFECYCLE__ENABLED".to_string(), "false".to_string()),
        (
            "BERTH_TEST_CLOCK_FILE".to_string(),
            clock.display().to_string(),
        ),
    ];
    let log = dir.join("server.log");
    let mut server = Server::start_berth(&a.own.bin, &data, &key, &env, &log).await?;
    let url = server.url.clone();
    let ctx = conn.ctx_for(&server, Some(&key)).await?;
    let aws = ctx.aws()?.clone();
    let salt = format!("{:08x}", rand::random::<u32>());
    let repo = ctx.repo(&format!("lifecycle-{salt}"));

    // Fill: the older half 40 days ago, the newer half now.
    let layer = Blob::random(256);
    ctx.reg.push_blob_post(&repo, &layer).await?;
    let old = a.images / 2;
    eprintln!(
        "# [berth] lifecycle-preview: pushing {} images to {repo}",
        a.images
    );
    std::fs::write(&clock, OLD_OFFSET_SECS.to_string())?;
    let w1 = push_images(&ctx.reg, &repo, &layer, 0..old, a.concurrency, &salt).await;
    std::fs::write(&clock, "0")?;
    let w1 = w1?;
    let w2 = push_images(&ctx.reg, &repo, &layer, old..a.images, a.concurrency, &salt).await?;
    let fill = w1 + w2;
    let want = expected(a.images);

    aws.ecr(
        "PutLifecyclePolicy",
        &json!({"repositoryName": repo, "lifecyclePolicyText": POLICY}),
    )
    .await?;

    // Preview: start → COMPLETE.
    let sampler = ctx.sampler();
    let t0 = Instant::now();
    aws.ecr(
        "StartLifecyclePolicyPreview",
        &json!({"repositoryName": repo}),
    )
    .await?;
    let mut polls = 0usize;
    let first = loop {
        polls += 1;
        let v = aws
            .ecr(
                "GetLifecyclePolicyPreview",
                &json!({"repositoryName": repo, "maxResults": a.page_size}),
            )
            .await?;
        match v["status"].as_str() {
            Some("COMPLETE") => break v,
            Some("IN_PROGRESS") => {}
            other => bail!("lifecycle preview ended {other:?}: {v}"),
        }
        if t0.elapsed() > Duration::from_secs(600) {
            bail!("lifecycle preview not COMPLETE after 600 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let preview = t0.elapsed();
    let proc_stats = sampler.finish().await;
    let summary = first["summary"]["expiringImageTotalCount"]
        .as_u64()
        .unwrap_or(0) as usize;

    // Paging through every result.
    let cpu0 = server_cpu_seconds(ctx.server_pid);
    let t1 = Instant::now();
    let (results, distinct, pages) = page_all(&aws, &repo, a.page_size, first).await?;
    let paging = t1.elapsed();
    let paging_cpu = server_cpu_seconds(ctx.server_pid)
        .zip(cpu0)
        .map(|(b, a)| b - a);

    // Execution, with the server stopped.
    server.stop().await;
    let cli = |sub: &str| {
        let mut c = std::process::Command::new(&a.own.bin);
        c.arg("lifecycle")
            .arg(sub)
            .arg("--repository")
            .arg(&repo)
            .arg("--json")
            .arg("--data-dir")
            .arg(&data)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    };
    let exec = run_measured(cli("run"), |_| true).await?;
    if !exec.success {
        bail!(
            "berth lifecycle run failed ({}): {}",
            exec.status,
            exec.stderr_tail
        );
    }
    let out: Value = serde_json::from_str(&exec.kept.join("\n"))
        .context("berth lifecycle run --json printed no JSON")?;
    let expired = out["expired"].as_array().map_or(0, Vec::len);
    let skipped = out["skipped"].as_u64().unwrap_or(0);
    let after = run_measured(cli("preview"), |_| true).await?;
    let after: Value = if after.success {
        serde_json::from_str(&after.kept.join("\n")).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let remaining = after["imagesEvaluated"].as_u64().unwrap_or(u64::MAX) as usize;
    let still = after["images"].as_array().map_or(usize::MAX, Vec::len);

    let mut t = Tally::default();
    let mut check = |ok: bool, what: String| {
        if !ok {
            t.error("verify", &BenchError::Verify(what).into());
        }
    };
    check(
        results == distinct && results == summary && results == want,
        format!(
            "preview listed {results} results ({distinct} distinct), summary {summary}, expected {want}"
        ),
    );
    check(
        expired == results,
        format!("execution expired {expired} images, the preview {results}"),
    );
    check(
        remaining == a.images - expired.min(a.images) && still == 0,
        format!(
            "after execution: {remaining} images left (want {}), {still} still to expire",
            a.images - expired.min(a.images)
        ),
    );

    let mut r = Report::new(
        "lifecycle-preview",
        json!({"images": a.images, "concurrency": a.concurrency, "page_size": a.page_size,
               "rules": 3, "berth_only": true}),
    );
    r.proc_stats = proc_stats;
    r.metric(
        "fill_images_per_s",
        a.images as f64 / fill.as_secs_f64(),
        "img/s",
        Better::Higher,
    );
    r.metric("fill_s", fill.as_secs_f64(), "s", Better::None);
    r.metric("preview_s", preview.as_secs_f64(), "s", Better::Lower);
    r.metric("preview_polls", polls as f64, "requests", Better::None);
    r.metric("page_all_s", paging.as_secs_f64(), "s", Better::Lower);
    r.metric("pages", pages as f64, "pages", Better::None);
    if let Some(c) = paging_cpu {
        r.metric("page_all_server_cpu_s", c, "s", Better::Lower);
    }
    r.metric("images_matched", results as f64, "images", Better::None);
    r.metric("images_expected", want as f64, "images", Better::None);
    r.metric("execution_s", exec.wall.as_secs_f64(), "s", Better::Lower);
    r.metric("execution_cpu_s", exec.cpu_s, "s", Better::Lower);
    r.metric(
        "execution_peak_rss_mib",
        exec.peak_rss_mib,
        "MiB",
        Better::Lower,
    );
    r.metric("images_expired", expired as f64, "images", Better::None);
    r.metric("execution_skipped", skipped as f64, "images", Better::None);
    r.metric(
        "expired_vs_preview_mismatch",
        expired.abs_diff(results) as f64,
        "count",
        Better::Lower,
    );
    r.absorb(&t);
    if !a.own.keep_data {
        std::fs::remove_dir_all(&data).ok();
    }
    Ok(vec![("berth".to_string(), url, r)])
}
