#!/usr/bin/env bash
# Measures the CPU-seconds (user+sys) of shardlog run against the floor of
# its work (bench/floor: the same read, line finding, murmur3, copy and
# writes, in the simplest program) and against cat, in interleaved rounds:
# each round runs every command once (each round starting one command
# later than the one before) on the same input file, on stdin
# (no pipe), writing into files that are kept and emptied with truncate
# (a daemon's steady state). It prints each round, then per command the
# median CPU-s and the median of its per-round ratios to cat and to
# floor hash. It first checks that floor hash writes the files shardlog
# writes. /usr/bin/time's getrusage of the one command: the harness costs
# nothing measured.
#
#   bench/floor.sh [-r ROUNDS] [-n N] [-i INPUT] [SHARDLOG]
#
# INPUT defaults to $BENCH_WORK/input-5000000.log (made with bench/gen),
# SHARDLOG to bin/shardlog.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=7 n=16 work=${BENCH_WORK:-/tmp/shardlog-bench} in=
while getopts r:n:i: o; do
  case $o in r) rounds=$OPTARG ;; n) n=$OPTARG ;; i) in=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
shardlog=${1:-$PWD/bin/shardlog}
mkdir -p "$work"
if [[ -z $in ]]; then
  in=$work/input-5000000.log
  [[ -s $in ]] || go run ./bench/gen -lines 5000000 >"$in"
fi
floor=$work/floor
go build -o "$floor" ./bench/floor

names=(cat copy scan hash writers shardlog)
cmds=("cat > {out}/one.log"
  "$floor -mode copy -n $n -d {out}"
  "$floor -mode scan -n $n -d {out}"
  "$floor -mode hash -n $n -d {out}"
  "$floor -mode writers -n $n -d {out}"
  "$shardlog run -n $n -d {out}")

source bench/cputime.sh
# cpu NAME CMD: prints the user+sys seconds CMD takes on the input.
cpu() { cpu_seconds "$work" "floor-$1" "$2" "$in"; }

# The warm-up run of each makes the files; floor hash must equal shardlog.
for i in "${!names[@]}"; do cpu "${names[$i]}" "${cmds[$i]}" >/dev/null; done
for f in "$work"/cpu-out-floor-shardlog/shard-*.log; do
  cmp -s "$f" "$work/cpu-out-floor-hash/$(basename "$f")" ||
    { echo "floor hash and shardlog differ in $(basename "$f")" >&2; exit 1; }
done

results=$work/floor-results
: >"$results"
for r in $(seq "$rounds"); do
  line="round $r: load $(cut -d' ' -f1 /proc/loadavg)"
  # Each round starts one command later, so that none always runs after
  # the same one (the machine's state after a run is part of the next's).
  for j in "${!names[@]}"; do
    i=$(((j + r - 1) % ${#names[@]}))
    t=$(cpu "${names[$i]}" "${cmds[$i]}")
    echo "$r ${names[$i]} $t" >>"$results"
    line+="  ${names[$i]} $t"
  done
  echo "$line"
done
awk -v names="${names[*]}" -v l="$(cut -d' ' -f1-3 /proc/loadavg)" '
  function median(a, k,   i, j, t) {
    for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return k % 2 ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
  }
  { cpu[$1, $2] = $3; if ($1 > rounds) rounds = $1 }
  END {
    n = split(names, name, " ")
    printf "%-9s %8s %18s %18s\n", "command", "CPU-s", "/ cat", "/ floor hash"
    for (c = 1; c <= n; c++) {
      delete v; delete rc; delete rh
      for (r = 1; r <= rounds; r++) {
        v[r] = cpu[r, name[c]]; rc[r] = cpu[r, name[c]] / cpu[r, "cat"]; rh[r] = cpu[r, name[c]] / cpu[r, "hash"]
      }
      lo = hi = rc[1]; for (r = 1; r <= rounds; r++) { if (rc[r] < lo) lo = rc[r]; if (rc[r] > hi) hi = rc[r] }
      lh = hh = rh[1]; for (r = 1; r <= rounds; r++) { if (rh[r] < lh) lh = rh[r]; if (rh[r] > hh) hh = rh[r] }
      printf "%-9s %8.3f %5.2f (%.2f-%.2f) %5.2f (%.2f-%.2f)\n", name[c], median(v, rounds), median(rc, rounds), lo, hi, median(rh, rounds), lh, hh
    }
    printf "medians over %d rounds (load after: %s)\n", rounds, l
  }' "$results"
