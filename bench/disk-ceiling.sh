#!/usr/bin/env bash
# The durable write ceiling of the disk under a directory, for the blob-push rows of the benchmark:
# the same shape as `blob-push` (8 writers, 64 files of 4 MiB), each file written, fsynced, renamed into
# place and its directory fsynced, as Berth commits a blob with storage.fsync = true. No HTTP, no hashing:
# no registry that makes pushed blobs durable can push faster than this. (The reference registry does not
# fsync, so its rows are bounded by the page cache instead.)
#
#   bench/disk-ceiling.sh [DIR] [ROUNDS]     # DIR defaults to target/, ROUNDS to 3; prints MB/s per round
set -euo pipefail
dir=${1:-$(dirname "$0")/../target}
rounds=${2:-3}
writers=8 files_per_writer=8 size_mib=4
work=$(mktemp -d "$dir/disk-ceiling.XXXXXX")
trap 'rm -rf "$work"' EXIT
head -c $((size_mib << 20)) /dev/urandom >"$work/src"
total_mb=$(( writers * files_per_writer * size_mib * 1048576 / 1000000 ))
for r in $(seq 1 "$rounds"); do
  mkdir -p "$work/r$r"
  start=$(date +%s.%N)
  for w in $(seq 1 $writers); do
    (
      for f in $(seq 1 $files_per_writer); do
        d="$work/r$r/$w-$f"; mkdir -p "$d"
        dd if="$work/src" of="$d/upload" bs=1M conv=fsync status=none
        mv "$d/upload" "$d/blob"
        sync "$d"            # fsync of the directory (coreutils sync FILE syncs that file)
      done
    ) &
  done
  wait
  end=$(date +%s.%N)
  awk -v t0="$start" -v t1="$end" -v mb="$total_mb" -v r="$r" \
    'BEGIN { printf "round %d: %d MB in %.3f s = %.0f MB/s durable\n", r, mb, t1 - t0, mb / (t1 - t0) }'
  rm -rf "$work/r$r"
done
