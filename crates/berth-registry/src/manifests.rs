//! Manifests, tags, referrers and the catalog.

use std::sync::Arc;

use bytes::Bytes;

use berth_meta::archive::ImageStatus;
use berth_meta::NewManifest;
use berth_types::manifest::{self, MAX_MANIFEST_BYTES};
use berth_types::{
    media, Descriptor, Digest, ManifestError, ParsedManifest, Reference, RepositoryName,
};

use crate::cache::ServedManifest;
use crate::error::{RegistryError, Result};
use crate::Registry;

/// Largest page a listing returns when the client names no `n`.
pub const DEFAULT_PAGE_LIMIT: usize = 10_000;

/// What a manifest push produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
    /// False when this exact manifest was already stored and the tag (if any) already
    /// pointed at it: ECR's PutImage then answers `ImageAlreadyExistsException`.
    pub changed: bool,
}

/// One page of a sorted listing; `next` is the `last` value for the following page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub items: Vec<String>,
    pub next: Option<String>,
}

pub(crate) fn page(mut items: Vec<String>, n: usize) -> ListPage {
    let next = if items.len() > n {
        items.truncate(n);
        items.last().cloned()
    } else {
        None
    };
    ListPage { items, next }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ReferrerDescriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<serde_json::Value>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ReferrersIndex {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<ReferrerDescriptor>,
}

impl Registry {
    /// Validates and stores a manifest pushed under `reference` with the given `Content-Type`.
    pub async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<PushedManifest> {
        if body.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge.into());
        }
        let parsed = manifest::parse(&body, content_type)?;
        self.ensure_repository(repo).await?;
        self.check_descriptor_sizes(repo, &parsed).await?;
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), &body);
                if &actual != expected {
                    return Err(RegistryError::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(_) => Digest::sha256_of(&body),
        };
        let tag = match reference {
            Reference::Tag(t) => Some(t.clone()),
            Reference::Digest(_) => None,
        };
        let subject = parsed.subject.as_ref().map(|s| s.digest.clone());
        let new = NewManifest {
            digest: digest.clone(),
            media_type: parsed.media_type.clone(),
            artifact_type: parsed.artifact_type.clone(),
            subject: subject.clone(),
            annotations_json: parsed
                .annotations
                .as_ref()
                .map(|a| serde_json::to_string(a).unwrap_or_default()),
            blobs: parsed.required_blobs().map(|d| d.digest.clone()).collect(),
            children: parsed
                .required_manifests()
                .map(|d| d.digest.clone())
                .collect(),
            layers: parsed.layers.iter().map(|d| d.digest.clone()).collect(),
            tag: tag.clone(),
            body: body.to_vec(),
            // The registry clock: lifecycle ages count from it (see `clock`).
            now_ms: crate::clock::now_ms(),
        };
        let outcome = self.inner.meta.put_manifest(repo, &new).await;
        // Invalidate even on failure: harmless, and keeps the rule "every write invalidates".
        self.inner
            .cache
            .invalidate(repo, tag.as_ref().map(|t| t.as_str()), Some(&digest));
        let outcome = outcome?;
        tracing::debug!(repository = %repo, %digest, media_type = %parsed.media_type, "manifest stored");
        Ok(PushedManifest {
            digest,
            subject,
            changed: outcome.created || outcome.tag_updated,
        })
    }

    /// Refuses a manifest whose config or layer descriptors do not state the stored
    /// size of their blob. Sizes are fixed by the digest, so checking before the push
    /// transaction is as good as inside it; whether each blob is still linked is
    /// checked again by the transaction.
    async fn check_descriptor_sizes(
        &self,
        repo: &RepositoryName,
        parsed: &ParsedManifest,
    ) -> Result<()> {
        let required: Vec<&Descriptor> = parsed.required_blobs().collect();
        if required.is_empty() {
            return Ok(());
        }
        let digests: Vec<Digest> = required.iter().map(|d| d.digest.clone()).collect();
        let stored = self.inner.meta.linked_blobs(repo, &digests).await?;
        for (descriptor, stored) in required.into_iter().zip(stored) {
            match stored {
                None => {
                    return Err(RegistryError::ManifestBlobUnknown(
                        descriptor.digest.clone(),
                    ))
                }
                Some(stored) if stored != descriptor.size => {
                    return Err(RegistryError::DescriptorSizeMismatch {
                        digest: descriptor.digest.clone(),
                        declared: descriptor.size,
                        stored,
                    })
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Resolves a tag to a digest.
    pub async fn resolve(&self, repo: &RepositoryName, reference: &Reference) -> Result<Digest> {
        match reference {
            Reference::Digest(d) => Ok(d.clone()),
            Reference::Tag(t) => {
                if let Some(d) = self.inner.cache.tag(repo, t.as_str()) {
                    return Ok(d);
                }
                let generation = self.inner.cache.generation();
                let d = self
                    .inner
                    .meta
                    .resolve_tag(repo, t)
                    .await?
                    .ok_or_else(|| RegistryError::ManifestNotFound(t.to_string()))?;
                self.inner
                    .cache
                    .fill_tag(generation, repo, t.as_str(), d.clone());
                Ok(d)
            }
        }
    }

    /// A manifest by tag or digest, as served.
    pub async fn get_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Arc<ServedManifest>> {
        let digest = self.resolve(repo, reference).await?;
        let served = match self.inner.cache.manifest(repo, &digest) {
            Some(m) => m,
            None => {
                let generation = self.inner.cache.generation();
                let rec = self
                    .inner
                    .meta
                    .get_manifest(repo, &digest)
                    .await?
                    .ok_or_else(|| RegistryError::ManifestNotFound(reference.to_string()))?;
                // Only a cache miss reads the status (see `archive`).
                let status = self
                    .inner
                    .meta
                    .image_storage(repo, std::slice::from_ref(&digest))
                    .await?
                    .pop()
                    .flatten()
                    .map_or(ImageStatus::Active, |s| s.status);
                let served = Arc::new(ServedManifest {
                    digest: rec.digest,
                    media_type: rec.media_type,
                    body: Bytes::from(rec.body),
                    status,
                });
                self.inner
                    .cache
                    .fill_manifest(generation, repo, served.clone());
                served
            }
        };
        if served.status != ImageStatus::Active {
            return Err(RegistryError::ImageArchived {
                // As clients name images: `repo:tag` or `repo@digest`.
                reference: match reference {
                    Reference::Tag(t) => format!("{repo}:{t}"),
                    Reference::Digest(d) => format!("{repo}@{d}"),
                },
                restoring: served.status == ImageStatus::Activating,
            });
        }
        Ok(served)
    }

    /// Deletes a tag, or a manifest (with every tag pointing at it) by digest.
    pub async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<()> {
        let found = match reference {
            Reference::Tag(t) => {
                let r = self.inner.meta.delete_tag(repo, t).await;
                self.inner.cache.invalidate(repo, Some(t.as_str()), None);
                r?
            }
            Reference::Digest(d) => {
                let r = self.inner.meta.delete_manifest(repo, d).await;
                self.inner.cache.invalidate(repo, None, Some(d));
                self.inner.cache.invalidate_repo_tags(repo);
                r?
            }
        };
        if found {
            Ok(())
        } else {
            Err(RegistryError::ManifestNotFound(reference.to_string()))
        }
    }

    /// Tags of a repository in lexical order, `n` at most, after `last`.
    pub async fn list_tags(
        &self,
        repo: &RepositoryName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<ListPage> {
        let n = n.unwrap_or(DEFAULT_PAGE_LIMIT);
        let items = self
            .inner
            .meta
            .list_tags(repo, last, n.saturating_add(1))
            .await?
            .ok_or_else(|| RegistryError::RepositoryNotFound(repo.to_string()))?;
        Ok(page(items, n))
    }

    /// The referrers index (an OCI image index) of `subject`, optionally filtered by
    /// artifact type. Never "not found": no referrers is an empty index.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Bytes> {
        let records = self.inner.meta.referrers(repo, subject).await?;
        let manifests = records
            .into_iter()
            .filter(|r| artifact_type.is_none() || r.artifact_type.as_deref() == artifact_type)
            .map(|r| ReferrerDescriptor {
                media_type: r.media_type,
                digest: r.digest.to_string(),
                size: r.size,
                artifact_type: r.artifact_type,
                annotations: r
                    .annotations_json
                    .and_then(|a| serde_json::from_str(&a).ok()),
            })
            .collect();
        let index = ReferrersIndex {
            schema_version: 2,
            media_type: media::OCI_INDEX,
            manifests,
        };
        Ok(Bytes::from(
            serde_json::to_vec(&index).map_err(|e| RegistryError::Internal(Box::new(e)))?,
        ))
    }
}
