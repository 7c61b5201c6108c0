//! What evaluation needs to know about each image of a repository. The caller gathers these from its stores;
//! nothing here reads them.

use time::OffsetDateTime;

use crate::policy::StorageClass;

/// One image (manifest) of the repository being evaluated.
///
/// Field order matters: the derived `Ord` is the deterministic tie-breaker when a caller passes two entries with
/// the same digest (the smallest wins), so evaluation never depends on input order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageFacts {
    /// The manifest digest, `sha256:...`; unique within the repository.
    pub digest: String,
    /// Its tags, in any order; empty for an untagged image.
    pub tags: Vec<String>,
    /// When it was pushed (ECR `imagePushedAt`).
    pub pushed_at: OffsetDateTime,
    /// When it was last pulled (ECR `lastRecordedPullTime`), if ever.
    pub last_pulled_at: Option<OffsetDateTime>,
    /// When it was last restored from the archive (ECR `last_activated_at`), if ever.
    pub last_activated_at: Option<OffsetDateTime>,
    /// Its current storage class.
    pub storage_class: StorageClass,
    /// When it was last moved to the archive (ECR `last_archived_at`); meaningful while archived. An archived
    /// image without it is never old enough for `sinceImageTransitioned`.
    pub transitioned_at: Option<OffsetDateTime>,
    /// Its size as ECR reports it (`imageSizeInBytes`), used for the bytes each rule frees or moves.
    pub size_bytes: u64,
    /// Digests of the image indexes / manifest lists in this repository that reference it.
    pub parents: Vec<String>,
    /// For a referrer (signature, SBOM, attestation...): the digest of the image it refers to.
    pub subject: Option<String>,
}

impl ImageFacts {
    /// An untagged, standard, never-pulled image with no relations: the start of a builder-style literal.
    pub fn new(digest: impl Into<String>, pushed_at: OffsetDateTime, size_bytes: u64) -> Self {
        ImageFacts {
            digest: digest.into(),
            tags: Vec::new(),
            pushed_at,
            last_pulled_at: None,
            last_activated_at: None,
            storage_class: StorageClass::Standard,
            transitioned_at: None,
            size_bytes,
            parents: Vec::new(),
            subject: None,
        }
    }

    /// The same image with these tags.
    pub fn tagged<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// The time ECR orders and ages pushes by: the push, or the later restore from the archive.
    pub fn effective_pushed_at(&self) -> OffsetDateTime {
        match self.last_activated_at {
            Some(a) if a > self.pushed_at => a,
            _ => self.pushed_at,
        }
    }

    /// The time `sinceImagePulled` measures from: the last pull, unless the image was restored after it (then
    /// the restore), unless it was never pulled (then the push or the restore).
    pub fn effective_pulled_at(&self) -> OffsetDateTime {
        let activity = self.effective_pushed_at();
        match self.last_pulled_at {
            Some(p) if p > activity => p,
            _ => activity,
        }
    }
}
