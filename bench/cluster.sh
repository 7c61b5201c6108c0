#!/usr/bin/env bash
# Berth's scale-out benchmark (issue 10): one run measures, behind one HAProxy (round robin, no
# stickiness) each time,
#   sqlite-disk   1 node, SQLite metadata, blobs on disk (the default single-node setup)
#   sqlite-s3     1 node, SQLite metadata, blobs in Garage S3            (disk vs S3)
#   pg-s3-1       1 node, PostgreSQL metadata, blobs in Garage S3         (SQLite vs PostgreSQL)
#   pg-s3-3       3 nodes on the same PostgreSQL database and bucket       (1 vs 3 nodes)
#   pg-s3-1-redir 1 node as pg-s3-1 with [storage] redirect = true: pulls only (presigned URLs)
#   reference     CNCF distribution (Debian's docker-registry), filesystem, for scale
# It starts its own PostgreSQL cluster (initdb in a temp dir, random port; as the postgres user
# through setpriv when root), a single-node Garage and HAProxy, gives every configuration a fresh
# database, bucket and data dirs, and stops everything on exit. All configurations are up at once
# and the scenarios run interleaved (each on every configuration in turn, the order reversing from
# one scenario to the next). Per node it records idle RSS, peak RSS (sampled every 0.2 s) and CPU
# seconds per scenario. The table is printed and written to
# OUT/report.md (bench/cluster_report.py). See bench/README.md, "Cluster mode".
# Usage: bench/cluster.sh [--no-build] [--duration 10s] [--configs "sqlite-disk pg-s3-3 ..."] [--out DIR]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH=$TARGET/release/berth-bench
BERTH_BIN=$TARGET/release/berth
REF_BIN=$(command -v docker-registry || echo /usr/bin/docker-registry)
PG_BIN=${BERTH_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}
GARAGE_BIN=${BERTH_GARAGE:-$(command -v garage || echo "$HOME/.cargo/bin/garage")}
HAPROXY_BIN=$(command -v haproxy || echo /usr/sbin/haproxy)

BUILD=1 DURATION=10s OUT="" NODES=3
CONFIGS="reference sqlite-disk sqlite-s3 pg-s3-1 pg-s3-3 pg-s3-1-redir"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --duration) DURATION=$2; shift ;;
    --configs) CONFIGS=$2; shift ;;
    --nodes) NODES=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "cluster.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# label | berth-bench arguments (short sizes: a 2-core machine, one run).
scenario_args() {
  case "$1" in
    blob-push-mono) echo "blob-push/monolithic blob-push --mode monolithic --blobs 32 --blob-size 4MiB" ;;
    blob-push-chunked) echo "blob-push/chunked blob-push --mode chunked --chunk-size 1MiB --blobs 32 --blob-size 4MiB" ;;
    blob-pull) echo "blob-pull blob-pull --blobs 32 --blob-size 4MiB" ;;
    pull-storm) echo "pull-storm pull-storm --clients 50 --total-size 20MB" ;;
    manifest-head) echo "manifest-head manifest-head --duration $DURATION" ;;
    catalog-walk) echo "catalog-walk catalog-walk --repos 100,500 --duration 3s" ;;
    mixed) echo "mixed mixed --duration $DURATION" ;;
    describe-images) echo "describe-images describe-images --images 2000 --walk-duration 3s --lookup-duration $DURATION" ;;
    *) return 1 ;;
  esac
}
# catalog-walk first: it must see (almost) only its own repositories.
BERTH_SCENARIOS="catalog-walk blob-push-mono blob-push-chunked blob-pull pull-storm manifest-head mixed describe-images"
REF_SCENARIOS="catalog-walk blob-push-mono blob-push-chunked blob-pull pull-storm manifest-head mixed"
REDIR_SCENARIOS="blob-pull pull-storm"

rand_chars() {
  local set=$1 n=$2 out="" i
  for ((i = 0; i < n; i++)); do out+=${set:RANDOM%${#set}:1}; done
  echo "$out"
}
KEY_ID=AKIA$(rand_chars ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 16)
SECRET=$(rand_chars ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 40)
# The cluster's master key (32 bytes, base64): every node of a configuration loads the same one.
MASTER_KEY=$(head -c 32 /dev/urandom | base64)

OUT=${OUT:-$TARGET/bench-results/cluster-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
WORK=$(mktemp -d /tmp/berth-cluster.XXXXXX)
chmod 755 "$WORK"

log() { echo "== $(date +%H:%M:%S) $*" >&2; }

# ---------- process bookkeeping: everything started here is stopped on exit ----------
NODE_PIDS=() HAPROXY_PID="" PG_PID="" GARAGE_PID=""
declare -A CFG_NODES=() CFG_HAPID=() CFG_HAPORT=()
stop_pid() {
  local pid=$1 sig=${2:-TERM}
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -"$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local name pid
  for name in "${!CFG_NODES[@]}"; do
    for pid in ${CFG_NODES[$name]}; do stop_pid "$pid"; done
    stop_pid "${CFG_HAPID[$name]}"
  done
  for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; done
  stop_pid "$HAPROXY_PID"
  stop_pid "$GARAGE_PID"
  stop_pid "$PG_PID" INT
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------- build ----------
if [ "$BUILD" = 1 ]; then
  log "building berth and berth-bench (release)"
  (cd "$ROOT" && cargo build --release -p berth -p berth-bench)
fi
# PostgreSQL and Garage only when a configuration needs them.
NEED_PG=0 NEED_S3=0
case " $CONFIGS " in *" pg-"*) NEED_PG=1 ;; esac
case " $CONFIGS " in *-s3*) NEED_S3=1 ;; esac
NEEDED=("$BENCH" "$BERTH_BIN" "$HAPROXY_BIN")
[ "$NEED_PG" = 1 ] && NEEDED+=("$PG_BIN/postgres")
[ "$NEED_S3" = 1 ] && NEEDED+=("$GARAGE_BIN")
for b in "${NEEDED[@]}"; do
  [ -x "$b" ] || { echo "cluster.sh: $b missing" >&2; exit 1; }
done
free_port() { "$BENCH" free-port; }

# PostgreSQL: initdb in a temp dir, random port, the postgres user when root.
start_postgres() {
  PG_PORT=$(free_port)
  PG_DIR=$WORK/pg
  mkdir -p "$PG_DIR"
  # A command prefix, not a function: `PREFIX postgres &` then has postgres's pid in $!
  # (setpriv execs it), so the trap's signal reaches the server itself.
  local as_pg=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$PG_DIR"
    as_pg=(setpriv --reuid="$(id -u postgres)" --regid="$(id -g postgres)" --clear-groups --)
  fi
  log "PostgreSQL: initdb, port $PG_PORT"
  "${as_pg[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >"$OUT/pg-initdb.log" 2>&1
  # Default durability (fsync, synchronous_commit on): a production-like database, as SQLite runs
  # with synchronous=FULL.
  "${as_pg[@]}" "$PG_BIN/postgres" -D "$PG_DIR/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
    -c "unix_socket_directories=$PG_DIR" -c max_connections=300 >"$OUT/postgres.log" 2>&1 &
  PG_PID=$!
  for _ in $(seq 300); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres && break
    kill -0 "$PG_PID" 2>/dev/null || { tail "$OUT/postgres.log" >&2; exit 1; }
    sleep 0.1
  done
  psql_q() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt -c "$1"; }
}

# Garage: one node, config, layout and key as berth-testkit/src/garage.rs makes them.
garage() { RUST_LOG=warn "$GARAGE_BIN" -c "$G_DIR/garage.toml" "$@"; }
retry() {
  for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  "$@"
}
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
start_garage() {
  G_DIR=$WORK/garage
  mkdir -p "$G_DIR"
  G_RPC=$(free_port) G_S3=$(free_port)
  cat >"$G_DIR/garage.toml" <<EOF
metadata_dir = "$G_DIR/meta"
data_dir = "$G_DIR/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$G_RPC"
rpc_public_addr = "127.0.0.1:$G_RPC"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$G_S3"
root_domain = ".s3.garage.localhost"
EOF
  log "Garage: S3 on 127.0.0.1:$G_S3"
  RUST_LOG=garage=warn "$GARAGE_BIN" -c "$G_DIR/garage.toml" server >"$OUT/garage.log" 2>&1 &
  GARAGE_PID=$!
  retry garage node id -q
  G_NODE=$(garage node id -q | cut -d@ -f1)
  retry garage layout assign -z dc1 -c 10G "$G_NODE"
  retry garage layout apply --version 1
  G_KEY=GK$(hex 12)
  G_SECRET=$(hex 32)
  retry garage key import --yes -n berth-bench "$G_KEY" "$G_SECRET"
}

[ "$NEED_PG" = 1 ] && start_postgres
[ "$NEED_S3" = 1 ] && start_garage

# ---------- one configuration: fresh database, bucket, data dirs; nodes behind HAProxy ----------
HA_PORT=""

# start_config NAME: starts its servers and HAProxy in front of them; returns 1 if one fails.
start_config() {
  local name=$1 n=1 db="" bucket="" i port dir env=()
  case "$name" in pg-s3-3) n=$NODES ;; esac
  NODE_PIDS=() HAPROXY_PID=""
  local ports=()
  if [ "$name" = reference ]; then
    port=$(free_port) dir=$WORK/$name
    mkdir -p "$dir/data"
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
    "$REF_BIN" serve "$dir/config.yml" >"$OUT/$name-1.log" 2>&1 &
    NODE_PIDS+=($!) ports+=("$port")
  else
    env=(BERTH_AUTH__BOOTSTRAP_ACCESS_KEY_ID="$KEY_ID" BERTH_AUTH__BOOTSTRAP_SECRET_ACCESS_KEY="$SECRET"
      BERTH_STORAGE__MASTER_KEY="$MASTER_KEY")
    case "$name" in
      *-s3*)
        bucket=bench-${name//[^a-z0-9]/-}-$RANDOM
        garage bucket create "$bucket" >/dev/null
        garage bucket allow --read --write --owner "$bucket" --key "$G_KEY" >/dev/null
        env+=(BERTH_STORAGE__BACKEND=s3 BERTH_STORAGE__S3__BUCKET="$bucket" BERTH_STORAGE__S3__REGION=garage
          BERTH_STORAGE__S3__ENDPOINT="http://127.0.0.1:$G_S3" BERTH_STORAGE__S3__PATH_STYLE=true
          BERTH_STORAGE__S3__ACCESS_KEY_ID="$G_KEY" BERTH_STORAGE__S3__SECRET_ACCESS_KEY="$G_SECRET") ;;
    esac
    case "$name" in
      pg-*)
        db=bench_${name//[^a-z0-9]/_}
        psql_q "CREATE DATABASE $db"
        env+=(BERTH_META__BACKEND=postgres
          BERTH_META__URL="postgres://postgres@127.0.0.1:$PG_PORT/$db?sslmode=disable") ;;
    esac
    case "$name" in *-redir) env+=(BERTH_STORAGE__REDIRECT=true) ;; esac
    for i in $(seq "$n"); do
      port=$(free_port) dir=$WORK/$name-$i
      mkdir -p "$dir"
      env "${env[@]}" "$BERTH_BIN" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" \
        >"$OUT/$name-$i.log" 2>&1 &
      NODE_PIDS+=($!) ports+=("$port")
    done
  fi
  for i in "${!NODE_PIDS[@]}"; do
    local ok=0
    for _ in $(seq 300); do
      kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || break
      if "$BENCH" ping --registry "http://127.0.0.1:${ports[$i]}" 2>/dev/null; then ok=1; break; fi
      sleep 0.1
    done
    if [ "$ok" = 0 ]; then
      log "$name node $((i + 1)) did not come up; log: $OUT/$name-$((i + 1)).log"
      tail -n 5 "$OUT/$name-$((i + 1)).log" >&2 || true
      return 1
    fi
  done
  HA_PORT=$(free_port)
  {
    cat <<EOF
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
frontend registry
  bind 127.0.0.1:$HA_PORT
  default_backend nodes
backend nodes
  balance roundrobin
EOF
    for i in "${!ports[@]}"; do echo "  server node$((i + 1)) 127.0.0.1:${ports[$i]}"; done
  } >"$OUT/haproxy-$name.cfg"
  "$HAPROXY_BIN" -db -f "$OUT/haproxy-$name.cfg" >"$OUT/haproxy-$name.log" 2>&1 &
  HAPROXY_PID=$!
  for _ in $(seq 100); do
    "$BENCH" ping --registry "http://127.0.0.1:$HA_PORT" 2>/dev/null && break
    sleep 0.1
  done
  sleep 1
  local rss=()
  for pid in "${NODE_PIDS[@]}"; do rss+=("$(rss_mib "$pid")"); done
  log "$name up: ${#NODE_PIDS[@]} node(s) (pids ${NODE_PIDS[*]}), HAProxy on $HA_PORT, idle RSS ${rss[*]} MiB"
  emit_nodes idle "$name" idle_rss_mib "${rss[@]}"
}

# The running configurations: node pids, HAProxy pid and port, by name. The functions above
# and below work on the current one (NODE_PIDS, HAPROXY_PID, HA_PORT): use_config selects it.
save_config() {
  CFG_NODES[$1]="${NODE_PIDS[*]}" CFG_HAPID[$1]=$HAPROXY_PID CFG_HAPORT[$1]=$HA_PORT
}
use_config() {
  read -r -a NODE_PIDS <<<"${CFG_NODES[$1]}"
  HAPROXY_PID=${CFG_HAPID[$1]} HA_PORT=${CFG_HAPORT[$1]}
}

stop_config() {
  stop_pid "$HAPROXY_PID"
  HAPROXY_PID=""
  for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; done
  NODE_PIDS=()
}

rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_mib() { awk '/^VmHWM:/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# A process and its children (PostgreSQL's backends): their CPU plus what exited children left
# in the parent's cutime/cstime.
tree_ticks() {
  [ -n "$1" ] || { echo 0; return; }
  local total child
  total=$(awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0)
  for child in $(pgrep -P "$1" 2>/dev/null); do
    total=$((total + $(cpu_ticks "$child")))
  done
  echo "$total"
}

# emit_nodes SCENARIO CONFIG METRIC VALUE...: one value per node, as node1..nodeN plus max/sum.
emit_nodes() {
  local scen=$1 server=$2 metric=$3; shift 3
  local i=1 parts=() v
  for v in "$@"; do
    parts+=("{\"name\":\"${metric}_node$i\",\"value\":$v,\"unit\":\"\",\"better\":\"none\"}")
    i=$((i + 1))
  done
  local IFS=,
  echo "{\"scenario\":\"$scen\",\"server\":\"$server\",\"metrics\":[${parts[*]}]}" >>"$RESULTS"
}

# Samples every node's RSS every 0.2 s into FILE (one line per sample: rss1 rss2 ...).
sample_rss() {
  local file=$1; shift
  while :; do
    local line=() pid
    for pid in "$@"; do line+=("$(rss_mib "$pid")"); done
    echo "${line[*]}" >>"$file"
    sleep 0.2
  done
}

# run_scenario SCENARIO CONFIG: one bench run through HAProxy, plus per-node CPU and peak RSS.
run_scenario() {
  local scen=$1 name=$2 label args env=() extra=() pid
  read -r label args <<<"$(scenario_args "$scen")"
  if [ "$name" != reference ]; then
    env=(BERTH_BENCH_ACCESS_KEY_ID="$KEY_ID" BERTH_BENCH_SECRET_ACCESS_KEY="$SECRET")
  fi
  local before=() after=() ticks
  ticks=$(getconf CLK_TCK)
  for pid in "${NODE_PIDS[@]}"; do before+=("$(cpu_ticks "$pid")"); done
  local hap_before pg_before garage_before
  hap_before=$(cpu_ticks "$HAPROXY_PID")
  pg_before=$(tree_ticks "$PG_PID")
  garage_before=$(tree_ticks "$GARAGE_PID")
  local samples=$WORK/rss-$name-$scen
  : >"$samples"
  sample_rss "$samples" "${NODE_PIDS[@]}" &
  local sampler=$!
  log "[$name] $label (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  # shellcheck disable=SC2086
  if ! env "${env[@]}" timeout 900 "$BENCH" --registry "http://127.0.0.1:$HA_PORT" \
    --server-pid "${NODE_PIDS[0]}" --tag "$name" $args "${extra[@]}" >>"$RESULTS" 2>>"$OUT/bench-stderr.log"; then
    log "[$name] $label FAILED (see $OUT/bench-stderr.log)"
    echo "{\"scenario\":\"$label\",\"server\":\"$name\",\"metrics\":[{\"name\":\"run_failed\",\"value\":1,\"unit\":\"count\",\"better\":\"lower\"}]}" >>"$RESULTS"
  fi
  tail -n 1 "$OUT/bench-stderr.log" >&2 || true
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  for pid in "${NODE_PIDS[@]}"; do after+=("$(cpu_ticks "$pid")"); done
  local cpu=() peaks=() i
  for i in "${!NODE_PIDS[@]}"; do
    cpu+=("$(awk -v a="${after[$i]}" -v b="${before[$i]}" -v t="$ticks" 'BEGIN {printf "%.2f", (a - b) / t}')")
    peaks+=("$(awk -v c=$((i + 1)) '$c > m {m = $c} END {printf "%.1f", m + 0}' "$samples")")
  done
  seconds() { awk -v a="$1" -v b="$2" -v t="$ticks" 'BEGIN {printf "%.2f", (a - b) / t}'; }
  emit_nodes "$label" "$name" cpu_s "${cpu[@]}"
  emit_nodes "$label" "$name" peak_rss_mib "${peaks[@]}"
  emit_nodes "$label" "$name" haproxy_cpu_s "$(seconds "$(cpu_ticks "$HAPROXY_PID")" "$hap_before")"
  # Shared by every configuration: their CPU during this scenario is this configuration's.
  emit_nodes "$label" "$name" postgres_cpu_s "$(seconds "$(tree_ticks "$PG_PID")" "$pg_before")"
  emit_nodes "$label" "$name" garage_cpu_s "$(seconds "$(tree_ticks "$GARAGE_PID")" "$garage_before")"
  echo "{\"scenario\":\"$label\",\"server\":\"$name\",\"metrics\":[{\"name\":\"loadavg_1m_after\",\"value\":$(cut -d' ' -f1 /proc/loadavg),\"unit\":\"\",\"better\":\"none\"}]}" >>"$RESULTS"
}

{
  echo "# cluster bench $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; load average at start: $(cat /proc/loadavg)"
  echo "berth: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "PostgreSQL: $("$PG_BIN/postgres" --version); Garage: $("$GARAGE_BIN" --version 2>/dev/null | head -1); HAProxy: $("$HAPROXY_BIN" -v | head -1)"
  echo "reference: $("$REF_BIN" --version 2>/dev/null | head -1)"
} >"$OUT/environment.txt"
cat "$OUT/environment.txt" >&2

scenarios_of() {
  case "$1" in
    reference) echo "$REF_SCENARIOS" ;;
    *-redir) echo "$REDIR_SCENARIOS" ;;
    *) echo "$BERTH_SCENARIOS" ;;
  esac
}

# Every configuration is up at once (idle nodes cost a few MiB each) and the scenarios run
# INTERLEAVED: scenario A on every configuration, then B, ...; the order of the
# configurations reverses from one scenario to the next. The background load of a shared
# machine drifts over minutes; so each comparison is between runs a minute apart, not a
# whole configuration's block apart (a first version ran the configurations one after
# another, and a load change between two blocks swung the 3-node/1-node ratio by 2x).
STARTED=()
for name in $CONFIGS; do
  if [ "$name" = reference ] && [ ! -x "$REF_BIN" ]; then
    log "reference registry not installed ($REF_BIN): skipped"
    continue
  fi
  if start_config "$name"; then
    save_config "$name"
    STARTED+=("$name")
  else
    stop_config
  fi
done
[ ${#STARTED[@]} -gt 0 ] || { echo "cluster.sh: no configuration came up" >&2; exit 1; }
k=0
for scen in $BERTH_SCENARIOS; do
  order=("${STARTED[@]}")
  if [ $((k % 2)) = 1 ]; then
    order=()
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do order+=("${STARTED[$i]}"); done
  fi
  k=$((k + 1))
  for name in "${order[@]}"; do
    case " $(scenarios_of "$name") " in
      *" $scen "*) use_config "$name"; run_scenario "$scen" "$name" ;;
    esac
  done
done
for name in "${STARTED[@]}"; do
  use_config "$name"
  hwm=()
  for pid in "${NODE_PIDS[@]}"; do hwm+=("$(hwm_mib "$pid")"); done
  emit_nodes lifetime "$name" vmhwm_mib "${hwm[@]}"
  stop_config
  unset "CFG_NODES[$name]" "CFG_HAPID[$name]"
done

echo "load average at end: $(cat /proc/loadavg)" >>"$OUT/environment.txt"
python3 "$ROOT/bench/cluster_report.py" "$RESULTS" "$OUT/environment.txt" | tee "$OUT/report.md"
log "results: $RESULTS, table: $OUT/report.md"
