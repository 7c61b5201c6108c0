//! Uploads on S3: their state object and the sink that appends to them.
//!
//! An upload's bytes are full parts of a multipart upload (at `uploads/<id>/data`), each
//! exactly `part_size` bytes, followed by a tail object holding the rest (less than a
//! part). `uploads/<id>/state` is one JSON object naming all of it together with the hash
//! of every byte (`Hasher::save`):
//!
//! ```json
//! {"size":12582912,"hash":"v1:sha256:…","multipart":"<S3 upload id>",
//!  "parts":[{"etag":"…","size":5242880},…],"tail":{"name":"tail-<uuid>","size":2097152}}
//! ```
//!
//! A sink loads the state, reads the tail back into its buffer, hashes what it is given,
//! sends each part as it fills, and when it finishes writes a new tail object (a fresh
//! name: objects are never rewritten in place) and then the new state in one `PUT`. So the
//! state an upload is read with is always whole: its parts, tail and hash agree, whichever
//! node wrote it. Nothing lives in a process's memory between requests.
//!
//! Chunks of one upload arrive one after another (OCI clients wait for each answer). Two
//! nodes writing the same upload at once cannot corrupt a blob: the last state written
//! wins, the loser's client sees the offset it did not expect, and a part overwritten by
//! the other writer no longer matches its ETag, which fails the completion (S3 checks
//! every part's ETag) rather than producing wrong bytes; the commit also checks the saved
//! hash against the digest again.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use berth_types::{Algorithm, Digest, Hasher};

use super::{remote, Inner};
use crate::{BlobStoreError, Result, UploadSink, Written};

pub(super) const STATE: &str = "state";
pub(super) const DATA: &str = "data";
/// Batches at least this large are hashed on a blocking thread, off the async runtime.
const HASH_OFF_RUNTIME: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct UploadState {
    pub size: u64,
    /// `Hasher::save` of every byte so far.
    pub hash: String,
    /// The S3 multipart upload holding the full parts, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<Tail>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Part {
    pub etag: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Tail {
    /// Object name under `uploads/<id>/`.
    pub name: String,
    pub size: u64,
}

impl UploadState {
    pub fn new() -> Self {
        UploadState {
            size: 0,
            hash: Algorithm::Sha256.hasher().save(),
            multipart: None,
            parts: Vec::new(),
            tail: None,
        }
    }

    pub async fn load(inner: &Inner, key: &Path) -> Result<Option<(UploadState, String)>> {
        let got = match inner.s3.get(key).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(remote(e)),
        };
        let etag = got.meta.e_tag.clone().unwrap_or_default();
        let bytes = got.bytes().await.map_err(remote)?;
        let state = serde_json::from_slice(&bytes).map_err(|e| {
            BlobStoreError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("upload state {key} is not valid: {e}"),
            ))
        })?;
        Ok(Some((state, etag)))
    }

    pub async fn save(&self, inner: &Inner, key: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| BlobStoreError::Io(io::Error::other(e)))?;
        inner
            .s3
            .put(key, PutPayload::from(json))
            .await
            .map_err(remote)?;
        Ok(())
    }

    fn hasher(&self, id: &str) -> Result<Hasher> {
        Hasher::resume(&self.hash).map_err(|source| BlobStoreError::UploadStateCorrupt {
            id: id.to_string(),
            source,
        })
    }

    /// The digest of the upload's bytes, from the saved hash.
    pub fn digest(&self, id: &str) -> Result<Digest> {
        Ok(self.hasher(id)?.finish())
    }

    /// Sends the tail as the last part and completes the multipart upload at `data`
    /// (skipped when an earlier, interrupted commit already completed it).
    pub async fn complete_into(&self, inner: &Inner, id: &str, data: &Path) -> Result<()> {
        let Some(multipart) = &self.multipart else {
            return Ok(());
        };
        if let Ok(m) = inner.s3.head(data).await {
            if m.size == self.size {
                return Ok(());
            }
        }
        let multipart = multipart.clone();
        let mut parts: Vec<PartId> = self
            .parts
            .iter()
            .map(|p| PartId {
                content_id: p.etag.clone(),
            })
            .collect();
        if let Some(tail) = &self.tail {
            let key = inner.upload_key(id, &tail.name)?;
            let bytes = inner.get_range(&key, 0..tail.size).await?;
            let part = inner
                .s3
                .put_part(data, &multipart, parts.len(), PutPayload::from(bytes))
                .await
                .map_err(remote)?;
            parts.push(part);
        }
        inner
            .s3
            .complete_multipart(data, &multipart, parts)
            .await
            .map_err(remote)?;
        Ok(())
    }

    /// Aborts the multipart upload, if any (an absent one is not an error).
    pub async fn abort_multipart(&self, inner: &Inner, id: &str) -> Result<()> {
        if let Some(m) = &self.multipart {
            let data = inner.upload_key(id, DATA)?;
            match inner.s3.abort_multipart(&data, &m.clone()).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    // Completed by an interrupted commit, or already gone: the data object
                    // (if any) is deleted with the upload's other objects.
                    tracing::debug!(upload = id, error = %e, "multipart upload not aborted");
                }
            }
        }
        Ok(())
    }
}

pub(super) struct S3Sink {
    inner: Arc<Inner>,
    id: String,
    state_key: Path,
    data_key: Path,
    /// The state the sink started from.
    before: UploadState,
    /// Whether the hash was rebuilt for another algorithm (to be saved even if nothing
    /// is written).
    rehashed: bool,
    hasher: Option<Hasher>,
    size: u64,
    multipart: Option<String>,
    /// Parts this sink sent, after `before.parts`.
    new_parts: Vec<Part>,
    /// Bytes after the last full part: the old tail, then what was written.
    pending: Vec<Bytes>,
    pending_len: u64,
    wrote: bool,
}

impl S3Sink {
    pub async fn open(
        inner: Arc<Inner>,
        id: &str,
        offset: u64,
        algorithm: Algorithm,
    ) -> Result<S3Sink> {
        let state_key = inner.upload_key(id, STATE)?;
        let data_key = inner.upload_key(id, DATA)?;
        let (state, _) = UploadState::load(&inner, &state_key)
            .await?
            .ok_or_else(|| BlobStoreError::UploadNotFound(id.to_string()))?;
        if state.size != offset {
            return Err(BlobStoreError::UploadOffsetMismatch {
                id: id.to_string(),
                expected: offset,
                actual: state.size,
            });
        }
        let mut pending = Vec::new();
        let mut pending_len = 0;
        if let Some(tail) = &state.tail {
            let key = inner.upload_key(id, &tail.name)?;
            let bytes = inner.get_range(&key, 0..tail.size).await?;
            pending_len = bytes.len() as u64;
            pending.push(bytes);
        }
        let saved = state.hasher(id)?;
        let (hasher, rehashed) = if saved.algorithm() == algorithm {
            (saved, false)
        } else if state.multipart.is_none() {
            // Every byte is in the tail, which is in memory now.
            let mut h = algorithm.hasher();
            for b in &pending {
                h.update(b);
            }
            (h, true)
        } else {
            return Err(BlobStoreError::UploadNotRehashable {
                id: id.to_string(),
                algorithm: algorithm.as_str(),
            });
        };
        Ok(S3Sink {
            multipart: state.multipart.clone(),
            size: state.size,
            before: state,
            inner,
            id: id.to_string(),
            state_key,
            data_key,
            rehashed,
            hasher: Some(hasher),
            new_parts: Vec::new(),
            pending,
            pending_len,
            wrote: false,
        })
    }

    /// Sends the first `part_size` pending bytes as the next part.
    async fn send_part(&mut self) -> Result<()> {
        let part_size = self.inner.part_size;
        let mut part = Vec::new();
        let mut need = part_size;
        while need > 0 {
            let first = &mut self.pending[0];
            if (first.len() as u64) <= need {
                need -= first.len() as u64;
                part.push(self.pending.remove(0));
            } else {
                part.push(first.split_to(need as usize));
                need = 0;
            }
        }
        self.pending_len -= part_size;
        let multipart = match &self.multipart {
            Some(m) => m.clone(),
            None => {
                let m = self
                    .inner
                    .s3
                    .create_multipart(&self.data_key)
                    .await
                    .map_err(remote)?;
                self.multipart = Some(m.clone());
                m
            }
        };
        let index = self.before.parts.len() + self.new_parts.len();
        let id = self
            .inner
            .s3
            .put_part(
                &self.data_key,
                &multipart,
                index,
                part.into_iter().collect::<PutPayload>(),
            )
            .await
            .map_err(remote)?;
        self.new_parts.push(Part {
            etag: id.content_id,
            size: part_size,
        });
        Ok(())
    }

    /// Aborts a multipart upload this sink created (one the state names stays).
    async fn drop_new_multipart(&self) {
        if self.before.multipart.is_none() {
            if let Some(m) = &self.multipart {
                let _ = self.inner.s3.abort_multipart(&self.data_key, m).await;
            }
        }
    }
}

#[async_trait::async_trait]
impl UploadSink for S3Sink {
    async fn write(&mut self, chunks: Vec<Bytes>) -> Result<()> {
        let len: usize = chunks.iter().map(Bytes::len).sum();
        let mut hasher = self
            .hasher
            .take()
            .ok_or_else(|| BlobStoreError::Io(io::Error::other("upload sink is broken")))?;
        let chunks = if len >= HASH_OFF_RUNTIME {
            let (h, c) = tokio::task::spawn_blocking(move || {
                for c in &chunks {
                    hasher.update(c);
                }
                (hasher, chunks)
            })
            .await
            .map_err(|e| BlobStoreError::Io(io::Error::other(e)))?;
            hasher = h;
            c
        } else {
            for c in &chunks {
                hasher.update(c);
            }
            chunks
        };
        self.hasher = Some(hasher);
        self.size += len as u64;
        self.pending_len += len as u64;
        self.pending
            .extend(chunks.into_iter().filter(|c| !c.is_empty()));
        self.wrote |= len > 0;
        while self.pending_len >= self.inner.part_size {
            self.send_part().await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<Written> {
        let hasher = self
            .hasher
            .take()
            .ok_or_else(|| BlobStoreError::Io(io::Error::other("upload sink is broken")))?;
        if !self.wrote && !self.rehashed {
            return Ok(Written {
                size: self.size,
                hasher,
            });
        }
        let result = async {
            let tail = if self.pending_len > 0 {
                let name = format!("tail-{}", uuid::Uuid::new_v4());
                let key = self.inner.upload_key(&self.id, &name)?;
                let mut buf = BytesMut::with_capacity(self.pending_len as usize);
                for b in &self.pending {
                    buf.extend_from_slice(b);
                }
                self.inner
                    .s3
                    .put(&key, PutPayload::from(buf.freeze()))
                    .await
                    .map_err(remote)?;
                Some(Tail {
                    name,
                    size: self.pending_len,
                })
            } else {
                None
            };
            let mut parts = self.before.parts.clone();
            parts.extend(self.new_parts.iter().cloned());
            let state = UploadState {
                size: self.size,
                hash: hasher.save(),
                multipart: self.multipart.clone(),
                parts,
                tail,
            };
            state.save(&self.inner, &self.state_key).await?;
            Ok::<_, BlobStoreError>(state)
        }
        .await;
        match result {
            Ok(state) => {
                // The old tail is no longer named by the state.
                if let Some(old) = &self.before.tail {
                    if state.tail.as_ref().is_none_or(|t| t.name != old.name) {
                        if let Ok(key) = self.inner.upload_key(&self.id, &old.name) {
                            let _ = self.inner.s3.delete(&key).await;
                        }
                    }
                }
                Ok(Written {
                    size: self.size,
                    hasher,
                })
            }
            Err(e) => {
                self.drop_new_multipart().await;
                Err(e)
            }
        }
    }

    /// Parts this sink sent stay in the multipart upload unnamed by the state: the next
    /// sink sends the same part numbers again, and a completion lists only named parts.
    async fn abort(self: Box<Self>) -> Result<()> {
        self.drop_new_multipart().await;
        Ok(())
    }
}
