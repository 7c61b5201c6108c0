//! The one place the binary picks the blob backend from `[storage]`: the local disk under
//! the data directory, or an S3-compatible object store shared by every node.

use std::sync::Arc;

use anyhow::Context;

use berth_blobstore::{BlobStore, DiskBlobStore, DiskOptions, S3BlobStore, S3Options};
use berth_config::{StorageBackend, StorageConfig};

/// Opens the configured blob store. An object store is checked here (listed, and a probe
/// object put and deleted under the prefix: `berth_blobstore::S3StartupProblem`), so a
/// wrong endpoint, refused credentials or a missing bucket stop the start with a clear
/// error, before anything is served.
pub async fn open_blob_store(storage: &StorageConfig) -> anyhow::Result<Arc<dyn BlobStore>> {
    match storage.backend {
        StorageBackend::Disk => {
            let dir = &storage.data_dir;
            let disk = DiskBlobStore::open_with(
                dir,
                DiskOptions {
                    fsync: storage.fsync,
                },
            )
            .with_context(|| format!("opening blob store in {}", dir.display()))?;
            Ok(Arc::new(disk))
        }
        StorageBackend::S3 => {
            let s3 = &storage.s3;
            let options = s3_options(storage);
            let store = S3BlobStore::connect(options).await.with_context(|| {
                format!(
                    "checking the S3 bucket {:?} (region {}, endpoint {})",
                    s3.bucket,
                    s3.region,
                    s3.endpoint.as_deref().unwrap_or("AWS")
                )
            })?;
            Ok(Arc::new(store))
        }
    }
}

fn s3_options(storage: &StorageConfig) -> S3Options {
    let s3 = &storage.s3;
    S3Options {
        endpoint: s3.endpoint.clone(),
        path_style: s3.path_style,
        credentials: match (&s3.access_key_id, &s3.secret_access_key) {
            (Some(id), Some(secret)) => Some((
                id.clone(),
                secret.expose().to_string(),
                s3.session_token.as_ref().map(|t| t.expose().to_string()),
            )),
            _ => None,
        },
        part_size: s3.part_size_mib << 20,
        prefix: s3.prefix.clone(),
        ..S3Options::new(s3.bucket.clone(), s3.region.clone())
    }
}
