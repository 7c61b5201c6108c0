#!/usr/bin/env bash
# Runs Berth's end-to-end tests against CNCF distribution (Debian's docker-registry, 2.8) instead of berth, to check
# the tests themselves. Extra arguments go to cargo nextest (e.g. a test name filter).
#
#   scripts/e2e-against-distribution.sh [nextest args...]
#
# Expected to fail on distribution 2.8, which lacks these spec behaviours:
#   http_api::referrers_api_lists_manifests_with_subject        (no referrers API, no OCI-Subject)
#   http_api::tag_list_pagination                               (tag list not sorted)
#   http_api::out_of_order_patch_is_416                         (Content-Range not checked)
#   http_api::upload_continues_after_rejected_out_of_order_patch
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}
[ -x "$REGISTRY_BIN" ] || { echo "no $REGISTRY_BIN (apt-get install docker-registry)" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-distribution-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML

echo "+ $REGISTRY_BIN serve $work/config.yml  (127.0.0.1:$port, log in $work/registry.log)"
"$REGISTRY_BIN" serve "$work/config.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
cleanup() { kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done

export BERTH_E2E_REGISTRY="127.0.0.1:$port"
echo "+ BERTH_E2E_REGISTRY=$BERTH_E2E_REGISTRY cargo nextest run -p berth --test real_clients --test http_api --test oci_client --no-fail-fast $*"
cargo nextest run -p berth --test real_clients --test http_api --test oci_client --no-fail-fast "$@"
