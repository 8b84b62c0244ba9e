#!/usr/bin/env bash
# Measures the CPU-seconds (user+sys) of two commands on the same input
# file, in interleaved pairs (A B A B ...), and prints each pair's ratio
# B/A with the load average at its start, then the median, min and max.
# CPU time drifts much less than wall time on a shared machine. Each
# command reads the input on stdin (redirected from the file, no pipe)
# and writes into {out}, whose files are kept between runs and emptied
# with truncate (the shard files, *.log): a daemon's steady state; and
# after a sync, so that no run pays for the one before's writeback
# (figures taken before 2026-12-03's third session had no sync). Timing is /usr/bin/time's own
# getrusage of the one command, so the harness costs nothing measured.
#
#   bench/cpupairs.sh [-r PAIRS] [-i INPUT] 'A command {out}' 'B command {out}'
#
# INPUT defaults to $BENCH_WORK/input-5000000.log (made with bench/gen).
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=7 work=${BENCH_WORK:-/tmp/shardlog-bench} in=
while getopts r:i: o; do
  case $o in r) pairs=$OPTARG ;; i) in=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
(($# == 2)) || { echo "usage: $0 [-r PAIRS] [-i INPUT] 'A {out}' 'B {out}'" >&2; exit 2; }
mkdir -p "$work"
if [[ -z $in ]]; then
  in=$work/input-5000000.log
  [[ -s $in ]] || go run ./bench/gen -lines 5000000 >"$in"
fi

source bench/cputime.sh
# cpu NAME CMD: prints the user+sys seconds CMD takes on the input.
cpu() { cpu_seconds "$work" "$1" "$2" "$in"; }

cpu A "$1" >/dev/null; cpu B "$2" >/dev/null # warm up, and make the files
ratios=()
for i in $(seq "$pairs"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  a=$(cpu A "$1"); b=$(cpu B "$2")
  r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')
  ratios+=("$r")
  printf 'pair %2d: load %s  A %s CPU-s  B %s CPU-s  B/A %s\n' "$i" "$load" "$a" "$b" "$r"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk -v l="$(cut -d' ' -f1-3 /proc/loadavg)" '{ r[NR] = $1 } END {
  m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
  printf "B/A CPU over %d pairs: median %.3f, min %.3f, max %.3f (load after: %s)\n", NR, m, r[1], r[NR], l }'
