//! The S3 backend: any S3-compatible object store (AWS S3, MinIO, Ceph RGW, Garage), shared
//! by every Berth node.
//!
//! **Why `object_store`** (Apache Arrow's crate) rather than the AWS SDK for Rust: it
//! covers what Berth needs — path-style and virtual-host addressing, region and custom
//! endpoint, static keys or the AWS credential sources a server uses (environment, web
//! identity, ECS/EKS container credentials, EC2 instance metadata), the low-level multipart
//! API (`MultipartStore`, so parts written by different nodes complete one object), ranged
//! `GET`, `ListObjectsV2` with `StartAfter`, and presigned URLs — on reqwest/hyper/rustls
//! that Berth already builds, with `ring` for signing. The SDK would add a very large
//! generated crate, its own HTTP stack and aws-lc's C build for features Berth does not use.
//! What the SDK has and `object_store` lacks: shared-config profiles (`~/.aws/config`,
//! SSO) and `UploadPartCopy`; the latter only matters for blobs over 5 GiB, copied through
//! the node here (see [`S3BlobStore::commit_upload`]).
//!
//! Layout under the configured prefix:
//! ```text
//! blobs/<algorithm>/<first two hex chars>/<hex>   committed blobs (sorted as digest text)
//! uploads/<id>/state                              the upload's state (JSON, see upload.rs)
//! uploads/<id>/tail-<uuid>                        its bytes past the last full part
//! uploads/<id>/data                               the multipart upload of its full parts
//! ```
//! A blob appears under its digest key only by a copy (or the completion of a multipart
//! upload at that key) made after the upload's saved hash was checked against the digest.

mod probe;
mod upload;

pub use probe::S3StartupProblem;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};

use berth_types::{Algorithm, Digest};

use crate::{
    BlobInfo, BlobStore, BlobStoreError, ByteRange, ByteStream, Result, UploadInfo, UploadSink,
};

use upload::UploadState;

/// S3's limit for one `CopyObject`; larger blobs are copied part by part through the node.
const COPY_OBJECT_LIMIT: u64 = 5 << 30;

/// How to reach the bucket.
#[derive(Clone)]
pub struct S3Options {
    pub bucket: String,
    pub region: String,
    /// A custom endpoint (`http://127.0.0.1:3900`); `None`: AWS S3 of `region`.
    pub endpoint: Option<String>,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`.
    pub path_style: bool,
    /// Static credentials (key id, secret, optional session token); `None`: the AWS
    /// credential sources of the environment.
    pub credentials: Option<(String, String, Option<String>)>,
    /// Full parts are this many bytes (5 MiB to 5 GiB).
    pub part_size: u64,
    /// Prefix of every key (`""` or ending in `/`).
    pub prefix: String,
    /// Blobs up to this size are copied into place by the store (`CopyObject`); larger ones
    /// part by part through this node. S3's limit; lower only to test the second path.
    pub copy_limit: u64,
}

impl S3Options {
    pub fn new(bucket: impl Into<String>, region: impl Into<String>) -> Self {
        S3Options {
            bucket: bucket.into(),
            region: region.into(),
            endpoint: None,
            path_style: false,
            credentials: None,
            part_size: 16 << 20,
            prefix: String::new(),
            copy_limit: COPY_OBJECT_LIMIT,
        }
    }
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("path_style", &self.path_style)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(id, _, _)| (id, "<redacted>")),
            )
            .field("part_size", &self.part_size)
            .field("prefix", &self.prefix)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct S3BlobStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) s3: AmazonS3,
    pub(crate) part_size: u64,
    prefix: String,
    copy_limit: u64,
}

pub(crate) fn remote(e: object_store::Error) -> BlobStoreError {
    BlobStoreError::Remote(Box::new(e))
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl S3BlobStore {
    /// Builds the client and checks the bucket ([`probe`]): it must exist, and these
    /// credentials must list it and put and delete an object under the prefix, so a wrong
    /// endpoint, key or bucket stops the start with a clear error (an
    /// [`S3StartupProblem`] under [`BlobStoreError::Unreachable`]) within seconds.
    pub async fn connect(options: S3Options) -> Result<Self> {
        let store = Self::new(options.clone())?;
        let probe = builder(&options, Duration::from_secs(5), Duration::from_secs(30))
            .with_retry(probe::probe_retry())
            .build()
            .map_err(|e| BlobStoreError::Unreachable(Box::new(e)))?;
        probe::check(&probe, &store.inner, &options)
            .await
            .map_err(|e| BlobStoreError::Unreachable(Box::new(e)))?;
        Ok(store)
    }

    /// Builds the client without contacting the store.
    pub fn new(options: S3Options) -> Result<Self> {
        // A server-side copy of a multi-GiB blob is one request.
        let s3 = builder(
            &options,
            Duration::from_secs(10),
            Duration::from_secs(15 * 60),
        )
        .build()
        .map_err(|e| BlobStoreError::Unreachable(Box::new(e)))?;
        Ok(S3BlobStore {
            inner: Arc::new(Inner {
                s3,
                part_size: options.part_size,
                prefix: options.prefix,
                copy_limit: options.copy_limit,
            }),
        })
    }
}

/// The client's settings from `options`, with these timeouts.
fn builder(options: &S3Options, connect_timeout: Duration, timeout: Duration) -> AmazonS3Builder {
    // reqwest takes rustls's process-wide provider; Berth uses ring everywhere.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(&options.bucket)
        .with_region(&options.region)
        .with_virtual_hosted_style_request(!options.path_style)
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(
                    options
                        .endpoint
                        .as_deref()
                        .is_some_and(|e| e.starts_with("http://")),
                )
                .with_connect_timeout(connect_timeout)
                .with_timeout(timeout),
        );
    if let Some(e) = &options.endpoint {
        b = b.with_endpoint(e);
    }
    if let Some((id, secret, token)) = &options.credentials {
        b = b.with_access_key_id(id).with_secret_access_key(secret);
        if let Some(t) = token {
            b = b.with_token(t);
        }
    }
    b
}

impl Inner {
    pub(crate) fn key(&self, rest: &str) -> Path {
        Path::from(format!("{}{rest}", self.prefix))
    }

    fn blob_key(&self, d: &Digest) -> Path {
        self.key(&format!(
            "blobs/{}/{}/{}",
            d.algorithm().as_str(),
            d.hex_prefix(2),
            d.hex()
        ))
    }

    /// The digest a blob key names, if it is one.
    fn digest_of(&self, key: &Path) -> Option<Digest> {
        let rest = key
            .as_ref()
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("blobs/")?;
        let mut parts = rest.split('/');
        let (alg, prefix, hex) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !hex.starts_with(prefix) || prefix.len() != 2 {
            return None;
        }
        format!("{alg}:{hex}").parse().ok()
    }

    pub(crate) fn upload_key(&self, id: &str, name: &str) -> Result<Path> {
        if !crate::valid_upload_id(id) {
            return Err(BlobStoreError::UploadNotFound(id.to_string()));
        }
        Ok(self.key(&format!("uploads/{id}/{name}")))
    }

    async fn head(&self, key: &Path) -> Result<Option<object_store::ObjectMeta>> {
        match self.s3.head(key).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(remote(e)),
        }
    }

    pub(crate) async fn get_range(&self, key: &Path, range: Range<u64>) -> Result<bytes::Bytes> {
        self.s3.get_range(key, range).await.map_err(remote)
    }

    async fn delete_quietly(&self, key: &Path) -> Result<()> {
        match self.s3.delete(key).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(remote(e)),
        }
    }

    /// Copies `from` (of `size` bytes) to `to` part by part through this node (a multipart
    /// upload at `to`: it appears whole when completed, or not at all).
    async fn copy_through(&self, from: &Path, to: &Path, size: u64) -> Result<()> {
        use object_store::multipart::MultipartStore;
        let id = self.s3.create_multipart(to).await.map_err(remote)?;
        let copied = async {
            let mut parts = Vec::new();
            let mut start = 0;
            while start < size {
                let end = (start + self.part_size).min(size);
                let bytes = self.get_range(from, start..end).await?;
                let part = self
                    .s3
                    .put_part(to, &id, parts.len(), PutPayload::from(bytes))
                    .await
                    .map_err(remote)?;
                parts.push(part);
                start = end;
            }
            self.s3
                .complete_multipart(to, &id, parts)
                .await
                .map_err(remote)?;
            Ok(())
        }
        .await;
        if copied.is_err() {
            let _ = self.s3.abort_multipart(to, &id).await;
        }
        copied
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        Ok(self
            .inner
            .head(&self.inner.blob_key(digest))
            .await?
            .map(|m| m.size))
    }

    async fn open(&self, digest: &Digest, range: Option<ByteRange>) -> Result<ByteStream> {
        let key = self.inner.blob_key(digest);
        let options = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end.saturating_add(1))),
            ..GetOptions::default()
        };
        match self.inner.s3.get_opts(&key, options).await {
            Ok(got) => Ok(Box::pin(got.into_stream().map_err(std::io::Error::other))),
            Err(e) if is_not_found(&e) => Err(BlobStoreError::BlobNotFound(digest.clone())),
            Err(e) => {
                // A range starting at or past the end reads nothing (as on disk); S3 refuses it.
                if let Some(r) = range {
                    if let Some(m) = self.inner.head(&key).await? {
                        if r.start >= m.size {
                            return Ok(Box::pin(futures::stream::empty()));
                        }
                    }
                }
                Err(remote(e))
            }
        }
    }

    async fn blob_info(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        Ok(self
            .inner
            .head(&self.inner.blob_key(digest))
            .await?
            .map(|m| BlobInfo {
                digest: digest.clone(),
                size: m.size,
                modified_ms: m.last_modified.timestamp_millis(),
            }))
    }

    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<BlobInfo>> {
        let prefix = self.inner.key("blobs/");
        // ListObjectsV2 returns keys in byte order, which is digest-text order here.
        let listing = match after {
            Some(d) => self
                .inner
                .s3
                .list_with_offset(Some(&prefix), &self.inner.blob_key(d)),
            None => self.inner.s3.list(Some(&prefix)),
        };
        let mut listing = listing;
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(meta) = listing.try_next().await.map_err(remote)? else {
                break;
            };
            if let Some(digest) = self.inner.digest_of(&meta.location) {
                out.push(BlobInfo {
                    digest,
                    size: meta.size,
                    // Whole seconds, as HEAD (an HTTP date) gives them to `blob_info`.
                    modified_ms: meta.last_modified.timestamp() * 1000,
                });
            }
        }
        Ok(out)
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.inner
            .delete_quietly(&self.inner.blob_key(digest))
            .await
    }

    async fn create_upload(&self, id: &str) -> Result<()> {
        let key = self.inner.upload_key(id, upload::STATE)?;
        UploadState::new().save(&self.inner, &key).await
    }

    async fn upload_size(&self, id: &str) -> Result<Option<u64>> {
        let Ok(key) = self.inner.upload_key(id, upload::STATE) else {
            return Ok(None);
        };
        Ok(UploadState::load(&self.inner, &key)
            .await?
            .map(|(s, _)| s.size))
    }

    async fn upload_sink(
        &self,
        id: &str,
        offset: u64,
        algorithm: Algorithm,
    ) -> Result<Box<dyn UploadSink>> {
        Ok(Box::new(
            upload::S3Sink::open(self.inner.clone(), id, offset, algorithm).await?,
        ))
    }

    /// Checks the saved hash against `digest` (another node may have appended since the
    /// caller's check), then puts the bytes under the digest key: the tail is sent as the
    /// last part and the multipart upload completed at `uploads/<id>/data`, which the
    /// store copies to the blob key (`CopyObject`, server-side); a blob over
    /// [`S3Options::copy_limit`] is copied part by part through this node instead. A
    /// blob in one tail object is copied directly. Then the upload's objects go.
    async fn commit_upload(&self, id: &str, digest: &Digest) -> Result<()> {
        let inner = &self.inner;
        let state_key = inner.upload_key(id, upload::STATE)?;
        let (state, _) = UploadState::load(inner, &state_key)
            .await?
            .ok_or_else(|| BlobStoreError::UploadNotFound(id.to_string()))?;
        let actual = state.digest(id)?;
        if &actual != digest {
            return Err(BlobStoreError::UploadChanged {
                id: id.to_string(),
                expected: digest.clone(),
                actual,
            });
        }
        let blob = inner.blob_key(digest);
        if inner.head(&blob).await?.is_none() {
            let data = inner.upload_key(id, upload::DATA)?;
            match (&state.multipart, &state.tail) {
                (Some(_), _) => {
                    state.complete_into(inner, id, &data).await?;
                    if state.size <= inner.copy_limit {
                        inner.s3.copy(&data, &blob).await.map_err(remote)?;
                    } else {
                        inner.copy_through(&data, &blob, state.size).await?;
                    }
                }
                (None, Some(tail)) => {
                    let tail = inner.upload_key(id, &tail.name)?;
                    inner.s3.copy(&tail, &blob).await.map_err(remote)?;
                }
                (None, None) => {
                    inner
                        .s3
                        .put(&blob, PutPayload::new())
                        .await
                        .map_err(remote)?;
                }
            }
        }
        self.abort_upload(id).await
    }

    /// Aborts the multipart upload, deletes the upload's objects and its state last (so
    /// that a crash midway leaves it listed for the sweeper).
    async fn abort_upload(&self, id: &str) -> Result<()> {
        let inner = &self.inner;
        let Ok(state_key) = inner.upload_key(id, upload::STATE) else {
            return Ok(());
        };
        if let Some((state, _)) = UploadState::load(inner, &state_key).await? {
            state.abort_multipart(inner, id).await?;
        }
        let dir = inner.key(&format!("uploads/{id}/"));
        let objects: Vec<Path> = inner
            .s3
            .list(Some(&dir))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(remote)?;
        for key in objects.iter().filter(|k| **k != state_key) {
            inner.delete_quietly(key).await?;
        }
        inner.delete_quietly(&state_key).await
    }

    /// One recursive listing of `uploads/`: an upload's time is that of its newest object
    /// (the state is rewritten by every finished write, with a fresh tail beside it).
    async fn list_uploads(&self) -> Result<Vec<UploadInfo>> {
        let root = self.inner.key("uploads/");
        let objects: Vec<object_store::ObjectMeta> = self
            .inner
            .s3
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(remote)?;
        let mut newest: std::collections::BTreeMap<String, i64> = Default::default();
        for meta in objects {
            let Some(mut rest) = meta.location.prefix_match(&root) else {
                continue;
            };
            let Some(id) = rest.next() else { continue };
            let id = id.as_ref();
            if !crate::valid_upload_id(id) {
                continue;
            }
            let at = meta.last_modified.timestamp_millis();
            let time = newest.entry(id.to_string()).or_insert(at);
            *time = (*time).max(at);
        }
        Ok(newest
            .into_iter()
            .map(|(id, modified_ms)| UploadInfo { id, modified_ms })
            .collect())
    }

    async fn presign(&self, digest: &Digest, expires: Duration) -> Result<Option<url::Url>> {
        let url = self
            .inner
            .s3
            .signed_url(
                object_store::signer::Method::GET,
                &self.inner.blob_key(digest),
                expires,
            )
            .await
            .map_err(remote)?;
        Ok(Some(url))
    }
}

#[cfg(test)]
mod tests;
