//! The corpus replay every crate's `tests/fuzz_corpus.rs` includes (with `#[path]`): each
//! committed input of `fuzz/corpus/<target>/` goes through the entry point the fuzz target
//! calls, and none may panic.

use std::path::Path;

/// Feeds every file of `fuzz/corpus/<target>/` to `entry`; fails naming the inputs that panic.
pub fn replay(target: &str, entry: fn(&[u8])) {
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
