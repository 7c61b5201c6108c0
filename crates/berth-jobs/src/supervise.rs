//! Runs a pass or a job while keeping its lease alive.

use std::future::Future;
use std::time::Duration;

use crate::{BoxError, Ctx, PassFuture};

/// How a supervised run ended.
pub(crate) enum Ended {
    Finished(Result<(), BoxError>),
    /// A renewal was refused: another node may be running it now.
    LeaseLost,
    /// Shutdown: the run was dropped.
    Interrupted,
}

/// Polls `run` to its end, calling `renew` every `every` (the first time one `every` after
/// the start). A refused renewal or shutdown drops `run` at its current `await`. A renewal
/// that fails with an error is logged and tried again at the next beat: the lease may
/// still be valid, and the next answer decides.
pub(crate) async fn supervise<R, RF>(
    ctx: &Ctx,
    what: &str,
    run: PassFuture,
    every: Duration,
    mut renew: R,
) -> Ended
where
    R: FnMut() -> RF,
    RF: Future<Output = berth_meta::Result<bool>>,
{
    let mut run = run;
    let start = tokio::time::Instant::now() + every;
    let mut beat = tokio::time::interval_at(start, every);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            result = &mut run => return Ended::Finished(result),
            _ = ctx.cancel.cancelled() => return Ended::Interrupted,
            _ = beat.tick() => match renew().await {
                Ok(true) => {}
                Ok(false) => return Ended::LeaseLost,
                Err(e) => tracing::warn!(
                    work = what,
                    node = %ctx.node,
                    error = %e,
                    "renewing a lease failed; will retry"
                ),
            },
        }
    }
}

/// A third of the lease: two renewals may fail before it expires.
pub(crate) fn beat_of(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(1))
}

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
