#!/usr/bin/env bash
# Installs what the test suite needs on Debian 12 (as root): the real clients the end-to-end tests drive
# (skopeo, podman, buildah, umoci, curl), botocore, boto3 and the AWS CLI from PyPI, cargo-nextest and Garage (S3). Called by .ci/run, and by scripts/test.sh when
# something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo; echo "==> $*"; }
# Retry a command a few times (package mirrors hiccup).
retry() {
  local n
  for n in 1 2 3; do
    "$@" && return 0
    echo "(attempt $n of 3 failed: $*)"
    sleep $((n * 5))
  done
  return 1
}

export DEBIAN_FRONTEND=noninteractive

APT_PACKAGES=(
  skopeo          # copy/inspect/list-tags/delete, oci: <-> docker://
  podman          # push/pull, manifest create/add/push --all (vfs storage, no daemon)
  buildah         # from scratch / copy / commit / push
  umoci           # builds OCI layouts without network; unpack
  uidmap          # newuidmap/newgidmap, wanted by podman/buildah
  curl            # chunked and resumed uploads in the HTTP tests
  jq
  docker-registry # CNCF distribution, for scripts/e2e-against-distribution.sh (not used by the test suite)
  ca-certificates
  postgresql      # PostgreSQL 15: the metadata store suites run against a throwaway cluster (crates/berth-testkit)
  haproxy         # the load balancer in front of the three-node cluster tests (crates/berth/tests/cluster.rs)
)

step "apt-get update"
retry apt-get update

step "apt-get install -y --no-install-recommends ${APT_PACKAGES[*]}"
retry apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"

step "client versions"
skopeo --version
podman --version
buildah --version
umoci --version
curl --version | sed -n 1p

# PyPI packages: botocore signs the requests that the SigV4 verifier is tested against; boto3 drives
# the ECR API end to end (crates/berth/tests/ecr_boto3.py); the AWS CLI drives IAM/STS (crates/berth/tests/iam_cli.rs).
PIP_PACKAGES=(botocore boto3 awscli)
step "python3 -m pip install ${PIP_PACKAGES[*]}"
retry python3 -m pip install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}"
# pyenv installs console scripts behind shims that only appear after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
aws --version

if cargo nextest --version >/dev/null 2>&1; then
  step "cargo-nextest present: $(cargo nextest --version | sed -n 1p)"
else
  step "cargo install cargo-nextest --locked"
  retry cargo install cargo-nextest --locked
fi

# Garage, the real S3 server the S3 blob backend's tests start (berth-testkit::garage). Building it takes a
# long time, so an installed binary is reused.
if command -v garage >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/garage" ]; then
  step "garage present: $("${HOME}/.cargo/bin/garage" --version 2>/dev/null || garage --version)"
else
  # Only what a single-node test server needs: the SQLite metadata engine (the harness's
  # db_engine), bundled C libraries; no metrics, K2V or LMDB build.
  step "cargo install garage --version 2.5.0 --locked (features bundled-libs, sqlite)"
  retry cargo install garage --version 2.5.0 --locked --no-default-features --features bundled-libs,sqlite
fi

step "toolchain"
cargo --version
rustc --version

