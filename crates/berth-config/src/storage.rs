//! `[storage]`: where blob bytes live. The local disk by default (beside the metadata
//! database in `data_dir`); any S3-compatible object store with `backend = "s3"` and an
//! `[storage.s3]` table, so that several Berth nodes share one store.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, Secret};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory holding blobs (disk backend), uploads, the metadata database and keys.
    pub data_dir: PathBuf,
    /// Fsync blobs, their directories and metadata commits before acknowledging a write,
    /// so acknowledged pushes survive power loss. `false` survives process crashes only
    /// (as the reference registry behaves) and is faster on slow disks.
    pub fsync: bool,
    /// Which store holds blob bytes.
    pub backend: StorageBackend,
    /// Blob `GET`s answer `307 Temporary Redirect` to a short-lived presigned URL of the
    /// object store, so bytes flow from the store straight to clients (S3 only).
    pub redirect: bool,
    /// Lifetime of those presigned URLs, in seconds.
    pub redirect_secs: u64,
    /// The object store, for `backend = "s3"`.
    pub s3: S3Config,
    /// A file holding the master key (32 bytes, mode 0600) that seals stored secrets and
    /// signs login tokens and download grants. Every node sharing a metadata database
    /// must load the same key. Unset: `<data_dir>/master.key`, created on first start.
    pub master_key_file: Option<PathBuf>,
    /// The master key itself, base64 of 32 bytes (`BERTH_STORAGE__MASTER_KEY`), for
    /// deployments that hand secrets over in the environment. Exclusive with
    /// `master_key_file`.
    pub master_key: Option<Secret>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// `<data_dir>/blobs` and `<data_dir>/uploads`.
    Disk,
    /// An S3-compatible object store (`[storage.s3]`).
    S3,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// The bucket; it must exist (Berth never creates buckets).
    pub bucket: String,
    /// The bucket's region (signing region for other S3-compatible stores; Garage's
    /// default is `garage`).
    pub region: String,
    /// A custom endpoint (`https://minio.example:9000`); unset: AWS S3 of `region`.
    pub endpoint: Option<String>,
    /// Address the bucket in the path (`https://endpoint/bucket/key`), as MinIO, Garage and
    /// Ceph expect by default, instead of the host (`https://bucket.endpoint/key`).
    pub path_style: bool,
    /// Static credentials; unset: the AWS credential chain (environment, web identity,
    /// ECS task role, EC2 instance profile).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// Bytes are sent to the store in parts of this many MiB (S3 multipart uploads; 5 to
    /// 5120). Each upload being written holds up to one part in memory; with at most 10,000
    /// parts per object, 16 MiB allows blobs up to 156 GiB.
    pub part_size_mib: u64,
    /// Prefix of every key Berth writes in the bucket (`""` or ending in `/`), so one bucket
    /// can hold other data too.
    pub prefix: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./berth-data"),
            fsync: true,
            backend: StorageBackend::Disk,
            redirect: false,
            redirect_secs: 300,
            s3: S3Config::default(),
            master_key_file: None,
            master_key: None,
        }
    }
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            region: "us-east-1".into(),
            endpoint: None,
            path_style: false,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            part_size_mib: 16,
            prefix: String::new(),
        }
    }
}

impl StorageConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.redirect && self.backend != StorageBackend::S3 {
            return Err(ConfigError::Invalid(
                "storage.redirect needs storage.backend = \"s3\" (disk blobs are served by Berth only)"
                    .into(),
            ));
        }
        if self.redirect_secs == 0 || self.redirect_secs > 7 * 24 * 3600 {
            return Err(ConfigError::Invalid(format!(
                "storage.redirect_secs must be 1 to 604800 (S3's limit), got {}",
                self.redirect_secs
            )));
        }
        if self.backend == StorageBackend::S3 {
            self.s3.validate()?;
        }
        if self.master_key_file.is_some() && self.master_key.is_some() {
            return Err(ConfigError::Invalid(
                "set storage.master_key_file or storage.master_key (BERTH_STORAGE__MASTER_KEY), not both"
                    .into(),
            ));
        }
        Ok(())
    }

    /// True when the master key comes from the configuration rather than the data directory.
    pub fn master_key_configured(&self) -> bool {
        self.master_key_file.is_some() || self.master_key.is_some()
    }
}

impl S3Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.bucket.is_empty() {
            return invalid("storage.s3.bucket is required with storage.backend = \"s3\"".into());
        }
        if self.region.is_empty() {
            return invalid("storage.s3.region must not be empty".into());
        }
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return invalid(format!(
                    "storage.s3.endpoint must start with http:// or https://, got {e:?}"
                ));
            }
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return invalid(
                "storage.s3.access_key_id and storage.s3.secret_access_key go together (or neither, for the AWS credential chain)"
                    .into(),
            );
        }
        if self.session_token.is_some() && self.access_key_id.is_none() {
            return invalid("storage.s3.session_token needs storage.s3.access_key_id".into());
        }
        if !(5..=5120).contains(&self.part_size_mib) {
            return invalid(format!(
                "storage.s3.part_size_mib must be 5 to 5120 (S3's part limits), got {}",
                self.part_size_mib
            ));
        }
        if !(self.prefix.is_empty() || self.prefix.ends_with('/')) || self.prefix.starts_with('/') {
            return invalid(format!(
                "storage.s3.prefix must be empty or like \"berth/\" (no leading '/', a trailing one), got {:?}",
                self.prefix
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3() -> StorageConfig {
        StorageConfig {
            backend: StorageBackend::S3,
            s3: S3Config {
                bucket: "blobs".into(),
                ..S3Config::default()
            },
            ..StorageConfig::default()
        }
    }

    #[test]
    fn the_default_is_disk_and_valid() {
        let c = StorageConfig::default();
        assert_eq!(c.backend, StorageBackend::Disk);
        assert!(c.validate().is_ok());
        assert!(s3().validate().is_ok());
    }

    #[test]
    fn bad_s3_settings_are_refused_with_their_key() {
        type Change = Box<dyn Fn(&mut StorageConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("storage.s3.bucket", Box::new(|c| c.s3.bucket.clear())),
            ("storage.s3.region", Box::new(|c| c.s3.region.clear())),
            (
                "storage.s3.endpoint",
                Box::new(|c| c.s3.endpoint = Some("minio:9000".into())),
            ),
            (
                "storage.s3.secret_access_key",
                Box::new(|c| c.s3.access_key_id = Some("AKIA".into())),
            ),
            (
                "storage.s3.access_key_id",
                Box::new(|c| c.s3.secret_access_key = Some(Secret::new("s".into()))),
            ),
            (
                "storage.s3.part_size_mib",
                Box::new(|c| c.s3.part_size_mib = 4),
            ),
            (
                "storage.s3.part_size_mib",
                Box::new(|c| c.s3.part_size_mib = 6000),
            ),
            (
                "storage.s3.prefix",
                Box::new(|c| c.s3.prefix = "berth".into()),
            ),
            (
                "storage.s3.prefix",
                Box::new(|c| c.s3.prefix = "/berth/".into()),
            ),
            ("storage.redirect_secs", Box::new(|c| c.redirect_secs = 0)),
        ];
        for (key, change) in cases {
            let mut c = s3();
            change(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn redirect_needs_s3() {
        let c = StorageConfig {
            redirect: true,
            ..StorageConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("storage.redirect"));
        let c = StorageConfig {
            redirect: true,
            ..s3()
        };
        assert!(c.validate().is_ok());
    }

    #[test]
    fn the_secret_key_never_prints() {
        let mut c = s3();
        c.s3.access_key_id = Some("GKexample".into());
        c.s3.secret_access_key = Some(Secret::new("very-secret-value".into()));
        assert!(!format!("{c:?}").contains("very-secret-value"));
        assert!(!toml::to_string(&c).unwrap().contains("very-secret-value"));
    }

    #[test]
    fn the_master_key_comes_from_one_place_and_never_prints() {
        let mut c = StorageConfig::default();
        assert!(!c.master_key_configured());
        c.master_key = Some(Secret::new(
            "c2VjcmV0LW1hc3Rlci1rZXktYnl0ZXMtMzItbG9uZyE=".into(),
        ));
        assert!(c.master_key_configured());
        assert!(c.validate().is_ok());
        assert!(!format!("{c:?}").contains("c2VjcmV0"));
        assert!(!toml::to_string(&c).unwrap().contains("c2VjcmV0"));
        c.master_key_file = Some("/etc/berth/master.key".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("storage.master_key_file") && e.contains("not both"),
            "{e}"
        );
    }
}
