//! The behaviour every [`JobStore`] backend must show, as named cases: a backend's tests
//! call each case on a fresh store (one test per case), and [`run`] runs them all on one
//! store (each case uses its own names, so they do not see each other's rows).
//!
//! Times are made up (`now_ms` is the caller's), so no case sleeps.
// A suite is test code that backends run from their tests: a failed unwrap is a failed case.
#![allow(clippy::unwrap_used)]

use crate::jobs::{
    retry_delay_ms, Enqueued, FailOutcome, JobState, JobStore, LeaseAttempt, NewJob,
};

const LEASE: i64 = 30_000;

fn job(kind: &str, key: Option<&str>, run_at_ms: i64, max_attempts: u32) -> NewJob {
    NewJob {
        kind: kind.into(),
        dedupe_key: key.map(String::from),
        payload: format!("{{\"kind\":\"{kind}\"}}"),
        run_at_ms,
        max_attempts,
    }
}

fn kinds(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| s.to_string()).collect()
}

/// Runs every case on one store. [`two_handles_race_for_one_lease_one_job_one_cursor`]
/// needs two handles on one database and is run by each backend's tests separately.
pub async fn run(s: &dyn JobStore) {
    cursor_starts_absent_and_advances_by_compare_and_set(s).await;
    cursor_compare_and_set_lets_one_of_two_nodes_advance(s).await;
    cursor_never_moves_backwards(s).await;
    cursors_are_per_consumer(s).await;
    enqueue_dedupes_unfinished_jobs(s).await;
    claim_takes_due_jobs_of_the_given_kinds_oldest_first(s).await;
    a_leased_job_is_claimed_once(s).await;
    concurrent_claims_take_each_job_once(s).await;
    heartbeat_extends_only_the_holders_live_lease(s).await;
    complete_and_fail_need_the_holder(s).await;
    fail_retries_with_backoff_then_gives_up(s).await;
    an_expired_job_lease_is_taken_over_as_another_attempt(s).await;
    a_dead_holders_last_attempt_buries_the_job(s).await;
    prune_removes_finished_jobs_only(s).await;
    singleton_lease_excludes_others_until_it_expires(s).await;
    singleton_lease_is_granted_only_when_the_pass_is_due(s).await;
    a_lost_lease_cannot_be_renewed_or_released(s).await;
    concurrent_acquirers_get_one_grant(s).await;
    ping_answers(s).await;
}

/// The readiness probe's round trip succeeds on a working database, again and again.
pub async fn ping_answers(s: &dyn JobStore) {
    for _ in 0..3 {
        s.ping().await.expect("ping");
    }
}

pub async fn cursor_starts_absent_and_advances_by_compare_and_set(s: &dyn JobStore) {
    let c = "cas-basic";
    assert_eq!(s.cursor(c).await.unwrap(), None);
    // The first advance expects no cursor.
    assert!(!s.advance_cursor(c, Some(0), 5, 1).await.unwrap());
    assert!(s.advance_cursor(c, None, 5, 1).await.unwrap());
    assert_eq!(s.cursor(c).await.unwrap(), Some(5));
    // A stale expectation does not move it.
    assert!(!s.advance_cursor(c, None, 9, 2).await.unwrap());
    assert!(!s.advance_cursor(c, Some(4), 9, 2).await.unwrap());
    assert_eq!(s.cursor(c).await.unwrap(), Some(5));
    assert!(s.advance_cursor(c, Some(5), 9, 2).await.unwrap());
    // Staying put is allowed (nothing new was processed).
    assert!(s.advance_cursor(c, Some(9), 9, 3).await.unwrap());
    assert_eq!(s.cursor(c).await.unwrap(), Some(9));
}

pub async fn cursor_compare_and_set_lets_one_of_two_nodes_advance(s: &dyn JobStore) {
    let c = "cas-race";
    assert!(s.advance_cursor(c, None, 10, 1).await.unwrap());
    // Two nodes read 10 and both processed up to different events.
    let (a, b) = tokio::join!(
        s.advance_cursor(c, Some(10), 20, 2),
        s.advance_cursor(c, Some(10), 30, 2)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a ^ b, "exactly one advance wins: {a} {b}");
    let now = s.cursor(c).await.unwrap();
    assert_eq!(now, Some(if a { 20 } else { 30 }));
}

pub async fn cursor_never_moves_backwards(s: &dyn JobStore) {
    let c = "cas-back";
    assert!(s.advance_cursor(c, None, 50, 1).await.unwrap());
    assert!(!s.advance_cursor(c, Some(50), 49, 2).await.unwrap());
    assert_eq!(s.cursor(c).await.unwrap(), Some(50));
}

pub async fn cursors_are_per_consumer(s: &dyn JobStore) {
    assert!(s.advance_cursor("per-a", None, 3, 1).await.unwrap());
    assert!(s.advance_cursor("per-b", None, 7, 1).await.unwrap());
    assert_eq!(s.cursor("per-a").await.unwrap(), Some(3));
    assert_eq!(s.cursor("per-b").await.unwrap(), Some(7));
}

pub async fn enqueue_dedupes_unfinished_jobs(s: &dyn JobStore) {
    let k = kinds(&["dedupe"]);
    let first = s
        .enqueue(&job("dedupe", Some("d-1"), 0, 3), 1)
        .await
        .unwrap();
    let Enqueued::Created(id) = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        s.enqueue(&job("dedupe", Some("d-1"), 0, 3), 2)
            .await
            .unwrap(),
        Enqueued::Duplicate(id)
    );
    // Without a key, or with another, jobs are separate.
    let other = s
        .enqueue(&job("dedupe", Some("d-2"), 0, 3), 2)
        .await
        .unwrap();
    let free = s.enqueue(&job("dedupe", None, 0, 3), 2).await.unwrap();
    assert!(matches!(other, Enqueued::Created(o) if o != id));
    assert!(matches!(free, Enqueued::Created(f) if f != id && f != other.id()));
    // Still a duplicate while running.
    let claimed = s.claim(&k, "node-a", LEASE, 10).await.unwrap().unwrap();
    assert_eq!(claimed.id, id);
    assert_eq!(
        s.enqueue(&job("dedupe", Some("d-1"), 0, 3), 11)
            .await
            .unwrap(),
        Enqueued::Duplicate(id)
    );
    // Once finished, the key may be queued again.
    assert!(s.complete(id, "node-a", 12).await.unwrap());
    let again = s
        .enqueue(&job("dedupe", Some("d-1"), 0, 3), 13)
        .await
        .unwrap();
    assert!(matches!(again, Enqueued::Created(n) if n != id));
    let stored = s.job(again.id()).await.unwrap().unwrap();
    assert_eq!(stored.state, JobState::Queued);
    assert_eq!(stored.dedupe_key.as_deref(), Some("d-1"));
    assert_eq!(stored.payload, "{\"kind\":\"dedupe\"}");
    assert_eq!(stored.created_ms, 13);
    assert_eq!(stored.attempts, 0);
}

pub async fn claim_takes_due_jobs_of_the_given_kinds_oldest_first(s: &dyn JobStore) {
    let late = s
        .enqueue(&job("order", None, 500, 1), 1)
        .await
        .unwrap()
        .id();
    let second = s
        .enqueue(&job("order", None, 200, 1), 1)
        .await
        .unwrap()
        .id();
    let first = s
        .enqueue(&job("order", None, 100, 1), 1)
        .await
        .unwrap()
        .id();
    let other = s
        .enqueue(&job("order-other", None, 0, 1), 1)
        .await
        .unwrap()
        .id();
    let k = kinds(&["order"]);
    assert_eq!(
        s.claim(&k, "n", LEASE, 50).await.unwrap(),
        None,
        "nothing due"
    );
    assert_eq!(s.claim(&[], "n", LEASE, 1_000).await.unwrap(), None);
    let a = s.claim(&k, "n", LEASE, 300).await.unwrap().unwrap();
    assert_eq!(a.id, first);
    assert_eq!(a.state, JobState::Running);
    assert_eq!(a.holder.as_deref(), Some("n"));
    assert_eq!(a.lease_expires_ms, Some(300 + LEASE));
    assert_eq!(a.attempts, 1);
    assert_eq!(
        s.claim(&k, "n", LEASE, 300).await.unwrap().unwrap().id,
        second
    );
    assert_eq!(
        s.claim(&k, "n", LEASE, 300).await.unwrap(),
        None,
        "late is not due"
    );
    assert_eq!(
        s.claim(&k, "n", LEASE, 500).await.unwrap().unwrap().id,
        late
    );
    let both = kinds(&["order", "order-other"]);
    assert_eq!(
        s.claim(&both, "n", LEASE, 500).await.unwrap().unwrap().id,
        other
    );
}

pub async fn a_leased_job_is_claimed_once(s: &dyn JobStore) {
    let k = kinds(&["once"]);
    let id = s.enqueue(&job("once", None, 0, 3), 1).await.unwrap().id();
    assert_eq!(s.claim(&k, "a", LEASE, 10).await.unwrap().unwrap().id, id);
    assert_eq!(s.claim(&k, "b", LEASE, 11).await.unwrap(), None);
    assert_eq!(s.claim(&k, "a", LEASE, 10 + LEASE - 1).await.unwrap(), None);
}

pub async fn concurrent_claims_take_each_job_once(s: &dyn JobStore) {
    let k = kinds(&["race"]);
    for _ in 0..6 {
        s.enqueue(&job("race", None, 0, 1), 1).await.unwrap();
    }
    let claim_all = |holder: &'static str| {
        let k = k.clone();
        async move {
            let mut got = Vec::new();
            while let Some(j) = s.claim(&k, holder, LEASE, 5).await.unwrap() {
                got.push(j.id);
            }
            got
        }
    };
    let (a, b) = tokio::join!(claim_all("a"), claim_all("b"));
    let mut all: Vec<i64> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    let len = all.len();
    all.dedup();
    assert_eq!(all.len(), len, "a job was claimed twice: {a:?} {b:?}");
    assert_eq!(len, 6);
}

pub async fn heartbeat_extends_only_the_holders_live_lease(s: &dyn JobStore) {
    let k = kinds(&["beat"]);
    let id = s.enqueue(&job("beat", None, 0, 3), 1).await.unwrap().id();
    s.claim(&k, "a", 1_000, 100).await.unwrap().unwrap();
    assert!(!s.heartbeat(id, "b", 1_000, 500).await.unwrap());
    assert!(s.heartbeat(id, "a", 1_000, 900).await.unwrap());
    assert_eq!(
        s.job(id).await.unwrap().unwrap().lease_expires_ms,
        Some(1_900)
    );
    // Not taken over at 1 500: the extension held.
    assert_eq!(s.claim(&k, "b", 1_000, 1_500).await.unwrap(), None);
    // Expired: the holder must stop; a heartbeat does not revive it.
    assert!(!s.heartbeat(id, "a", 1_000, 1_900).await.unwrap());
    assert!(!s.heartbeat(id + 1_000_000, "a", 1_000, 1).await.unwrap());
}

pub async fn complete_and_fail_need_the_holder(s: &dyn JobStore) {
    let k = kinds(&["holder"]);
    let id = s.enqueue(&job("holder", None, 0, 3), 1).await.unwrap().id();
    // Not claimed yet.
    assert!(!s.complete(id, "a", 2).await.unwrap());
    assert_eq!(s.fail(id, "a", "x", 2).await.unwrap(), FailOutcome::NotHeld);
    s.claim(&k, "a", LEASE, 3).await.unwrap().unwrap();
    assert!(!s.complete(id, "b", 4).await.unwrap());
    assert_eq!(s.fail(id, "b", "x", 4).await.unwrap(), FailOutcome::NotHeld);
    assert!(s.complete(id, "a", 5).await.unwrap());
    let done = s.job(id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Done);
    assert_eq!(done.finished_ms, Some(5));
    assert_eq!(done.holder, None);
    // Finished: neither again.
    assert!(!s.complete(id, "a", 6).await.unwrap());
    assert_eq!(s.fail(id, "a", "x", 6).await.unwrap(), FailOutcome::NotHeld);
    assert_eq!(s.job(id + 1_000_000).await.unwrap(), None);
}

pub async fn fail_retries_with_backoff_then_gives_up(s: &dyn JobStore) {
    let k = kinds(&["retry"]);
    let id = s.enqueue(&job("retry", None, 0, 3), 1).await.unwrap().id();
    let mut now = 10;
    for attempt in 1..=2u32 {
        let j = s.claim(&k, "a", LEASE, now).await.unwrap().unwrap();
        assert_eq!(j.attempts, attempt);
        let at = now + retry_delay_ms(attempt);
        assert_eq!(
            s.fail(id, "a", &format!("boom {attempt}"), now)
                .await
                .unwrap(),
            FailOutcome::Retry { at_ms: at }
        );
        let j = s.job(id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Queued);
        assert_eq!(j.last_error, Some(format!("boom {attempt}")));
        assert_eq!(j.holder, None);
        // Not before its backoff.
        assert_eq!(s.claim(&k, "a", LEASE, at - 1).await.unwrap(), None);
        now = at;
    }
    assert!(retry_delay_ms(2) > retry_delay_ms(1));
    s.claim(&k, "a", LEASE, now).await.unwrap().unwrap();
    assert_eq!(
        s.fail(id, "a", "last", now).await.unwrap(),
        FailOutcome::Dead
    );
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Dead);
    assert_eq!(j.attempts, 3);
    assert_eq!(j.finished_ms, Some(now));
    assert_eq!(s.claim(&k, "a", LEASE, i64::MAX / 2).await.unwrap(), None);
}

pub async fn an_expired_job_lease_is_taken_over_as_another_attempt(s: &dyn JobStore) {
    let k = kinds(&["takeover"]);
    let id = s
        .enqueue(&job("takeover", None, 0, 3), 1)
        .await
        .unwrap()
        .id();
    s.claim(&k, "dead-node", 1_000, 10).await.unwrap().unwrap();
    // Live: nobody else gets it.
    assert_eq!(s.claim(&k, "b", 1_000, 1_009).await.unwrap(), None);
    // Its holder stopped heartbeating: at expiry, b takes it over.
    let j = s.claim(&k, "b", 1_000, 1_010).await.unwrap().unwrap();
    assert_eq!(j.id, id);
    assert_eq!(j.holder.as_deref(), Some("b"));
    assert_eq!(j.attempts, 2);
    // The old holder, back from a pause, can neither extend nor finish it.
    assert!(!s.heartbeat(id, "dead-node", 1_000, 1_011).await.unwrap());
    assert!(!s.complete(id, "dead-node", 1_011).await.unwrap());
    assert!(s.complete(id, "b", 1_012).await.unwrap());
}

pub async fn a_dead_holders_last_attempt_buries_the_job(s: &dyn JobStore) {
    let k = kinds(&["bury"]);
    let id = s.enqueue(&job("bury", None, 0, 1), 1).await.unwrap().id();
    let next = s.enqueue(&job("bury", None, 5, 1), 1).await.unwrap().id();
    s.claim(&k, "dead-node", 100, 10).await.unwrap().unwrap();
    s.claim(&k, "dead-node", 100, 10).await.unwrap().unwrap();
    // Both leases expire; both were the last attempt: buried, nothing claimed.
    assert_eq!(s.claim(&k, "b", 100, 200).await.unwrap(), None);
    for id in [id, next] {
        let j = s.job(id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Dead);
        assert_eq!(j.finished_ms, Some(200));
        assert!(j.last_error.unwrap().contains("dead-node"));
    }
}

pub async fn prune_removes_finished_jobs_only(s: &dyn JobStore) {
    // Keep to ids of its own: prune is global, so earlier cases' finished jobs are fair game,
    // but nothing unfinished may go.
    let k = kinds(&["prune"]);
    let done = s.enqueue(&job("prune", None, 0, 1), 1).await.unwrap().id();
    s.claim(&k, "a", LEASE, 2).await.unwrap().unwrap();
    assert!(s.complete(done, "a", 3).await.unwrap());
    let dead = s.enqueue(&job("prune", None, 0, 1), 1).await.unwrap().id();
    s.claim(&k, "a", LEASE, 4).await.unwrap().unwrap();
    assert_eq!(s.fail(dead, "a", "x", 5).await.unwrap(), FailOutcome::Dead);
    let queued = s
        .enqueue(&job("prune", None, 1_000, 1), 1)
        .await
        .unwrap()
        .id();
    let running = s
        .enqueue(&job("prune-run", None, 0, 1), 1)
        .await
        .unwrap()
        .id();
    s.claim(&kinds(&["prune-run"]), "a", LEASE, 6)
        .await
        .unwrap()
        .unwrap();
    // Finished at 3 and 5: only those before 4 go first.
    assert!(s.prune_jobs(4).await.unwrap() >= 1);
    assert_eq!(s.job(done).await.unwrap(), None);
    assert!(s.job(dead).await.unwrap().is_some());
    s.prune_jobs(i64::MAX).await.unwrap();
    assert_eq!(s.job(dead).await.unwrap(), None);
    assert!(s.job(queued).await.unwrap().is_some());
    assert!(s.job(running).await.unwrap().is_some());
}

pub async fn singleton_lease_excludes_others_until_it_expires(s: &dyn JobStore) {
    let name = "lease-excl";
    assert_eq!(s.lease(name).await.unwrap(), None);
    let LeaseAttempt::Granted(g) = s.acquire_lease(name, "a", 1_000, 100).await.unwrap() else {
        panic!("a free lease is granted")
    };
    assert_eq!((g.holder.as_str(), g.expires_ms), ("a", 1_100));
    assert_eq!(
        s.acquire_lease(name, "b", 1_000, 500).await.unwrap(),
        LeaseAttempt::Held {
            holder: "a".into(),
            expires_ms: 1_100
        }
    );
    // Renewal keeps it from b.
    assert!(s
        .renew_lease(name, "a", g.fence, 1_000, 1_000)
        .await
        .unwrap());
    assert!(matches!(
        s.acquire_lease(name, "b", 1_000, 1_500).await.unwrap(),
        LeaseAttempt::Held {
            expires_ms: 2_000,
            ..
        }
    ));
    // Its holder died (no renewal): at expiry b gets it, with a greater fence.
    let LeaseAttempt::Granted(b) = s.acquire_lease(name, "b", 1_000, 2_000).await.unwrap() else {
        panic!("an expired lease is taken over")
    };
    assert!(b.fence > g.fence);
    let rec = s.lease(name).await.unwrap().unwrap();
    assert_eq!(rec.holder.as_deref(), Some("b"));
    assert_eq!(rec.expires_ms, Some(3_000));
    assert_eq!(rec.fence, b.fence);
}

pub async fn singleton_lease_is_granted_only_when_the_pass_is_due(s: &dyn JobStore) {
    let name = "lease-due";
    let LeaseAttempt::Granted(a) = s.acquire_lease(name, "a", 1_000, 10).await.unwrap() else {
        panic!("never used: due at once")
    };
    // The pass ran; the next one is due at 5 000.
    assert!(s
        .release_lease(name, "a", a.fence, 5_000, 20)
        .await
        .unwrap());
    let rec = s.lease(name).await.unwrap().unwrap();
    assert_eq!(
        (rec.holder, rec.expires_ms, rec.next_due_ms),
        (None, None, 5_000)
    );
    // Nobody runs it before then, not even the last holder.
    for holder in ["a", "b"] {
        assert_eq!(
            s.acquire_lease(name, holder, 1_000, 4_999).await.unwrap(),
            LeaseAttempt::NotDue { due_ms: 5_000 }
        );
    }
    let LeaseAttempt::Granted(b) = s.acquire_lease(name, "b", 1_000, 5_000).await.unwrap() else {
        panic!("due")
    };
    assert!(b.fence > a.fence);
    // The holder may take its own live lease again (a new grant).
    let LeaseAttempt::Granted(b2) = s.acquire_lease(name, "b", 1_000, 5_100).await.unwrap() else {
        panic!("own lease")
    };
    assert!(b2.fence > b.fence);
    assert!(!s
        .renew_lease(name, "b", b.fence, 1_000, 5_200)
        .await
        .unwrap());
    assert!(s
        .release_lease(name, "b", b2.fence, 9_000, 5_300)
        .await
        .unwrap());
}

pub async fn a_lost_lease_cannot_be_renewed_or_released(s: &dyn JobStore) {
    let name = "lease-lost";
    let LeaseAttempt::Granted(a) = s.acquire_lease(name, "a", 1_000, 0).await.unwrap() else {
        panic!("free")
    };
    // Expired but not yet taken: renewal refused (the holder must stop), release allowed
    // (its pass finished and nobody else started one).
    assert!(!s
        .renew_lease(name, "a", a.fence, 1_000, 1_000)
        .await
        .unwrap());
    let LeaseAttempt::Granted(b) = s.acquire_lease(name, "b", 1_000, 1_000).await.unwrap() else {
        panic!("expired")
    };
    // a, back from a pause, must not disturb b's grant.
    assert!(!s
        .renew_lease(name, "a", a.fence, 1_000, 1_001)
        .await
        .unwrap());
    assert!(!s
        .release_lease(name, "a", a.fence, 99_999, 1_001)
        .await
        .unwrap());
    let rec = s.lease(name).await.unwrap().unwrap();
    assert_eq!(rec.holder.as_deref(), Some("b"));
    assert_eq!(rec.next_due_ms, 0);
    assert!(s
        .renew_lease(name, "b", b.fence, 1_000, 1_500)
        .await
        .unwrap());
    assert!(s
        .release_lease(name, "b", b.fence, 10_000, 1_600)
        .await
        .unwrap());
    // Released: nothing left to renew.
    assert!(!s
        .renew_lease(name, "b", b.fence, 1_000, 1_700)
        .await
        .unwrap());

    let name = "lease-expired-release";
    let LeaseAttempt::Granted(c) = s.acquire_lease(name, "c", 100, 0).await.unwrap() else {
        panic!("free")
    };
    assert!(s
        .release_lease(name, "c", c.fence, 7_000, 500)
        .await
        .unwrap());
    assert_eq!(s.lease(name).await.unwrap().unwrap().next_due_ms, 7_000);
}

pub async fn concurrent_acquirers_get_one_grant(s: &dyn JobStore) {
    let name = "lease-race";
    let (a, b, c) = tokio::join!(
        s.acquire_lease(name, "a", 1_000, 10),
        s.acquire_lease(name, "b", 1_000, 10),
        s.acquire_lease(name, "c", 1_000, 10)
    );
    let granted: Vec<_> = [a.unwrap(), b.unwrap(), c.unwrap()]
        .into_iter()
        .filter_map(|r| match r {
            LeaseAttempt::Granted(g) => Some(g.holder),
            _ => None,
        })
        .collect();
    assert_eq!(granted.len(), 1, "{granted:?}");
    let rec = s.lease(name).await.unwrap().unwrap();
    assert_eq!(rec.holder.as_ref(), granted.first());
}

/// `a` and `b` are two handles on one database (two processes' connections, two nodes'
/// pools): their concurrent acquisitions, claims and cursor advances serialize.
pub async fn two_handles_race_for_one_lease_one_job_one_cursor(a: &dyn JobStore, b: &dyn JobStore) {
    for round in 0..5 {
        let name = format!("two-handles-{round}");
        let (x, y) = tokio::join!(
            a.acquire_lease(&name, "a", 1_000, 10),
            b.acquire_lease(&name, "b", 1_000, 10)
        );
        let granted = [x.unwrap(), y.unwrap()]
            .iter()
            .filter(|r| matches!(r, LeaseAttempt::Granted(_)))
            .count();
        assert_eq!(granted, 1, "round {round}");

        let kind = format!("two-handles-{round}");
        let id = a.enqueue(&job(&kind, None, 0, 1), 1).await.unwrap().id();
        let k = kinds(&[&kind]);
        let (x, y) = tokio::join!(a.claim(&k, "a", LEASE, 5), b.claim(&k, "b", LEASE, 5));
        let claimed: Vec<_> = [x.unwrap(), y.unwrap()].into_iter().flatten().collect();
        assert_eq!(claimed.len(), 1, "round {round}: {claimed:?}");
        assert_eq!(claimed[0].id, id);

        let consumer = format!("two-handles-{round}");
        let (x, y) = tokio::join!(
            a.advance_cursor(&consumer, None, 1, 1),
            b.advance_cursor(&consumer, None, 2, 1)
        );
        assert!(x.unwrap() ^ y.unwrap(), "round {round}");
    }
}
