//! `catalog-walk` and `tags-walk`: fill a registry with many repositories (or one repository with many
//! tags) in growing tiers, and at each tier walk the listing page by page following `Link` until the end,
//! repeatedly for a fixed time. Reports page cost at each tier, so growth with the total count shows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde_json::json;

use super::{push_tiny_image, Ctx};
use crate::client::{BenchError, Registry, OCI_MANIFEST};
use crate::runner::{self, Tally};
use crate::stats::{Better, Report};
use crate::units::parse_duration;

#[derive(clap::Args)]
pub struct CatalogArgs {
    /// Repository counts to measure at (ascending; repositories are added between tiers).
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    repos: Vec<usize>,
    #[command(flatten)]
    walk: WalkArgs,
}

#[derive(clap::Args)]
pub struct TagsArgs {
    /// Tag counts to measure at (ascending; tags are added between tiers).
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    tags: Vec<usize>,
    #[command(flatten)]
    walk: WalkArgs,
}

#[derive(clap::Args)]
pub struct WalkArgs {
    /// The `n` query parameter.
    #[arg(long, default_value_t = 50)]
    page_size: usize,
    /// Walking time at each tier.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent walkers.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Concurrency of the (untimed) preparation pushes.
    #[arg(long, default_value_t = 8)]
    prepare_concurrency: usize,
}

/// Which listing to walk and how to recognise our own entries in it.
#[derive(Clone)]
struct Listing {
    start: String,
    key: &'static str,
    own_prefix: String,
}

pub async fn catalog(ctx: &Ctx, a: &CatalogArgs) -> Result<Report> {
    let base = ctx.repo("catalog");
    let name = move |i: usize| format!("{base}/r{i:05}");
    let first = name(0);
    let (config, layer, manifest) = push_tiny_image(&ctx.reg, &first, "latest").await?;
    let listing = Listing {
        start: format!("/v2/_catalog?n={}", a.walk.page_size),
        key: "repositories",
        own_prefix: format!("{}/", ctx.repo("catalog")),
    };
    let reg = ctx.reg.clone();
    let prep = Arc::new(move |i: usize| {
        let (reg, repo, first, manifest) = (reg.clone(), name(i), first.clone(), manifest.clone());
        let (config, layer) = (config.clone(), layer.clone());
        async move {
            if i > 0 {
                reg.mount_or_push(&repo, &first, &config).await?;
                reg.mount_or_push(&repo, &first, &layer).await?;
                reg.put_manifest(&repo, "latest", OCI_MANIFEST, manifest)
                    .await?;
            }
            Ok(0)
        }
    });
    tiers(ctx, "catalog-walk", &a.repos, &a.walk, listing, prep).await
}

pub async fn tags(ctx: &Ctx, a: &TagsArgs) -> Result<Report> {
    let repo = ctx.repo("tags-walk");
    let (_, _, manifest) = push_tiny_image(&ctx.reg, &repo, "t00000").await?;
    let listing = Listing {
        start: format!("/v2/{repo}/tags/list?n={}", a.walk.page_size),
        key: "tags",
        own_prefix: "t".into(),
    };
    let reg = ctx.reg.clone();
    let prep = Arc::new(move |i: usize| {
        let (reg, repo, manifest) = (reg.clone(), repo.clone(), manifest.clone());
        async move {
            reg.put_manifest(&repo, &format!("t{i:05}"), OCI_MANIFEST, manifest)
                .await?;
            Ok(0)
        }
    });
    tiers(ctx, "tags-walk", &a.tags, &a.walk, listing, prep).await
}

async fn tiers<P, F>(
    ctx: &Ctx,
    scenario: &str,
    counts: &[usize],
    w: &WalkArgs,
    listing: Listing,
    prep: Arc<P>,
) -> Result<Report>
where
    P: Fn(usize) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Result<u64>> + Send + 'static,
{
    let mut counts = counts.to_vec();
    counts.sort_unstable();
    counts.dedup();
    let mut r = Report::new(
        scenario,
        json!({"tiers": counts, "page_size": w.page_size, "duration_s": w.duration.as_secs_f64(), "concurrency": w.concurrency}),
    );
    let mut have = 1usize;
    let mut p50s = Vec::new();
    let mut total = Tally::default();
    let mut procs = Vec::new();
    for &tier in &counts {
        if tier > have {
            let (from, p) = (have, prep.clone());
            let (t, _) = runner::indexed(tier - have, w.prepare_concurrency, move |i, mut t| {
                let f = p(from + i);
                async move {
                    let r = f.await;
                    t.record("prepare", Duration::ZERO, r);
                    t
                }
            })
            .await;
            if t.errors.total() > 0 {
                return Err(anyhow!(
                    "{scenario}: preparing tier {tier} failed: {}",
                    t.first_error.unwrap_or_default()
                ));
            }
            have = tier;
        }
        let (reg, l) = (ctx.reg.clone(), listing.clone());
        let sampler = ctx.sampler();
        let (t, wall) = runner::timed(w.duration, w.concurrency, move |_, _, mut t| {
            let (reg, l) = (reg.clone(), l.clone());
            async move {
                let start = Instant::now();
                match walk(&reg, &l, tier, &mut t).await {
                    Ok(()) => {
                        t.record("walk", start.elapsed(), Ok(0));
                    }
                    Err(e) => t.error("walk", &e),
                }
                t
            }
        })
        .await;
        procs.push(sampler.finish().await);
        let page = t.get("page").summary();
        let walk = t.get("walk").summary();
        r.metric(
            format!("pages_per_s@{tier}"),
            t.count("page") as f64 / wall.as_secs_f64(),
            "pages/s",
            Better::Higher,
        );
        r.metric(
            format!("page_p50_ms@{tier}"),
            page.p50_ms,
            "ms",
            Better::Lower,
        );
        r.metric(
            format!("page_p99_ms@{tier}"),
            page.p99_ms,
            "ms",
            Better::Lower,
        );
        r.metric(
            format!("walk_p50_ms@{tier}"),
            walk.p50_ms,
            "ms",
            Better::Lower,
        );
        let per_walk = t.count("page") as f64 / t.count("walk").max(1) as f64;
        r.metric(
            format!("pages_per_walk@{tier}"),
            per_walk,
            "pages",
            Better::None,
        );
        p50s.push(page.p50_ms);
        total.merge(t);
    }
    if p50s.len() > 1 {
        r.metric(
            "page_p50_growth",
            p50s[p50s.len() - 1] / p50s[0],
            "x",
            Better::Lower,
        );
    }
    r.proc_stats = merge_procs(procs);
    r.ops = Some(total.count("page"));
    r.absorb(&total);
    Ok(r)
}

/// Walks a listing to the end; records each page under "page"; verifies our `expected` entries are all
/// there exactly once.
async fn walk(reg: &Registry, l: &Listing, expected: usize, t: &mut Tally) -> Result<()> {
    let mut url = Some(l.start.clone());
    let mut entries: Vec<String> = Vec::new();
    let mut pages = 0u64;
    while let Some(u) = url {
        pages += 1;
        if pages > 100_000 {
            return Err(BenchError::Verify("more than 100000 pages: Link loop?".into()).into());
        }
        let start = Instant::now();
        let (v, next) = reg.get_page(&u).await?;
        t.record("page", start.elapsed(), Ok(0));
        let list = v
            .get(l.key)
            .and_then(|x| x.as_array())
            .cloned()
            .unwrap_or_default();
        entries.extend(
            list.into_iter()
                .filter_map(|x| x.as_str().map(str::to_string)),
        );
        url = next;
    }
    let mut own: Vec<&String> = entries
        .iter()
        .filter(|e| e.starts_with(&l.own_prefix))
        .collect();
    let n = own.len();
    own.sort_unstable();
    own.dedup();
    if n != expected || own.len() != expected {
        return Err(BenchError::Verify(format!(
            "walk saw {n} entries ({} distinct) of ours, expected {expected}",
            own.len()
        ))
        .into());
    }
    Ok(())
}

/// Sums CPU and takes the max peak RSS over the per-tier samples.
fn merge_procs(procs: Vec<Option<serde_json::Value>>) -> Option<serde_json::Value> {
    let mut out = serde_json::Map::new();
    for p in procs.into_iter().flatten() {
        for (k, v) in p.as_object().into_iter().flatten() {
            let v = v.as_f64().unwrap_or(0.0);
            let cur = out.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0);
            let new = if k.contains("rss") {
                cur.max(v)
            } else {
                cur + v
            };
            out.insert(k.clone(), json!(new));
        }
    }
    Some(serde_json::Value::Object(out))
}
