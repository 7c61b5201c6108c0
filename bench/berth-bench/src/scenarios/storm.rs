//! `pull-storm`: one image of L layers (~50 MB in total) pulled by many clients at once; each client
//! GETs the manifest, then the config and every layer, verifying digests. Measures fairness (p99/p50).

use anyhow::{anyhow, Result};
use serde_json::json;

use super::{random_blobs, Ctx};
use crate::client::{config_blob, image_manifest, manifest_blobs, Blob, OCI_MANIFEST};
use crate::runner;
use crate::stats::{mb_per_s, Better, Report};
use crate::units::parse_size;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 200)]
    clients: usize,
    #[arg(long, default_value_t = 5)]
    layers: usize,
    /// Total size of all layers.
    #[arg(long, default_value = "50MB", value_parser = parse_size)]
    total_size: usize,
}

pub async fn run(ctx: &Ctx, a: &Args) -> Result<Report> {
    let repo = ctx.repo("pull-storm");
    let layers = random_blobs(a.layers, a.total_size / a.layers.max(1)).await?;
    for l in &layers {
        ctx.reg.push_blob_monolithic(&repo, l).await?;
    }
    let config = config_blob(&format!("{:?}", std::time::SystemTime::now()));
    ctx.reg.push_blob_monolithic(&repo, &config).await?;
    let refs: Vec<&Blob> = layers.iter().collect();
    ctx.reg
        .put_manifest(
            &repo,
            "latest",
            OCI_MANIFEST,
            image_manifest(&config, &refs, "pull-storm"),
        )
        .await?;
    drop(layers);

    let reg = ctx.reg.clone();
    let sampler = ctx.sampler();
    let (t, wall) = runner::indexed(a.clients, a.clients, move |_, mut t| {
        let (reg, repo) = (reg.clone(), repo.clone());
        async move {
            t.time("client", async {
                let (body, _) = reg.get_manifest(&repo, "latest").await?;
                let mut bytes = body.len() as u64;
                let blobs = manifest_blobs(&body)?;
                if blobs.len() < 2 {
                    return Err(anyhow!("manifest lists {} blobs", blobs.len()));
                }
                for d in blobs {
                    bytes += reg.get_blob_verified(&repo, &d).await?;
                }
                Ok(((), bytes))
            })
            .await;
            t
        }
    })
    .await;
    let mut r = Report::new(
        "pull-storm",
        json!({"clients": a.clients, "layers": a.layers, "total_size": a.total_size}),
    );
    r.proc_stats = sampler.finish().await;
    let s = t.get("client").summary();
    r.metric(
        "throughput_mb_s",
        mb_per_s(t.bytes, wall),
        "MB/s",
        Better::Higher,
    );
    r.latency("client_", &s);
    r.metric(
        "client_p99_over_p50",
        s.p99_ms / s.p50_ms,
        "x",
        Better::Lower,
    );
    r.metric(
        "completed_clients",
        t.count("client") as f64,
        "count",
        Better::Higher,
    );
    r.absorb(&t);
    Ok(r)
}
