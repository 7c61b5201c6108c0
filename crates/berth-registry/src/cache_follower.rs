//! Keeps this process's manifest cache true to changes other processes make.
//!
//! Every change to manifests, tags, repositories and storage status writes an event to the
//! outbox in its own transaction (see `berth_meta::EventKind`). `berth lifecycle run` beside
//! a running server, and other nodes on a shared database, change the store without
//! touching this process's cache; the follower reads the outbox every
//! [`CACHE_FOLLOW_EVERY`] and drops the cache entries each event names. Its own process's
//! events are applied too, which is harmless: the writer already dropped those entries.
//!
//! **Staleness bound**: a change committed on any node is out of every other node's cache
//! at most one interval (plus the outbox read) after its commit. On PostgreSQL event ids
//! come from a sequence; every transaction that writes an event takes one advisory lock
//! first, so ids follow commit order, but a rolled-back transaction leaves a gap. The
//! follower does not rely on either: it remembers skipped ids ([`OutboxCursor`]) and reads
//! again from the oldest for [`GAP_WAIT`], applying each late event once; an id still
//! missing by then belonged to a rolled-back transaction.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use berth_meta::{EventKind, EventRecord};
use berth_types::Digest;

use crate::Registry;

/// Events read per query; a longer backlog is read in several.
const BATCH: usize = 1000;
/// How often `berth serve`'s follower reads the outbox: the staleness bound of every
/// node's manifest cache.
pub const CACHE_FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// How long an id skipped in the outbox is waited for (a transaction that took its event
/// id and has not committed yet). Far longer than any transaction writing an event.
pub(crate) const GAP_WAIT: Duration = Duration::from_secs(30);
/// Skipped ids remembered at most (the newest are kept: an old gap is a rollback).
const MAX_GAPS: usize = 4096;

/// Where the follower stands in the outbox: the newest id applied, and the ids below it
/// not seen yet, each with when it was first missed.
#[derive(Debug)]
pub(crate) struct OutboxCursor {
    last: i64,
    gaps: BTreeMap<i64, Instant>,
}

impl OutboxCursor {
    pub(crate) fn new(last: i64) -> Self {
        OutboxCursor {
            last,
            gaps: BTreeMap::new(),
        }
    }

    /// The newest id applied.
    #[cfg(test)]
    pub(crate) fn last(&self) -> i64 {
        self.last
    }

    /// The id after which the next read starts: before the oldest open gap, else the end.
    fn read_after(&self) -> i64 {
        self.gaps.keys().next().map_or(self.last, |&g| g - 1)
    }

    /// Whether the event `id` is to be applied (new, or a gap filled), noting the ids it
    /// skips.
    fn take(&mut self, id: i64, now: Instant) -> bool {
        if id > self.last {
            let skipped_from = (self.last + 1).max(id - MAX_GAPS as i64);
            for gap in skipped_from..id {
                self.gaps.insert(gap, now);
            }
            while self.gaps.len() > MAX_GAPS {
                self.gaps.pop_first();
            }
            self.last = id;
            true
        } else {
            self.gaps.remove(&id).is_some()
        }
    }

    /// Stops waiting for ids missed longer than [`GAP_WAIT`].
    fn expire_gaps(&mut self, now: Instant) {
        self.gaps
            .retain(|_, missed| now.saturating_duration_since(*missed) < GAP_WAIT);
    }
}

impl Registry {
    /// Follows the outbox from its current end every `every`, until `stop` resolves
    /// (`berth serve` runs it as a per-node worker of the jobs layer: every node follows
    /// for its own cache).
    pub async fn follow_cache(&self, every: Duration, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut cursor = loop {
            match self.inner.meta.last_event_id().await {
                Ok(id) => break OutboxCursor::new(id),
                Err(e) => {
                    tracing::warn!(error = %e, "cache follower: reading the outbox failed");
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(every) => {}
                    }
                }
            }
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => self.follow_events(&mut cursor).await,
            }
        }
    }

    /// Applies every event the cursor has not applied yet to the cache.
    pub(crate) async fn follow_events(&self, cursor: &mut OutboxCursor) {
        cursor.expire_gaps(Instant::now());
        let mut after = cursor.read_after();
        loop {
            let events = match self.inner.meta.events_after(after, BATCH).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "cache follower: reading the outbox failed");
                    return;
                }
            };
            let now = Instant::now();
            for e in &events {
                if cursor.take(e.id, now) {
                    self.forget_event(e);
                }
                after = e.id;
            }
            if events.len() < BATCH {
                return;
            }
        }
    }

    fn forget_event(&self, e: &EventRecord) {
        let cache = &self.inner.cache;
        let digest = e.digest.as_deref().and_then(|d| d.parse::<Digest>().ok());
        let kind = e.kind.as_str();
        if kind == EventKind::RepositoryDeleted.as_str() {
            cache.invalidate_repo(&e.repository);
        } else if kind == EventKind::ManifestDeleted.as_str() {
            // Deleting a manifest by digest removes every tag pointing at it.
            cache.invalidate(&e.repository, None, digest.as_ref());
            cache.invalidate_repo_tags(&e.repository);
        } else {
            // Pushed (a tag may have moved), tag deleted, storage status changed; an
            // unknown kind from a newer version drops what it names too.
            cache.invalidate(&e.repository, e.tag.as_deref(), digest.as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(cursor: &mut OutboxCursor, ids: &[i64], now: Instant) -> Vec<i64> {
        ids.iter()
            .copied()
            .filter(|&id| cursor.take(id, now))
            .collect()
    }

    #[test]
    fn ids_committed_out_of_order_are_applied_once_when_they_appear() {
        let t0 = Instant::now();
        let mut c = OutboxCursor::new(5);
        assert_eq!(c.read_after(), 5);
        // 7 and 9 commit first; 6 and 8 hold their ids in transactions still open.
        assert_eq!(taken(&mut c, &[7, 9], t0), vec![7, 9]);
        assert_eq!(c.last(), 9);
        assert_eq!(c.read_after(), 5);
        // The next read sees 6, 7, 9 (8 still open): only 6 is new.
        assert_eq!(taken(&mut c, &[6, 7, 9], t0), vec![6]);
        assert_eq!(c.read_after(), 7);
        // 8 commits with 10 after it.
        assert_eq!(taken(&mut c, &[8, 9, 10], t0), vec![8, 10]);
        assert_eq!(c.read_after(), 10);
        assert_eq!(taken(&mut c, &[10], t0), Vec::<i64>::new());
    }

    #[test]
    fn a_gap_that_never_fills_is_a_rollback_and_is_dropped_after_the_wait() {
        let t0 = Instant::now();
        let mut c = OutboxCursor::new(0);
        assert_eq!(taken(&mut c, &[1, 3], t0), vec![1, 3]);
        assert_eq!(c.read_after(), 1);
        c.expire_gaps(t0 + GAP_WAIT / 2);
        assert_eq!(c.read_after(), 1);
        c.expire_gaps(t0 + GAP_WAIT);
        assert_eq!(c.read_after(), 3);
    }

    #[test]
    fn a_long_jump_remembers_only_the_newest_ids() {
        let t0 = Instant::now();
        let mut c = OutboxCursor::new(0);
        assert!(c.take(1_000_000, t0));
        assert_eq!(c.gaps.len(), MAX_GAPS);
        assert_eq!(c.read_after(), 1_000_000 - MAX_GAPS as i64 - 1);
    }
}
