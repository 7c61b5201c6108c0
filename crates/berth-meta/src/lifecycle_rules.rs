//! Lifecycle decisions the SQLite backend makes inside its SQL or inline, as shared Rust so
//! another backend decides them the same way (the conditional expiry's re-check is
//! [`crate::rules::expiry_refusal`]).

use crate::lifecycle::{PreviewResultRecord, PreviewStatus, PREVIEW_STALE_MS};

/// `lastEvaluatedAt` after a policy is put: the same text keeps the stored one; a new text
/// (or a first policy) was never evaluated. `stored` is the current (text, last evaluated).
pub fn evaluated_after_put(stored: Option<(&str, Option<i64>)>, new_text: &str) -> Option<i64> {
    match stored {
        Some((text, evaluated)) if text == new_text => evaluated,
        _ => None,
    }
}

/// Whether the repository's current preview (its stored status and start) keeps a new one
/// from starting at `now_ms`: an in-progress run younger than [`PREVIEW_STALE_MS`].
pub fn preview_blocks_start(status: &str, started_ms: i64, now_ms: i64) -> bool {
    status == PreviewStatus::InProgress.as_str() && now_ms - started_ms < PREVIEW_STALE_MS
}

/// The generation of a new preview run after the current one (`None`: no preview yet).
pub fn next_preview_generation(current: Option<i64>) -> i64 {
    current.map_or(1, |g| g + 1)
}

/// A complete preview's summary: (expiring, transitioning) counts of its rows.
pub fn preview_counts(rows: &[PreviewResultRecord]) -> (u64, u64) {
    let expiring = rows.iter().filter(|r| r.action == "EXPIRE").count() as u64;
    (expiring, rows.len() as u64 - expiring)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_keeps_its_evaluation_and_a_new_one_loses_it() {
        assert_eq!(evaluated_after_put(Some(("a", Some(5))), "a"), Some(5));
        assert_eq!(evaluated_after_put(Some(("a", Some(5))), "b"), None);
        assert_eq!(evaluated_after_put(Some(("a", None)), "a"), None);
        assert_eq!(evaluated_after_put(None, "a"), None);
    }

    #[test]
    fn only_a_young_in_progress_preview_blocks_a_new_one() {
        assert!(preview_blocks_start(
            "IN_PROGRESS",
            100,
            100 + PREVIEW_STALE_MS - 1
        ));
        assert!(!preview_blocks_start(
            "IN_PROGRESS",
            100,
            100 + PREVIEW_STALE_MS
        ));
        assert!(!preview_blocks_start("COMPLETE", 100, 101));
        assert!(!preview_blocks_start("FAILED", 100, 101));
        assert_eq!(next_preview_generation(None), 1);
        assert_eq!(next_preview_generation(Some(7)), 8);
    }

    #[test]
    fn counts_split_expiries_from_transitions() {
        let row = |action: &str| PreviewResultRecord {
            position: 0,
            digest: "sha256:a".into(),
            tags: vec![],
            pushed_ms: 0,
            action: action.into(),
            target_storage_class: None,
            rule_priority: 1,
            storage_class: "STANDARD".into(),
            size: 0,
        };
        assert_eq!(
            preview_counts(&[row("EXPIRE"), row("TRANSITION"), row("EXPIRE")]),
            (2, 1)
        );
        assert_eq!(preview_counts(&[]), (0, 0));
    }
}
