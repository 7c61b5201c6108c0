//! [`EventStore`] for PostgreSQL, and [`record_event`], which every transaction that
//! changes something writes its outbox event with.
//!
//! **Ordering.** PostgreSQL takes an event's id from its sequence when the row is
//! inserted, not when the transaction commits: two transactions could commit ids 8 and 7
//! in that order, and a consumer that read "events after 6" between the commits would see
//! 8, move its cursor past 7 and never see 7. So [`record_event`] first takes a
//! transaction-level advisory lock on one fixed key ([`EVENT_LOCK`]), held until commit or
//! rollback: event-writing transactions take ids one at a time, each commits before the
//! next gets its id, and id order is commit order. A reader of `events_after(N)` therefore
//! never skips an event committed later with a smaller id. The cost is that event-writing
//! transactions serialise from their event insert to their commit; every caller inserts
//! its events last, right before committing, to keep that short (and so the lock is
//! always the last one a transaction takes, which keeps it out of deadlock cycles).

use tokio_postgres::GenericClient;

use super::meta::PgMetaStore;
use super::meta_repos::{parse_repository, sql_limit};
use crate::{EventKind, EventRecord, EventStore, Result};

/// The advisory lock key ordering event ids by commit ("berthevt" in ASCII); distinct
/// from the migrations' key.
pub(super) const EVENT_LOCK: i64 = 0x6265_7274_6865_7674;

/// Writes an outbox event in the caller's transaction, after taking [`EVENT_LOCK`] (see
/// the module doc). Call it as the transaction's last write.
pub(crate) async fn record_event<C: GenericClient>(
    tx: &C,
    kind: EventKind,
    repo: &str,
    digest: Option<&str>,
    tag: Option<&str>,
    now_ms: i64,
) -> Result<()> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EVENT_LOCK])
        .await?;
    tx.execute(
        "INSERT INTO events (at_ms, kind, repository, digest, tag) VALUES ($1, $2, $3, $4, $5)",
        &[&now_ms, &kind.as_str(), &repo, &digest, &tag],
    )
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl EventStore for PgMetaStore {
    async fn events_after(&self, after_id: i64, limit: usize) -> Result<Vec<EventRecord>> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT id, at_ms, kind, repository, digest, tag FROM events
                 WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after_id, &sql_limit(limit)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRecord {
                    id: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    repository: parse_repository(r.try_get(3)?)?,
                    digest: r.try_get(4)?,
                    tag: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn last_event_id(&self) -> Result<i64> {
        let client = self.db.client().await?;
        Ok(client
            .query_one("SELECT COALESCE(MAX(id), 0)::BIGINT FROM events", &[])
            .await?
            .try_get(0)?)
    }
}
