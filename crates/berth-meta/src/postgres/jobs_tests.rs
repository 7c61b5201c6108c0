//! [`PgJobStore`] against a real server (the throwaway cluster of `berth-testkit`, a fresh
//! database per test): every case of [`crate::jobs_suite`], and races between several
//! nodes — each its own pool on one database — for one lease, one job and one cursor.

use std::sync::Arc;

use berth_testkit::postgres::{shared, PgDatabase};
use tokio::sync::Barrier;

use super::{PgDb, PgJobStore, PgOptions};
use crate::jobs::{Enqueued, FailOutcome, JobState, JobStore, LeaseAttempt, NewJob};
use crate::jobs_suite as suite;

fn database() -> PgDatabase<'static> {
    shared().create_database().unwrap()
}

/// One node: its own pool on `db`.
async fn node(db: &PgDatabase<'_>) -> PgJobStore {
    PgJobStore::new(PgDb::connect(&PgOptions::new(db.url())).await.unwrap())
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let db = database();
            suite::$case(&node(&db).await).await;
        }
    )*};
}

cases!(
    cursor_starts_absent_and_advances_by_compare_and_set,
    cursor_compare_and_set_lets_one_of_two_nodes_advance,
    cursor_never_moves_backwards,
    cursors_are_per_consumer,
    enqueue_dedupes_unfinished_jobs,
    claim_takes_due_jobs_of_the_given_kinds_oldest_first,
    a_leased_job_is_claimed_once,
    concurrent_claims_take_each_job_once,
    heartbeat_extends_only_the_holders_live_lease,
    complete_and_fail_need_the_holder,
    fail_retries_with_backoff_then_gives_up,
    an_expired_job_lease_is_taken_over_as_another_attempt,
    a_dead_holders_last_attempt_buries_the_job,
    prune_removes_finished_jobs_only,
    singleton_lease_excludes_others_until_it_expires,
    singleton_lease_is_granted_only_when_the_pass_is_due,
    a_lost_lease_cannot_be_renewed_or_released,
    concurrent_acquirers_get_one_grant,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_race_for_one_lease_one_job_one_cursor() {
    let db = database();
    // Two pools on one database, as two nodes have.
    let (a, b) = (node(&db).await, node(&db).await);
    suite::two_handles_race_for_one_lease_one_job_one_cursor(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_passes_the_whole_jobs_suite() {
    let db = database();
    suite::run(&node(&db).await).await;
}

const NODES: usize = 4;
const ROUNDS: i64 = 40;
const TTL: i64 = 1_000;

/// Runs `op(node index, node)` on every node at once (released together by a barrier) and
/// returns the results in node order.
async fn on_every_node<T, F, Fut>(nodes: &[Arc<PgJobStore>], op: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, Arc<PgJobStore>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let start = Arc::new(Barrier::new(nodes.len()));
    let tasks: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (start, work) = (start.clone(), op(i, n.clone()));
            tokio::spawn(async move {
                start.wait().await;
                work.await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Several nodes race, round after round, for the same lease once it expired, for one
/// newly due job, for a job whose holder died (against that holder finishing it), to
/// enqueue one deduplicated job, and to advance the same cursor from the value they all
/// read: each time exactly one wins, and the stored row is the winner's.
/// The existing rows make every race go through the row locks (not only through a
/// primary key conflict on a first insert).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_racing_for_one_lease_one_job_one_cursor_have_one_winner_each_round() {
    let db = database();
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Arc::new(node(&db).await));
    }
    let first = nodes[0].clone();
    const PERIOD: i64 = 10_000;
    for round in 0..ROUNDS {
        // Every grant of the previous round has expired by now.
        let now = (round + 1) * PERIOD;

        let grants: Vec<String> = on_every_node(&nodes, move |i, n| async move {
            match n.acquire_lease("race", &format!("n{i}"), TTL, now).await {
                Ok(LeaseAttempt::Granted(g)) => {
                    assert_eq!(g.fence, round + 1, "round {round}");
                    Some(g.holder)
                }
                Ok(_) => None,
                Err(e) => panic!("round {round}: {e:?}"),
            }
        })
        .await
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(
            grants.len(),
            1,
            "round {round}: lease granted to {grants:?}"
        );
        let lease = first.lease("race").await.unwrap().unwrap();
        assert_eq!(lease.holder.as_ref(), grants.first(), "round {round}");
        assert_eq!(lease.fence, round + 1, "round {round}");

        // A job every node sees due at once (a kind per round: earlier rounds leave their
        // job queued or running).
        let kind = vec![format!("race-{round}")];
        let id = first
            .enqueue(
                &NewJob {
                    kind: kind[0].clone(),
                    dedupe_key: None,
                    payload: String::new(),
                    run_at_ms: now,
                    max_attempts: 5,
                },
                now,
            )
            .await
            .unwrap()
            .id();
        let claim_race = |at: i64| {
            let kind = kind.clone();
            on_every_node(&nodes, move |i, n| {
                let kind = kind.clone();
                async move { n.claim(&kind, &format!("n{i}"), TTL, at).await.unwrap() }
            })
        };
        let claims: Vec<_> = claim_race(now).await.into_iter().flatten().collect();
        assert_eq!(claims.len(), 1, "round {round}: {claims:?}");
        assert_eq!((claims[0].id, claims[0].attempts), (id, 1));
        // Its holder dies: after the lease, every node tries to take it over.
        let takeovers: Vec<_> = claim_race(now + TTL).await.into_iter().flatten().collect();
        assert_eq!(takeovers.len(), 1, "round {round}: {takeovers:?}");
        assert_eq!((takeovers[0].id, takeovers[0].attempts), (id, 2));
        let stored = first.job(id).await.unwrap().unwrap();
        assert_eq!(stored.holder, takeovers[0].holder);
        assert_eq!((stored.state, stored.attempts), (JobState::Running, 2));
        // At the new lease's expiry its holder finishes (or renews) the job while every
        // other node tries to take it over: the holder's write and a takeover exclude
        // each other.
        let holder = takeovers[0].holder.clone().unwrap();
        let expiry = now + 2 * TTL;
        let finish = Finish::ALL[round as usize % Finish::ALL.len()];
        let won: Vec<String> = on_every_node(&nodes, |i, n| {
            let (kind, holder) = (kind.clone(), holder.clone());
            async move {
                let me = format!("n{i}");
                if me == holder {
                    finish.run(&n, id, &me, expiry).await.then_some(me)
                } else {
                    let claimed = n.claim(&kind, &me, TTL, expiry).await.unwrap();
                    claimed.and_then(|j| j.holder)
                }
            }
        })
        .await
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(won.len(), 1, "round {round} ({finish:?}): {won:?}");
        let stored = first.job(id).await.unwrap().unwrap();
        if won[0] == holder {
            let want = match finish {
                Finish::Complete => JobState::Done,
                Finish::Fail => JobState::Queued,
                Finish::Heartbeat => JobState::Running,
            };
            assert_eq!(stored.state, want, "round {round}");
        } else {
            assert_eq!(stored.holder.as_ref(), Some(&won[0]), "round {round}");
            assert_eq!(stored.attempts, 3, "round {round}");
        }

        // Every node enqueues the same deduplicated job: one creates it, the others get
        // its id.
        let key = format!("dedupe-{round}");
        let enqueued = on_every_node(&nodes, |_, n| {
            let key = key.clone();
            async move {
                let job = NewJob {
                    kind: "race-dedupe".into(),
                    dedupe_key: Some(key),
                    payload: String::new(),
                    run_at_ms: now,
                    max_attempts: 1,
                };
                n.enqueue(&job, now).await.unwrap()
            }
        })
        .await;
        let created = enqueued
            .iter()
            .filter(|e| matches!(e, Enqueued::Created(_)))
            .count();
        assert_eq!(created, 1, "round {round}: {enqueued:?}");
        assert!(
            enqueued.iter().all(|e| e.id() == enqueued[0].id()),
            "round {round}: {enqueued:?}"
        );

        // A new consumer's first advance, then an advance from the value every node read
        // (each node processed up to a different event).
        let consumer = format!("race-{round}");
        for expected in [None, Some(round)] {
            let moved: Vec<i64> = on_every_node(&nodes, |i, n| {
                let consumer = consumer.clone();
                async move {
                    let to = round + i as i64 * 1_000 + i64::from(expected.is_some());
                    n.advance_cursor(&consumer, expected, to, now)
                        .await
                        .unwrap()
                        .then_some(to)
                }
            })
            .await
            .into_iter()
            .flatten()
            .collect();
            assert_eq!(moved.len(), 1, "round {round}: cursor moved to {moved:?}");
            assert_eq!(first.cursor(&consumer).await.unwrap(), Some(moved[0]));
            if expected.is_none() {
                // The next race starts from a value every node reads alike.
                db.psql(&format!(
                    "UPDATE job_cursors SET last_id = {round} WHERE consumer = '{consumer}'"
                ))
                .unwrap();
            }
        }
    }
}

/// What a job's holder does as its lease runs out, racing with a takeover.
#[derive(Debug, Clone, Copy)]
enum Finish {
    Complete,
    Fail,
    /// Just before the expiry (by its clock), which keeps the job from the others.
    Heartbeat,
}

impl Finish {
    const ALL: [Finish; 3] = [Finish::Complete, Finish::Fail, Finish::Heartbeat];

    /// Whether the holder's write took effect.
    async fn run(self, n: &PgJobStore, id: i64, holder: &str, expiry: i64) -> bool {
        match self {
            Finish::Complete => n.complete(id, holder, expiry).await.unwrap(),
            Finish::Fail => matches!(
                n.fail(id, holder, "boom", expiry).await.unwrap(),
                FailOutcome::Retry { .. }
            ),
            Finish::Heartbeat => n.heartbeat(id, holder, TTL, expiry - 1).await.unwrap(),
        }
    }
}
