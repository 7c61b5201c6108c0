//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`, seeds and regression
//! inputs) through the same entry points the fuzz targets call: no input may panic.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::replay;

#[test]
fn iam_query_corpus() {
    replay("iam_query", berth_iam_api::fuzz_entry::query);
}
