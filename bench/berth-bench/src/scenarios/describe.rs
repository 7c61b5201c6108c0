//! `describe-images` (Berth only): one repository of N images (10,000 by default) pushed through
//! `/v2` (one shared layer and config, N small manifests that differ by an annotation, each
//! tagged), then the ECR API's `DescribeImages`
//! 1. walked page by page (`maxResults`, following `nextToken`) by a few walkers for a fixed
//!    time; every walk must list each image exactly once;
//! 2. asked for one image by tag (`imageIds=[{imageTag}]`, a random tag each time) over many
//!    connections for a fixed time; the answer must be that image.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use crate::aws::AwsClient;
use crate::client::{config_blob, image_manifest, BenchError, Blob, OCI_MANIFEST};
use crate::procstat::server_cpu_seconds;
use crate::runner::{self, Tally};
use crate::stats::{Better, Report};
use crate::units::parse_duration;

#[derive(clap::Args)]
pub struct Args {
    /// Images in the repository.
    #[arg(long, default_value_t = 10_000)]
    images: usize,
    /// `maxResults` of the walk (ECR allows at most 1000).
    #[arg(long, default_value_t = 1000)]
    page_size: usize,
    /// Walking time.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    walk_duration: Duration,
    /// Concurrent walkers.
    #[arg(long, default_value_t = 2)]
    walkers: usize,
    /// Time of the single-image lookups.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    lookup_duration: Duration,
    /// Connections doing lookups, one worker each.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Concurrency of the (untimed) manifest pushes that fill the repository.
    #[arg(long, default_value_t = 16)]
    prepare_concurrency: usize,
}

fn tag(i: usize) -> String {
    format!("t{i:05}")
}

/// Fills `repo` with `n` tagged images; returns the push rate (images/s).
async fn fill(ctx: &Ctx, repo: &str, n: usize, concurrency: usize) -> Result<f64> {
    let layer = Blob::random(256);
    let config = config_blob(repo);
    ctx.reg.ensure_blob(repo, &layer).await?;
    ctx.reg.ensure_blob(repo, &config).await?;
    let shared = Arc::new((layer, config));
    let (reg, repo_owned) = (ctx.reg.clone(), repo.to_string());
    let (t, wall) = runner::indexed(n, concurrency, move |i, mut t| {
        let (reg, repo, shared) = (reg.clone(), repo_owned.clone(), shared.clone());
        async move {
            t.time("push", async {
                let (layer, config) = &*shared;
                let m = image_manifest(config, &[layer], &format!("{repo}#{i}"));
                reg.put_manifest(&repo, &tag(i), OCI_MANIFEST, m).await?;
                Ok(((), 0))
            })
            .await;
            t
        }
    })
    .await;
    if let Some(e) = &t.first_error {
        anyhow::bail!(
            "filling {repo}: {} of {n} pushes failed; first: {e}",
            t.errors.total()
        );
    }
    Ok(t.count("push") as f64 / wall.as_secs_f64())
}

/// One complete walk; records each page under `page` and the walk under `walk`.
async fn walk(aws: &AwsClient, repo: &str, page_size: usize, images: usize, t: &mut Tally) {
    let start = Instant::now();
    let mut seen = HashSet::with_capacity(images);
    let mut listed = 0usize;
    let mut token: Option<String> = None;
    loop {
        let mut input = json!({"repositoryName": repo, "maxResults": page_size});
        if let Some(tok) = &token {
            input["nextToken"] = json!(tok);
        }
        let t0 = Instant::now();
        let page = match aws.ecr("DescribeImages", &input).await {
            Ok(v) => v,
            Err(e) => return t.error("page", &e),
        };
        t.record("page", t0.elapsed(), Ok(0));
        for d in page["imageDetails"].as_array().into_iter().flatten() {
            listed += 1;
            if let Some(digest) = d["imageDigest"].as_str() {
                seen.insert(digest.to_string());
            }
        }
        token = page["nextToken"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    if listed != images || seen.len() != images {
        let e = BenchError::Verify(format!(
            "walk listed {listed} images ({} distinct), expected {images}",
            seen.len()
        ));
        return t.error("walk", &e.into());
    }
    t.record("walk", start.elapsed(), Ok(0));
}

/// `DescribeImages` for one tag; the answer must be exactly that image.
async fn lookup(aws: &AwsClient, repo: &str, tag: &str) -> Result<((), u64)> {
    let input = json!({"repositoryName": repo, "imageIds": [{"imageTag": tag}]});
    let v = aws.ecr("DescribeImages", &input).await?;
    let details = v["imageDetails"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let found = details.len() == 1
        && details[0]["imageTags"]
            .as_array()
            .is_some_and(|tags| tags.iter().any(|x| x.as_str() == Some(tag)));
    if !found {
        return Err(BenchError::Verify(format!("DescribeImages {repo}:{tag} answered {v}")).into());
    }
    Ok(((), 0))
}

pub async fn run(ctx: &Ctx, a: &Args) -> Result<Report> {
    let aws = ctx.aws()?.clone();
    // A repository of its own per run, so the image count is exact on a reused server.
    let repo = ctx.repo(&format!("describe-{:08x}", rand::random::<u32>()));
    let push_rate = fill(ctx, &repo, a.images, a.prepare_concurrency).await?;

    let sampler = ctx.sampler();
    let cpu0 = server_cpu_seconds(ctx.server_pid);
    let (walkers, repo_w, page_size, images) = (
        (0..a.walkers).map(|_| aws.dedicated()).collect::<Vec<_>>(),
        repo.clone(),
        a.page_size,
        a.images,
    );
    let (walks, walk_wall) = runner::timed(a.walk_duration, a.walkers, move |w, _, mut t| {
        let (aws, repo) = (walkers[w].clone(), repo_w.clone());
        async move {
            walk(&aws, &repo, page_size, images, &mut t).await;
            t
        }
    })
    .await;
    let cpu1 = server_cpu_seconds(ctx.server_pid);
    let conns: Vec<AwsClient> = (0..a.concurrency).map(|_| aws.dedicated()).collect();
    let repo_l = repo.clone();
    let (lookups, lookup_wall) =
        runner::timed(a.lookup_duration, a.concurrency, move |w, _, mut t| {
            let (aws, repo) = (conns[w].clone(), repo_l.clone());
            let tag = tag(rand::random::<usize>() % images);
            async move {
                t.time("lookup", lookup(&aws, &repo, &tag)).await;
                t
            }
        })
        .await;
    let cpu2 = server_cpu_seconds(ctx.server_pid);

    let mut r = Report::new(
        "describe-images",
        json!({"images": a.images, "page_size": a.page_size, "walkers": a.walkers,
               "walk_duration_s": a.walk_duration.as_secs_f64(), "concurrency": a.concurrency,
               "lookup_duration_s": a.lookup_duration.as_secs_f64(), "berth_only": true}),
    );
    r.proc_stats = sampler.finish().await;
    let pages = walks.count("page");
    r.metric(
        "pages_per_s",
        pages as f64 / walk_wall.as_secs_f64(),
        "pages/s",
        Better::Higher,
    );
    r.latency("page_", &walks.get("page").summary());
    r.metric(
        "walk_p50_ms",
        walks.get("walk").summary().p50_ms,
        "ms",
        Better::Lower,
    );
    let walks_done = walks.count("walk");
    if walks_done > 0 && walks.errors.total() == 0 {
        r.metric(
            "pages_per_walk",
            pages as f64 / walks_done as f64,
            "pages",
            Better::None,
        );
    }
    r.metric(
        "lookups_per_s",
        lookups.count("lookup") as f64 / lookup_wall.as_secs_f64(),
        "req/s",
        Better::Higher,
    );
    r.latency("lookup_", &lookups.get("lookup").summary());
    if let (Some(c0), Some(c1), Some(c2)) = (cpu0, cpu1, cpu2) {
        r.metric(
            "server_cpu_ms_per_page",
            (c1 - c0) * 1e3 / pages.max(1) as f64,
            "ms",
            Better::Lower,
        );
        r.metric(
            "server_cpu_ms_per_lookup",
            (c2 - c1) * 1e3 / lookups.count("lookup").max(1) as f64,
            "ms",
            Better::Lower,
        );
    }
    r.metric("prepare_push_per_s", push_rate, "img/s", Better::None);
    r.absorb(&walks);
    r.absorb(&lookups);
    Ok(r)
}
