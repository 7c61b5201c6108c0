//! Amazon Resource Names: parsing, and building the ARNs Berth hands out.
//!
//! `arn:partition:service:region:account-id:resource`. The first five colons separate the fixed segments; the
//! resource segment is the rest and may itself contain `:` and `/`.

use std::fmt;

/// The partition Berth places its ARNs in.
pub const PARTITION: &str = "aws";

/// A parsed ARN, borrowing from the string it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

/// Why a string is not an ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("`{0}` does not start with `arn:`")]
    NotAnArn(String),
    #[error("`{0}` has fewer than six colon-separated segments")]
    TooFewSegments(String),
    #[error("`{0}` has an empty partition, service or resource")]
    EmptySegment(String),
    #[error("`{0}` has an account that is not a 12-digit account id")]
    InvalidAccount(String),
}

impl<'a> Arn<'a> {
    /// Parses `arn:partition:service:region:account:resource`. Region and account may be empty (IAM ARNs have no
    /// region); when the account is present it must be a 12-digit id.
    pub fn parse(s: &'a str) -> Result<Self, ArnError> {
        let segs = split_segments(s).ok_or_else(|| {
            if s.starts_with("arn:") {
                ArnError::TooFewSegments(s.to_owned())
            } else {
                ArnError::NotAnArn(s.to_owned())
            }
        })?;
        if segs[0] != "arn" {
            return Err(ArnError::NotAnArn(s.to_owned()));
        }
        let arn = Arn {
            partition: segs[1],
            service: segs[2],
            region: segs[3],
            account: segs[4],
            resource: segs[5],
        };
        if arn.partition.is_empty() || arn.service.is_empty() || arn.resource.is_empty() {
            return Err(ArnError::EmptySegment(s.to_owned()));
        }
        if !arn.account.is_empty() && !is_account_id(arn.account) {
            return Err(ArnError::InvalidAccount(s.to_owned()));
        }
        Ok(arn)
    }

    /// The repository name of an ECR repository ARN (`arn:aws:ecr:<region>:<account>:repository/<name>`).
    pub fn ecr_repository_name(&self) -> Option<&'a str> {
        if self.service != "ecr" {
            return None;
        }
        self.resource
            .strip_prefix("repository/")
            .filter(|n| !n.is_empty())
    }

    /// `(path, name)` of an IAM user ARN (`arn:aws:iam::<account>:user/<path/>name`); the path is `/` or
    /// `/division/team/`.
    pub fn iam_user(&self) -> Option<(&'a str, &'a str)> {
        if self.service != "iam" {
            return None;
        }
        let rest = self.resource.strip_prefix("user/")?;
        // `user/<path...>/<name>`: the path keeps its leading and trailing `/`.
        let (path, name) = match rest.rsplit_once('/') {
            Some((dirs, name)) => (
                self.resource
                    .get("user".len()..="user/".len() + dirs.len())?,
                name,
            ),
            None => ("/", rest),
        };
        (!name.is_empty()).then_some((path, name))
    }

    /// True for `arn:<partition>:iam::<account>:root`, the account principal.
    pub fn is_account_root(&self) -> bool {
        self.service == "iam"
            && self.region.is_empty()
            && !self.account.is_empty()
            && self.resource == "root"
    }
}

impl fmt::Display for Arn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

/// Splits at the first five colons. `None` when there are fewer than six segments.
pub(crate) fn split_segments(s: &str) -> Option<[&str; 6]> {
    let mut out = [""; 6];
    let mut it = s.splitn(6, ':');
    for slot in &mut out {
        *slot = it.next()?;
    }
    Some(out)
}

/// True for a 12-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `arn:aws:ecr:<region>:<account>:repository/<name>`.
pub fn ecr_repository_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:{PARTITION}:ecr:{region}:{account}:repository/{name}")
}

/// `arn:aws:iam::<account>:user<path><name>`. `path` is `/` or `/a/b/`; an empty path counts as `/`.
pub fn iam_user_arn(account: &str, path: &str, name: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    format!("arn:{PARTITION}:iam::{account}:user{path}{name}")
}

/// `arn:aws:iam::<account>:group<path><name>`.
pub fn iam_group_arn(account: &str, path: &str, name: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    format!("arn:{PARTITION}:iam::{account}:group{path}{name}")
}

/// `arn:aws:iam::<account>:root`, the account principal.
pub fn account_root_arn(account: &str) -> String {
    format!("arn:{PARTITION}:iam::{account}:root")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repository_arn() {
        let s = "arn:aws:ecr:us-east-1:123456789012:repository/team/app";
        let arn = Arn::parse(s).unwrap();
        assert_eq!(arn.region, "us-east-1");
        assert_eq!(arn.account, "123456789012");
        assert_eq!(arn.ecr_repository_name(), Some("team/app"));
        assert_eq!(arn.to_string(), s);
        assert_eq!(
            ecr_repository_arn("us-east-1", "123456789012", "team/app"),
            s
        );
    }

    #[test]
    fn parses_user_and_root_arns() {
        let u = iam_user_arn("123456789012", "/ops/eu/", "alice");
        assert_eq!(u, "arn:aws:iam::123456789012:user/ops/eu/alice");
        let arn = Arn::parse(&u).unwrap();
        assert_eq!(arn.iam_user(), Some(("/ops/eu/", "alice")));
        let plain = Arn::parse("arn:aws:iam::123456789012:user/bob").unwrap();
        assert_eq!(plain.iam_user(), Some(("/", "bob")));
        let root = account_root_arn("123456789012");
        assert!(Arn::parse(&root).unwrap().is_account_root());
        assert!(!plain.is_account_root());
        assert_eq!(
            iam_group_arn("123456789012", "", "devs"),
            "arn:aws:iam::123456789012:group/devs"
        );
    }

    #[test]
    fn resource_segment_keeps_colons() {
        let arn = Arn::parse("arn:aws:logs:us-east-1:123456789012:log-group:name:*").unwrap();
        assert_eq!(arn.resource, "log-group:name:*");
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!(
            Arn::parse("aws:ecr:x"),
            Err(ArnError::NotAnArn(_))
        ));
        assert!(matches!(
            Arn::parse("arn:aws:ecr:us-east-1"),
            Err(ArnError::TooFewSegments(_))
        ));
        assert!(matches!(
            Arn::parse("arn:aws::r:123456789012:x"),
            Err(ArnError::EmptySegment(_))
        ));
        assert!(matches!(
            Arn::parse("arn:aws:iam::12345:root"),
            Err(ArnError::InvalidAccount(_))
        ));
        assert!(is_account_id("000000000000"));
        assert!(!is_account_id("12345678901a"));
    }
}
