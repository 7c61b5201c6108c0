//! The runtime against a real SQLite store, on Tokio's paused clock: "nodes" are two
//! [`Jobs`] on one database, time moves only when every task waits, so counts are exact.
//! The cases named `..._on` take the nodes' store handles, and also run on PostgreSQL
//! (`postgres_tests.rs`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use berth_meta::jobs::{JobState, JobStore, NewJob};
use berth_meta::sqlite::SqliteMetaStore;

use crate::{Clock, Handlers, Jobs, NodeId, Outcome, PassFuture, Periodic, QueueWorker};

const BASE_MS: i64 = 1_000_000;

fn store() -> (tempfile::TempDir, SqliteMetaStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
    (dir, store)
}

/// Unix-like milliseconds on Tokio's (paused) clock, shared by every node of a test.
fn clock() -> Clock {
    let start = tokio::time::Instant::now();
    Arc::new(move || BASE_MS + i64::try_from(start.elapsed().as_millis()).unwrap())
}

fn node(store: &SqliteMetaStore, name: &str, clock: &Clock) -> Jobs {
    node_on(Arc::new(store.clone()), name, clock)
}

/// A node on any store handle (the cases below that run on every backend take these).
fn node_on(store: Handle, name: &str, clock: &Clock) -> Jobs {
    Jobs::new(store, NodeId::new(name)).with_clock(clock.clone())
}

/// One node's handle on the shared database.
pub(crate) type Handle = Arc<dyn JobStore>;

/// Pass starts (node, ms since the test began), and how many run at once at most.
#[derive(Clone, Default)]
struct Log {
    starts: Arc<Mutex<Vec<(String, i64)>>>,
    running: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
}

impl Log {
    /// A pass that records its start and then takes `takes`.
    fn pass(&self, node: &str, clock: &Clock, takes: Duration) -> impl Fn() -> PassFuture {
        let (log, node, clock) = (self.clone(), node.to_string(), clock.clone());
        move || {
            let (log, node, clock) = (log.clone(), node.clone(), clock.clone());
            Box::pin(async move {
                log.starts.lock().push((node, clock() - BASE_MS));
                let now = log.running.fetch_add(1, Ordering::SeqCst) + 1;
                log.most_at_once.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(takes).await;
                log.running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    fn starts(&self) -> Vec<(String, i64)> {
        self.starts.lock().clone()
    }
}

#[tokio::test(start_paused = true)]
async fn two_nodes_run_a_periodic_pass_once_per_period() {
    let (dir, store) = store();
    // Each node opens the database itself, as separate processes would.
    let other = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
    two_nodes_run_a_periodic_pass_once_per_period_on(Arc::new(store), Arc::new(other)).await;
}

/// `store` and `other`: each node's own handle on one database.
pub(crate) async fn two_nodes_run_a_periodic_pass_once_per_period_on(store: Handle, other: Handle) {
    let clock = clock();
    let log = Log::default();
    let nodes = [
        node_on(store.clone(), "a", &clock),
        node_on(other, "b", &clock),
    ];
    for n in &nodes {
        let spec = Periodic::new("count", Duration::from_secs(10)).first_after(Duration::ZERO);
        n.spawn_periodic(
            spec,
            log.pass(n.node().as_str(), &clock, Duration::from_secs(2)),
        );
    }
    tokio::time::sleep(Duration::from_secs(95)).await;
    for n in &nodes {
        let report = n.shutdown(Duration::from_secs(5)).await;
        assert!(
            report.aborted.is_empty() && report.panicked.is_empty(),
            "{report:?}"
        );
    }
    let starts = log.starts();
    // Due at 0, 10, ..., 90 s: ten passes in 95 s, whichever node ran each.
    assert_eq!(starts.len(), 10, "{starts:?}");
    for pair in starts.windows(2) {
        assert!(pair[1].1 - pair[0].1 >= 10_000, "{starts:?}");
    }
    assert_eq!(log.most_at_once.load(Ordering::SeqCst), 1);
    // Nobody holds the lease after shutdown.
    let lease = store.lease("count").await.unwrap().unwrap();
    assert_eq!(lease.holder, None);
}

#[tokio::test(start_paused = true)]
async fn a_live_holder_keeps_its_lease_through_a_pass_longer_than_the_lease() {
    let (_dir, store) = store();
    let clock = clock();
    let log = Log::default();
    let (a, b) = (node(&store, "a", &clock), node(&store, "b", &clock));
    let spec = Periodic::new("long", Duration::from_secs(1_000)).lease_ttl(Duration::from_secs(9));
    a.spawn_periodic(
        spec.clone().first_after(Duration::ZERO),
        log.pass("a", &clock, Duration::from_secs(100)),
    );
    b.spawn_periodic(
        spec.first_after(Duration::from_secs(1)),
        log.pass("b", &clock, Duration::from_secs(100)),
    );
    // Eleven lease lifetimes: a's renewals keep b out, and after a's pass the next is
    // not due for 1 000 s.
    tokio::time::sleep(Duration::from_secs(150)).await;
    assert_eq!(log.starts(), vec![("a".to_string(), 0)]);
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn a_node_that_stops_heartbeating_loses_the_lease_and_another_takes_over() {
    let (_dir, store) = store();
    let store: Handle = Arc::new(store);
    a_node_that_stops_heartbeating_loses_the_lease_and_another_takes_over_on(store.clone(), store)
        .await;
}

/// `store` and `other`: each node's handle on one database (may be the same handle).
pub(crate) async fn a_node_that_stops_heartbeating_loses_the_lease_and_another_takes_over_on(
    store: Handle,
    other: Handle,
) {
    let clock = clock();
    let log = Log::default();
    let (a, b) = (
        node_on(store.clone(), "a", &clock),
        node_on(other, "b", &clock),
    );
    let spec =
        Periodic::new("takeover", Duration::from_secs(1_000)).lease_ttl(Duration::from_secs(9));
    // a's pass never ends by itself.
    a.spawn_periodic(
        spec.clone().first_after(Duration::ZERO),
        log.pass("a", &clock, Duration::from_secs(1_000_000)),
    );
    b.spawn_periodic(
        spec.first_after(Duration::from_secs(1)),
        log.pass("b", &clock, Duration::from_secs(1)),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let held = store.lease("takeover").await.unwrap().unwrap();
    assert_eq!(held.holder.as_deref(), Some("a"));
    // a dies: no release, no more renewals (its last one was at 3 s, to 12 s).
    a.kill();
    let killed_at = 5_000;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let starts = log.starts();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[0], ("a".to_string(), 0));
    let (who, at) = &starts[1];
    assert_eq!(who, "b");
    // Not before a's lease ran out, and within one lease of a's death.
    assert!(*at >= held.expires_ms.unwrap() - BASE_MS, "{at}");
    assert!(*at <= killed_at + 9_000, "{at}");
    let lease = store.lease("takeover").await.unwrap().unwrap();
    assert_eq!(lease.holder, None);
    assert_eq!(lease.next_due_ms, BASE_MS + at + 1_000_000);
    b.shutdown(Duration::from_secs(5)).await;
}

/// Sets a flag when dropped: shows a pass was dropped, not left running.
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_joins_every_worker_and_releases_the_pass_in_progress() {
    let (_dir, store) = store();
    let clock = clock();
    let jobs = node(&store, "a", &clock);
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let jobs = jobs.with_observer({
        let outcomes = outcomes.clone();
        Arc::new(move |name: &str, outcome, _| outcomes.lock().push((name.to_string(), outcome)))
    });
    let pass_dropped = Arc::new(AtomicBool::new(false));
    jobs.spawn_periodic(
        Periodic::new("busy", Duration::from_secs(60)).first_after(Duration::ZERO),
        {
            let flag = pass_dropped.clone();
            move || {
                let guard = Dropped(flag.clone());
                Box::pin(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                    Ok(())
                })
            }
        },
    );
    jobs.spawn_queue_worker(
        QueueWorker::new("q", Duration::from_secs(1)),
        Handlers::new().on("noop", |_| Box::pin(async { Ok(()) })),
    );
    let local_stopped = Arc::new(AtomicBool::new(false));
    jobs.spawn_local("follower", {
        let flag = local_stopped.clone();
        move |cancel| async move {
            cancel.cancelled().await;
            flag.store(true, Ordering::SeqCst);
        }
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        store
            .lease("busy")
            .await
            .unwrap()
            .unwrap()
            .holder
            .as_deref(),
        Some("a")
    );
    let report = jobs.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.stopped.len(), 3, "{report:?}");
    assert!(report.aborted.is_empty() && report.panicked.is_empty());
    assert!(pass_dropped.load(Ordering::SeqCst));
    assert!(local_stopped.load(Ordering::SeqCst));
    assert_eq!(
        *outcomes.lock(),
        vec![("busy".to_string(), Outcome::Interrupted)]
    );
    // Released, and due at once for another node.
    let lease = store.lease("busy").await.unwrap().unwrap();
    assert_eq!(lease.holder, None);
    assert_eq!(lease.next_due_ms, clock());
}

#[tokio::test(start_paused = true)]
async fn shutdown_aborts_a_worker_that_ignores_it_at_the_deadline() {
    let (_dir, store) = store();
    let clock = clock();
    let jobs = node(&store, "a", &clock);
    jobs.spawn_local("stubborn", |_cancel| std::future::pending::<()>());
    jobs.spawn_local("polite", |cancel| async move { cancel.cancelled().await });
    let report = jobs.shutdown(Duration::from_secs(3)).await;
    assert_eq!(report.stopped, vec!["local polite".to_string()]);
    assert_eq!(report.aborted, vec!["local stubborn".to_string()]);
}

fn queued(kind: &str, max_attempts: u32) -> NewJob {
    NewJob {
        kind: kind.into(),
        dedupe_key: None,
        payload: String::new(),
        run_at_ms: 0,
        max_attempts,
    }
}

#[tokio::test(start_paused = true)]
async fn two_queue_workers_run_each_job_once() {
    let (dir, store) = store();
    let other = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
    two_queue_workers_run_each_job_once_on(Arc::new(store), Arc::new(other)).await;
}

/// `store` and `other`: each node's own handle on one database.
pub(crate) async fn two_queue_workers_run_each_job_once_on(store: Handle, other: Handle) {
    let clock = clock();
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(store.enqueue(&queued("count", 1), 0).await.unwrap().id());
    }
    let ran = Arc::new(Mutex::new(Vec::new()));
    let nodes = [
        node_on(store.clone(), "a", &clock),
        node_on(other, "b", &clock),
    ];
    for n in &nodes {
        let ran = ran.clone();
        n.spawn_queue_worker(
            QueueWorker::new("q", Duration::from_secs(1)),
            Handlers::new().on("count", move |job| {
                let ran = ran.clone();
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    ran.lock().push(job.id);
                    Ok(())
                })
            }),
        );
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    for n in &nodes {
        n.shutdown(Duration::from_secs(5)).await;
    }
    let mut ran = ran.lock().clone();
    ran.sort_unstable();
    assert_eq!(ran, ids);
    for id in ids {
        assert_eq!(store.job(id).await.unwrap().unwrap().state, JobState::Done);
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_job_is_retried_with_backoff_until_it_succeeds() {
    let (_dir, store) = store();
    let clock = clock();
    let id = store.enqueue(&queued("flaky", 5), 0).await.unwrap().id();
    let jobs = node(&store, "a", &clock);
    let attempts = Arc::new(Mutex::new(Vec::new()));
    jobs.spawn_queue_worker(QueueWorker::new("q", Duration::from_millis(200)), {
        let attempts = attempts.clone();
        let clock = clock.clone();
        Handlers::new().on("flaky", move |job| {
            attempts.lock().push((job.attempts, clock() - BASE_MS));
            Box::pin(async move {
                if job.attempts < 3 {
                    Err(format!("attempt {} failed", job.attempts).into())
                } else {
                    Ok(())
                }
            })
        })
    });
    tokio::time::sleep(Duration::from_secs(30)).await;
    jobs.shutdown(Duration::from_secs(5)).await;
    let attempts = attempts.lock().clone();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    // Each retry waited at least its backoff.
    for (i, pair) in attempts.windows(2).enumerate() {
        let waited = pair[1].1 - pair[0].1;
        assert!(
            waited >= berth_meta::jobs::retry_delay_ms(i as u32 + 1),
            "{attempts:?}"
        );
    }
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Done, 3));
    assert_eq!(job.last_error.as_deref(), Some("attempt 2 failed"));
}

#[tokio::test(start_paused = true)]
async fn a_job_held_by_a_dead_worker_is_taken_over() {
    let (_dir, store) = store();
    let store: Handle = Arc::new(store);
    a_job_held_by_a_dead_worker_is_taken_over_on(store.clone(), store).await;
}

/// `store` and `other`: each node's handle on one database (may be the same handle).
pub(crate) async fn a_job_held_by_a_dead_worker_is_taken_over_on(store: Handle, other: Handle) {
    let clock = clock();
    let id = store.enqueue(&queued("stuck", 3), 0).await.unwrap().id();
    let (a, b) = (
        node_on(store.clone(), "a", &clock),
        node_on(other, "b", &clock),
    );
    let spec = QueueWorker::new("q", Duration::from_secs(1)).lease_ttl(Duration::from_secs(9));
    a.spawn_queue_worker(
        spec.clone(),
        Handlers::new().on("stuck", |_| Box::pin(std::future::pending())),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        store.job(id).await.unwrap().unwrap().holder.as_deref(),
        Some("a")
    );
    a.kill();
    b.spawn_queue_worker(
        spec,
        Handlers::new().on("stuck", |_| Box::pin(async { Ok(()) })),
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    b.shutdown(Duration::from_secs(5)).await;
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Done, 2));
}
