#!/usr/bin/env bash
# Benchmarks Berth against the reference registry (CNCF distribution, Debian's `docker-registry`).
# Builds berth and berth-bench in release, starts both servers on free loopback ports with fresh data
# dirs, runs every scenario against both INTERLEAVED, and prints a Markdown comparison table.
# Berth requires credentials on /v2 (its default): it is started with a known administrator key,
# which the bench uses for every request to it; the reference registry gets no credentials.
# The Berth-only scenarios (auth-token, manifest-head-auth, describe-images) run next; last come the
# scenarios that start their own servers (lifecycle-preview, gc-scale on both, gc-online).
# See bench/README.md. Usage: bench/run.sh [--quick] [--repeat R] [--only reference|berth] [options]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH=$TARGET/release/berth-bench
BERTH_BIN=$TARGET/release/berth
REF_BIN=$(command -v docker-registry || echo /usr/bin/docker-registry)

QUICK=0 REPEAT=1 ONLY="" BUILD=1 SCENARIOS="" OUT="" V2_LOGIN=token
# Scenario sizes: empty means "the default of the chosen mode" (see set_sizes).
BLOBS="" BLOB_SIZE="" IMAGES="" CLIENTS="" STORM_SIZE="" HOT_DURATION="" MIXED_DURATION="" REPOS="" TAGS="" WALK_DURATION="" DESCRIBE_IMAGES=""
LIFECYCLE_IMAGES="" GC_BLOBS="" GC_COMPARE_BLOBS="" GC_ONLINE_BLOBS="" GC_ONLINE_DURATION=""

usage() {
  cat <<'EOF'
Usage: bench/run.sh [options]
  --quick               small sizes for a smoke run (~1-2 minutes for both servers, after the build)
  --repeat R            rounds; each round restarts both servers on fresh data dirs; the table shows medians
  --only NAME           run one server only: reference | berth
  --scenarios "A B"     subset of: catalog-walk tags-walk blob-push-mono blob-push-chunked blob-pull
                        image-push pull-storm manifest-head manifest-get mixed
                        and, Berth only: auth-token manifest-head-auth describe-images
                        and, on servers of their own: lifecycle-preview (Berth only), gc-scale
                        (both), gc-online (Berth only)
  --v2-login token|key  how the bench logs in to Berth's /v2: the GetAuthorizationToken password
                        (default, as after docker login) or the access key itself
  --no-build            use the binaries already in target/release
  --berth-bin PATH      berth binary (default target/release/berth)
  --reference-bin PATH  docker-registry binary (default: from PATH)
  --out DIR             where results.jsonl, report.md and server logs go (default target/bench-results/TIME)
  Sizes: --blobs N --blob-size S --images N --clients N --storm-size S --hot-duration D
         --mixed-duration D --repos A,B --tags A,B --walk-duration D --describe-images N
         --lifecycle-images N --gc-blobs N (Berth) --gc-compare-blobs N (both servers)
         --gc-online-blobs N --gc-online-duration D
         (S like 4MiB, D like 10s)
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --repeat) REPEAT=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --scenarios) SCENARIOS=$2; shift ;;
    --no-build) BUILD=0 ;;
    --berth-bin) BERTH_BIN=$2; shift ;;
    --reference-bin) REF_BIN=$2; shift ;;
    --out) OUT=$2; shift ;;
    --blobs) BLOBS=$2; shift ;;
    --blob-size) BLOB_SIZE=$2; shift ;;
    --images) IMAGES=$2; shift ;;
    --clients) CLIENTS=$2; shift ;;
    --storm-size) STORM_SIZE=$2; shift ;;
    --hot-duration) HOT_DURATION=$2; shift ;;
    --mixed-duration) MIXED_DURATION=$2; shift ;;
    --repos) REPOS=$2; shift ;;
    --tags) TAGS=$2; shift ;;
    --walk-duration) WALK_DURATION=$2; shift ;;
    --describe-images) DESCRIBE_IMAGES=$2; shift ;;
    --lifecycle-images) LIFECYCLE_IMAGES=$2; shift ;;
    --gc-blobs) GC_BLOBS=$2; shift ;;
    --gc-compare-blobs) GC_COMPARE_BLOBS=$2; shift ;;
    --gc-online-blobs) GC_ONLINE_BLOBS=$2; shift ;;
    --gc-online-duration) GC_ONLINE_DURATION=$2; shift ;;
    --v2-login) V2_LOGIN=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

case "$ONLY" in ""|reference|berth) ;; *) echo "run.sh: --only takes reference or berth" >&2; exit 2 ;; esac
case "$V2_LOGIN" in token|key) ;; *) echo "run.sh: --v2-login takes token or key" >&2; exit 2 ;; esac

set_sizes() {
  if [ "$QUICK" = 1 ]; then
    : "${BLOBS:=16}" "${BLOB_SIZE:=4MiB}" "${IMAGES:=8}" "${CLIENTS:=20}" "${STORM_SIZE:=10MB}"
    : "${HOT_DURATION:=3s}" "${MIXED_DURATION:=5s}" "${REPOS:=50,250}" "${TAGS:=50,250}" "${WALK_DURATION:=2s}"
    : "${DESCRIBE_IMAGES:=2000}"
    : "${LIFECYCLE_IMAGES:=5000}" "${GC_BLOBS:=20000}" "${GC_COMPARE_BLOBS:=20000}" "${GC_ONLINE_BLOBS:=20000}" "${GC_ONLINE_DURATION:=3s}"
  else
    : "${BLOBS:=64}" "${BLOB_SIZE:=4MiB}" "${IMAGES:=32}" "${CLIENTS:=200}" "${STORM_SIZE:=50MB}"
    : "${HOT_DURATION:=10s}" "${MIXED_DURATION:=20s}" "${REPOS:=100,1000}" "${TAGS:=100,1000}" "${WALK_DURATION:=5s}"
    : "${DESCRIBE_IMAGES:=10000}"
    : "${LIFECYCLE_IMAGES:=100000}" "${GC_BLOBS:=1000000}" "${GC_COMPARE_BLOBS:=100000}" "${GC_ONLINE_BLOBS:=100000}" "${GC_ONLINE_DURATION:=10s}"
  fi
}
set_sizes

# label | berth-bench arguments. The label must equal the scenario name the bench prints.
scenario_args() {
  case "$1" in
    catalog-walk) echo "catalog-walk catalog-walk --repos $REPOS --duration $WALK_DURATION" ;;
    tags-walk) echo "tags-walk tags-walk --tags $TAGS --duration $WALK_DURATION" ;;
    blob-push-mono) echo "blob-push/monolithic blob-push --mode monolithic --blobs $BLOBS --blob-size $BLOB_SIZE" ;;
    blob-push-chunked) echo "blob-push/chunked blob-push --mode chunked --chunk-size 1MiB --blobs $BLOBS --blob-size $BLOB_SIZE" ;;
    blob-pull) echo "blob-pull blob-pull --blobs $BLOBS --blob-size $BLOB_SIZE" ;;
    image-push) echo "image-push image-push --images $IMAGES" ;;
    pull-storm) echo "pull-storm pull-storm --clients $CLIENTS --total-size $STORM_SIZE" ;;
    manifest-head) echo "manifest-head manifest-head --duration $HOT_DURATION" ;;
    manifest-get) echo "manifest-get manifest-get --duration $HOT_DURATION" ;;
    mixed) echo "mixed mixed --duration $MIXED_DURATION" ;;
    auth-token) echo "auth-token auth-token --duration $HOT_DURATION" ;;
    # Per mode (anonymous, IAM user, root); run_scenario adds the anonymous instance.
    manifest-head-auth) echo "manifest-head-auth manifest-head-auth --duration $HOT_DURATION" ;;
    describe-images) echo "describe-images describe-images --images $DESCRIBE_IMAGES --walk-duration $WALK_DURATION --lookup-duration $HOT_DURATION" ;;
    # These start (and stop, restart, reconfigure) servers of their own: see run_own.
    lifecycle-preview) echo "lifecycle-preview lifecycle-preview --images $LIFECYCLE_IMAGES" ;;
    # gc-scale runs at two sizes (run_own): GC_COMPARE_BLOBS on both servers, GC_BLOBS on Berth.
    gc-scale) echo "gc-scale gc-scale" ;;
    gc-online) echo "gc-online gc-online --store-blobs $GC_ONLINE_BLOBS --garbage-blobs $((GC_ONLINE_BLOBS / 10)) --duration $GC_ONLINE_DURATION" ;;
    *) return 1 ;;
  esac
}
# Scenarios of Berth's ECR API and access control: the reference registry has neither.
berth_only() { case "$1" in auth-token|manifest-head-auth|describe-images) return 0 ;; *) return 1 ;; esac; }
# Scenarios that start their own servers (fresh data dirs, restarts, GC settings).
own_servers() { case "$1" in lifecycle-preview|gc-scale|gc-online) return 0 ;; *) return 1 ;; esac; }
# catalog-walk first, so the catalog holds (almost) only its own repositories when it is measured.
# The default set takes ~10 minutes. The storage-management scenarios (lifecycle-preview, gc-scale,
# gc-online) fill stores of 100,000 to 1,000,000 objects and take over an hour at full size: name them
# with --scenarios (or --scenarios all).
DEFAULT="catalog-walk tags-walk blob-push-mono blob-push-chunked blob-pull image-push pull-storm manifest-head manifest-get mixed auth-token manifest-head-auth describe-images"
ALL="$DEFAULT lifecycle-preview gc-scale gc-online"
SCENARIOS=${SCENARIOS:-$DEFAULT}
[ "$SCENARIOS" = all ] && SCENARIOS=$ALL
SHARED="" BERTH_ONLY="" OWN=""
for s in $SCENARIOS; do
  scenario_args "$s" >/dev/null || { echo "run.sh: unknown scenario $s" >&2; exit 2; }
  if own_servers "$s"; then OWN="$OWN $s"
  elif berth_only "$s"; then BERTH_ONLY="$BERTH_ONLY $s"; else SHARED="$SHARED $s"; fi
done

# Berth's administrator key, created on first start of each empty data dir (the bench then logs
# in with it). Random per run; a loopback benchmark needs no better randomness than $RANDOM.
rand_chars() {
  local set=$1 n=$2 out="" i
  for ((i = 0; i < n; i++)); do out+=${set:RANDOM%${#set}:1}; done
  echo "$out"
}
BERTH_KEY_ID=AKIA$(rand_chars ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 16)
BERTH_SECRET=$(rand_chars ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 40)

OUT=${OUT:-$TARGET/bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)

declare -A PID PORT
cleanup() {
  for s in "${!PID[@]}"; do stop_server "$s"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }

# ---------- build ----------
WANT_BERTH=1 WANT_REF=1
[ "$ONLY" = reference ] && WANT_BERTH=0
[ "$ONLY" = berth ] && WANT_REF=0
if [ "$BUILD" = 1 ]; then
  log "building (release)"
  if [ "$WANT_BERTH" = 1 ]; then
    if ! (cd "$ROOT" && cargo build --release -p berth -p berth-bench); then
      log "building berth failed: benchmarking the reference registry only"
      WANT_BERTH=0
      (cd "$ROOT" && cargo build --release -p berth-bench)
    fi
  else
    (cd "$ROOT" && cargo build --release -p berth-bench)
  fi
fi
[ -x "$BENCH" ] || { echo "run.sh: $BENCH missing (build it or drop --no-build)" >&2; exit 1; }
if [ "$WANT_REF" = 1 ] && [ ! -x "$REF_BIN" ]; then
  log "reference registry binary not found ($REF_BIN; apt-get install -y docker-registry): skipping it"
  WANT_REF=0
fi
if [ "$WANT_BERTH" = 1 ] && [ ! -x "$BERTH_BIN" ]; then
  log "berth binary not found ($BERTH_BIN): skipping it"
  WANT_BERTH=0
fi

# ---------- servers ----------
free_port() { "$BENCH" free-port; }

rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_mib() { awk '/^VmHWM:/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# start_server NAME ROUND: starts it with a fresh data dir; returns 1 (with a message) if it does not come up.
# NAME is reference, berth (access control on, the administrator key above) or berth-anon (the
# same binary with `[auth] anonymous = "all"`: no access control, manifest-head-auth's baseline).
start_server() {
  local name=$1 round=$2 dir port pid
  dir=$WORK/$name-$round
  mkdir -p "$dir/data"
  port=$(free_port)
  if [ "$name" = reference ]; then
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
    "$REF_BIN" serve "$dir/config.yml" >"$OUT/$name-$round.log" 2>&1 &
  elif [ "$name" = berth-anon ]; then
    BERTH_AUTH__ANONYMOUS=all \
      "$BERTH_BIN" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$OUT/$name-$round.log" 2>&1 &
  else
    BERTH_AUTH__BOOTSTRAP_ACCESS_KEY_ID=$BERTH_KEY_ID BERTH_AUTH__BOOTSTRAP_SECRET_ACCESS_KEY=$BERTH_SECRET \
      "$BERTH_BIN" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$OUT/$name-$round.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" && rc=0 || rc=$?
      log "$name failed to start (exited with status $rc); skipping it. Log: $OUT/$name-$round.log"
      tail -n 5 "$OUT/$name-$round.log" >&2 || true
      return 1
    fi
    if "$BENCH" ping --registry "http://127.0.0.1:$port" 2>/dev/null; then
      PID[$name]=$pid PORT[$name]=$port
      sleep 1
      log "$name up: pid $pid, http://127.0.0.1:$port, idle RSS $(rss_mib "$pid") MiB"
      [ "$name" = berth-anon ] ||
        emit_line idle "$name" "{\"name\":\"idle_rss_mib\",\"value\":$(rss_mib "$pid"),\"unit\":\"MiB\",\"better\":\"lower\"}"
      return 0
    fi
    sleep 0.1
  done
  log "$name did not answer GET /v2/ within 15 s; skipping it. Log: $OUT/$name-$round.log"
  kill "$pid" 2>/dev/null || true
  return 1
}

stop_server() {
  local name=$1 pid=${PID[$1]:-}
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  unset "PID[$name]"
}

# emit_line SCENARIO SERVER METRIC_JSON...: a result line in the bench's format.
emit_line() {
  local scen=$1 server=$2; shift 2
  local IFS=,
  echo "{\"scenario\":\"$scen\",\"server\":\"$server\",\"metrics\":[$*]}" >>"$RESULTS"
}

# ---------- run ----------
SERVERS=()
[ "$WANT_REF" = 1 ] && SERVERS+=(reference)
[ "$WANT_BERTH" = 1 ] && SERVERS+=(berth)
[ ${#SERVERS[@]} -gt 0 ] || { echo "run.sh: no server to benchmark" >&2; exit 1; }

# run_scenario SCENARIO SERVER ROUND: one bench run, its JSON line appended to the results.
run_scenario() {
  # extra: options after the subcommand (clap takes global options there too).
  local scen=$1 s=$2 round=$3 label args pid extra=() env=()
  read -r label args <<<"$(scenario_args "$scen")"
  pid=${PID[$s]:-}
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    log "$s is not running (see $OUT/$s-$round.log): $label not run"
    emit_line "$label" "$s" '{"name":"run_failed","value":1,"unit":"count","better":"lower"}'
    return 0
  fi
  if [ "$s" = berth ]; then
    # Through the environment, not flags, so the secret does not show in ps.
    env=(BERTH_BENCH_ACCESS_KEY_ID="$BERTH_KEY_ID" BERTH_BENCH_SECRET_ACCESS_KEY="$BERTH_SECRET")
    extra=(--v2-login "$V2_LOGIN")
  fi
  if [ "$scen" = manifest-head-auth ]; then
    if start_server berth-anon "$round"; then
      extra+=(--anonymous-registry "http://127.0.0.1:${PORT[berth-anon]}" --anonymous-server-pid "${PID[berth-anon]}")
    else
      log "berth-anon did not start: manifest-head-auth without the anonymous baseline"
    fi
  fi
  log "[$s] $label"
  # shellcheck disable=SC2086
  if ! env "${env[@]}" timeout 900 "$BENCH" --registry "http://127.0.0.1:${PORT[$s]}" --server-pid "$pid" \
    --tag "$s" $args "${extra[@]}" >>"$RESULTS"; then
    log "[$s] $label FAILED"
    emit_line "$label" "$s" '{"name":"run_failed","value":1,"unit":"count","better":"lower"}'
  fi
  stop_server berth-anon
}

# run_own SCENARIO SERVER ROUND: a scenario that starts its own server (SERVER: berth or
# reference) in a work dir of its own; its JSON line appended to the results, the server log kept.
run_own() {
  local scen=$1 s=$2 round=$3 label args bin extra=() dir
  read -r label args <<<"$(scenario_args "$scen")"
  if [ "$s" = berth ]; then bin=$BERTH_BIN; else bin=$REF_BIN; fi
  # gc-scale: the blob count is the 4th argument; the label carries it as the bench does.
  [ "$scen" = gc-scale ] && { extra=(--server "$s" --blobs "$4"); label="gc-scale/$4"; }
  dir=$WORK/$scen-$s-$round
  log "[$s] $label (own server, work dir $dir)"
  # shellcheck disable=SC2086
  if ! timeout 14400 "$BENCH" --tag "$s" $args --bin "$bin" --work-dir "$dir" "${extra[@]}" >>"$RESULTS"; then
    log "[$s] $label FAILED"
    emit_line "$label" "$s" '{"name":"run_failed","value":1,"unit":"count","better":"lower"}'
  fi
  cp "$dir/server.log" "$OUT/${label//\//-}-$s-$round.log" 2>/dev/null || true
  rm -rf "$dir"
}

for round in $(seq "$REPEAT"); do
  # The servers run.sh starts serve the shared and Berth-only scenarios only.
  if [ -n "$SHARED$BERTH_ONLY" ]; then
    log "round $round of $REPEAT: starting servers"
    UP=()
    for s in "${SERVERS[@]}"; do start_server "$s" "$round" && UP+=("$s"); done
    [ ${#UP[@]} -gt 0 ] || { echo "run.sh: no server came up" >&2; exit 1; }
    # Alternate which server goes first in each round, to even out warm-up and page-cache effects.
    if [ $((round % 2)) = 0 ] && [ ${#UP[@]} = 2 ]; then UP=("${UP[1]}" "${UP[0]}"); fi
    for scen in $SHARED; do
      for s in "${UP[@]}"; do run_scenario "$scen" "$s" "$round"; done
    done
    # The lifetime rows cover the shared scenarios only, so both servers did the same work.
    for s in "${UP[@]}"; do
      pid=${PID[$s]:-}
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        emit_line lifetime "$s" \
          "{\"name\":\"vmhwm_mib\",\"value\":$(hwm_mib "$pid"),\"unit\":\"MiB\",\"better\":\"lower\"}" \
          "{\"name\":\"cpu_total_s\",\"value\":$(cpu_s "$pid"),\"unit\":\"s\",\"better\":\"lower\"}" \
          "{\"name\":\"disk_mib\",\"value\":$(du -sm "$WORK/$s-$round/data" | cut -f1),\"unit\":\"MiB\",\"better\":\"lower\"}"
      fi
      [ "$s" = berth ] || stop_server "$s"
    done
    if [ -n "$BERTH_ONLY" ]; then
      if [[ " ${UP[*]} " == *" berth "* ]]; then
        for scen in $BERTH_ONLY; do run_scenario "$scen" berth "$round"; done
      else
        log "berth is not being measured: skipping the Berth-only scenarios ($BERTH_ONLY )"
      fi
    fi
    stop_server berth
  fi
  # Scenarios with servers of their own, after the others, so nothing else competes with them.
  OWN_SERVERS=()
  [ "$WANT_REF" = 1 ] && OWN_SERVERS+=(reference)
  [ "$WANT_BERTH" = 1 ] && OWN_SERVERS+=(berth)
  if [ $((round % 2)) = 0 ] && [ ${#OWN_SERVERS[@]} = 2 ]; then OWN_SERVERS=(berth reference); fi
  for scen in $OWN; do
    if [ "$scen" = gc-scale ]; then
      for s in "${OWN_SERVERS[@]}"; do run_own gc-scale "$s" "$round" "$GC_COMPARE_BLOBS"; done
      if [ "$GC_BLOBS" != "$GC_COMPARE_BLOBS" ] && [ "$WANT_BERTH" = 1 ]; then
        run_own gc-scale berth "$round" "$GC_BLOBS"
      fi
    elif [ "$WANT_BERTH" = 1 ]; then
      run_own "$scen" berth "$round"
    fi
  done
done

"$BENCH" report "$RESULTS" | tee "$OUT/report.md"
log "results: $RESULTS, table: $OUT/report.md"
