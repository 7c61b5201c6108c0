//! Records stored and returned by the meta store.

use berth_types::{Digest, RepositoryName, Tag};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: String,
    pub repository: RepositoryName,
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
    /// The image's layers (a subset of `blobs`, config excluded): the store sums their
    /// stored sizes into the image size ECR reports (an index takes its largest child's).
    pub layers: Vec<Digest>,
    pub tag: Option<Tag>,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutManifestOutcome {
    /// False when the manifest was already stored (only the tag may have moved).
    pub created: bool,
    /// The digest the tag pointed at before, if it moved.
    pub previous_tag_target: Option<Digest>,
    /// True when the tag was created or moved (false without a tag, or when it already
    /// pointed at this manifest): with `created`, tells whether the push changed anything.
    pub tag_updated: bool,
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
    /// An image's storage status changed (archived, restoring, restored).
    StorageChanged,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ManifestPushed => "manifest.pushed",
            EventKind::ManifestDeleted => "manifest.deleted",
            EventKind::TagDeleted => "tag.deleted",
            EventKind::RepositoryDeleted => "repository.deleted",
            EventKind::StorageChanged => "image.storage_changed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub repository: RepositoryName,
    pub digest: Option<String>,
    pub tag: Option<String>,
}

/// Settings chosen when a repository is created through the ECR API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySettings {
    /// `MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION` or `MUTABLE_WITH_EXCLUSION` (validated by the edge).
    pub image_tag_mutability: String,
    /// Wildcard filters of the `*_WITH_EXCLUSION` modes (see [`crate::tag_mutability`]).
    pub image_tag_mutability_exclusion_filters: Vec<String>,
}

impl Default for RepositorySettings {
    fn default() -> Self {
        RepositorySettings {
            image_tag_mutability: "MUTABLE".into(),
            image_tag_mutability_exclusion_filters: Vec::new(),
        }
    }
}

/// A repository row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryRecord {
    pub name: String,
    pub created_ms: i64,
    pub image_tag_mutability: String,
    /// Wildcard filters of the `*_WITH_EXCLUSION` modes.
    pub image_tag_mutability_exclusion_filters: Vec<String>,
    /// True when created by `CreateRepository`, false when created implicitly by a push.
    pub created_by_api: bool,
}

/// Which images a listing returns, by whether a tag points at them (ECR's `tagStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagStatus {
    Tagged,
    Untagged,
    #[default]
    Any,
}

/// One image (manifest) as the ECR API describes it; every field is stored or indexed,
/// none is computed at read time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub digest: Digest,
    /// Tags pointing at it, in lexical order.
    pub tags: Vec<String>,
    pub media_type: String,
    /// `artifactType`, else the config media type (ECR's `artifactMediaType`).
    pub artifact_type: Option<String>,
    /// ECR's `imageSizeInBytes`, computed at push time.
    pub size: u64,
    pub pushed_ms: i64,
    /// The last recorded pull, if any was flushed.
    pub last_pull_ms: Option<i64>,
    pub subject: Option<Digest>,
}

/// One entry of ListImages: an image with one of its tags, or an untagged image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageId {
    pub digest: Digest,
    pub tag: Option<String>,
}

/// What deleting one image (by digest, by tag, or both) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteImageOutcome {
    /// The tag (and, when it was the image's last tag or the image was named by digest
    /// alone, the manifest) is gone. `tags` are the tags removed.
    Deleted {
        digest: Digest,
        tags: Vec<String>,
        manifest_deleted: bool,
    },
    /// No such digest or tag in the repository (or no such repository).
    NotFound,
    /// Both were given and the tag points at another image.
    TagDoesNotMatchDigest,
    /// The manifest would go but an index in the repository references it; nothing changed.
    ReferencedByIndex(Digest),
}

/// A pull to record: the newest pull time of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullTimeUpdate {
    pub repository: RepositoryName,
    pub digest: Digest,
    pub at_ms: i64,
}

/// A principal whose pulls do not update pull times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullTimeExclusion {
    pub principal_arn: String,
    pub created_ms: i64,
}

/// What registering a pull time exclusion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterExclusionOutcome {
    Registered(PullTimeExclusion),
    AlreadyExists,
    /// The registry already holds `limit` exclusions.
    LimitExceeded,
}
