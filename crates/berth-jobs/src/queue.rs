//! The queue worker: claim a due job of a kind it handles, run the kind's handler while
//! heartbeating the job's lease, then complete or fail it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use berth_meta::jobs::{FailOutcome, JobRecord};

use crate::supervise::{beat_of, ms, supervise, Ended};
use crate::{Ctx, Outcome, PassFuture, DEFAULT_LEASE_TTL};

/// A queue worker's settings.
#[derive(Debug, Clone)]
pub struct QueueWorker {
    /// In logs and worker lists.
    pub name: String,
    /// How long to wait when no job is due.
    pub poll: Duration,
    pub lease_ttl: Duration,
}

impl QueueWorker {
    pub fn new(name: &str, poll: Duration) -> Self {
        QueueWorker {
            name: name.to_string(),
            poll,
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }

    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }
}

type Handler = Arc<dyn Fn(JobRecord) -> PassFuture + Send + Sync>;

/// A handler per job kind.
#[derive(Default, Clone)]
pub struct Handlers(HashMap<String, Handler>);

impl Handlers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs jobs of `kind` with `handler` (given the claimed job: its payload, attempt).
    pub fn on<F>(mut self, kind: &str, handler: F) -> Self
    where
        F: Fn(JobRecord) -> PassFuture + Send + Sync + 'static,
    {
        self.0.insert(kind.to_string(), Arc::new(handler));
        self
    }
}

pub(crate) async fn run(ctx: Ctx, spec: QueueWorker, handlers: Handlers) {
    let mut kinds: Vec<String> = handlers.0.keys().cloned().collect();
    kinds.sort();
    let ttl_ms = ms(spec.lease_ttl);
    while !ctx.cancel.is_cancelled() {
        let claimed = ctx
            .store
            .claim(&kinds, ctx.node.as_str(), ttl_ms, ctx.now_ms())
            .await;
        let job = match claimed {
            Ok(Some(job)) => job,
            Ok(None) => {
                if ctx.sleep_or_stop(spec.poll).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(worker = %spec.name, error = %e, "could not claim a job; will retry");
                if ctx.sleep_or_stop(spec.poll).await {
                    return;
                }
                continue;
            }
        };
        let Some(handler) = handlers.0.get(&job.kind) else {
            // Claims ask for the handled kinds only.
            continue;
        };
        run_one(&ctx, &spec, handler, job, ttl_ms).await;
    }
}

async fn run_one(ctx: &Ctx, spec: &QueueWorker, handler: &Handler, job: JobRecord, ttl_ms: i64) {
    let (id, kind, attempt) = (job.id, job.kind.clone(), job.attempts);
    let t0 = Instant::now();
    let renew = || {
        ctx.store
            .heartbeat(id, ctx.node.as_str(), ttl_ms, ctx.now_ms())
    };
    let ended = supervise(ctx, &kind, handler(job), beat_of(spec.lease_ttl), renew).await;
    let elapsed = t0.elapsed();
    let elapsed_ms = elapsed.as_millis();
    let node = ctx.node.as_str();
    let outcome = match ended {
        Ended::Finished(Ok(())) => {
            match ctx.store.complete(id, node, ctx.now_ms()).await {
                Ok(true) => tracing::debug!(job = id, kind, attempt, elapsed_ms, "job done"),
                Ok(false) => tracing::warn!(
                    job = id,
                    kind,
                    "job finished after another node took it over"
                ),
                Err(e) => {
                    tracing::warn!(job = id, kind, error = %e, "could not record a finished job; it will run again")
                }
            }
            Outcome::Succeeded
        }
        Ended::Finished(Err(error)) => {
            let text = error.to_string();
            match ctx.store.fail(id, node, &text, ctx.now_ms()).await {
                Ok(FailOutcome::Retry { at_ms }) => {
                    tracing::warn!(job = id, kind, attempt, error = %text, retry_at_ms = at_ms, "job failed; will retry")
                }
                Ok(FailOutcome::Dead) => {
                    tracing::error!(job = id, kind, attempt, error = %text, "job failed on its last attempt; given up")
                }
                Ok(FailOutcome::NotHeld) => {
                    tracing::warn!(job = id, kind, error = %text, "job failed after another node took it over")
                }
                Err(e) => {
                    tracing::warn!(job = id, kind, error = %e, "could not record a failed job; its lease will expire")
                }
            }
            Outcome::Failed
        }
        Ended::LeaseLost => {
            tracing::warn!(
                job = id,
                kind,
                elapsed_ms,
                "lost the job's lease; abandoned it"
            );
            Outcome::LeaseLost
        }
        Ended::Interrupted => {
            // Its lease expires and another node takes it over (as another attempt).
            tracing::info!(job = id, kind, elapsed_ms, "job interrupted by shutdown");
            Outcome::Interrupted
        }
    };
    ctx.observe(&kind, outcome, elapsed);
}
