//! Layer uploads the ECR API way (UploadLayerPart / CompleteLayerUpload): each part is
//! one in-memory buffer (at most 20 MiB, decoded from the request's base64) appended at an
//! offset the client states; completion sends no further bytes. The same upload machinery
//! as `/v2` (single-pass hashing, offset check under the upload's lock) does the work.

use bytes::Bytes;
use futures::stream;

use berth_types::{Digest, RepositoryName};

use crate::error::Result;
use crate::{Registry, UploadStatus};

impl Registry {
    /// Appends `part` to upload `id` of `repo` if the upload holds exactly `first_byte`
    /// bytes (else `UploadOutOfOrder` with the current size, and nothing is written).
    pub async fn upload_part(
        &self,
        repo: &RepositoryName,
        id: &str,
        first_byte: u64,
        part: Bytes,
    ) -> Result<UploadStatus> {
        let body = stream::iter([Ok::<_, std::io::Error>(part)]);
        self.append_upload(repo, id, Some(first_byte), body).await
    }

    /// Completes upload `id` with what it holds, verifying `digest`; returns the size.
    pub async fn finish_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
    ) -> Result<u64> {
        let nothing = stream::empty::<std::io::Result<Bytes>>();
        self.complete_upload(repo, id, digest, None, nothing).await
    }
}
