//! Which tags of a repository may be moved: ECR's four tag mutability modes and their
//! wildcard exclusion filters. The store applies this inside the manifest-push
//! transaction, so both edges (the ECR API's PutImage and a `/v2` manifest PUT) refuse the
//! same moves.

/// Every tag may move.
pub const MUTABLE: &str = "MUTABLE";
/// No tag may move.
pub const IMMUTABLE: &str = "IMMUTABLE";
/// No tag may move, except tags matching an exclusion filter.
pub const IMMUTABLE_WITH_EXCLUSION: &str = "IMMUTABLE_WITH_EXCLUSION";
/// Every tag may move, except tags matching an exclusion filter.
pub const MUTABLE_WITH_EXCLUSION: &str = "MUTABLE_WITH_EXCLUSION";

/// The modes of the model's `ImageTagMutability` enum, in its order.
pub const MODES: [&str; 4] = [
    MUTABLE,
    IMMUTABLE,
    IMMUTABLE_WITH_EXCLUSION,
    MUTABLE_WITH_EXCLUSION,
];

/// Whether `mode` takes exclusion filters (and requires at least one).
pub fn takes_filters(mode: &str) -> bool {
    mode == IMMUTABLE_WITH_EXCLUSION || mode == MUTABLE_WITH_EXCLUSION
}

/// True when, under `mode` and `filters`, `tag` must not be moved to another image once it
/// exists. An unknown mode counts as mutable (the edge validates modes before storing).
pub fn tag_is_immutable(mode: &str, filters: &[String], tag: &str) -> bool {
    let excluded = || filters.iter().any(|f| wildcard_match(f, tag));
    match mode {
        IMMUTABLE => true,
        IMMUTABLE_WITH_EXCLUSION => !excluded(),
        MUTABLE_WITH_EXCLUSION => excluded(),
        _ => false,
    }
}

/// ECR's `WILDCARD` filter: `*` matches any run of characters (also none), every other
/// character matches itself, case-sensitively, over the whole tag.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // Greedy matching with backtracking to the last star: linear for the usual patterns.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_whole_tags() {
        for (p, t) in [
            ("latest", "latest"),
            ("*", ""),
            ("*", "anything"),
            ("release-*", "release-1.2"),
            ("release-*", "release-"),
            ("*-dev", "feature-x-dev"),
            ("v*.*", "v1.2"),
            ("a*b*c", "aXXbYYc"),
            ("a*b*c", "abc"),
            ("**", "x"),
        ] {
            assert!(wildcard_match(p, t), "{p} should match {t}");
        }
        for (p, t) in [
            ("latest", "latest2"),
            ("latest", "Latest"),
            ("release-*", "release"),
            ("*-dev", "dev"),
            ("v*.*", "v12"),
            ("a*b*c", "aXXbYY"),
            ("", "x"),
        ] {
            assert!(!wildcard_match(p, t), "{p} should not match {t}");
        }
    }

    #[test]
    fn the_four_modes() {
        let f = vec!["dev-*".to_string(), "latest".to_string()];
        assert!(!tag_is_immutable(MUTABLE, &f, "v1"));
        assert!(tag_is_immutable(IMMUTABLE, &f, "latest"));
        assert!(tag_is_immutable(IMMUTABLE_WITH_EXCLUSION, &f, "v1"));
        assert!(!tag_is_immutable(IMMUTABLE_WITH_EXCLUSION, &f, "latest"));
        assert!(!tag_is_immutable(IMMUTABLE_WITH_EXCLUSION, &f, "dev-42"));
        assert!(!tag_is_immutable(MUTABLE_WITH_EXCLUSION, &f, "v1"));
        assert!(tag_is_immutable(MUTABLE_WITH_EXCLUSION, &f, "dev-42"));
        assert!(tag_is_immutable(MUTABLE_WITH_EXCLUSION, &f, "latest"));
        // Filters are ignored by the plain modes; an unknown mode is mutable.
        assert!(!tag_is_immutable("MUTABLE", &f, "dev-1"));
        assert!(!tag_is_immutable("bogus", &[], "v1"));
        assert!(takes_filters(IMMUTABLE_WITH_EXCLUSION) && takes_filters(MUTABLE_WITH_EXCLUSION));
        assert!(!takes_filters(MUTABLE) && !takes_filters(IMMUTABLE));
    }
}
