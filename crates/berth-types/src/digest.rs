//! Content digests (`algorithm:encoded`) and the incremental hashers that produce them.

use std::fmt;
use std::str::FromStr;

use sha2::digest::common::hazmat::SerializableState;
use sha2::Digest as _;
use sha2_resumable as sha2;

/// A hash algorithm the registry can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded digest.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest {0:?} is not of the form algorithm:encoded")]
    Malformed(String),
    #[error("a saved hash state is not valid: {0}")]
    BadHashState(&'static str),
    #[error("digest algorithm {0:?} is not supported (use sha256 or sha512)")]
    UnsupportedAlgorithm(String),
    #[error("digest {0:?} has an encoded part of the wrong length or alphabet")]
    BadEncoding(String),
}

/// A validated digest with a supported algorithm and lower-case hex encoding.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first `n` hex digits (all of them when `n` is larger), e.g. a storage shard
    /// directory name.
    pub fn hex_prefix(&self, n: usize) -> &str {
        // Validated hex is ASCII, so every byte offset is a character boundary.
        self.hex.get(..n).unwrap_or(&self.hex)
    }

    /// Digest of a byte slice in one go (for small things such as manifests).
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut h = algorithm.hasher();
        h.update(bytes);
        h.finish()
    }

    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Self::of(Algorithm::Sha256, bytes)
    }

    /// True when the string merely looks like a digest attempt (contains a colon), which
    /// decides between "invalid digest" and "invalid tag" errors.
    pub fn looks_like_digest(s: &str) -> bool {
        s.contains(':')
    }
}

/// Grammar check of the generic digest form from the OCI image spec:
/// `algorithm-component ([+._-] algorithm-component)* ":" [a-zA-Z0-9=_-]+`.
fn generic_form_ok(alg: &str, enc: &str) -> bool {
    let alg_ok = !alg.is_empty()
        && alg.split(['+', '.', '_', '-']).all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let enc_ok = !enc.is_empty()
        && enc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-');
    alg_ok && enc_ok
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, enc) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(s.to_string()))?;
        if !generic_form_ok(alg, enc) {
            return Err(DigestError::Malformed(s.to_string()));
        }
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_string())),
        };
        if enc.len() != algorithm.hex_len()
            || !enc
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::BadEncoding(s.to_string()));
        }
        Ok(Digest {
            algorithm,
            hex: enc.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Tags the text of a saved hash state: sha2 keeps its serialized state stable within one
/// minor version only, so a newer format gets a new tag rather than a wrong digest.
const SAVED_STATE_VERSION: &str = "v1";

/// An incremental hasher for one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// The running state, as text another process can continue from with
    /// [`Hasher::resume`]: `v1:<algorithm>:<hex of sha2's serialized state>` (a few hundred
    /// bytes: the compression state, the block count and the partial block).
    pub fn save(&self) -> String {
        let (alg, bytes) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.serialize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.serialize())),
        };
        format!("{SAVED_STATE_VERSION}:{}:{bytes}", alg.as_str())
    }

    /// A hasher continuing from a state made by [`Hasher::save`].
    pub fn resume(saved: &str) -> Result<Hasher, DigestError> {
        let mut parts = saved.splitn(3, ':');
        if parts.next() != Some(SAVED_STATE_VERSION) {
            return Err(DigestError::BadHashState("unknown version"));
        }
        let alg = parts
            .next()
            .ok_or(DigestError::BadHashState("no algorithm"))?;
        let bytes = hex::decode(parts.next().ok_or(DigestError::BadHashState("no state"))?)
            .map_err(|_| DigestError::BadHashState("state is not hex"))?;
        fn restore<H: SerializableState>(bytes: &[u8]) -> Result<H, DigestError> {
            let array = sha2::digest::array::Array::try_from(bytes)
                .map_err(|_| DigestError::BadHashState("state has the wrong length"))?;
            H::deserialize(&array).map_err(|_| DigestError::BadHashState("state does not decode"))
        }
        match alg {
            "sha256" => Ok(Hasher::Sha256(restore(&bytes)?)),
            "sha512" => Ok(Hasher::Sha512(restore(&bytes)?)),
            _ => Err(DigestError::BadHashState("unknown algorithm")),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest {
                algorithm: Algorithm::Sha256,
                hex: hex::encode(h.finalize()),
            },
            Hasher::Sha512(h) => Digest {
                algorithm: Algorithm::Sha512,
                hex: hex::encode(h.finalize()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_sha256_and_sha512() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d, Digest::sha256_of(b""));
        let s512 = Digest::of(Algorithm::Sha512, b"abc");
        assert!(s512.hex().starts_with("ddaf35a193617aba"));
        let again: Digest = s512.to_string().parse().unwrap();
        assert_eq!(again, s512);
    }

    #[test]
    fn rejects_bad_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "sha256:totallywrong",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:e3b0/..",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(
            "md5:d41d8cd98f00b204e9800998ecf8427e".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn incremental_equals_one_shot() {
        let mut h = Algorithm::Sha256.hasher();
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), Digest::sha256_of(b"hello world"));
    }

    #[test]
    fn a_saved_state_continues_where_it_stopped() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut whole = alg.hasher();
            whole.update(&data);
            let expected = whole.finish();
            // Cut inside a block and on a block boundary.
            for cut in [0, 1, 63, 64, 127, 128, 5_000, 10_000] {
                let mut first = alg.hasher();
                first.update(&data[..cut]);
                let saved = first.save();
                let mut second = Hasher::resume(&saved).unwrap();
                assert_eq!(second.algorithm(), alg);
                second.update(&data[cut..]);
                assert_eq!(second.finish(), expected, "{alg:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn damaged_saved_states_are_refused() {
        let saved = Algorithm::Sha256.hasher().save();
        assert!(saved.starts_with("v1:sha256:"));
        let short = &saved[..saved.len() - 2];
        for bad in [
            "",
            "v2:sha256:00",
            "v1:md5:00",
            "v1:sha256:zz",
            short,
            "v1:sha256",
        ] {
            assert!(Hasher::resume(bad).is_err(), "{bad:?}");
        }
        // A SHA-256 state is not a SHA-512 one.
        let swapped = saved.replace("sha256", "sha512");
        assert!(Hasher::resume(&swapped).is_err());
    }
}
