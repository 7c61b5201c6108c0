//! `manifest-head` / `manifest-get`: one manifest by tag, hammered over many keep-alive connections
//! for a fixed duration. Measures request rate and latency of the hottest read path.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::{push_tiny_image, Ctx};
use crate::runner;
use crate::stats::{Better, Report};
use crate::units::parse_duration;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

pub async fn run(ctx: &Ctx, a: &Args, head: bool) -> Result<Report> {
    let repo = ctx.repo("hot");
    push_tiny_image(&ctx.reg, &repo, "latest").await?;
    // One connection per worker, like 64 independent clients.
    let regs: Vec<_> = (0..a.concurrency).map(|_| ctx.reg.dedicated()).collect();
    let sampler = ctx.sampler();
    let (t, wall) = runner::timed(a.duration, a.concurrency, move |w, _, mut t| {
        let (reg, repo) = (regs[w].clone(), repo.clone());
        async move {
            t.time("req", async {
                if head {
                    reg.head_manifest(&repo, "latest").await?;
                    Ok(((), 0))
                } else {
                    let (body, _) = reg.get_manifest(&repo, "latest").await?;
                    Ok(((), body.len() as u64))
                }
            })
            .await;
            t
        }
    })
    .await;
    let name = if head {
        "manifest-head"
    } else {
        "manifest-get"
    };
    let mut r = Report::new(
        name,
        json!({"duration_s": a.duration.as_secs_f64(), "concurrency": a.concurrency}),
    );
    r.proc_stats = sampler.finish().await;
    r.ops = Some(t.count("req"));
    r.metric(
        "req_per_s",
        t.count("req") as f64 / wall.as_secs_f64(),
        "req/s",
        Better::Higher,
    );
    let s = t.get("req").summary();
    r.latency("", &s);
    r.metric("max_ms", s.max_ms, "ms", Better::Lower);
    r.absorb(&t);
    Ok(r)
}
