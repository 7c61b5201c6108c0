//! A small in-memory cache for the manifest hot path (`HEAD`/`GET` by tag or digest).
//!
//! Correctness under concurrent writes: every write, after committing, bumps a
//! generation counter and removes its keys while holding a gate exclusively; a reader
//! fills the cache only if the generation did not move while it read the meta store,
//! checking and inserting under the same gate held shared. So a stale value can never
//! be inserted after the invalidation it raced with. (On several nodes, invalidation
//! will come from the event stream; until then this cache is per-process.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use quick_cache::sync::Cache;

use berth_types::Digest;

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

pub(crate) struct ManifestCache {
    generation: AtomicU64,
    /// Fills hold it shared across "check generation, insert"; invalidations hold it
    /// exclusively, so no fill can slip its stale value in after an invalidation.
    fill_gate: parking_lot::RwLock<()>,
    tags: Cache<(String, String), Digest>,
    manifests: Cache<(String, Digest), Arc<ServedManifest>>,
}

impl ManifestCache {
    pub(crate) fn new(capacity: usize) -> Self {
        ManifestCache {
            generation: AtomicU64::new(0),
            fill_gate: parking_lot::RwLock::new(()),
            tags: Cache::new(capacity),
            manifests: Cache::new(capacity),
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn tag(&self, repo: &str, tag: &str) -> Option<Digest> {
        self.tags.get(&(repo.to_string(), tag.to_string()))
    }

    pub(crate) fn manifest(&self, repo: &str, digest: &Digest) -> Option<Arc<ServedManifest>> {
        self.manifests.get(&(repo.to_string(), digest.clone()))
    }

    pub(crate) fn fill_tag(&self, seen_generation: u64, repo: &str, tag: &str, digest: Digest) {
        let _gate = self.fill_gate.read();
        if self.generation() == seen_generation {
            self.tags
                .insert((repo.to_string(), tag.to_string()), digest);
        }
    }

    pub(crate) fn fill_manifest(&self, seen_generation: u64, repo: &str, m: Arc<ServedManifest>) {
        let _gate = self.fill_gate.read();
        if self.generation() == seen_generation {
            self.manifests
                .insert((repo.to_string(), m.digest.clone()), m);
        }
    }

    /// Called after a committed write that changed `repo`'s tags or manifests.
    pub(crate) fn invalidate(&self, repo: &str, tag: Option<&str>, digest: Option<&Digest>) {
        let _gate = self.fill_gate.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(t) = tag {
            self.tags.remove(&(repo.to_string(), t.to_string()));
        }
        if let Some(d) = digest {
            self.manifests.remove(&(repo.to_string(), d.clone()));
        }
    }

    /// Drops every entry of a repository (after deleting the repository).
    pub(crate) fn invalidate_repo(&self, repo: &str) {
        let _gate = self.fill_gate.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.tags.retain(|(r, _), _| r != repo);
        self.manifests.retain(|(r, _), _| r != repo);
    }

    /// Drops every tag entry of a repository (after deleting a manifest by digest,
    /// which removes all tags pointing at it).
    pub(crate) fn invalidate_repo_tags(&self, repo: &str) {
        let _gate = self.fill_gate.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.tags.retain(|(r, _), _| r != repo);
    }
}
