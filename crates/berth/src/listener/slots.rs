//! Who is connected: a count of open connections held under a cap, each connection's
//! requests in progress and how long it has been idle, and a queue of idle connections
//! in the order they fell idle so that, at the cap, the longest-idle one can be asked
//! to close to make room for a new one. Connections that never sent a request go first,
//! so a flood of silent ones cannot push out a real client's keep-alive connection.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The open connections of one listener.
#[derive(Clone)]
pub struct Slots {
    shared: Arc<Shared>,
}

struct Shared {
    open: AtomicUsize,
    cap: usize,
    /// Connections admitted over the cap because another one was asked to close; the
    /// asked one closes promptly, so this bounds the overshoot.
    slack: usize,
    epoch: Instant,
    /// Idle connections, oldest first: `[0]` those that never sent a request, `[1]` the others.
    idle: Mutex<[VecDeque<IdleEntry>; 2]>,
}

/// A connection that fell idle at generation `generation` of its slot; stale once the
/// slot has moved on (a request began) or the connection closed.
struct IdleEntry {
    slot: Weak<Slot>,
    generation: u64,
}

/// One open connection. Dropping it frees its place under the cap.
pub struct Slot {
    shared: Arc<Shared>,
    /// Requests in progress (until their response body is sent).
    active: AtomicUsize,
    /// Requests begun so far.
    served: AtomicU64,
    /// Bumped on every busy/idle change; an [`IdleEntry`] with another value is stale.
    generation: AtomicU64,
    /// When the connection last fell idle, in milliseconds since `Shared::epoch`.
    idle_since_ms: AtomicU64,
    evict: Notify,
}

impl Slots {
    pub fn new(cap: usize) -> Slots {
        Slots {
            shared: Arc::new(Shared {
                open: AtomicUsize::new(0),
                cap,
                slack: (cap / 8).max(4),
                epoch: Instant::now(),
                idle: Mutex::new([VecDeque::new(), VecDeque::new()]),
            }),
        }
    }

    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::Acquire)
    }

    /// A place for a new connection: free under the cap, or made by asking the
    /// longest-idle connection to close. `None`: every connection is busy; refuse.
    pub fn admit(&self) -> Option<Arc<Slot>> {
        let s = &self.shared;
        let open = s.open.load(Ordering::Acquire);
        if open >= s.cap && (open >= s.cap + s.slack || !self.evict_longest_idle()) {
            return None;
        }
        s.open.fetch_add(1, Ordering::AcqRel);
        let slot = Arc::new(Slot {
            shared: s.clone(),
            active: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(s.now_ms()),
            evict: Notify::new(),
        });
        s.push_idle(&slot, 0);
        Some(slot)
    }

    /// Asks the connection idle the longest to close; false if none is idle.
    pub fn evict_longest_idle(&self) -> bool {
        let mut queues = self.shared.idle.lock().expect("idle queue lock");
        for queue in queues.iter_mut() {
            while let Some(entry) = queue.pop_front() {
                if let Some(slot) = entry.live() {
                    slot.evict.notify_one();
                    return true;
                }
            }
        }
        false
    }
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn push_idle(&self, slot: &Arc<Slot>, generation: u64) {
        let mut queues = self.idle.lock().expect("idle queue lock");
        let queue = &mut queues[usize::from(generation > 0)];
        queue.push_back(IdleEntry {
            slot: Arc::downgrade(slot),
            generation,
        });
        // Entries go stale as connections get busy or close; drop them once they
        // outnumber the open connections, so the queue stays proportional to them.
        if queue.len() > 2 * self.open.load(Ordering::Acquire) + 64 {
            queue.retain(|e| e.live().is_some());
        }
    }
}

impl IdleEntry {
    /// The connection, if it is still open and still idle since this entry was made.
    fn live(&self) -> Option<Arc<Slot>> {
        let slot = self.slot.upgrade()?;
        let idle = slot.generation.load(Ordering::Acquire) == self.generation
            && slot.active.load(Ordering::Acquire) == 0;
        idle.then_some(slot)
    }
}

impl Slot {
    /// Marks a request in progress until the returned guard is dropped.
    pub fn begin(self: &Arc<Slot>) -> Busy {
        if self.active.fetch_add(1, Ordering::AcqRel) == 0 {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        self.served.fetch_add(1, Ordering::AcqRel);
        Busy { slot: self.clone() }
    }

    /// Resolves when the listener wants this connection closed to make room.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }

    /// Resolves once the connection has had no request in progress for `first` (before
    /// its first request) or `later` (after one).
    pub async fn idle_expired(&self, first: Duration, later: Duration) {
        loop {
            let limit = if self.served.load(Ordering::Acquire) == 0 {
                first
            } else {
                later
            };
            if self.active.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(limit).await;
                continue;
            }
            let since = self.idle_since_ms.load(Ordering::Acquire);
            let deadline = self.shared.epoch + Duration::from_millis(since) + limit;
            if Instant::now() >= deadline {
                if self.active.load(Ordering::Acquire) == 0
                    && self.idle_since_ms.load(Ordering::Acquire) == since
                {
                    return;
                }
                continue;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request in progress on a connection (see [`Slot::begin`]).
pub struct Busy {
    slot: Arc<Slot>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let s = &self.slot;
        if s.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            s.idle_since_ms.store(s.shared.now_ms(), Ordering::Release);
            let generation = s.generation.fetch_add(1, Ordering::AcqRel) + 1;
            s.shared.push_idle(s, generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_connection_makes_room() {
        let slots = Slots::new(2);
        let a = slots.admit().expect("room");
        let b = slots.admit().expect("room");
        let busy_a = a.begin();
        drop(busy_a);
        // Both idle; b never sent a request: it goes first, and the newcomer is admitted.
        let c = slots.admit().expect("b makes room");
        tokio::time::timeout(Duration::from_secs(1), b.evicted())
            .await
            .expect("b was asked to close");
        drop(b);
        let busy_a = a.begin();
        let busy_c = c.begin();
        // a and c are busy: nobody to evict, refuse.
        assert!(slots.admit().is_none());
        drop(busy_a);
        // a fell idle: it makes room now.
        let _d = slots.admit().expect("a makes room");
        tokio::time::timeout(Duration::from_secs(1), a.evicted())
            .await
            .expect("a was asked to close");
        drop(busy_c);
        assert_eq!(slots.open(), 3);
    }

    #[tokio::test]
    async fn idleness_expires_after_the_limit_for_its_phase() {
        let (first, later) = (Duration::from_millis(200), Duration::from_millis(600));
        let slots = Slots::new(10);
        let s = slots.admit().expect("room");
        let t = Instant::now();
        s.idle_expired(first, later).await;
        assert!(t.elapsed() >= first);
        // Busy connections never expire.
        let busy = s.begin();
        let expired = tokio::time::timeout(later * 2, s.idle_expired(first, later)).await;
        assert!(expired.is_err());
        drop(busy);
        let t = Instant::now();
        s.idle_expired(first, later).await;
        assert!(t.elapsed() >= later);
    }
}
