//! Secrets at rest: the master key (`<data-dir>/master.key`) and the sealed format of
//! secret access keys.
//!
//! SigV4 verification recomputes an HMAC with the plaintext secret, so secrets cannot be
//! hashed; they are encrypted with AES-256-GCM under a 32-byte master key kept outside the
//! database. A copy of `meta.db` alone (a backup, a support bundle) reveals no secret.
//!
//! ## Sealed format, version 1
//! ```text
//! [0x01] [master key id: 4 bytes] [nonce: 12 random bytes] [ciphertext + 16-byte tag]
//! ```
//! The associated data is the access key id, so a sealed secret copied onto another key's
//! row fails to open. The key id is the first 4 bytes of SHA-256("berth master key v1" ||
//! key): a row sealed under another master key is reported as [`SecretError::WrongMasterKey`]
//! rather than as corruption.
//!
//! ## Rotation plan (not built yet)
//! Because each sealed value names its key, a rotation can be gradual and crash-safe:
//! generate `master.key.next`, re-seal every row under it in one transaction per batch
//! (rows sealed under either key stay readable meanwhile, a key ring looked up by id),
//! then replace `master.key`. Losing `master.key` loses every stored secret: back it up
//! separately from `meta.db` (that separation is the point).

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The first byte of every sealed secret.
pub const SEALED_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("sealed secret has unknown format version {0}")]
    UnknownVersion(u8),
    #[error("sealed secret is truncated")]
    Truncated,
    #[error("secret was sealed under master key {found}, but the loaded master key is {loaded}: wrong or replaced master.key")]
    WrongMasterKey { found: String, loaded: String },
    #[error("sealed secret failed authentication (corrupted row or wrong master key)")]
    Corrupt,
    #[error("master key file {path}: {reason}")]
    BadKeyFile { path: PathBuf, reason: String },
    #[error("master key file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The 32-byte key that seals secrets at rest. `Debug` shows only its id.
pub struct MasterKey {
    cipher: Aes256Gcm,
    id: [u8; KEY_ID_LEN],
    /// Key for signing registry login tokens, derived from the master key (never stored).
    login_token_key: [u8; 32],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id_hex())
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"berth master key v1");
        h.update(key);
        let digest = h.finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        let mut h = Sha256::new();
        h.update(b"berth login token key v1");
        h.update(key);
        let login_token_key: [u8; 32] = h.finalize().into();
        MasterKey {
            cipher: Aes256Gcm::new(&key.into()),
            id,
            login_token_key,
        }
    }

    /// A new random key (from the operating system's generator).
    pub fn generate() -> Self {
        Self::from_bytes(random_key())
    }

    /// A 32-byte key for signing registry login tokens (`GetAuthorizationToken`), derived
    /// from the master key under its own label, so a token never reveals the master key
    /// and a new master key invalidates every token.
    pub fn login_token_key(&self) -> [u8; 32] {
        self.login_token_key
    }

    /// The key's short public id, in hex (safe to log).
    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads the key at `path`, creating it first (32 random bytes, mode 0600, fsynced,
    /// published with a no-clobber link so that two processes racing agree on one key).
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        Self::load_or_install(path, random_key())
    }

    /// Reads the key at `path`, creating it first with `key` (as [`MasterKey::load_or_create`]
    /// does with a random one): `berth migrate` gives a new single node the source's key.
    pub fn load_or_install(path: &Path, key: [u8; 32]) -> Result<Self, SecretError> {
        match Self::load(path) {
            Err(SecretError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            other => return other,
        }
        let io = |source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".master.key.{}.{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        let written = f.write_all(&key).and_then(|_| f.sync_all());
        drop(f);
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
                tracing::info!(path = %path.display(), "created a new master key");
                Ok(Self::from_bytes(key))
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(io(e)),
        }
    }

    /// Reads an existing key file (exactly 32 bytes).
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let io = |source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "master key file is readable by group or others; chmod 600 it");
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| SecretError::BadKeyFile {
                path: path.to_path_buf(),
                reason: format!("expected 32 bytes, found {}", b.len()),
            })?;
        Ok(Self::from_bytes(key))
    }

    /// Encrypts `plaintext` bound to `aad` (the access key id) in the version-1 format.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption of a short secret cannot fail");
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts a value produced by [`MasterKey::seal`] with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        let (&version, rest) = sealed.split_first().ok_or(SecretError::Truncated)?;
        if version != SEALED_VERSION {
            return Err(SecretError::UnknownVersion(version));
        }
        if rest.len() < KEY_ID_LEN + NONCE_LEN + TAG_LEN {
            return Err(SecretError::Truncated);
        }
        let (id, rest) = rest.split_at(KEY_ID_LEN);
        if id != self.id {
            return Err(SecretError::WrongMasterKey {
                found: id.iter().map(|b| format!("{b:02x}")).collect(),
                loaded: self.id_hex(),
            });
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| SecretError::Corrupt)
    }
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

/// A secret access key in plaintext. `Debug` and `Display` never show it; use
/// [`SecretAccessKey::expose`] in the one place that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretAccessKey(String);

impl SecretAccessKey {
    pub fn new(s: String) -> Self {
        SecretAccessKey(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretAccessKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_bind_the_access_key_id() {
        let k = MasterKey::generate();
        let sealed = k.seal(b"AKIAEXAMPLE", b"secret");
        assert_eq!(sealed[0], SEALED_VERSION);
        assert_eq!(sealed.len(), HEADER_LEN + 6 + TAG_LEN);
        assert_eq!(k.open(b"AKIAEXAMPLE", &sealed).unwrap(), b"secret");
        assert!(matches!(
            k.open(b"AKIAOTHER", &sealed),
            Err(SecretError::Corrupt)
        ));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            k.open(b"AKIAEXAMPLE", &flipped),
            Err(SecretError::Corrupt)
        ));
        assert!(matches!(
            MasterKey::generate().open(b"AKIAEXAMPLE", &sealed),
            Err(SecretError::WrongMasterKey { .. })
        ));
        let mut v2 = sealed.clone();
        v2[0] = 2;
        assert!(matches!(
            k.open(b"AKIAEXAMPLE", &v2),
            Err(SecretError::UnknownVersion(2))
        ));
        assert!(matches!(
            k.open(b"AKIAEXAMPLE", &sealed[..10]),
            Err(SecretError::Truncated)
        ));
        // Two seals of the same secret differ (random nonce).
        assert_ne!(sealed, k.seal(b"AKIAEXAMPLE", b"secret"));
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = MasterKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap().len(), 32);
        let b = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(a.id_hex(), b.id_hex());
        let sealed = a.seal(b"id", b"x");
        assert_eq!(b.open(b"id", &sealed).unwrap(), b"x");
        assert!(!format!("{a:?}").contains("cipher"));
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            MasterKey::load(&path),
            Err(SecretError::BadKeyFile { .. })
        ));
        assert_eq!(
            format!("{:?}", SecretAccessKey::new("hunter2".into())),
            "SecretAccessKey(<redacted>)"
        );
    }
}
