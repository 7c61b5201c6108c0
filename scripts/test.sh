#!/usr/bin/env bash
# Berth's whole test suite: what CI runs (via .ci/run) and what the README tells developers to run.
#
#   scripts/test.sh
#
# The end-to-end tests in crates/berth/tests/ drive real clients (skopeo, podman, buildah, umoci, curl) against the
# real `berth` binary; they fail when a client is missing unless BERTH_E2E_ALLOW_MISSING_CLIENTS=1. On Debian 12:
#   apt-get install -y --no-install-recommends skopeo podman buildah umoci curl
# The metadata store suites also run against PostgreSQL (Debian's postgresql, started by crates/berth-testkit as a
# throwaway cluster; set BERTH_TEST_PG_BIN for another bin directory).
# Both commands run even if the first fails; the script fails if either did. The last line totals both runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# On a fresh machine, install the clients and cargo-nextest first (needs root and apt).
missing=()
for tool in skopeo podman buildah umoci curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
cargo nextest --version >/dev/null 2>&1 || missing+=(cargo-nextest)
[ -x "${BERTH_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}/postgres" ] || missing+=(postgresql)
{ command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; } || missing+=(haproxy)
{ command -v garage >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/garage" ]; } || missing+=(garage)
python3 -c 'import botocore' >/dev/null 2>&1 || missing+=(botocore)
python3 -c 'import boto3' >/dev/null 2>&1 || missing+=(boto3)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "+ installing missing test dependencies: ${missing[*]}"
    bash scripts/install-test-deps.sh
  else
    echo "missing test dependencies: ${missing[*]}; run 'sudo scripts/install-test-deps.sh' first" >&2
    [ "${BERTH_E2E_ALLOW_MISSING_CLIENTS:-0}" = 1 ] || exit 1
  fi
fi

log_dir=$(mktemp -d /tmp/berth-test-XXXXXX)
trap 'rm -rf "$log_dir"' EXIT
status=0

echo "+ cargo nextest run --workspace --no-fail-fast"
cargo nextest run --workspace --no-fail-fast 2>&1 | tee "$log_dir/nextest.log" || status=$?

echo "+ cargo test --workspace --doc"
cargo test --workspace --doc 2>&1 | tee "$log_dir/doc.log" || status=$?

# Totals: nextest's "Summary ... N tests run: P passed, F failed, ..." and libtest's "test result: ... P passed; F failed".
strip() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }
count() { { grep -oE "[0-9]+ $1" || true; } | awk '{s += $1} END {print s + 0}'; }
nx_summary=$(strip "$log_dir/nextest.log" | grep -E '^ *Summary ' | tail -n 1 || true)
nx_passed=$(printf '%s\n' "$nx_summary" | count passed)
nx_failed=$(( $(printf '%s\n' "$nx_summary" | count failed) + $(printf '%s\n' "$nx_summary" | count 'timed out') ))
doc_results=$(strip "$log_dir/doc.log" | grep -E '^test result: ' || true)
doc_passed=$(printf '%s\n' "$doc_results" | count passed)
doc_failed=$(printf '%s\n' "$doc_results" | count failed)

echo
echo "nextest: ${nx_passed} passed, ${nx_failed} failed; doc tests: ${doc_passed} passed, ${doc_failed} failed; exit status ${status}"
echo "total: $((nx_passed + doc_passed)) passed, $((nx_failed + doc_failed)) failed"
exit "$status"
