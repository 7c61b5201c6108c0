//! Records stored and returned by the meta store.

use berth_types::{Digest, Tag};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: String,
    pub repository: String,
    pub started_ms: i64,
    pub updated_ms: i64,
}

/// A manifest to store, with everything the store must check and index.
#[derive(Debug, Clone)]
pub struct NewManifest {
    pub digest: Digest,
    pub media_type: String,
    pub body: Vec<u8>,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    /// JSON of the manifest's annotations, if any (reported by the referrers API).
    pub annotations_json: Option<String>,
    /// Blobs that must be linked in the repository (config and layers).
    pub blobs: Vec<Digest>,
    /// Child manifests that must exist in the repository (indexes).
    pub children: Vec<Digest>,
    pub tag: Option<Tag>,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutManifestOutcome {
    /// False when the manifest was already stored (only the tag may have moved).
    pub created: bool,
    /// The digest the tag pointed at before, if it moved.
    pub previous_tag_target: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    pub digest: Digest,
    pub media_type: String,
    pub body: Vec<u8>,
    pub pushed_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerRecord {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations_json: Option<String>,
}

/// Kinds of event written to the outbox in the same transaction as the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    ManifestPushed,
    ManifestDeleted,
    TagDeleted,
    RepositoryDeleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ManifestPushed => "manifest.pushed",
            EventKind::ManifestDeleted => "manifest.deleted",
            EventKind::TagDeleted => "tag.deleted",
            EventKind::RepositoryDeleted => "repository.deleted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub repository: String,
    pub digest: Option<String>,
    pub tag: Option<String>,
}

/// Settings chosen when a repository is created through the ECR API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySettings {
    /// `MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION` or `MUTABLE_WITH_EXCLUSION` (validated by the edge).
    pub image_tag_mutability: String,
}

impl Default for RepositorySettings {
    fn default() -> Self {
        RepositorySettings {
            image_tag_mutability: "MUTABLE".into(),
        }
    }
}

/// A repository row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryRecord {
    pub name: String,
    pub created_ms: i64,
    pub image_tag_mutability: String,
    /// True when created by `CreateRepository`, false when created implicitly by a push.
    pub created_by_api: bool,
}
