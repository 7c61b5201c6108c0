//! The jobs layer's facts ([`JobStore`]): what every background feature (garbage
//! collection, lifecycle, upload expiry, and later scans, signing, replication, metering)
//! shares so that work runs **once across the cluster** and survives the node doing it.
//!
//! - **Outbox consumer cursors**: a consumer name → the id of the last `events` row it
//!   processed. [`JobStore::advance_cursor`] is a compare-and-set: of two nodes that read
//!   the same cursor, only one moves it.
//! - **Queued jobs**: [`JobStore::enqueue`] (a dedupe key keeps one unfinished job per
//!   key), [`JobStore::claim`] with a lease (holder, expiry), [`JobStore::heartbeat`],
//!   [`JobStore::complete`], [`JobStore::fail`] (retried with exponential backoff until
//!   `max_attempts`, then `dead`). A running job whose lease expired is claimable again
//!   (its holder died); that claim counts as another attempt.
//! - **Singleton leases** for periodic work: [`JobStore::acquire_lease`] grants a named
//!   lease only when it is free (or expired, or already the caller's) *and* the next pass
//!   is due; [`JobStore::release_lease`] records when the next pass is due. So however many
//!   nodes try, one pass runs per period, and a node that dies mid-pass loses the lease at
//!   its expiry and another takes over. Every grant increases a fence number, so a holder
//!   that lost its lease cannot renew or release the new holder's.
//!
//! Every time is Unix milliseconds passed by the caller (`now_ms`), so the shared suite
//! ([`crate::jobs_suite`]) is deterministic. Every decision (is this lease free, may this
//! job be claimed, when is it retried) is one of the pure functions below, which each
//! backend calls inside its transaction after reading the row(s): backends only read,
//! lock and write rows.
//!
//! **Backends.** SQLite (`sqlite/jobs_queries.rs`) runs each method in one
//! `BEGIN IMMEDIATE` transaction: the single writer serializes them (also across
//! processes). PostgreSQL must give the same serialization per row:
//! - claim: `SELECT ... FROM jobs WHERE state IN ('queued','running') AND kind = ANY($1)
//!   AND <due> ORDER BY run_at_ms, id LIMIT n FOR UPDATE SKIP LOCKED`, then
//!   [`claim_decision`] per row and an `UPDATE` in the same transaction (two nodes never
//!   wait on, nor both take, the same job);
//! - heartbeat, complete, fail, renew, release: `SELECT ... FOR UPDATE` of the one row, the
//!   decision in Rust, `UPDATE`;
//! - acquire a lease: `INSERT ... ON CONFLICT (name) DO NOTHING` (so the row exists), then
//!   `SELECT ... FOR UPDATE`, [`lease_decision`], `UPDATE`;
//! - advance a cursor: `INSERT ... ON CONFLICT DO NOTHING` when `expected` is `None`,
//!   else `SELECT ... FOR UPDATE`, [`cursor_may_advance`], `UPDATE`;
//! - enqueue: the partial unique index `jobs_dedupe` (unfinished jobs by dedupe key) with
//!   `INSERT ... ON CONFLICT DO NOTHING`, then read the existing id.

use crate::Result;

/// The delay before retry number `attempts + 1` of a job that failed `attempts` times:
/// 1 s, 2 s, 4 s ... capped at 10 minutes.
pub fn retry_delay_ms(attempts: u32) -> i64 {
    const BASE_MS: i64 = 1_000;
    const CAP_MS: i64 = 600_000;
    let exp = attempts.saturating_sub(1).min(20);
    (BASE_MS << exp).min(CAP_MS)
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// Which handler runs it (e.g. `"scan"`).
    pub kind: String,
    /// While a job with this key is queued or running, enqueueing another one with the
    /// same key returns the existing job ([`Enqueued::Duplicate`]).
    pub dedupe_key: Option<String>,
    /// The handler's input (usually JSON); opaque to the store.
    pub payload: String,
    /// Not claimed before this time.
    pub run_at_ms: i64,
    /// Attempts before the job is given up (`dead`); at least 1.
    pub max_attempts: u32,
}

/// What [`JobStore::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Created(i64),
    /// An unfinished job with the same dedupe key exists; its id.
    Duplicate(i64),
}

impl Enqueued {
    pub fn id(self) -> i64 {
        match self {
            Enqueued::Created(id) | Enqueued::Duplicate(id) => id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for its `run_at_ms` (first run or a retry).
    Queued,
    /// Claimed by `holder` until `lease_expires_ms`.
    Running,
    Done,
    /// Failed `max_attempts` times (or its holder died on the last attempt).
    Dead,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "dead" => JobState::Dead,
            _ => return None,
        })
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    pub dedupe_key: Option<String>,
    pub payload: String,
    pub state: JobState,
    pub run_at_ms: i64,
    /// Claims so far (the current one included while running).
    pub attempts: u32,
    pub max_attempts: u32,
    pub holder: Option<String>,
    pub lease_expires_ms: Option<i64>,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
}

/// What a claim does with a candidate row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Take it: state `running`, the new holder and lease, one more attempt.
    Claim,
    /// Its holder died on the last allowed attempt: give it up (state `dead`, this error).
    Bury(String),
    /// Not claimable now (not due, leased, finished).
    Skip,
}

/// Whether `job` may be claimed at `now_ms`: a queued job once due; a running job whose
/// lease expired (its holder died), unless that was its last attempt.
pub fn claim_decision(job: &JobRecord, now_ms: i64) -> ClaimDecision {
    match job.state {
        JobState::Queued if job.run_at_ms <= now_ms => ClaimDecision::Claim,
        JobState::Running if job.lease_expires_ms.is_none_or(|e| e <= now_ms) => {
            if job.attempts >= job.max_attempts {
                ClaimDecision::Bury(format!(
                    "lease of {} expired on attempt {} of {}",
                    job.holder.as_deref().unwrap_or("?"),
                    job.attempts,
                    job.max_attempts
                ))
            } else {
                ClaimDecision::Claim
            }
        }
        _ => ClaimDecision::Skip,
    }
}

/// Whether `holder` still holds running `job` at `now_ms` (to extend its lease).
pub fn holds_live_job(job: &JobRecord, holder: &str, now_ms: i64) -> bool {
    job.state == JobState::Running
        && job.holder.as_deref() == Some(holder)
        && job.lease_expires_ms.is_some_and(|e| e > now_ms)
}

/// Whether `holder` may finish (complete or fail) `job`: it is running and nobody took it
/// over, even if the lease has just expired (the work was done; nobody else started it).
pub fn may_finish_job(job: &JobRecord, holder: &str) -> bool {
    job.state == JobState::Running && job.holder.as_deref() == Some(holder)
}

/// What [`JobStore::fail`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again, due at this time.
    Retry { at_ms: i64 },
    /// Attempts used up: state `dead`.
    Dead,
    /// The caller does not hold the job (taken over or finished): nothing changed.
    NotHeld,
}

/// The state after a failed attempt of `job` at `now_ms`.
pub fn after_failure(job: &JobRecord, now_ms: i64) -> FailOutcome {
    if job.attempts >= job.max_attempts {
        FailOutcome::Dead
    } else {
        FailOutcome::Retry {
            at_ms: now_ms.saturating_add(retry_delay_ms(job.attempts)),
        }
    }
}

/// Whether a consumer's cursor at `current` may move from `expected` to `to`: only from
/// the value the caller read, and never backwards.
pub fn cursor_may_advance(current: Option<i64>, expected: Option<i64>, to: i64) -> bool {
    current == expected && expected.is_none_or(|e| to >= e)
}

/// A singleton lease's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub name: String,
    /// Who runs a pass now; `None` between passes.
    pub holder: Option<String>,
    pub expires_ms: Option<i64>,
    /// When the next pass is due (0: at once).
    pub next_due_ms: i64,
    /// Grows with every grant.
    pub fence: i64,
}

/// A lease granted to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    pub name: String,
    pub holder: String,
    pub expires_ms: i64,
    /// Identifies this grant: renew and release name it.
    pub fence: i64,
}

/// What [`JobStore::acquire_lease`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAttempt {
    Granted(LeaseGrant),
    /// Nobody holds it, but the next pass is not due before `due_ms`.
    NotDue {
        due_ms: i64,
    },
    /// Another holder has it until `expires_ms`.
    Held {
        holder: String,
        expires_ms: i64,
    },
}

/// Whether `holder` gets lease `current` (`None`: never used) at `now_ms` for `ttl_ms`. A
/// live lease of another holder is `Held`; otherwise (free, expired — its holder died —,
/// or the caller's own) it is granted once the next pass is due, with the next fence.
pub fn lease_decision(
    name: &str,
    current: Option<&LeaseRecord>,
    holder: &str,
    ttl_ms: i64,
    now_ms: i64,
) -> LeaseAttempt {
    let (next_due, fence) = current.map_or((0, 0), |l| (l.next_due_ms, l.fence));
    if let Some(l) = current {
        if let (Some(h), Some(exp)) = (&l.holder, l.expires_ms) {
            if h != holder && exp > now_ms {
                return LeaseAttempt::Held {
                    holder: h.clone(),
                    expires_ms: exp,
                };
            }
        }
    }
    if next_due > now_ms {
        return LeaseAttempt::NotDue { due_ms: next_due };
    }
    LeaseAttempt::Granted(LeaseGrant {
        name: name.to_string(),
        holder: holder.to_string(),
        expires_ms: now_ms.saturating_add(ttl_ms),
        fence: fence + 1,
    })
}

/// Whether the grant `fence` of `holder` is still lease `current`'s (to release it).
pub fn holds_grant(current: Option<&LeaseRecord>, holder: &str, fence: i64) -> bool {
    current.is_some_and(|l| l.holder.as_deref() == Some(holder) && l.fence == fence)
}

/// Whether the grant is still held and live at `now_ms` (to renew it).
pub fn holds_live_grant(
    current: Option<&LeaseRecord>,
    holder: &str,
    fence: i64,
    now_ms: i64,
) -> bool {
    holds_grant(current, holder, fence)
        && current
            .and_then(|l| l.expires_ms)
            .is_some_and(|e| e > now_ms)
}

/// Cursors, queued jobs and singleton leases; see the module doc. Each method is one
/// transaction.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync + 'static {
    // Outbox consumer cursors.
    /// The last event id `consumer` processed; `None` before its first advance.
    async fn cursor(&self, consumer: &str) -> Result<Option<i64>>;
    /// Moves `consumer`'s cursor to `to` if it is still `expected` (the value the caller
    /// read) and `to` is not behind it. Returns whether it moved.
    async fn advance_cursor(
        &self,
        consumer: &str,
        expected: Option<i64>,
        to: i64,
        now_ms: i64,
    ) -> Result<bool>;

    // Queued jobs.
    async fn enqueue(&self, job: &NewJob, now_ms: i64) -> Result<Enqueued>;
    /// Claims the oldest due job of one of `kinds` for `holder` until `now_ms + lease_ms`
    /// (see [`claim_decision`]); `None` if there is none.
    async fn claim(
        &self,
        kinds: &[String],
        holder: &str,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Option<JobRecord>>;
    /// Extends `holder`'s live lease on job `id` to `now_ms + lease_ms`; `false` if it is
    /// no longer the holder's or has expired (stop working on it).
    async fn heartbeat(&self, id: i64, holder: &str, lease_ms: i64, now_ms: i64) -> Result<bool>;
    /// Marks job `id` done; `false` if `holder` no longer holds it.
    async fn complete(&self, id: i64, holder: &str, now_ms: i64) -> Result<bool>;
    /// Records a failed attempt (see [`after_failure`]).
    async fn fail(&self, id: i64, holder: &str, error: &str, now_ms: i64) -> Result<FailOutcome>;
    async fn job(&self, id: i64) -> Result<Option<JobRecord>>;
    /// Deletes done and dead jobs finished before `before_ms`; returns how many.
    async fn prune_jobs(&self, before_ms: i64) -> Result<usize>;

    // Singleton leases.
    /// See [`lease_decision`]; a grant is stored before it is returned.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<LeaseAttempt>;
    /// Extends a live grant to `now_ms + ttl_ms`; `false` if it was lost (expired or taken).
    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        fence: i64,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<bool>;
    /// Ends a grant after its pass and records when the next pass is due; `false` (and
    /// nothing changed) if the grant is no longer the caller's.
    async fn release_lease(
        &self,
        name: &str,
        holder: &str,
        fence: i64,
        next_due_ms: i64,
        now_ms: i64,
    ) -> Result<bool>;
    async fn lease(&self, name: &str) -> Result<Option<LeaseRecord>>;

    // Health.
    /// One round trip to the database (`/readyz`): `Ok` when it answers a query.
    async fn ping(&self) -> Result<()>;
}
