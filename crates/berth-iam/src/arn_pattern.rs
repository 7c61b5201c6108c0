//! ARN patterns, matched segment by segment (segments are the parts between colons). Two flavours, as IAM
//! documents them:
//!
//! - **`Resource`/`NotResource`** ([`ArnPattern::matches_resource`]): each colon-separated segment is matched on
//!   its own with `*` and `?` (within a segment `*` spans `/`). A segment whose last character is `*` may also
//!   expand across colon boundaries into the following segments: `arn:aws:ecr:*` matches every ECR ARN and
//!   `arn:aws:logs:*:log-group:a:b` matches `arn:aws:logs:us-east-1:123456789012:log-group:a:b`, while
//!   `arn:aws:ecr:us-*1:...` (the `*` is not last in its segment) never reaches past the region. Case-sensitive.
//! - **`ArnLike`/`ArnEquals`** ([`ArnPattern::matches_strict`]): both sides must have the six ARN segments (the
//!   sixth is everything after the fifth colon), and each is compared separately with wildcards, case-sensitively;
//!   a `*` never spans a colon between the first five segments.

use std::cell::OnceCell;

use crate::wildcard::{BadVariable, Pattern, Vars};

/// A compiled ARN pattern: one [`Pattern`] per colon-separated segment (at most six).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ArnPattern {
    segs: Box<[Pattern]>,
}

/// Why a string is not an ARN pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadArnPattern {
    Shape,
    Variable,
}

impl From<BadVariable> for BadArnPattern {
    fn from(_: BadVariable) -> Self {
        BadArnPattern::Variable
    }
}

impl ArnPattern {
    /// A `Resource` pattern: `arn:` followed by all six segments, or fewer segments whose last one ends with `*`.
    pub(crate) fn resource(src: &str, variables: bool) -> Result<Self, BadArnPattern> {
        if Self::split(src, variables, 6)?.segs.len() < 6 && !src.ends_with('*') {
            return Err(BadArnPattern::Shape);
        }
        let p = Self::split(src, variables, MAX_SEGMENTS)?;
        Ok(p)
    }

    /// An `ArnLike`/`ArnEquals` value: `arn:` followed by all six segments.
    pub(crate) fn strict(src: &str, variables: bool) -> Result<Self, BadArnPattern> {
        let p = Self::split(src, variables, 6)?;
        if p.segs.len() < 6 {
            return Err(BadArnPattern::Shape);
        }
        Ok(p)
    }

    fn split(src: &str, variables: bool, max: usize) -> Result<Self, BadArnPattern> {
        if !src.starts_with("arn:") {
            return Err(BadArnPattern::Shape);
        }
        let segs = Pattern::compile(src, true, variables)?.split_colons(max);
        Ok(ArnPattern { segs: segs.into() })
    }

    /// `Resource` matching (see the module doc).
    pub(crate) fn matches_resource<V: Vars + ?Sized>(
        &self,
        target: &SplitArn<'_>,
        vars: &V,
    ) -> bool {
        self.expand(0, 0, target.arn, target.bounds(), vars)
    }

    // Segment bounds are positions of `:` (ASCII): always character boundaries.
    #[allow(clippy::string_slice)]
    fn expand<V: Vars + ?Sized>(
        &self,
        pi: usize,
        si: usize,
        arn: &str,
        b: &Bounds,
        vars: &V,
    ) -> bool {
        if si >= b.n {
            return false;
        }
        let p = &self.segs[pi];
        if pi + 1 == self.segs.len() {
            // The last pattern segment takes the rest: one segment, or more when it ends with `*`.
            return (si + 1 == b.n || p.ends_with_star())
                && p.matches(&arn[b.start(si)..], false, vars);
        }
        // `p` takes ARN segments si..=sj, leaving at least one for the rest of the pattern; only a trailing `*` may
        // take more than one.
        for sj in si..b.n.saturating_sub(1) {
            if sj > si && !p.ends_with_star() {
                break;
            }
            if p.matches(&arn[b.start(si)..b.end(sj)], false, vars)
                && self.expand(pi + 1, sj + 1, arn, b, vars)
            {
                return true;
            }
        }
        false
    }

    /// `ArnLike` matching (see the module doc).
    // Segment bounds are positions of `:` (ASCII): always character boundaries.
    #[allow(clippy::string_slice)]
    pub(crate) fn matches_strict<V: Vars + ?Sized>(&self, arn: &str, vars: &V) -> bool {
        let b = Bounds::of(arn, 6);
        if b.n < 6 || self.segs.len() < 6 {
            return false;
        }
        (0..5).all(|i| self.segs[i].matches(&arn[b.start(i)..b.end(i)], false, vars))
            && self.segs[5].matches(&arn[b.start(5)..], false, vars)
    }
}

/// A request's resource ARN with its segment boundaries found once, to be matched against many patterns. The
/// boundaries are found on first use: many statements never need them (`"Resource": "*"`, exact ARNs).
pub(crate) struct SplitArn<'a> {
    arn: &'a str,
    bounds: OnceCell<Bounds>,
}

impl<'a> SplitArn<'a> {
    pub(crate) fn new(arn: &'a str) -> Self {
        SplitArn {
            arn,
            bounds: OnceCell::new(),
        }
    }

    fn bounds(&self) -> &Bounds {
        self.bounds
            .get_or_init(|| Bounds::of(self.arn, MAX_SEGMENTS))
    }

    pub(crate) fn as_str(&self) -> &'a str {
        self.arn
    }
}

/// `Resource` patterns and ARNs are split at no more than this many segments (the last keeps further colons),
/// which bounds the expansion search; real ARNs have far fewer.
const MAX_SEGMENTS: usize = 16;

/// Where the (at most `max`) colon-separated segments of an ARN start.
struct Bounds {
    starts: [usize; MAX_SEGMENTS],
    n: usize,
    len: usize,
}

impl Bounds {
    fn of(arn: &str, max: usize) -> Bounds {
        let mut starts = [0usize; MAX_SEGMENTS];
        let mut n = 1;
        for (i, b) in arn.bytes().enumerate() {
            if n == max {
                break;
            }
            if b == b':' {
                starts[n] = i + 1;
                n += 1;
            }
        }
        Bounds {
            starts,
            n,
            len: arn.len(),
        }
    }

    fn start(&self, i: usize) -> usize {
        self.starts[i]
    }

    /// End (exclusive) of segment `i`, which must not be the last one.
    fn end(&self, i: usize) -> usize {
        if i + 1 < self.n {
            self.starts[i + 1] - 1
        } else {
            self.len
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wildcard::NoVars;

    const REPO: &str = "arn:aws:ecr:us-east-1:123456789012:repository/team/app";

    fn res(p: &str, arn: &str) -> bool {
        ArnPattern::resource(p, false)
            .unwrap()
            .matches_resource(&SplitArn::new(arn), &NoVars)
    }

    fn like(p: &str, arn: &str) -> bool {
        ArnPattern::strict(p, false)
            .unwrap()
            .matches_strict(arn, &NoVars)
    }

    #[test]
    fn resource_segments() {
        assert!(res(REPO, REPO));
        assert!(res("arn:aws:ecr:*:123456789012:repository/*", REPO));
        assert!(res(
            "arn:aws:ecr:us-east-?:123456789012:repository/team/*",
            REPO
        ));
        assert!(!res(
            "arn:aws:ecr:us-west-2:123456789012:repository/*",
            REPO
        ));
        assert!(!res(
            "arn:aws:ecr:us-east-1:123456789012:repository/other",
            REPO
        ));
        assert!(!res(
            "arn:aws:ecr:us-east-1:123456789012:Repository/team/app",
            REPO
        ));
        assert!(res(
            "arn:aws:ecr:us-east-1:123456789012:repository/t??m/a*",
            REPO
        ));
    }

    #[test]
    fn trailing_star_expands_across_colons() {
        assert!(res("arn:aws:ecr:*", REPO));
        assert!(res("arn:aws:ecr:us-east-1:*", REPO));
        assert!(res("arn:*", REPO));
        assert!(!res("arn:aws:iam:*", REPO));
        // Resource part keeps its own colons.
        assert!(res(
            "arn:aws:logs:*:*:log-group:*",
            "arn:aws:logs:us-east-1:123456789012:log-group:x:log-stream:y"
        ));
    }

    #[test]
    fn inner_star_stays_in_its_segment() {
        // As a whole-string glob `us-*1` would swallow "east-1:999999999999:"; per segment it cannot.
        let p = "arn:aws:ecr:us-*1:123456789012:repository/x1";
        assert!(!res(
            p,
            "arn:aws:ecr:us-east-1:999999999999:1:123456789012:repository/x1"
        ));
        assert!(res(p, "arn:aws:ecr:us-east-1:123456789012:repository/x1"));
        assert!(res(
            "arn:aws:ecr:us-*1:*",
            "arn:aws:ecr:us-east-1:123456789012:repository/x1"
        ));
        // Inside the resource part too: `a*b` cannot cross the colon, `a*` can.
        assert!(!res(
            "arn:aws:logs:*:*:log-group:a*b",
            "arn:aws:logs:r:123456789012:log-group:ax:yb"
        ));
        assert!(res(
            "arn:aws:logs:*:*:log-group:a*",
            "arn:aws:logs:r:123456789012:log-group:ax:yb"
        ));
    }

    #[test]
    fn resource_shape_is_validated() {
        assert_eq!(
            ArnPattern::resource("arn:aws:ecr:us-east-1", false),
            Err(BadArnPattern::Shape)
        );
        assert_eq!(
            ArnPattern::resource("repository/x", false),
            Err(BadArnPattern::Shape)
        );
        assert!(ArnPattern::resource("arn:aws:ecr:*", false).is_ok());
    }

    #[test]
    fn arn_like_is_per_segment() {
        assert!(like(
            "arn:aws:iam::*:user/*",
            "arn:aws:iam::123456789012:user/alice"
        ));
        assert!(like(
            "arn:aws:iam::123456789012:*",
            "arn:aws:iam::123456789012:root"
        ));
        assert!(!like(
            "arn:aws:iam::*:user/*",
            "arn:aws:iam::123456789012:role/alice"
        ));
        // `*` in the region segment cannot swallow the account (as a `Resource` it may: it is last in its segment).
        let logs = "arn:aws:logs:us-east-1:123456789012:log-group:a:b";
        assert!(!like("arn:aws:logs:*:log-group:a:b", logs));
        assert!(res("arn:aws:logs:*:log-group:a:b", logs));
        assert!(!like("arn:aws:iam::*:user/*", "not-an-arn"));
        assert!(!like(
            "arn:aws:iam::*:user/*",
            "ARN:aws:iam::123456789012:user/alice"
        ));
        assert!(ArnPattern::strict("arn:aws:iam::*", false).is_err());
    }
}
