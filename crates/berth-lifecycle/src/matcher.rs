//! Tag matching: ECR's prefix and `*`-wildcard filters, and Berth's regular-expression extension.
//!
//! A rule's filter is a conjunction ("the image has a tag matching each entry"); an exclusion list is a
//! disjunction ("the image has a tag matching some entry"). Both are answered per image from its tag list.

use regex::Regex;

/// An ECR `tagPatternList` entry: literal text in which `*` matches any run of characters (also none),
/// matched against the whole tag, case-sensitively. `prod*` matches `prod` and `production`; `*prod*`
/// matches `repo-production`; `prod` matches only `prod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildcard {
    source: String,
    /// The literal pieces between the `*`s: `a*b*c` → `["a", "b", "c"]`; `*a*` → `["", "a", ""]`.
    parts: Vec<String>,
}

impl Wildcard {
    /// Compiles a pattern; any text is a valid pattern (the wildcard limit is the parser's business).
    pub fn new(source: &str) -> Self {
        Wildcard {
            source: source.to_owned(),
            parts: source.split('*').map(str::to_owned).collect(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// How many `*` the pattern contains.
    pub fn wildcards(&self) -> usize {
        self.parts.len() - 1
    }

    /// Whether `tag` as a whole matches.
    pub fn matches(&self, tag: &str) -> bool {
        let (first, rest) = self
            .parts
            .split_first()
            .expect("split yields at least one part");
        let Some((last, middle)) = rest.split_last() else {
            return tag == first;
        };
        if tag.len() < first.len() + last.len()
            || !tag.starts_with(first.as_str())
            || !tag.ends_with(last.as_str())
        {
            return false;
        }
        // Greedy left-to-right search of the middle pieces, inside the part not pinned by prefix and suffix.
        // Offsets come from matched prefixes, suffixes and `find`, so they are character
        // boundaries; `get` turns a broken invariant into "no match" instead of a panic.
        let Some(mut rest) = tag.get(first.len()..tag.len() - last.len()) else {
            return false;
        };
        for piece in middle {
            match rest.find(piece.as_str()) {
                Some(at) => match rest.get(at + piece.len()..) {
                    Some(r) => rest = r,
                    None => return false,
                },
                None => return false,
            }
        }
        true
    }
}

/// A Berth extension regular expression (`berthTagRegexList`, `berthExclude.tagRegexList`), in the syntax of the
/// `regex` crate, searched anywhere in the tag: anchor it with `^...$` to match whole tags.
#[derive(Debug, Clone)]
pub struct TagRegex(Regex);

impl TagRegex {
    pub(crate) fn new(regex: Regex) -> Self {
        TagRegex(regex)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether the expression matches somewhere in `tag`.
    pub fn matches(&self, tag: &str) -> bool {
        self.0.is_match(tag)
    }
}

impl PartialEq for TagRegex {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TagRegex {}

/// What a `tagged` rule requires of an image's tags: every entry matches at least one of its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    /// ECR `tagPrefixList`: each prefix begins some tag.
    Prefixes(Vec<String>),
    /// ECR `tagPatternList`: each pattern matches some tag as a whole.
    Patterns(Vec<Wildcard>),
    /// Berth `berthTagRegexList`: each expression matches (somewhere in) some tag.
    Regexes(Vec<TagRegex>),
}

impl TagFilter {
    /// Whether an image with these tags satisfies the filter. An image without tags never does.
    pub fn matches<S: AsRef<str>>(&self, tags: &[S]) -> bool {
        match self {
            TagFilter::Prefixes(ps) => ps
                .iter()
                .all(|p| tags.iter().any(|t| t.as_ref().starts_with(p.as_str()))),
            TagFilter::Patterns(ws) => ws
                .iter()
                .all(|w| tags.iter().any(|t| w.matches(t.as_ref()))),
            TagFilter::Regexes(rs) => rs
                .iter()
                .all(|r| tags.iter().any(|t| r.matches(t.as_ref()))),
        }
    }
}

/// A Berth exclusion list (`berthExclude`): an image with at least one tag matching at least one entry is
/// excluded. Untagged images are never excluded by tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusion {
    /// Tags beginning with one of these.
    pub tag_prefixes: Vec<String>,
    /// Tags matching one of these `*` patterns as a whole.
    pub tag_patterns: Vec<Wildcard>,
    /// Tags in which one of these expressions matches.
    pub tag_regexes: Vec<TagRegex>,
}

impl Exclusion {
    /// Whether an image with these tags is excluded.
    pub fn excludes<S: AsRef<str>>(&self, tags: &[S]) -> bool {
        tags.iter().map(AsRef::as_ref).any(|t| {
            self.tag_prefixes.iter().any(|p| t.starts_with(p.as_str()))
                || self.tag_patterns.iter().any(|w| w.matches(t))
                || self.tag_regexes.iter().any(|r| r.matches(t))
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tag_prefixes.is_empty() && self.tag_patterns.is_empty() && self.tag_regexes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_whole_tags() {
        let cases: &[(&str, &str, bool)] = &[
            ("prod", "prod", true),
            ("prod", "prod1", false),
            ("prod*", "prod", true),
            ("prod*", "production-team1", true),
            ("prod*", "xprod", false),
            ("*prod*", "repo-production", true),
            ("*prod*", "prod-team", true),
            ("*prod*", "pro", false),
            ("*", "", true),
            ("*", "anything", true),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("*test*1*2*3", "my-test-1-2-3", true),
            ("test*1*2*3*", "test123", true),
            ("*-sha-*", "v1-sha-abc", true),
            ("*-sha-*", "v1-sha", false),
            ("Prod*", "prod", false),
        ];
        for (pattern, tag, want) in cases {
            assert_eq!(
                Wildcard::new(pattern).matches(tag),
                *want,
                "{pattern} vs {tag}"
            );
        }
    }

    #[test]
    fn wildcard_counts_stars() {
        assert_eq!(Wildcard::new("*a*b*").wildcards(), 3);
        assert_eq!(Wildcard::new("plain").wildcards(), 0);
    }

    #[test]
    fn filters_need_every_entry_matched_by_some_tag() {
        let f = TagFilter::Prefixes(vec!["alpha".into(), "beta".into()]);
        assert!(f.matches(&["alpha-1", "beta-1"]));
        assert!(!f.matches(&["alpha-1"]));
        assert!(!f.matches::<&str>(&[]));
        let p = TagFilter::Patterns(vec![Wildcard::new("alpha*"), Wildcard::new("*-2")]);
        assert!(p.matches(&["alpha-1", "beta-2"]));
        assert!(p.matches(&["alpha-2"]));
        assert!(!p.matches(&["alpha-1", "beta-3"]));
    }

    #[test]
    fn exclusions_need_one_tag_matching_one_entry() {
        let e = Exclusion {
            tag_prefixes: vec!["keep".into()],
            tag_patterns: vec![Wildcard::new("*-pinned")],
            tag_regexes: vec![TagRegex::new(Regex::new("^v[0-9]+").unwrap())],
        };
        assert!(e.excludes(&["x", "keep-me"]));
        assert!(e.excludes(&["build-pinned"]));
        assert!(e.excludes(&["v12.1"]));
        assert!(!e.excludes(&["release-v1", "pinned"]));
        assert!(!e.excludes::<&str>(&[]));
    }
}
