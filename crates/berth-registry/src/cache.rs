//! A small in-memory cache for the manifest hot path (`HEAD`/`GET` by tag or digest).
//!
//! Correctness under concurrent writes: every write, after committing, bumps a
//! generation counter and removes its keys while holding a gate exclusively; a reader
//! fills the cache only if the generation did not move while it read the meta store,
//! checking and inserting under the same gate held shared. So a stale value can never
//! be inserted after the invalidation it raced with. (On several nodes, invalidation
//! will come from the event stream; until then this cache is per-process.)

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use quick_cache::{sync::Cache, Equivalent};

use berth_types::{Digest, RepositoryName};

use crate::stats::Counters;

/// A manifest as served: exact bytes and the stored media type.
#[derive(Debug, Clone)]
pub struct ServedManifest {
    pub digest: Digest,
    pub media_type: String,
    pub body: Bytes,
    /// The image's storage status, cached with it so that refusing archived images costs
    /// the hot path nothing (every status change invalidates the entry).
    pub status: berth_meta::archive::ImageStatus,
}

/// Lookups borrow their key: a `HEAD` served from the cache allocates nothing for it.
/// Each `*Ref` hashes exactly as the owned tuple key it stands for (a tuple hashes its
/// fields in order; `String` hashes as its `str`).
struct TagRef<'a>(&'a str, &'a str);
struct ManifestRef<'a>(&'a str, &'a Digest);

impl Hash for TagRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.hash(h);
        self.1.hash(h);
    }
}
impl Equivalent<(String, String)> for TagRef<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}
impl Hash for ManifestRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.hash(h);
        self.1.hash(h);
    }
}
impl Equivalent<(String, Digest)> for ManifestRef<'_> {
    fn equivalent(&self, key: &(String, Digest)) -> bool {
        self.0 == key.0 && *self.1 == key.1
    }
}

/// Keyed by the repository's qualified name (`<account>/<name>`), so that registries of
/// different accounts never share an entry.
pub(crate) struct ManifestCache {
    generation: AtomicU64,
    /// Fills hold it shared across "check generation, insert"; invalidations hold it
    /// exclusively, so no fill can slip its stale value in after an invalidation.
    fill_gate: parking_lot::RwLock<()>,
    tags: Cache<(String, String), Digest>,
    manifests: Cache<(String, Digest), Arc<ServedManifest>>,
    /// Lookup figures, and the lifecycle's, for [`crate::Registry::stats`].
    pub(crate) counters: crate::stats::Counters,
}

impl ManifestCache {
    pub(crate) fn new(capacity: usize) -> Self {
        ManifestCache {
            generation: AtomicU64::new(0),
            fill_gate: parking_lot::RwLock::new(()),
            tags: Cache::new(capacity),
            manifests: Cache::new(capacity),
            counters: Default::default(),
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn tag(&self, repo: &RepositoryName, tag: &str) -> Option<Digest> {
        let found = self.tags.get(&TagRef(repo.qualified(), tag));
        let c = &self.counters;
        Counters::hit_or_miss(&c.tag_hits, &c.tag_misses, found.is_some());
        found
    }

    pub(crate) fn manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Option<Arc<ServedManifest>> {
        let found = self.manifests.get(&ManifestRef(repo.qualified(), digest));
        let c = &self.counters;
        Counters::hit_or_miss(&c.manifest_hits, &c.manifest_misses, found.is_some());
        found
    }

    pub(crate) fn fill_tag(
        &self,
        seen_generation: u64,
        repo: &RepositoryName,
        tag: &str,
        digest: Digest,
    ) {
        let _gate = self.fill_gate.read();
        if self.generation() == seen_generation {
            self.tags
                .insert((repo.qualified().to_string(), tag.to_string()), digest);
        }
    }

    pub(crate) fn fill_manifest(
        &self,
        seen_generation: u64,
        repo: &RepositoryName,
        m: Arc<ServedManifest>,
    ) {
        let _gate = self.fill_gate.read();
        if self.generation() == seen_generation {
            self.manifests
                .insert((repo.qualified().to_string(), m.digest.clone()), m);
        }
    }

    /// Called after a committed write that changed `repo`'s tags or manifests.
    pub(crate) fn invalidate(
        &self,
        repo: &RepositoryName,
        tag: Option<&str>,
        digest: Option<&Digest>,
    ) {
        let _gate = self.fill_gate.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(t) = tag {
            self.tags.remove(&TagRef(repo.qualified(), t));
        }
        if let Some(d) = digest {
            self.manifests.remove(&ManifestRef(repo.qualified(), d));
        }
    }

    /// Drops every entry of a repository (after deleting the repository).
    pub(crate) fn invalidate_repo(&self, repo: &RepositoryName) {
        let _gate = self.fill_gate.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let repo = repo.qualified();
        self.tags.retain(|(r, _), _| r != repo);
        self.manifests.retain(|(r, _), _| r != repo);
    }

    /// Drops every tag entry of a repository (after deleting a manifest by digest,
    /// which removes all tags pointing at it).
    pub(crate) fn invalidate_repo_tags(&self, repo: &RepositoryName) {
        let _gate = self.fill_gate.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let repo = repo.qualified();
        self.tags.retain(|(r, _), _| r != repo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(account: &str, name: &str) -> RepositoryName {
        RepositoryName::new(account.parse().unwrap(), name).unwrap()
    }

    #[test]
    fn borrowed_lookups_find_owned_keys_and_accounts_do_not_share() {
        let cache = ManifestCache::new(16);
        let (a, b) = (repo("111111111111", "app"), repo("222222222222", "app"));
        let d = Digest::sha256_of(b"m");
        cache.fill_tag(cache.generation(), &a, "v1", d.clone());
        assert_eq!(cache.tag(&a, "v1"), Some(d.clone()));
        assert_eq!(cache.tag(&b, "v1"), None);
        cache.invalidate(&a, Some("v1"), None);
        assert_eq!(cache.tag(&a, "v1"), None);
        // A fill that raced with an invalidation is dropped.
        let seen = cache.generation();
        cache.invalidate(&a, None, Some(&d));
        cache.fill_tag(seen, &a, "v1", d);
        assert_eq!(cache.tag(&a, "v1"), None);
    }
}
