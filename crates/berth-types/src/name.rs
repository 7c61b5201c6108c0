//! Repository names, tags and manifest references, with the grammar of the OCI
//! Distribution Specification v1.1.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Longest repository name accepted. Clients commonly cap `host/name` at 255 characters.
pub const MAX_NAME_LEN: usize = 255;
/// Tags are `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub const MAX_TAG_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("repository name {0:?} does not match the OCI name grammar")]
    InvalidName(String),
    #[error("tag {0:?} does not match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    InvalidTag(String),
    #[error(transparent)]
    InvalidDigest(#[from] DigestError),
}

/// A repository name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__", or one or more "-".
        let start = i;
        let sep = b[i];
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let run = &b[start..i];
        let ok = match sep {
            b'.' => run == b".",
            b'_' => run == b"_" || run == b"__",
            b'-' => run.iter().all(|&x| x == b'-'),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

impl RepositoryName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RepositoryName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > MAX_NAME_LEN || !s.split('/').all(component_ok) {
            return Err(NameError::InvalidName(s.to_string()));
        }
        Ok(RepositoryName(s.to_string()))
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A tag.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_');
        let rest_ok = b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-');
        if !first_ok || !rest_ok || b.len() > MAX_TAG_LEN {
            return Err(NameError::InvalidTag(s.to_string()));
        }
        Ok(Tag(s.to_string()))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// What follows `/manifests/`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Digest::looks_like_digest(s) {
            Ok(Reference::Digest(s.parse()?))
        } else {
            Ok(Reference::Tag(s.parse()?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for ok in [
            "a",
            "library/ubuntu",
            "a/b/c/d/e/f",
            "my-app",
            "my--app",
            "my_app",
            "my__app",
            "my.app",
            "0abc/9x",
            "foo.bar_baz-qux/x",
        ] {
            assert!(ok.parse::<RepositoryName>().is_ok(), "{ok} should be valid");
        }
    }

    #[test]
    fn invalid_names() {
        let long = "a".repeat(256);
        for bad in [
            "",
            "A",
            "Upper/case",
            "/leading",
            "trailing/",
            "double//slash",
            "-dash",
            "dash-",
            "a___b",
            "a..b",
            "a._b",
            "with space",
            "a/_b",
            long.as_str(),
        ] {
            assert!(
                bad.parse::<RepositoryName>().is_err(),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn tags() {
        assert!("latest".parse::<Tag>().is_ok());
        assert!("_x.Y-1".parse::<Tag>().is_ok());
        assert!("a".repeat(128).parse::<Tag>().is_ok());
        assert!("a".repeat(129).parse::<Tag>().is_err());
        assert!(".hidden".parse::<Tag>().is_err());
        assert!("-x".parse::<Tag>().is_err());
        assert!("".parse::<Tag>().is_err());
        assert!("a/b".parse::<Tag>().is_err());
    }

    #[test]
    fn references() {
        assert!(matches!("v1".parse::<Reference>(), Ok(Reference::Tag(_))));
        assert!(matches!(
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .parse::<Reference>(),
            Ok(Reference::Digest(_))
        ));
        assert!(matches!(
            "sha256:totallywrong".parse::<Reference>(),
            Err(NameError::InvalidDigest(_))
        ));
    }
}
