//! [`JobStore`] for SQLite. Each method is one `BEGIN IMMEDIATE` transaction on the writer
//! connection, which serializes it with every other writer (also other processes on the
//! same file): the row(s) read, the decision made in Rust ([`crate::jobs`]) and the write
//! cannot interleave with another node's.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::SqliteMetaStore;
use crate::jobs::{
    after_failure, claim_decision, cursor_may_advance, holds_grant, holds_live_grant,
    holds_live_job, lease_decision, may_finish_job, ClaimDecision, Enqueued, FailOutcome,
    JobRecord, JobState, JobStore, LeaseAttempt, LeaseRecord, NewJob,
};
use crate::Result;

/// Candidates a claim reads at once (more than one, in case the oldest are to be buried).
const CLAIM_CANDIDATES: usize = 16;

const JOB_COLUMNS: &str = "id, kind, dedupe_key, payload, state, run_at_ms, attempts, \
     max_attempts, holder, lease_expires_ms, last_error, created_ms, finished_ms";

fn immediate(c: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
}

fn job_of(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    let state: String = r.get(4)?;
    let state = JobState::parse(&state).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            rusqlite::types::Type::Text,
            format!("unknown job state {state:?}").into(),
        )
    })?;
    Ok(JobRecord {
        id: r.get(0)?,
        kind: r.get(1)?,
        dedupe_key: r.get(2)?,
        payload: r.get(3)?,
        state,
        run_at_ms: r.get(5)?,
        attempts: r.get(6)?,
        max_attempts: r.get(7)?,
        holder: r.get(8)?,
        lease_expires_ms: r.get(9)?,
        last_error: r.get(10)?,
        created_ms: r.get(11)?,
        finished_ms: r.get(12)?,
    })
}

fn read_job(c: &Connection, id: i64) -> rusqlite::Result<Option<JobRecord>> {
    c.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
        .query_row([id], job_of)
        .optional()
}

fn read_lease(c: &Connection, name: &str) -> rusqlite::Result<Option<LeaseRecord>> {
    c.prepare_cached(
        "SELECT name, holder, expires_ms, next_due_ms, fence FROM job_leases WHERE name = ?1",
    )?
    .query_row([name], |r| {
        Ok(LeaseRecord {
            name: r.get(0)?,
            holder: r.get(1)?,
            expires_ms: r.get(2)?,
            next_due_ms: r.get(3)?,
            fence: r.get(4)?,
        })
    })
    .optional()
}

#[async_trait::async_trait]
impl JobStore for SqliteMetaStore {
    async fn cursor(&self, consumer: &str) -> Result<Option<i64>> {
        let consumer = consumer.to_string();
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT last_id FROM job_cursors WHERE consumer = ?1")?
                    .query_row([consumer], |r| r.get(0))
                    .optional()?,
            )
        })
        .await
    }

    async fn advance_cursor(
        &self,
        consumer: &str,
        expected: Option<i64>,
        to: i64,
        now_ms: i64,
    ) -> Result<bool> {
        let consumer = consumer.to_string();
        self.write(move |c| {
            let tx = immediate(c)?;
            let current: Option<i64> = tx
                .prepare_cached("SELECT last_id FROM job_cursors WHERE consumer = ?1")?
                .query_row([&consumer], |r| r.get(0))
                .optional()?;
            if !cursor_may_advance(current, expected, to) {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT INTO job_cursors (consumer, last_id, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (consumer) DO UPDATE SET last_id = ?2, updated_ms = ?3",
            )?
            .execute(params![consumer, to, now_ms])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn enqueue(&self, job: &NewJob, now_ms: i64) -> Result<Enqueued> {
        let job = job.clone();
        self.write(move |c| {
            let tx = immediate(c)?;
            if let Some(key) = &job.dedupe_key {
                let existing: Option<i64> = tx
                    .prepare_cached(
                        "SELECT id FROM jobs WHERE dedupe_key = ?1
                           AND state IN ('queued', 'running')",
                    )?
                    .query_row([key], |r| r.get(0))
                    .optional()?;
                if let Some(id) = existing {
                    return Ok(Enqueued::Duplicate(id));
                }
            }
            tx.prepare_cached(
                "INSERT INTO jobs (kind, dedupe_key, payload, state, run_at_ms, max_attempts,
                                   created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                job.kind,
                job.dedupe_key,
                job.payload,
                JobState::Queued.as_str(),
                job.run_at_ms,
                job.max_attempts.max(1),
                now_ms
            ])?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(Enqueued::Created(id))
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
        let kinds = kinds.to_vec();
        let holder = holder.to_string();
        self.write(move |c| {
            let tx = immediate(c)?;
            let placeholders = vec!["?"; kinds.len()].join(", ");
            // Unfinished jobs of these kinds that may be due; the decision is claim_decision.
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs
                 WHERE state IN ('queued', 'running') AND kind IN ({placeholders})
                   AND run_at_ms <= ? AND (state = 'queued' OR lease_expires_ms <= ?)
                 ORDER BY run_at_ms, id LIMIT {CLAIM_CANDIDATES}"
            );
            let mut args: Vec<rusqlite::types::Value> = kinds
                .iter()
                .map(|k| rusqlite::types::Value::Text(k.clone()))
                .collect();
            args.push(now_ms.into());
            args.push(now_ms.into());
            let candidates = tx
                .prepare(&sql)?
                .query_map(rusqlite::params_from_iter(args), job_of)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut claimed = None;
            for job in candidates {
                match claim_decision(&job, now_ms) {
                    ClaimDecision::Skip => {}
                    ClaimDecision::Bury(why) => {
                        tx.prepare_cached(
                            "UPDATE jobs SET state = ?2, holder = NULL, lease_expires_ms = NULL,
                                             last_error = ?3, finished_ms = ?4 WHERE id = ?1",
                        )?
                        .execute(params![
                            job.id,
                            JobState::Dead.as_str(),
                            why,
                            now_ms
                        ])?;
                    }
                    ClaimDecision::Claim => {
                        tx.prepare_cached(
                            "UPDATE jobs SET state = ?2, holder = ?3, lease_expires_ms = ?4,
                                             attempts = attempts + 1 WHERE id = ?1",
                        )?
                        .execute(params![
                            job.id,
                            JobState::Running.as_str(),
                            holder,
                            now_ms.saturating_add(lease_ms)
                        ])?;
                        claimed = read_job(&tx, job.id)?;
                        break;
                    }
                }
            }
            tx.commit()?;
            Ok(claimed)
        })
        .await
    }

    async fn heartbeat(&self, id: i64, holder: &str, lease_ms: i64, now_ms: i64) -> Result<bool> {
        let holder = holder.to_string();
        self.write(move |c| {
            let tx = immediate(c)?;
            let Some(job) = read_job(&tx, id)? else {
                return Ok(false);
            };
            if !holds_live_job(&job, &holder, now_ms) {
                return Ok(false);
            }
            tx.prepare_cached("UPDATE jobs SET lease_expires_ms = ?2 WHERE id = ?1")?
                .execute(params![id, now_ms.saturating_add(lease_ms)])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn complete(&self, id: i64, holder: &str, now_ms: i64) -> Result<bool> {
        let holder = holder.to_string();
        self.write(move |c| {
            let tx = immediate(c)?;
            let Some(job) = read_job(&tx, id)? else {
                return Ok(false);
            };
            if !may_finish_job(&job, &holder) {
                return Ok(false);
            }
            tx.prepare_cached(
                "UPDATE jobs SET state = ?2, holder = NULL, lease_expires_ms = NULL,
                                 finished_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![id, JobState::Done.as_str(), now_ms])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn fail(&self, id: i64, holder: &str, error: &str, now_ms: i64) -> Result<FailOutcome> {
        let (holder, error) = (holder.to_string(), error.to_string());
        self.write(move |c| {
            let tx = immediate(c)?;
            let Some(job) = read_job(&tx, id)? else {
                return Ok(FailOutcome::NotHeld);
            };
            if !may_finish_job(&job, &holder) {
                return Ok(FailOutcome::NotHeld);
            }
            let outcome = after_failure(&job, now_ms);
            let (state, run_at, finished) = match outcome {
                FailOutcome::Retry { at_ms } => (JobState::Queued, at_ms, None),
                _ => (JobState::Dead, job.run_at_ms, Some(now_ms)),
            };
            tx.prepare_cached(
                "UPDATE jobs SET state = ?2, run_at_ms = ?3, holder = NULL,
                                 lease_expires_ms = NULL, last_error = ?4, finished_ms = ?5
                 WHERE id = ?1",
            )?
            .execute(params![id, state.as_str(), run_at, error, finished])?;
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn job(&self, id: i64) -> Result<Option<JobRecord>> {
        self.read(move |c| Ok(read_job(c, id)?)).await
    }

    async fn prune_jobs(&self, before_ms: i64) -> Result<usize> {
        self.write(move |c| {
            Ok(c.prepare_cached(
                "DELETE FROM jobs WHERE state IN ('done', 'dead') AND finished_ms < ?1",
            )?
            .execute([before_ms])?)
        })
        .await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<LeaseAttempt> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |c| {
            let tx = immediate(c)?;
            let current = read_lease(&tx, &name)?;
            let attempt = lease_decision(&name, current.as_ref(), &holder, ttl_ms, now_ms);
            if let LeaseAttempt::Granted(g) = &attempt {
                tx.prepare_cached(
                    "INSERT INTO job_leases (name, holder, expires_ms, fence, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (name) DO UPDATE
                     SET holder = ?2, expires_ms = ?3, fence = ?4, updated_ms = ?5",
                )?
                .execute(params![
                    g.name,
                    g.holder,
                    g.expires_ms,
                    g.fence,
                    now_ms
                ])?;
                tx.commit()?;
            }
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
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |c| {
            let tx = immediate(c)?;
            let current = read_lease(&tx, &name)?;
            if !holds_live_grant(current.as_ref(), &holder, fence, now_ms) {
                return Ok(false);
            }
            tx.prepare_cached(
                "UPDATE job_leases SET expires_ms = ?2, updated_ms = ?3 WHERE name = ?1",
            )?
            .execute(params![name, now_ms.saturating_add(ttl_ms), now_ms])?;
            tx.commit()?;
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
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |c| {
            let tx = immediate(c)?;
            let current = read_lease(&tx, &name)?;
            if !holds_grant(current.as_ref(), &holder, fence) {
                return Ok(false);
            }
            tx.prepare_cached(
                "UPDATE job_leases SET holder = NULL, expires_ms = NULL, next_due_ms = ?2,
                                       updated_ms = ?3 WHERE name = ?1",
            )?
            .execute(params![name, next_due_ms, now_ms])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn lease(&self, name: &str) -> Result<Option<LeaseRecord>> {
        let name = name.to_string();
        self.read(move |c| Ok(read_lease(c, &name)?)).await
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }
}

#[cfg(test)]
mod tests {
    use crate::jobs_suite as suite;
    use crate::sqlite::SqliteMetaStore;

    fn store() -> (tempfile::TempDir, SqliteMetaStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
        (dir, store)
    }

    macro_rules! cases {
        ($($case:ident),* $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (_dir, store) = store();
                suite::$case(&store).await;
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
        ping_answers,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_handles_race_for_one_lease_one_job_one_cursor() {
        let (dir, a) = store();
        // A second handle opens its own connections, as another process would.
        let b = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
        suite::two_handles_race_for_one_lease_one_job_one_cursor(&a, &b).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_backend_passes_the_whole_jobs_suite() {
        let (_dir, store) = store();
        suite::run(&store).await;
    }
}
