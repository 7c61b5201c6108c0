//! [`JobStore`] for PostgreSQL (tables from migration 0010). Several nodes share the
//! database, so each method is one READ COMMITTED transaction that locks the row(s) it
//! decides about, makes the decision with the shared functions of [`crate::jobs`] (the
//! same ones SQLite calls), then writes:
//! - a claim reads its candidates `FOR UPDATE SKIP LOCKED`: a job another node is
//!   claiming right now is skipped, never waited for nor taken twice;
//! - heartbeat, complete, fail, renew and release lock their one row `FOR UPDATE`, so the
//!   row they decide on is the latest committed one and nobody changes it before the write;
//! - acquiring a lease first makes sure its row exists (`ON CONFLICT DO NOTHING`, which
//!   waits for another node inserting it), so there is always a row to lock; the
//!   transaction is committed only when the lease is granted, so a refused first attempt
//!   leaves no row behind;
//! - a first cursor advance (`expected` is `None`) is an insert that only one node wins;
//!   later ones lock the cursor's row;
//! - enqueue relies on the partial unique index `jobs_dedupe` (one unfinished job per key).
//!
//! A transaction that loses a deadlock or a serialization check is retried whole
//! ([`PgDb::retry`]).

use tokio_postgres::{GenericClient, Row};

use super::PgDb;
use crate::jobs::{
    after_failure, claim_decision, cursor_may_advance, holds_grant, holds_live_grant,
    holds_live_job, lease_decision, may_finish_job, ClaimDecision, Enqueued, FailOutcome,
    JobRecord, JobState, JobStore, LeaseAttempt, LeaseRecord, NewJob,
};
use crate::{MetaError, Result};

/// Candidates a claim locks at once (more than one, in case the oldest are to be buried).
const CLAIM_CANDIDATES: i64 = 16;

/// Times an enqueue retries when the job holding its dedupe key finished between the
/// conflicting insert and the look-up of that job's id.
const ENQUEUE_ROUNDS: usize = 8;

const JOB_COLUMNS: &str = "id, kind, dedupe_key, payload, state, run_at_ms, attempts, \
     max_attempts, holder, lease_expires_ms, last_error, created_ms, finished_ms";

const LEASE_COLUMNS: &str = "name, holder, expires_ms, next_due_ms, fence";

/// The PostgreSQL [`JobStore`] on the shared pool.
#[derive(Clone, Debug)]
pub struct PgJobStore {
    db: PgDb,
}

impl PgJobStore {
    pub fn new(db: PgDb) -> Self {
        PgJobStore { db }
    }
}

fn db_error(what: String) -> MetaError {
    MetaError::Database(what.into())
}

fn count(r: &Row, idx: usize, what: &str) -> Result<u32> {
    let v: i64 = r.try_get(idx)?;
    u32::try_from(v).map_err(|_| db_error(format!("job {what} out of range: {v}")))
}

fn job_of(r: &Row) -> Result<JobRecord> {
    let state: String = r.try_get(4)?;
    let state =
        JobState::parse(&state).ok_or_else(|| db_error(format!("unknown job state {state:?}")))?;
    Ok(JobRecord {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        dedupe_key: r.try_get(2)?,
        payload: r.try_get(3)?,
        state,
        run_at_ms: r.try_get(5)?,
        attempts: count(r, 6, "attempts")?,
        max_attempts: count(r, 7, "max_attempts")?,
        holder: r.try_get(8)?,
        lease_expires_ms: r.try_get(9)?,
        last_error: r.try_get(10)?,
        created_ms: r.try_get(11)?,
        finished_ms: r.try_get(12)?,
    })
}

fn lease_of(r: &Row) -> Result<LeaseRecord> {
    Ok(LeaseRecord {
        name: r.try_get(0)?,
        holder: r.try_get(1)?,
        expires_ms: r.try_get(2)?,
        next_due_ms: r.try_get(3)?,
        fence: r.try_get(4)?,
    })
}

/// Job `id`, locked `FOR UPDATE` when `lock` (inside a transaction).
async fn read_job<C: GenericClient>(c: &C, id: i64, lock: bool) -> Result<Option<JobRecord>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    c.query_opt(&sql, &[&id])
        .await?
        .map(|r| job_of(&r))
        .transpose()
}

/// Lease `name`, locked `FOR UPDATE` when `lock` (inside a transaction).
async fn read_lease<C: GenericClient>(
    c: &C,
    name: &str,
    lock: bool,
) -> Result<Option<LeaseRecord>> {
    let sql = format!(
        "SELECT {LEASE_COLUMNS} FROM job_leases WHERE name = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    c.query_opt(&sql, &[&name])
        .await?
        .map(|r| lease_of(&r))
        .transpose()
}

#[async_trait::async_trait]
impl JobStore for PgJobStore {
    async fn cursor(&self, consumer: &str) -> Result<Option<i64>> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                "SELECT last_id FROM job_cursors WHERE consumer = $1",
                &[&consumer],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn advance_cursor(
        &self,
        consumer: &str,
        expected: Option<i64>,
        to: i64,
        now_ms: i64,
    ) -> Result<bool> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                if expected.is_none() {
                    // The cursor's first value: of the nodes inserting it, one wins (the
                    // others wait for it, then see the row and insert nothing).
                    let inserted = tx
                        .execute(
                            "INSERT INTO job_cursors (consumer, last_id, updated_ms)
                             VALUES ($1, $2, $3) ON CONFLICT (consumer) DO NOTHING",
                            &[&consumer, &to, &now_ms],
                        )
                        .await?;
                    tx.commit().await?;
                    return Ok(inserted == 1 && cursor_may_advance(None, expected, to));
                }
                let current: Option<i64> = tx
                    .query_opt(
                        "SELECT last_id FROM job_cursors WHERE consumer = $1 FOR UPDATE",
                        &[&consumer],
                    )
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                if !cursor_may_advance(current, expected, to) {
                    tx.rollback().await?;
                    return Ok(false);
                }
                tx.execute(
                    "UPDATE job_cursors SET last_id = $2, updated_ms = $3 WHERE consumer = $1",
                    &[&consumer, &to, &now_ms],
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    async fn enqueue(&self, job: &NewJob, now_ms: i64) -> Result<Enqueued> {
        let max_attempts = i64::from(job.max_attempts.max(1));
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                for _ in 0..ENQUEUE_ROUNDS {
                    // A job with the same key being enqueued by another node makes this
                    // insert wait for it, then do nothing.
                    let row = tx
                        .query_opt(
                            "INSERT INTO jobs (kind, dedupe_key, payload, state, run_at_ms,
                                               max_attempts, created_ms)
                             VALUES ($1, $2, $3, $4, $5, $6, $7)
                             ON CONFLICT (dedupe_key)
                                 WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running')
                                 DO NOTHING
                             RETURNING id",
                            &[
                                &job.kind,
                                &job.dedupe_key,
                                &job.payload,
                                &JobState::Queued.as_str(),
                                &job.run_at_ms,
                                &max_attempts,
                                &now_ms,
                            ],
                        )
                        .await?;
                    if let Some(r) = row {
                        let id = r.try_get(0)?;
                        tx.commit().await?;
                        return Ok(Enqueued::Created(id));
                    }
                    // Only a dedupe key conflicts. Its job may have finished since the
                    // insert looked; then the next round inserts.
                    let existing = tx
                        .query_opt(
                            "SELECT id FROM jobs WHERE dedupe_key = $1
                               AND state IN ('queued', 'running')",
                            &[&job.dedupe_key],
                        )
                        .await?;
                    if let Some(r) = existing {
                        let id = r.try_get(0)?;
                        tx.commit().await?;
                        return Ok(Enqueued::Duplicate(id));
                    }
                }
                Err(db_error(format!(
                    "enqueue of dedupe key {:?} kept conflicting with finished jobs",
                    job.dedupe_key
                )))
            })
            .await
    }

    async fn claim(
        &self,
        kinds: &[String],
        holder: &str,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Option<JobRecord>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
        let kinds = &kinds;
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                // Unfinished jobs of these kinds that may be due and that no other node is
                // claiming right now; the decision is claim_decision.
                let sql = format!(
                    "SELECT {JOB_COLUMNS} FROM jobs
                     WHERE state IN ('queued', 'running') AND kind = ANY($1)
                       AND run_at_ms <= $2 AND (state = 'queued' OR lease_expires_ms <= $2)
                     ORDER BY run_at_ms, id LIMIT $3
                     FOR UPDATE SKIP LOCKED"
                );
                let candidates = tx.query(&sql, &[kinds, &now_ms, &CLAIM_CANDIDATES]).await?;
                let mut claimed = None;
                for row in &candidates {
                    let job = job_of(row)?;
                    match claim_decision(&job, now_ms) {
                        ClaimDecision::Skip => {}
                        ClaimDecision::Bury(why) => {
                            tx.execute(
                                "UPDATE jobs SET state = $2, holder = NULL,
                                                 lease_expires_ms = NULL, last_error = $3,
                                                 finished_ms = $4
                                 WHERE id = $1",
                                &[&job.id, &JobState::Dead.as_str(), &why, &now_ms],
                            )
                            .await?;
                        }
                        ClaimDecision::Claim => {
                            let row = tx
                                .query_one(
                                    &format!(
                                        "UPDATE jobs SET state = $2, holder = $3,
                                                         lease_expires_ms = $4,
                                                         attempts = attempts + 1
                                         WHERE id = $1 RETURNING {JOB_COLUMNS}"
                                    ),
                                    &[
                                        &job.id,
                                        &JobState::Running.as_str(),
                                        &holder,
                                        &now_ms.saturating_add(lease_ms),
                                    ],
                                )
                                .await?;
                            claimed = Some(job_of(&row)?);
                            break;
                        }
                    }
                }
                tx.commit().await?;
                Ok(claimed)
            })
            .await
    }

    async fn heartbeat(&self, id: i64, holder: &str, lease_ms: i64, now_ms: i64) -> Result<bool> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let live = read_job(&*tx, id, true)
                    .await?
                    .is_some_and(|job| holds_live_job(&job, holder, now_ms));
                if !live {
                    tx.rollback().await?;
                    return Ok(false);
                }
                tx.execute(
                    "UPDATE jobs SET lease_expires_ms = $2 WHERE id = $1",
                    &[&id, &now_ms.saturating_add(lease_ms)],
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    async fn complete(&self, id: i64, holder: &str, now_ms: i64) -> Result<bool> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let held = read_job(&*tx, id, true)
                    .await?
                    .is_some_and(|job| may_finish_job(&job, holder));
                if !held {
                    tx.rollback().await?;
                    return Ok(false);
                }
                tx.execute(
                    "UPDATE jobs SET state = $2, holder = NULL, lease_expires_ms = NULL,
                                     finished_ms = $3
                     WHERE id = $1",
                    &[&id, &JobState::Done.as_str(), &now_ms],
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    async fn fail(&self, id: i64, holder: &str, error: &str, now_ms: i64) -> Result<FailOutcome> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let job = match read_job(&*tx, id, true).await? {
                    Some(job) if may_finish_job(&job, holder) => job,
                    _ => {
                        tx.rollback().await?;
                        return Ok(FailOutcome::NotHeld);
                    }
                };
                let outcome = after_failure(&job, now_ms);
                let (state, run_at, finished) = match outcome {
                    FailOutcome::Retry { at_ms } => (JobState::Queued, at_ms, None),
                    _ => (JobState::Dead, job.run_at_ms, Some(now_ms)),
                };
                tx.execute(
                    "UPDATE jobs SET state = $2, run_at_ms = $3, holder = NULL,
                                     lease_expires_ms = NULL, last_error = $4, finished_ms = $5
                     WHERE id = $1",
                    &[&id, &state.as_str(), &run_at, &error, &finished],
                )
                .await?;
                tx.commit().await?;
                Ok(outcome)
            })
            .await
    }

    async fn job(&self, id: i64) -> Result<Option<JobRecord>> {
        let client = self.db.client().await?;
        read_job(&**client, id, false).await
    }

    async fn prune_jobs(&self, before_ms: i64) -> Result<usize> {
        let client = self.db.client().await?;
        let n = client
            .execute(
                "DELETE FROM jobs WHERE state IN ('done', 'dead') AND finished_ms < $1",
                &[&before_ms],
            )
            .await?;
        usize::try_from(n).map_err(|_| db_error(format!("pruned {n} jobs")))
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<LeaseAttempt> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                // A row to lock even on first use: a never-used lease's row (no holder,
                // due at 0, fence 0) decides like no row. Another node inserting it at the
                // same time makes this wait for that node's transaction.
                let inserted = tx
                    .execute(
                        "INSERT INTO job_leases (name, updated_ms) VALUES ($1, $2)
                         ON CONFLICT (name) DO NOTHING",
                        &[&name, &now_ms],
                    )
                    .await?;
                let current = if inserted == 1 {
                    None
                } else {
                    read_lease(&*tx, name, true).await?
                };
                let attempt = lease_decision(name, current.as_ref(), holder, ttl_ms, now_ms);
                let LeaseAttempt::Granted(g) = &attempt else {
                    // Nothing granted, nothing stored (not even a first row).
                    tx.rollback().await?;
                    return Ok(attempt);
                };
                tx.execute(
                    "UPDATE job_leases SET holder = $2, expires_ms = $3, fence = $4,
                                           updated_ms = $5
                     WHERE name = $1",
                    &[&g.name, &g.holder, &g.expires_ms, &g.fence, &now_ms],
                )
                .await?;
                tx.commit().await?;
                Ok(attempt)
            })
            .await
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        fence: i64,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<bool> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let current = read_lease(&*tx, name, true).await?;
                if !holds_live_grant(current.as_ref(), holder, fence, now_ms) {
                    tx.rollback().await?;
                    return Ok(false);
                }
                tx.execute(
                    "UPDATE job_leases SET expires_ms = $2, updated_ms = $3 WHERE name = $1",
                    &[&name, &now_ms.saturating_add(ttl_ms), &now_ms],
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    async fn release_lease(
        &self,
        name: &str,
        holder: &str,
        fence: i64,
        next_due_ms: i64,
        now_ms: i64,
    ) -> Result<bool> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let current = read_lease(&*tx, name, true).await?;
                if !holds_grant(current.as_ref(), holder, fence) {
                    tx.rollback().await?;
                    return Ok(false);
                }
                tx.execute(
                    "UPDATE job_leases SET holder = NULL, expires_ms = NULL, next_due_ms = $2,
                                           updated_ms = $3
                     WHERE name = $1",
                    &[&name, &next_due_ms, &now_ms],
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    async fn lease(&self, name: &str) -> Result<Option<LeaseRecord>> {
        let client = self.db.client().await?;
        read_lease(&**client, name, false).await
    }

    async fn ping(&self) -> Result<()> {
        let client = self.db.client().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok(())
    }
}
