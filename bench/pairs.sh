#!/usr/bin/env bash
# Times two commands on the same input, piped in, in interleaved pairs (A B A B ...),
# the way that holds on a machine whose speed drifts, and prints each
# pair's ratio B/A with the median, min and max. Each command reads the
# input on stdin and writes into {out} (a fresh directory per run; -k keeps
# the files of the previous run of that command, emptied, as a daemon's
# steady state). With -c N, once the pairs are done, bench/check checks
# each command's last output against the input, routed into N shards
# (shard-%03d.log), and the script fails if either is wrong.
#
#   bench/pairs.sh [-r PAIRS] [-l LINES] [-k] [-c N] 'A command {out}' 'B command {out}'
#
# The input is LINES lines from bench/gen (default 1000000, about 165 MB),
# made once in $BENCH_WORK (default /tmp/shardlog-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=11 lines=1000000 keep=0 shards=
while getopts r:l:kc: o; do
  case $o in r) pairs=$OPTARG ;; l) lines=$OPTARG ;; k) keep=1 ;; c) shards=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
(($# == 2)) || { echo "usage: $0 [-r PAIRS] [-l LINES] [-k] [-c N] 'A {out}' 'B {out}'" >&2; exit 2; }
[[ -z $shards || $shards =~ ^[1-9][0-9]*$ ]] || { echo "$0: -c $shards: want a positive number of shards" >&2; exit 2; }
work=${BENCH_WORK:-/tmp/shardlog-bench}
mkdir -p "$work"
in=$work/input-$lines.log
[[ -s $in ]] || go run ./bench/gen -lines "$lines" >"$in"
[[ -z $shards ]] || go build -o "$work/check" ./bench/check

# run NAME CMD: prints the seconds CMD takes on the input.
run() {
  local out=$work/out-$1
  if ((keep)) && [[ -d $out ]]; then
    find "$out" -type f -name '*.log' -exec truncate -s 0 {} +
    find "$out" -type f ! -name '*.log' ! -name '.shardlog*' -delete
  else
    rm -rf "$out"; mkdir -p "$out"
  fi
  sync
  local cmd=${2//\{out\}/$out} t0 t1
  t0=$(date +%s.%N)
  # Through a pipe, as logs arrive (and as `cat` cannot take a shortcut).
  cat "$in" | bash -c "$cmd" >/dev/null 2>"$work/stderr-$1" || { echo "$1 failed: $(tail -3 "$work/stderr-$1")" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

run A "$1" >/dev/null; run B "$2" >/dev/null # warm up
ratios=()
for i in $(seq "$pairs"); do
  a=$(run A "$1"); b=$(run B "$2")
  r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')
  ratios+=("$r")
  printf 'pair %2d: A %ss  B %ss  B/A %s\n' "$i" "$a" "$b" "$r"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ r[NR] = $1 } END {
  m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
  printf "B/A over %d pairs: median %.3f, min %.3f, max %.3f\n", NR, m, r[1], r[NR] }'

if [[ -n $shards ]]; then
  bad=0
  for ab in A B; do
    if "$work/check" "$in" "$shards" "$work/out-$ab" >"$work/check-$ab" 2>&1; then
      echo "check $ab: $(tail -1 "$work/check-$ab")"
    else
      echo "check $ab: FAIL" >&2; head -6 "$work/check-$ab" >&2; tail -1 "$work/check-$ab" >&2; bad=1
    fi
  done
  exit "$bad"
fi
