//! Figures the registry keeps for operators (the server exposes them as metrics at
//! scrape time). Plain relaxed atomic counters: counting costs the hot path one
//! uncontended increment and the registry needs no metrics library.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Registry;

/// Running totals since the process started.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) tag_hits: AtomicU64,
    pub(crate) tag_misses: AtomicU64,
    pub(crate) manifest_hits: AtomicU64,
    pub(crate) manifest_misses: AtomicU64,
    pub(crate) images_expired: AtomicU64,
}

impl Counters {
    pub(crate) fn hit_or_miss(hit: &AtomicU64, miss: &AtomicU64, found: bool) {
        if found { hit } else { miss }.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of [`Registry::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Tag → digest lookups of the manifest cache that found / did not find an entry.
    pub tag_cache_hits: u64,
    pub tag_cache_misses: u64,
    /// Digest → manifest lookups of the manifest cache.
    pub manifest_cache_hits: u64,
    pub manifest_cache_misses: u64,
    /// Upload sessions this process has open (started or resumed, not yet completed,
    /// cancelled or expired).
    pub uploads_in_progress: u64,
    /// Images lifecycle policies expired in this process.
    pub lifecycle_images_expired: u64,
}

impl Registry {
    /// The registry's running figures.
    pub fn stats(&self) -> RegistryStats {
        let c = &self.inner.cache.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RegistryStats {
            tag_cache_hits: get(&c.tag_hits),
            tag_cache_misses: get(&c.tag_misses),
            manifest_cache_hits: get(&c.manifest_hits),
            manifest_cache_misses: get(&c.manifest_misses),
            uploads_in_progress: self.inner.uploads.active.len() as u64,
            lifecycle_images_expired: get(&c.images_expired),
        }
    }

    pub(crate) fn note_image_expired(&self) {
        self.inner
            .cache
            .counters
            .images_expired
            .fetch_add(1, Ordering::Relaxed);
    }
}
