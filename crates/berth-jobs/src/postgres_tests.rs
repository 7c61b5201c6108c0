//! The runtime's multi-node cases (`tests.rs`, the `..._on` functions) on PostgreSQL: two
//! nodes, each its own pool on one database of `berth-testkit`'s throwaway cluster.
//!
//! They keep Tokio's paused clock, so their counts stay exact. A paused clock jumps to the
//! next timer whenever the runtime has nothing to do — which is the case while a query is
//! on the wire — so a pool's timeouts would fire at once and passes would see time leap
//! during a transaction. [`HoldClock`] therefore holds the clock still while each store
//! call is in flight, the way SQLite's calls (on Tokio's blocking pool) already do: the
//! database takes no time on the test's clock, and the clock moves between calls only.

use std::future::Future;
use std::sync::Arc;

use berth_meta::jobs::{
    Enqueued, FailOutcome, JobRecord, JobStore, LeaseAttempt, LeaseRecord, NewJob,
};
use berth_meta::postgres::{PgDb, PgJobStore, PgOptions};
use berth_testkit::postgres::{shared, PgDatabase};

use crate::tests::{self, Handle};

/// Runs `call` with Tokio's paused clock held still: a task on the blocking pool keeps the
/// runtime from advancing it (as SQLite's calls do) until the call is over.
async fn held<T>(call: impl Future<Output = T>) -> T {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let holder = tokio::task::spawn_blocking(move || {
        // Returns when `done` is dropped: the call finished or was dropped itself.
        let _ = wait.recv();
    });
    let out = call.await;
    drop(done);
    let _ = holder.await;
    out
}

/// A [`JobStore`] whose every call runs [`held`].
struct HoldClock(PgJobStore);

#[async_trait::async_trait]
impl JobStore for HoldClock {
    async fn cursor(&self, consumer: &str) -> berth_meta::Result<Option<i64>> {
        held(self.0.cursor(consumer)).await
    }

    async fn advance_cursor(
        &self,
        consumer: &str,
        expected: Option<i64>,
        to: i64,
        now_ms: i64,
    ) -> berth_meta::Result<bool> {
        held(self.0.advance_cursor(consumer, expected, to, now_ms)).await
    }

    async fn enqueue(&self, job: &NewJob, now_ms: i64) -> berth_meta::Result<Enqueued> {
        held(self.0.enqueue(job, now_ms)).await
    }

    async fn claim(
        &self,
        kinds: &[String],
        holder: &str,
        lease_ms: i64,
        now_ms: i64,
    ) -> berth_meta::Result<Option<JobRecord>> {
        held(self.0.claim(kinds, holder, lease_ms, now_ms)).await
    }

    async fn heartbeat(
        &self,
        id: i64,
        holder: &str,
        lease_ms: i64,
        now_ms: i64,
    ) -> berth_meta::Result<bool> {
        held(self.0.heartbeat(id, holder, lease_ms, now_ms)).await
    }

    async fn complete(&self, id: i64, holder: &str, now_ms: i64) -> berth_meta::Result<bool> {
        held(self.0.complete(id, holder, now_ms)).await
    }

    async fn fail(
        &self,
        id: i64,
        holder: &str,
        error: &str,
        now_ms: i64,
    ) -> berth_meta::Result<FailOutcome> {
        held(self.0.fail(id, holder, error, now_ms)).await
    }

    async fn job(&self, id: i64) -> berth_meta::Result<Option<JobRecord>> {
        held(self.0.job(id)).await
    }

    async fn prune_jobs(&self, before_ms: i64) -> berth_meta::Result<usize> {
        held(self.0.prune_jobs(before_ms)).await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> berth_meta::Result<LeaseAttempt> {
        held(self.0.acquire_lease(name, holder, ttl_ms, now_ms)).await
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        fence: i64,
        ttl_ms: i64,
        now_ms: i64,
    ) -> berth_meta::Result<bool> {
        held(self.0.renew_lease(name, holder, fence, ttl_ms, now_ms)).await
    }

    async fn release_lease(
        &self,
        name: &str,
        holder: &str,
        fence: i64,
        next_due_ms: i64,
        now_ms: i64,
    ) -> berth_meta::Result<bool> {
        held(
            self.0
                .release_lease(name, holder, fence, next_due_ms, now_ms),
        )
        .await
    }

    async fn lease(&self, name: &str) -> berth_meta::Result<Option<LeaseRecord>> {
        held(self.0.lease(name)).await
    }

    async fn ping(&self) -> berth_meta::Result<()> {
        held(self.0.ping()).await
    }
}

/// Two nodes' handles: each its own pool on a fresh database. The database must outlive
/// them (it is dropped at the end of the test).
async fn two_nodes() -> (PgDatabase<'static>, Handle, Handle) {
    let db = shared().create_database().unwrap();
    let mut handles = Vec::new();
    for _ in 0..2 {
        let pool = held(PgDb::connect(&PgOptions::new(db.url())))
            .await
            .unwrap();
        handles.push(Arc::new(HoldClock(PgJobStore::new(pool))) as Handle);
    }
    let b = handles.pop().unwrap();
    let a = handles.pop().unwrap();
    (db, a, b)
}

#[tokio::test(start_paused = true)]
async fn two_nodes_run_a_periodic_pass_once_per_period() {
    let (_db, a, b) = two_nodes().await;
    tests::two_nodes_run_a_periodic_pass_once_per_period_on(a, b).await;
}

#[tokio::test(start_paused = true)]
async fn a_node_that_stops_heartbeating_loses_the_lease_and_another_takes_over() {
    let (_db, a, b) = two_nodes().await;
    tests::a_node_that_stops_heartbeating_loses_the_lease_and_another_takes_over_on(a, b).await;
}

#[tokio::test(start_paused = true)]
async fn two_queue_workers_run_each_job_once() {
    let (_db, a, b) = two_nodes().await;
    tests::two_queue_workers_run_each_job_once_on(a, b).await;
}

#[tokio::test(start_paused = true)]
async fn a_job_held_by_a_dead_worker_is_taken_over() {
    let (_db, a, b) = two_nodes().await;
    tests::a_job_held_by_a_dead_worker_is_taken_over_on(a, b).await;
}
