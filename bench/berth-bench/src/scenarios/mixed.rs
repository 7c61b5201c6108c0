//! `mixed`: concurrent clients for a fixed duration, each op drawn at random by weight: re-push a tag
//! to a new manifest (new config blob + PUT manifest), GET a manifest by tag, GET a layer, list tags.
//! Every error is counted by kind; the question is whether reads stay correct while tags move.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::{random_blobs, Ctx};
use crate::client::{
    config_blob, image_manifest, manifest_blobs, BenchError, Blob, Registry, OCI_MANIFEST,
};
use crate::runner::{self, Tally};
use crate::stats::{Better, Report};
use crate::units::{parse_duration, parse_size};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Number of tags that are re-pushed and read.
    #[arg(long, default_value_t = 8)]
    tags: usize,
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value = "256KiB", value_parser = parse_size)]
    layer_size: usize,
    /// Relative weights of push : manifest GET : blob GET : tag list.
    #[arg(long, value_delimiter = ':', default_value = "10:40:30:20")]
    weights: Vec<u32>,
}

struct Shared {
    reg: Registry,
    repo: String,
    layers: Vec<Blob>,
    tags: usize,
    weights: [u32; 4],
}

pub async fn run(ctx: &Ctx, a: &Args) -> Result<Report> {
    let weights: [u32; 4] = a
        .weights
        .clone()
        .try_into()
        .map_err(|_| anyhow!("--weights needs 4 numbers a:b:c:d"))?;
    if weights.iter().sum::<u32>() == 0 {
        return Err(anyhow!("--weights must not all be zero"));
    }
    let repo = ctx.repo("mixed");
    let layers = random_blobs(a.layers, a.layer_size).await?;
    for l in &layers {
        ctx.reg.push_blob_monolithic(&repo, l).await?;
    }
    let sh = Arc::new(Shared {
        reg: ctx.reg.clone(),
        repo,
        layers,
        tags: a.tags.max(1),
        weights,
    });
    for tag in 0..sh.tags {
        push_tag(&sh, tag, &format!("init-{tag}")).await?;
    }
    let s2 = sh.clone();
    let sampler = ctx.sampler();
    let (t, wall) = runner::timed(a.duration, a.concurrency, move |w, iter, t| {
        op(s2.clone(), w, iter, t)
    })
    .await;
    let mut r = Report::new(
        "mixed",
        json!({"duration_s": a.duration.as_secs_f64(), "concurrency": a.concurrency, "tags": a.tags, "weights": a.weights}),
    );
    r.proc_stats = sampler.finish().await;
    r.ops = Some(t.ops());
    r.metric(
        "ops_per_s",
        t.ops() as f64 / wall.as_secs_f64(),
        "ops/s",
        Better::Higher,
    );
    for kind in ["push", "manifest_get", "blob_get", "tags_list"] {
        r.metric(
            format!("{kind}_per_s"),
            t.count(kind) as f64 / wall.as_secs_f64(),
            "ops/s",
            Better::Higher,
        );
        r.latency(&format!("{kind}_"), &t.get(kind).summary());
    }
    r.metric(
        "errors_4xx",
        t.errors.http_4xx as f64,
        "count",
        Better::Lower,
    );
    r.metric(
        "errors_verify",
        t.errors.verify as f64,
        "count",
        Better::Lower,
    );
    r.metric(
        "errors_transport",
        t.errors.transport as f64,
        "count",
        Better::Lower,
    );
    r.absorb(&t);
    Ok(r)
}

async fn push_tag(sh: &Shared, tag: usize, salt: &str) -> Result<u64> {
    let config = config_blob(salt);
    sh.reg.push_blob_monolithic(&sh.repo, &config).await?;
    let layers: Vec<&Blob> = sh.layers.iter().collect();
    let m = image_manifest(&config, &layers, salt);
    let len = m.len() as u64;
    sh.reg
        .put_manifest(&sh.repo, &format!("tag{tag}"), OCI_MANIFEST, m)
        .await?;
    Ok(config.data.len() as u64 + len)
}

async fn op(sh: Arc<Shared>, worker: usize, iter: u64, mut t: Tally) -> Tally {
    let mut rng =
        rand::rngs::SmallRng::seed_from_u64(((worker as u64) << 40) ^ iter ^ 0x9e37_79b9_7f4a_7c15);
    let total: u32 = sh.weights.iter().sum();
    let mut pick = rng.gen_range(0..total);
    let mut kind = 0;
    while pick >= sh.weights[kind] {
        pick -= sh.weights[kind];
        kind += 1;
    }
    let tag = rng.gen_range(0..sh.tags);
    match kind {
        0 => {
            let salt = format!("w{worker}-i{iter}-{:?}", std::time::SystemTime::now());
            t.time("push", async { Ok(((), push_tag(&sh, tag, &salt).await?)) })
                .await;
        }
        1 => {
            t.time("manifest_get", async {
                let (body, _) = sh.reg.get_manifest(&sh.repo, &format!("tag{tag}")).await?;
                if manifest_blobs(&body)?.len() != sh.layers.len() + 1 {
                    return Err(BenchError::Verify(
                        "manifest lists the wrong number of blobs".into(),
                    )
                    .into());
                }
                Ok(((), body.len() as u64))
            })
            .await;
        }
        2 => {
            let layer = &sh.layers[rng.gen_range(0..sh.layers.len())];
            t.time("blob_get", async {
                Ok(((), sh.reg.get_blob_verified(&sh.repo, &layer.digest).await?))
            })
            .await;
        }
        _ => {
            t.time("tags_list", async {
                let mut url = Some(format!("/v2/{}/tags/list", sh.repo));
                let mut seen = 0;
                while let Some(u) = url {
                    let (v, next) = sh.reg.get_page(&u).await?;
                    seen += v.get("tags").and_then(|x| x.as_array()).map_or(0, Vec::len);
                    url = next;
                }
                if seen != sh.tags {
                    return Err(BenchError::Verify(format!(
                        "tags/list shows {seen} tags, want {}",
                        sh.tags
                    ))
                    .into());
                }
                Ok(((), 0))
            })
            .await;
        }
    }
    t
}
