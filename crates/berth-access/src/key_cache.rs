//! Active access keys, reused for a moment instead of read per request.
//!
//! Every SigV4 request needs its access key (status, owner, secret): one database read on
//! a blocking thread and one AES-GCM decryption. Under load the same few keys sign
//! thousands of requests a second, so an active key found by a lookup is kept for a short
//! `ttl` (`[auth] credential_cache_secs`, never more than [`MAX_TTL`]). The bound is what
//! a change made elsewhere (`berth iam`, another node on the same database) waits at most;
//! a change made through this server's IAM API forgets the whole cache
//! ([`KeyCache::forget`]), so it applies to the next request. Unknown and inactive keys are
//! never cached: a key created or reactivated anywhere works at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_meta::iam::{KeyLookup, KeyStatus};
use parking_lot::Mutex;

/// The longest an access key is reused without reading it again, whatever the
/// configuration says: a deactivated or deleted key stops working within this.
pub const MAX_TTL: Duration = Duration::from_secs(2);

/// Entries at most; the cache is cleared when it would grow past this.
const LIMIT: usize = 10_000;

/// Access key id → (read at, the active key).
pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    keys: HashMap<String, (Instant, Arc<KeyLookup>)>,
    /// Bumped by every [`KeyCache::forget`]: a lookup that started before a forget may
    /// have read the key as it was before the change, and must not be cached.
    generation: u64,
}

/// Where the cache stood when a lookup started (see [`KeyCache::generation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

impl KeyCache {
    /// A cache keeping keys for `ttl`, capped at [`MAX_TTL`]; zero keeps nothing.
    pub fn new(ttl: Duration) -> Self {
        KeyCache {
            ttl: ttl.min(MAX_TTL),
            entries: Mutex::new(Entries::default()),
        }
    }

    /// How long an entry is reused.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The key `access_key_id` if a lookup found it active less than `ttl` before `now`.
    pub fn get(&self, access_key_id: &str, now: Instant) -> Option<Arc<KeyLookup>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock();
        let (read_at, key) = entries.keys.get(access_key_id)?;
        (now.saturating_duration_since(*read_at) < self.ttl).then(|| key.clone())
    }

    /// Take before a lookup, give to [`KeyCache::insert`] after it.
    pub fn generation(&self) -> Generation {
        Generation(self.entries.lock().generation)
    }

    /// Remembers what a lookup started at `read_at` (and `generation`) found, if the key is
    /// active and nothing was forgotten since the lookup started.
    pub fn insert(&self, key: Arc<KeyLookup>, read_at: Instant, generation: Generation) {
        if self.ttl.is_zero() || key.status != KeyStatus::Active {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.generation != generation.0 {
            return;
        }
        if entries.keys.len() >= LIMIT && !entries.keys.contains_key(&key.access_key_id) {
            entries.keys.clear();
        }
        entries
            .keys
            .insert(key.access_key_id.clone(), (read_at, key));
    }

    /// Drops every entry (after this server changed keys), and any lookup still running.
    pub fn forget(&self) {
        let mut entries = self.entries.lock();
        entries.keys.clear();
        entries.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use berth_meta::iam::KeyPrincipal;
    use berth_meta::secrets::SecretAccessKey;

    use super::*;

    fn key(id: &str, status: KeyStatus) -> Arc<KeyLookup> {
        Arc::new(KeyLookup {
            access_key_id: id.into(),
            account_id: "123456789012".into(),
            principal: KeyPrincipal::Root,
            status,
            secret: SecretAccessKey::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
        })
    }

    #[test]
    fn an_active_key_is_reused_until_the_ttl_ends() {
        let cache = KeyCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(cache.get("AKIA1", t0).is_none());
        cache.insert(key("AKIA1", KeyStatus::Active), t0, cache.generation());
        let hit = cache.get("AKIA1", t0 + Duration::from_millis(999)).unwrap();
        assert_eq!(hit.access_key_id, "AKIA1");
        assert!(cache.get("AKIA1", t0 + Duration::from_secs(1)).is_none());
        assert!(cache.get("AKIA2", t0).is_none());
    }

    #[test]
    fn inactive_keys_are_never_cached() {
        let cache = KeyCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        cache.insert(key("AKIA1", KeyStatus::Inactive), t0, cache.generation());
        assert!(cache.get("AKIA1", t0).is_none());
    }

    #[test]
    fn forget_drops_every_key() {
        let cache = KeyCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        cache.insert(key("AKIA1", KeyStatus::Active), t0, cache.generation());
        cache.insert(key("AKIA2", KeyStatus::Active), t0, cache.generation());
        cache.forget();
        assert!(cache.get("AKIA1", t0).is_none());
        assert!(cache.get("AKIA2", t0).is_none());
    }

    #[test]
    fn a_lookup_that_started_before_a_forget_is_not_cached() {
        let cache = KeyCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        // The lookup starts, the key is deactivated here and the cache forgotten, then the
        // lookup (which read the row before the change) finishes.
        let started = cache.generation();
        cache.forget();
        cache.insert(key("AKIA1", KeyStatus::Active), t0, started);
        assert!(cache.get("AKIA1", t0).is_none());
        // A lookup started after the forget is cached.
        cache.insert(key("AKIA1", KeyStatus::Active), t0, cache.generation());
        assert!(cache.get("AKIA1", t0).is_some());
    }

    #[test]
    fn the_ttl_is_capped_and_zero_keeps_nothing() {
        assert_eq!(KeyCache::new(Duration::from_secs(300)).ttl(), MAX_TTL);
        let off = KeyCache::new(Duration::ZERO);
        let t0 = Instant::now();
        off.insert(key("AKIA1", KeyStatus::Active), t0, off.generation());
        assert!(off.get("AKIA1", t0).is_none());
    }
}
