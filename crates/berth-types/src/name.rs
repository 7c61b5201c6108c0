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
    #[error("account id {0:?} is not 12 digits")]
    InvalidAccount(String),
    #[error("tag {0:?} does not match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    InvalidTag(String),
    #[error(transparent)]
    InvalidDigest(#[from] DigestError),
}

/// An AWS account id: exactly 12 ASCII digits. Each account owns one registry namespace, so
/// the account is part of every repository's identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId([u8; 12]);

impl AccountId {
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl FromStr for AccountId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes: [u8; 12] = s
            .as_bytes()
            .try_into()
            .map_err(|_| NameError::InvalidAccount(s.to_string()))?;
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(NameError::InvalidAccount(s.to_string()));
        }
        Ok(AccountId(bytes))
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A repository: the account whose registry holds it, and its name, which matches
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`. Two accounts
/// may each have a repository of the same name; they are different repositories.
/// `Display` and [`RepositoryName::as_str`] give the name alone, as clients see it;
/// [`RepositoryName::qualified`] gives `<account>/<name>`, the key stores use.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName {
    account: AccountId,
    /// `<account>/<name>`: the name starts at byte [`QUALIFIED_PREFIX_LEN`].
    qualified: String,
}

/// Length of `<account>/` in a qualified repository name.
pub const QUALIFIED_PREFIX_LEN: usize = 13;

/// Checks a repository name against the OCI name grammar and length limit.
pub fn validate_repository_name(s: &str) -> Result<(), NameError> {
    if s.is_empty() || s.len() > MAX_NAME_LEN || !s.split('/').all(valid_name_component) {
        return Err(NameError::InvalidName(s.to_string()));
    }
    Ok(())
}

/// One `/`-separated component of a repository name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
/// (the OCI grammar, which ECR's `RepositoryName` pattern repeats).
pub fn valid_name_component(c: &str) -> bool {
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
    /// Repository `name` in `account`'s registry; the name must match the OCI grammar.
    pub fn new(account: AccountId, name: &str) -> Result<Self, NameError> {
        validate_repository_name(name)?;
        let mut qualified = String::with_capacity(QUALIFIED_PREFIX_LEN + name.len());
        qualified.push_str(account.as_str());
        qualified.push('/');
        qualified.push_str(name);
        Ok(RepositoryName { account, qualified })
    }

    /// Parses `<account>/<name>` (what [`RepositoryName::qualified`] gives).
    pub fn from_qualified(qualified: &str) -> Result<Self, NameError> {
        let invalid = || NameError::InvalidName(qualified.to_string());
        let (account, name) = qualified.split_once('/').ok_or_else(invalid)?;
        let account: AccountId = account.parse().map_err(|_| invalid())?;
        RepositoryName::new(account, name)
    }

    /// The name, as clients see it (without the account).
    pub fn as_str(&self) -> &str {
        // The prefix is a 12-digit account id and `/` (ASCII), so the offset is a
        // character boundary; `get` keeps that an invariant rather than a panic.
        self.qualified
            .get(QUALIFIED_PREFIX_LEN..)
            .unwrap_or_default()
    }

    /// The account whose registry holds the repository.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// `<account>/<name>`: unique across every registry of the server.
    pub fn qualified(&self) -> &str {
        &self.qualified
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.qualified)
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
            assert!(validate_repository_name(ok).is_ok(), "{ok} should be valid");
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
                validate_repository_name(bad).is_err(),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn accounts_are_twelve_digits_and_scope_repositories() {
        let a: AccountId = "123456789012".parse().unwrap();
        let b: AccountId = "000000000000".parse().unwrap();
        assert_eq!(a.as_str(), "123456789012");
        for bad in [
            "",
            "12345678901",
            "1234567890123",
            "12345678901x",
            "١٢٣٤٥٦٧٨٩٠١٢",
        ] {
            assert!(bad.parse::<AccountId>().is_err(), "{bad:?}");
        }
        let in_a = RepositoryName::new(a, "team/app").unwrap();
        let in_b = RepositoryName::new(b, "team/app").unwrap();
        assert_ne!(in_a, in_b, "same name, different registries");
        assert_eq!(in_a.to_string(), "team/app");
        assert_eq!(in_a.account(), a);
        assert_eq!(in_a.qualified(), "123456789012/team/app");
        assert_eq!(
            RepositoryName::from_qualified("123456789012/team/app").unwrap(),
            in_a
        );
        assert!(RepositoryName::from_qualified("team/app").is_err());
        assert!(RepositoryName::from_qualified("123456789012/").is_err());
        assert!(RepositoryName::new(a, "Team").is_err());
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
