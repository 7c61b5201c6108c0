//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`, seeds and regression
//! inputs) through the same entry points the fuzz targets call: no input may panic.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

use std::path::Path;

fn replay(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{target}: only {} inputs", files.len());
    let panicked: Vec<String> = files
        .iter()
        .filter(|f| {
            let data = std::fs::read(f).expect("corpus file");
            std::panic::catch_unwind(|| entry(&data)).is_err()
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        panicked.is_empty(),
        "{target}: these inputs panic: {panicked:#?}"
    );
}

#[test]
fn lifecycle_policy_corpus() {
    replay("lifecycle_policy", berth_lifecycle::fuzz_entry::policy);
}
