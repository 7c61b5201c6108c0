//! The periodic singleton runner: acquire the pass's lease when it is due, run the pass
//! while renewing the lease, release it with the next due time.

use std::time::Duration;

use tokio::time::Instant;

use berth_meta::jobs::LeaseAttempt;

use crate::supervise::{beat_of, ms, supervise, Ended};
use crate::{Ctx, Outcome, PassFuture, DEFAULT_LEASE_TTL};

/// A pass run once per `every` across the cluster, under the singleton lease `name`.
#[derive(Debug, Clone)]
pub struct Periodic {
    /// The lease's name (e.g. `"gc"`); also the name in logs and metrics.
    pub name: String,
    pub every: Duration,
    /// This node's first attempt waits this long after start (the pass may still not be
    /// due then, if another node ran it recently).
    pub first_after: Duration,
    pub lease_ttl: Duration,
}

impl Periodic {
    /// Every `every`; the first attempt one period after start.
    pub fn new(name: &str, every: Duration) -> Self {
        Periodic {
            name: name.to_string(),
            every,
            first_after: every,
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }

    pub fn first_after(mut self, d: Duration) -> Self {
        self.first_after = d;
        self
    }

    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }
}

type Pass = Box<dyn Fn() -> PassFuture + Send + Sync>;

/// Waits after a store error before trying again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);

pub(crate) async fn run(ctx: Ctx, spec: Periodic, pass: Pass) {
    if ctx.sleep_or_stop(spec.first_after).await {
        return;
    }
    let ttl_ms = ms(spec.lease_ttl);
    let every_ms = ms(spec.every);
    loop {
        let now = ctx.now_ms();
        let attempt = ctx
            .store
            .acquire_lease(&spec.name, ctx.node.as_str(), ttl_ms, now)
            .await;
        // Never wait longer than a period: a holder that releases early is noticed within
        // one (one that dies, at its lease's expiry).
        let cap = spec.every;
        let wait = match attempt {
            Err(e) => {
                tracing::warn!(pass = %spec.name, error = %e, "could not take the pass's lease; will retry");
                RETRY_AFTER_ERROR.min(cap)
            }
            Ok(LeaseAttempt::NotDue { due_ms }) => until(due_ms, now).min(cap),
            Ok(LeaseAttempt::Held { expires_ms, .. }) => until(expires_ms, now).min(cap),
            Ok(LeaseAttempt::Granted(grant)) => {
                let started_ms = now;
                let t0 = Instant::now();
                let renew = || {
                    ctx.store.renew_lease(
                        &spec.name,
                        ctx.node.as_str(),
                        grant.fence,
                        ttl_ms,
                        ctx.now_ms(),
                    )
                };
                let ended =
                    supervise(&ctx, &spec.name, pass(), beat_of(spec.lease_ttl), renew).await;
                let elapsed = t0.elapsed();
                let outcome = log_pass(&ctx, &spec.name, ended, elapsed);
                ctx.observe(&spec.name, outcome, elapsed);
                let now = ctx.now_ms();
                let next_due = match outcome {
                    // Another node may run it at once.
                    Outcome::Interrupted => Some(now),
                    // Nothing to release: it is not ours any more.
                    Outcome::LeaseLost => None,
                    // A pass longer than the period is followed by the next at once
                    // (passes never overlap).
                    Outcome::Succeeded | Outcome::Failed => {
                        Some(started_ms.saturating_add(every_ms).max(now))
                    }
                };
                if let Some(due) = next_due {
                    match ctx
                        .store
                        .release_lease(&spec.name, ctx.node.as_str(), grant.fence, due, now)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(
                            pass = %spec.name,
                            node = %ctx.node,
                            "the pass's lease was taken over before it was released"
                        ),
                        Err(e) => tracing::warn!(
                            pass = %spec.name,
                            error = %e,
                            "could not release the pass's lease; it will expire"
                        ),
                    }
                }
                if outcome == Outcome::Interrupted {
                    return;
                }
                until(next_due.unwrap_or(now), now).min(cap)
            }
        };
        if ctx.sleep_or_stop(wait).await {
            return;
        }
    }
}

fn until(at_ms: i64, now_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0))
}

fn log_pass(ctx: &Ctx, name: &str, ended: Ended, elapsed: Duration) -> Outcome {
    let elapsed_ms = elapsed.as_millis();
    match ended {
        Ended::Finished(Ok(())) => {
            tracing::debug!(pass = name, node = %ctx.node, elapsed_ms, "background pass finished");
            Outcome::Succeeded
        }
        Ended::Finished(Err(e)) => {
            tracing::warn!(pass = name, node = %ctx.node, elapsed_ms, error = %e, "background pass failed");
            Outcome::Failed
        }
        Ended::LeaseLost => {
            tracing::warn!(
                pass = name,
                node = %ctx.node,
                elapsed_ms,
                "lost the pass's lease (renewal refused); abandoned the pass"
            );
            Outcome::LeaseLost
        }
        Ended::Interrupted => {
            tracing::info!(pass = name, node = %ctx.node, elapsed_ms, "background pass interrupted by shutdown");
            Outcome::Interrupted
        }
    }
}
