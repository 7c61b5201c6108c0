//! `blob-push` (monolithic or chunked uploads) and `blob-pull` (streaming GET with sha256 verification).

use std::sync::Arc;

use anyhow::{anyhow, Result};
use serde_json::json;

use super::{random_blobs, Ctx};
use crate::runner;
use crate::stats::{mb_per_s, Better, Report};
use crate::units::parse_size;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// POST, then one PUT with the whole body and ?digest=.
    Monolithic,
    /// POST, PATCH chunks with Content-Range, final empty PUT with ?digest=.
    Chunked,
}

#[derive(clap::Args)]
pub struct PushArgs {
    #[arg(long, default_value_t = 64)]
    blobs: usize,
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    blob_size: usize,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long, value_enum, default_value = "monolithic")]
    mode: Mode,
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    chunk_size: usize,
}

#[derive(clap::Args)]
pub struct PullArgs {
    #[arg(long, default_value_t = 64)]
    blobs: usize,
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    blob_size: usize,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

pub async fn push(ctx: &Ctx, a: &PushArgs) -> Result<Report> {
    let (mode, name) = match a.mode {
        Mode::Monolithic => (Mode::Monolithic, "blob-push/monolithic"),
        Mode::Chunked => (Mode::Chunked, "blob-push/chunked"),
    };
    let blobs = Arc::new(random_blobs(a.blobs, a.blob_size).await?);
    let repo = ctx.repo("blob-push");
    let (reg, chunk) = (ctx.reg.clone(), a.chunk_size);
    let sampler = ctx.sampler();
    let (t, wall) = runner::indexed(a.blobs, a.concurrency, move |i, mut t| {
        let (reg, repo, blobs) = (reg.clone(), repo.clone(), blobs.clone());
        async move {
            let b = &blobs[i];
            t.time("blob", async {
                match mode {
                    Mode::Monolithic => reg.push_blob_monolithic(&repo, b).await?,
                    Mode::Chunked => reg.push_blob_chunked(&repo, b, chunk).await?,
                }
                Ok(((), b.data.len() as u64))
            })
            .await;
            t
        }
    })
    .await;
    let mut r = Report::new(
        name,
        json!({"blobs": a.blobs, "blob_size": a.blob_size, "concurrency": a.concurrency, "chunk_size": a.chunk_size}),
    );
    r.proc_stats = sampler.finish().await;
    r.metric(
        "throughput_mb_s",
        mb_per_s(t.bytes, wall),
        "MB/s",
        Better::Higher,
    );
    r.latency("blob_", &t.get("blob").summary());
    r.absorb(&t);
    Ok(r)
}

pub async fn pull(ctx: &Ctx, a: &PullArgs) -> Result<Report> {
    let repo = ctx.repo("blob-pull");
    let blobs = Arc::new(random_blobs(a.blobs, a.blob_size).await?);
    let (reg, r2, b2) = (ctx.reg.clone(), repo.clone(), blobs.clone());
    let (prep, _) = runner::indexed(a.blobs, a.concurrency, move |i, mut t| {
        let (reg, repo, blobs) = (reg.clone(), r2.clone(), b2.clone());
        async move {
            let r = reg.push_blob_monolithic(&repo, &blobs[i]).await.map(|_| 0);
            t.record("prepare", Default::default(), r);
            t
        }
    })
    .await;
    if prep.errors.total() > 0 {
        return Err(anyhow!(
            "blob-pull preparation failed: {}",
            prep.first_error.unwrap_or_default()
        ));
    }
    let digests: Arc<Vec<(String, u64)>> = Arc::new(
        blobs
            .iter()
            .map(|b| (b.digest.clone(), b.data.len() as u64))
            .collect(),
    );
    drop(blobs);
    let reg = ctx.reg.clone();
    let sampler = ctx.sampler();
    let (t, wall) = runner::indexed(a.blobs, a.concurrency, move |i, mut t| {
        let (reg, repo, digests) = (reg.clone(), repo.clone(), digests.clone());
        async move {
            let (d, len) = &digests[i];
            t.time("blob", async {
                let n = reg.get_blob_verified(&repo, d).await?;
                if n != *len {
                    return Err(crate::client::BenchError::Verify(format!(
                        "{d}: {n} bytes, want {len}"
                    ))
                    .into());
                }
                Ok(((), n))
            })
            .await;
            t
        }
    })
    .await;
    let mut r = Report::new(
        "blob-pull",
        json!({"blobs": a.blobs, "blob_size": a.blob_size, "concurrency": a.concurrency}),
    );
    r.proc_stats = sampler.finish().await;
    r.metric(
        "throughput_mb_s",
        mb_per_s(t.bytes, wall),
        "MB/s",
        Better::Higher,
    );
    r.latency("blob_", &t.get("blob").summary());
    r.absorb(&t);
    Ok(r)
}
