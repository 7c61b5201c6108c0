//! Keeps this process's manifest cache true to changes other processes make.
//!
//! Every change to manifests, tags, repositories and storage status writes an event to the
//! outbox in its own transaction (see `berth_meta::EventKind`). `berth lifecycle run` beside
//! a running server, and later other nodes on a shared database, change the store without
//! touching this process's cache; the follower reads the outbox every interval and drops
//! the cache entries each event names. Its own process's events are applied too, which is
//! harmless: the writer already dropped those entries.

use std::future::Future;
use std::time::Duration;

use berth_meta::{EventKind, EventRecord};
use berth_types::Digest;

use crate::Registry;

/// Events read per query; a longer backlog is read in several.
const BATCH: usize = 1000;

impl Registry {
    /// Follows the outbox from its current end every `every`, until `stop` resolves
    /// (`berth serve` runs it as a per-node worker of the jobs layer: every node follows
    /// for its own cache).
    pub async fn follow_cache(&self, every: Duration, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut last = loop {
            match self.inner.meta.last_event_id().await {
                Ok(id) => break id,
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
                _ = tick.tick() => last = self.follow_events(last).await,
            }
        }
    }

    /// Applies every event after `last` to the cache; returns the last id applied.
    pub(crate) async fn follow_events(&self, mut last: i64) -> i64 {
        loop {
            let events = match self.inner.meta.events_after(last, BATCH).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "cache follower: reading the outbox failed");
                    return last;
                }
            };
            for e in &events {
                self.forget_event(e);
                last = e.id;
            }
            if events.len() < BATCH {
                return last;
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
