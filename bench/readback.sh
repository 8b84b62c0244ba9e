#!/usr/bin/env bash
# Reading back (docs/BENCHMARKS.md, issue 18): shardlog grep, verify and reshard against the
# shell's way over the same directory, in interleaved rounds (A B, B A, ...), with the median
# of the per-round ratios.
#
# The directory: LINES JSON lines from bench/gen -json (default 2000000), written by
#   shardlog run -n 16 --key json:user --rotate-max-bytes 4MiB --rotate-compress zstd
# (made once in $BENCH_WORK, default /tmp/shardlog-bench).
#
#   grep     A  { zstdcat DIR/*.zst; cat DIR/*.log; } | grep -F '"user":"u42"'
#            B  shardlog grep -d DIR u42                  (ratio A/B: how many times faster)
#   verify   A  zstdcat DIR/*.zst > /dev/null             (the decompression limit)
#            B  shardlog verify -d DIR                    (ratio A/B; and B's MB/s)
#   reshard  A  zstdcat DIR/*.zst > /dev/null
#            B  shardlog reshard -d DIR --to NEW -n 32    (ratio A/B; B's MB/s and peak RSS)
#
#   bench/readback.sh [-r ROUNDS] [-l LINES] [grep|verify|reshard ...]
#
# MB/s are of the records' bytes (the directory's content, decompressed). Each grep round
# checks that both found the same records.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=7 lines=2000000
while getopts r:l: o; do
  case $o in r) rounds=$OPTARG ;; l) lines=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
cases=("$@")
((${#cases[@]})) || cases=(grep verify reshard)
work=${BENCH_WORK:-/tmp/shardlog-bench}
mkdir -p "$work"
if [[ -z ${SHARDLOG:-} ]]; then
  SHARDLOG=$work/shardlog-readback
  go build -o "$SHARDLOG" ./cmd/shardlog
fi
dir=$work/rb-$lines
if [[ ! -s $dir/.shardlog-routing.json ]]; then
  rm -rf "$dir"
  go run ./bench/gen -json -lines "$lines" |
    "$SHARDLOG" run -n 16 -d "$dir" --key json:user --rotate-max-bytes 4MiB --rotate-compress zstd 2>"$work/rb-run.err"
fi
content=$(go run ./bench/gen -json -lines "$lines" | wc -c)
echo "directory $dir: $(ls "$dir" | wc -l) files, $(du -sb "$dir" | cut -f1) bytes on disk, $content bytes of records"

now() { date +%s.%N; }
# timed CMD: runs CMD with bash, prints its seconds.
timed() {
  local t0 t1
  t0=$(now)
  bash -c "$1"
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

# pairs NAME A B: interleaved rounds of A and B, ratio A/B.
pairs() {
  local name=$1 a=$2 b=$3 ratios=() ta tb r
  timed "$a" >/dev/null; timed "$b" >/dev/null # warm the page cache
  for i in $(seq "$rounds"); do
    if ((i % 2)); then ta=$(timed "$a"); tb=$(timed "$b"); else tb=$(timed "$b"); ta=$(timed "$a"); fi
    r=$(awk -v a="$ta" -v b="$tb" 'BEGIN { printf "%.3f", a / b }')
    ratios+=("$r")
    printf '%s round %2d: A %ss  B %ss (%s MB/s)  A/B %s\n' "$name" "$i" "$ta" "$tb" \
      "$(awk -v s="$tb" -v b="$content" 'BEGIN { printf "%.0f", b / s / 1e6 }')" "$r"
  done
  printf '%s\n' "${ratios[@]}" | sort -n | awk -v n="$name" '{ r[NR] = $1 } END {
    m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
    printf "%s: A/B over %d rounds: median %.3f, min %.3f, max %.3f\n", n, NR, m, r[1], r[NR] }'
}

for c in "${cases[@]}"; do
  case $c in
  grep)
    pairs grep "{ zstdcat $dir/*.zst; cat $dir/*.log; } | grep -F '\"user\":\"u42\"' > $work/rb-grep-A" \
      "$SHARDLOG grep -d $dir u42 > $work/rb-grep-B"
    if cmp -s <(sort "$work/rb-grep-A") <(sort "$work/rb-grep-B"); then
      echo "grep: both found the same $(wc -l <"$work/rb-grep-B") records"
    else
      echo "grep: the outputs differ" >&2; exit 1
    fi
    ;;
  verify)
    pairs verify "zstdcat $dir/*.zst > /dev/null" "$SHARDLOG verify -d $dir > $work/rb-verify.out"
    tail -1 "$work/rb-verify.out"
    ;;
  reshard)
    pairs reshard "zstdcat $dir/*.zst > /dev/null" \
      "rm -rf $work/rb-new && $SHARDLOG reshard -d $dir --to $work/rb-new -n 32 2>$work/rb-reshard.err"
    rm -rf "$work/rb-new"
    /usr/bin/time -f 'reshard: peak RSS %M KiB, %e s, %U user %S system' \
      "$SHARDLOG" reshard -d "$dir" --to "$work/rb-new" -n 32 2>&1 | tail -1
    ;;
  *) echo "$0: unknown case $c" >&2; exit 2 ;;
  esac
done
