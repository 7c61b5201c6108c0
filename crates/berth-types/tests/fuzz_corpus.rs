//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`, seeds and regression
//! inputs) through the same entry points the fuzz targets call: no input may panic.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::replay;

#[test]
fn manifest_corpus() {
    replay("manifest", berth_types::fuzz_entry::manifest);
}

#[test]
fn json_body_corpus() {
    replay("json_body", berth_types::fuzz_entry::json_body);
}
