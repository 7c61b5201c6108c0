//! `image-push`: N images (config + L random layers + manifest), each in its own repository, pushed
//! the way clients do it (HEAD each blob, upload the missing ones in parallel, then the manifest).

use std::sync::Arc;

use anyhow::Result;
use serde_json::json;

use super::{random_blobs, Ctx};
use crate::client::{config_blob, image_manifest, Blob, OCI_MANIFEST};
use crate::runner;
use crate::stats::{mb_per_s, Better, Report};
use crate::units::parse_size;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 32)]
    images: usize,
    #[arg(long, default_value_t = 3)]
    layers: usize,
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    layer_size: usize,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

struct Image {
    config: Blob,
    layers: Vec<Blob>,
}

pub async fn run(ctx: &Ctx, a: &Args) -> Result<Report> {
    let mut pool = random_blobs(a.images * a.layers, a.layer_size)
        .await?
        .into_iter();
    let salt = format!("{:?}", std::time::SystemTime::now());
    let images: Arc<Vec<Image>> = Arc::new(
        (0..a.images)
            .map(|i| Image {
                config: config_blob(&format!("{salt}-{i}")),
                layers: pool.by_ref().take(a.layers).collect(),
            })
            .collect(),
    );
    let (reg, prefix) = (ctx.reg.clone(), ctx.repo("image-push"));
    let sampler = ctx.sampler();
    let (t, wall) = runner::indexed(a.images, a.concurrency, move |i, mut t| {
        let (reg, images) = (reg.clone(), images.clone());
        let repo = format!("{prefix}/img{i:04}");
        async move {
            let img = &images[i];
            t.time("image", async {
                let uploads = img.layers.iter().map(|l| reg.ensure_blob(&repo, l));
                futures::future::try_join_all(uploads).await?;
                reg.ensure_blob(&repo, &img.config).await?;
                let layers: Vec<&Blob> = img.layers.iter().collect();
                let m = image_manifest(&img.config, &layers, "image-push");
                reg.put_manifest(&repo, "v1", OCI_MANIFEST, m).await?;
                let bytes: usize = img.layers.iter().map(|l| l.data.len()).sum();
                Ok(((), bytes as u64))
            })
            .await;
            t
        }
    })
    .await;
    let mut r = Report::new(
        "image-push",
        json!({"images": a.images, "layers": a.layers, "layer_size": a.layer_size, "concurrency": a.concurrency}),
    );
    r.proc_stats = sampler.finish().await;
    r.metric(
        "images_per_s",
        t.count("image") as f64 / wall.as_secs_f64(),
        "img/s",
        Better::Higher,
    );
    r.metric(
        "throughput_mb_s",
        mb_per_s(t.bytes, wall),
        "MB/s",
        Better::Higher,
    );
    r.latency("image_", &t.get("image").summary());
    r.absorb(&t);
    Ok(r)
}
