//! # berth-jobs
//!
//! The worker runtime of the jobs layer. Every background loop of a `berth serve` process
//! is a worker of one [`Jobs`]:
//!
//! - **Periodic passes** ([`Jobs::spawn_periodic`]) that must run once per period across
//!   the cluster (garbage collection, lifecycle, upload expiry, archive maintenance): the
//!   node that gets the pass's singleton lease ([`berth_meta::jobs::JobStore::acquire_lease`])
//!   runs it, renewing the lease while it runs, then releases it with the time the next
//!   pass is due. A node that dies mid-pass stops renewing; at the lease's expiry another
//!   node takes the pass over.
//! - **Queue workers** ([`Jobs::spawn_queue_worker`]): claim a queued job of the kinds they
//!   handle, run its handler while heartbeating its lease, then complete or fail it (failed
//!   jobs are retried with backoff by the store's rules).
//! - **Per-node workers** ([`Jobs::spawn_local`]): loops every node runs for itself (the
//!   manifest cache follower, the pull-time flusher), given the cancellation token.
//!
//! [`Jobs::shutdown`] cancels the token and awaits every worker, up to a deadline, then
//! aborts what is left. A pass or handler in progress at shutdown is dropped at its next
//! `await` (every pass here is a sequence of transactions, so it stops between two), and
//! its lease is released (a periodic pass: due again at once, for another node) or left to
//! expire (a queued job: taken over as another attempt).
//!
//! Why a crate of its own: the runtime knows nothing of registries, only of the
//! [`berth_meta::jobs::JobStore`] facts, so later features (scans, signing, replication,
//! metering) in other crates use it without depending on `berth-registry`, and its tests
//! build in seconds.
//!
//! May depend on: `berth-meta`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod periodic;
#[cfg(test)]
mod postgres_tests;
mod queue;
mod supervise;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use berth_meta::jobs::JobStore;

pub use periodic::Periodic;
pub use queue::{Handlers, QueueWorker};

/// What a pass or a job handler failed with (logged and counted; a failed job is retried).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A pass or a job handler's run.
pub type PassFuture = BoxFuture<'static, Result<(), BoxError>>;

/// How long a lease lasts without renewal, unless a worker says otherwise. A node that
/// dies holding one delays that work by at most this long.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// This process's name as a lease holder: its pid and a random suffix, new at each start
/// (so a restarted node never mistakes an old lease for its own). Not secret, never key
/// material: it appears in logs and in the jobs tables.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeId(Arc<str>);

impl NodeId {
    pub fn generate() -> Self {
        let random = uuid::Uuid::new_v4().simple().to_string();
        let short = random.get(..12).unwrap_or(&random);
        NodeId(format!("{}-{short}", std::process::id()).into())
    }

    /// A fixed name (tests, or an operator-chosen one).
    pub fn new(name: impl Into<String>) -> Self {
        NodeId(name.into().into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// Unix milliseconds, as the store wants them. Tests pass one driven by Tokio's paused
/// clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

/// How one pass (or one job) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// The lease could not be renewed (expired or taken over): the run was abandoned.
    LeaseLost,
    /// Shutdown came first: the run was dropped.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::LeaseLost => "lease_lost",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// Told of every pass and job run: the worker's or job kind's name, how it ended, how
/// long it took (for metrics).
pub type Observer = Arc<dyn Fn(&str, Outcome, Duration) + Send + Sync>;

/// What [`Jobs::shutdown`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Workers that stopped by themselves.
    pub stopped: Vec<String>,
    /// Workers still running at the deadline, aborted.
    pub aborted: Vec<String>,
    /// Workers that had panicked.
    pub panicked: Vec<String>,
}

struct Worker {
    name: String,
    handle: JoinHandle<()>,
}

/// What every worker shares.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) store: Arc<dyn JobStore>,
    pub(crate) node: NodeId,
    pub(crate) clock: Clock,
    pub(crate) cancel: CancellationToken,
    pub(crate) observer: Option<Observer>,
}

impl Ctx {
    pub(crate) fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    pub(crate) fn observe(&self, name: &str, outcome: Outcome, elapsed: Duration) {
        if let Some(o) = &self.observer {
            o(name, outcome, elapsed);
        }
    }

    /// Sleeps `d`; `true` if shutdown came first.
    pub(crate) async fn sleep_or_stop(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => true,
            _ = tokio::time::sleep(d) => self.cancel.is_cancelled(),
        }
    }
}

/// The workers of one process; see the crate doc.
pub struct Jobs {
    ctx: Ctx,
    workers: Mutex<Vec<Worker>>,
}

impl Jobs {
    /// A runtime holding leases as `node` in `store`, on the system clock.
    pub fn new(store: Arc<dyn JobStore>, node: NodeId) -> Self {
        Jobs {
            ctx: Ctx {
                store,
                node,
                clock: system_clock(),
                cancel: CancellationToken::new(),
                observer: None,
            },
            workers: Mutex::new(Vec::new()),
        }
    }

    /// Another clock (before spawning workers).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.ctx.clock = clock;
        self
    }

    /// Tells `observer` of every pass and job (before spawning workers).
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.ctx.observer = Some(observer);
        self
    }

    pub fn node(&self) -> &NodeId {
        &self.ctx.node
    }

    /// Cancelled when shutdown starts.
    pub fn cancellation(&self) -> CancellationToken {
        self.ctx.cancel.clone()
    }

    /// Runs `pass` once per period across every node sharing the store (see [`Periodic`]).
    pub fn spawn_periodic<F>(&self, spec: Periodic, pass: F)
    where
        F: Fn() -> PassFuture + Send + Sync + 'static,
    {
        let name = format!("periodic {}", spec.name);
        let handle = tokio::spawn(periodic::run(self.ctx.clone(), spec, Box::new(pass)));
        self.workers.lock().push(Worker { name, handle });
    }

    /// Runs queued jobs of the kinds `handlers` knows (see [`QueueWorker`]).
    pub fn spawn_queue_worker(&self, spec: QueueWorker, handlers: Handlers) {
        let name = format!("queue {}", spec.name);
        let handle = tokio::spawn(queue::run(self.ctx.clone(), spec, handlers));
        self.workers.lock().push(Worker { name, handle });
    }

    /// Runs a loop of this node's own (not coordinated with other nodes) until the token
    /// it is given is cancelled; shutdown awaits it like every worker.
    pub fn spawn_local<F, Fut>(&self, name: &str, worker: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(worker(self.ctx.cancel.clone()));
        self.workers.lock().push(Worker {
            name: format!("local {name}"),
            handle,
        });
    }

    /// Cancels every worker and awaits them, aborting those still running after `deadline`.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.ctx.cancel.cancel();
        let workers = std::mem::take(&mut *self.workers.lock());
        let end = tokio::time::Instant::now() + deadline;
        let mut report = ShutdownReport::default();
        for mut w in workers {
            match tokio::time::timeout_at(end, &mut w.handle).await {
                Ok(Ok(())) => report.stopped.push(w.name),
                Ok(Err(e)) => {
                    tracing::error!(worker = %w.name, error = %e, "background worker panicked");
                    report.panicked.push(w.name);
                }
                Err(_) => {
                    tracing::warn!(worker = %w.name, "background worker did not stop in time; aborted");
                    w.handle.abort();
                    report.aborted.push(w.name);
                }
            }
        }
        report
    }

    /// Simulates this node's death: every worker stops at once, releasing nothing.
    #[cfg(test)]
    pub(crate) fn kill(&self) {
        for w in self.workers.lock().drain(..) {
            w.handle.abort();
        }
    }
}
