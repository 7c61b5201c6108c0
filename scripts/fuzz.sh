#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a set time each (default 60 seconds).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). It works on the stable toolchain: without a
# sanitizer (`-s none`) the only unstable flags cargo-fuzz passes are accepted under
# RUSTC_BOOTSTRAP=1; libFuzzer's coverage instrumentation and debug assertions stay on, so
# panics, overflows and out-of-range slices are found (memory errors would need nightly and
# ASan, but the parsers have no unsafe code).
#
# Each target reads the committed seeds in fuzz/corpus/<target>/ and writes what it learns to
# fuzz/work/<target>/ (ignored by git). A crash stops the run: the input is in
# fuzz/artifacts/<target>/; add it to fuzz/corpus/<target>/ with a name saying what it is, so
# that the crates' `fuzz_corpus` tests replay it in the normal suite, and fix the parser.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
shift || true
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^berth-fuzz$')
fi

command -v cargo-fuzz >/dev/null 2>&1 || {
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
  exit 2
}
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none --debug-assertions

failed=()
for t in "${targets[@]}"; do
  mkdir -p "work/$t" "artifacts/$t"
  echo "== $t: ${seconds}s"
  # -rss_limit_mb: a parser that needs more than this for one input is a finding too.
  if ! cargo fuzz run -s none --debug-assertions "$t" "work/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/"; then
    failed+=("$t")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "targets that found a crash: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "all ${#targets[@]} targets ran ${seconds}s without a crash"
