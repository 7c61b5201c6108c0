#!/usr/bin/env bash
# Berth's whole test suite: what CI runs (via .ci/run) and what the README tells developers to run.
#
#   scripts/test.sh
#
# The end-to-end tests in crates/berth/tests/ drive real clients (skopeo, podman, buildah, umoci, curl) against the
# real `berth` binary; they fail when a client is missing unless BERTH_E2E_ALLOW_MISSING_CLIENTS=1. On Debian 12:
#   apt-get install -y --no-install-recommends skopeo podman buildah umoci curl
# Both commands run even if the first fails; the script fails if either did.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0

echo "+ cargo nextest run --workspace --no-fail-fast"
cargo nextest run --workspace --no-fail-fast || status=$?

echo "+ cargo test --workspace --doc"
cargo test --workspace --doc || status=$?

exit "$status"
