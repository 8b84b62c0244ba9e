#!/usr/bin/env bash
# Times stdin-to-N-files programs on the same input, in one run, and checks
# every output. Usage:
#
#   bench/compare.sh [-l LINES] [-n SHARDS] [-r RUNS] [-k] [--python] ['NAME=COMMAND {out}' ...]
#
# Each NAME=COMMAND reads the input from a pipe on stdin and writes shard
# files into {out} (shard-%03d.log). Always included: cat (the pipe and the
# disk, one file, no routing: the limit), and the Go baselines of
# bench/baseline: bufio1, perchan and naive; with --python also the Python
# baselines of bench/python (the slow ones, NAME/10, on a tenth of the
# input, scaled). The input is LINES lines (default 1000000, about 165 MB)
# from bench/gen. Prints a table of median seconds over RUNS runs (default
# 5, after one warm-up run), lines/s and time relative to cat, and whether
# bench/check found the output right (naive and py-threads: in any order).
# Beside the wall time it prints the median CPU-seconds (user+sys, from
# /usr/bin/time) of the command alone, without the cat that feeds it, and
# that CPU relative to `cat > file`'s: CPU drifts much less than wall time
# on a shared machine. Without /usr/bin/time those columns are "-".
#
# Timing uses hyperfine when it is installed, and otherwise a plain loop
# (which also counts starting bash, a few milliseconds a run).
# -k times the steady state of a daemon: the files already exist (made by
# the warm-up run) and are emptied with truncate before each run, so no run
# pays for creating N files (at N=1024 on ext4, right after deleting the
# previous ones, that costs more than the data) and no dirty data piles up
# across runs. The check then runs on one more run into an empty directory.
#
# Binaries and input go to $BENCH_WORK (kept), or to a temporary directory
# removed at the end. Needs Go; --python needs python3 (PYTHON), gcc,
# python3-dev and python3-aiofiles.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
usage="usage: $0 [-l LINES] [-n SHARDS] [-r RUNS] [-k] [--python] ['NAME=COMMAND {out}' ...]"
lines=1000000 shards=16 runs=5 python=0 keep=0
extra=()
while (($#)); do
  case $1 in
    -l|-n|-r) (($# >= 2)) || { echo "$usage" >&2; exit 2; } ;;&
    -l) lines=$2; shift 2 ;;
    -n) shards=$2; shift 2 ;;
    -r) runs=$2; shift 2 ;;
    -k) keep=1; shift ;;
    --python) python=1; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) echo "$usage" >&2; exit 2 ;;
    *=*) extra+=("$1"); shift ;;
    *) echo "$0: $1: want NAME=COMMAND" >&2; exit 2 ;;
  esac
done
for v in "$lines" "$shards" "$runs"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "$0: $v: want a positive integer" >&2; echo "$usage" >&2; exit 2; }
done
hyperfine=$(command -v hyperfine || true)
if [[ -z $hyperfine ]]; then
  echo "compare.sh: hyperfine not found (Debian package hyperfine); timing with a plain loop:" \
    "the median of $runs run(s)$( ((runs > 1)) && echo ' after one warm-up run')" >&2
fi

if [[ -n ${BENCH_WORK:-} ]]; then
  work=$BENCH_WORK
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/bin"
(cd "$root" && "$go" build -o "$work/bin/" ./bench/gen ./bench/check ./bench/baseline/...)
in=$work/input-$lines.log
[[ -s $in ]] || "$work/bin/gen" -lines "$lines" >"$in"
small=$work/input-$((lines / 10)).log
head -n $((lines / 10)) "$in" >"$small"

cmds=("cat=cat > {out}/one.log"
      "bufio1=$work/bin/bufio1 $shards {out}"
      "perchan=$work/bin/perchan $shards {out}"
      "naive=$work/bin/naive $shards {out}")
if ((python)); then
  py=${PYTHON:-/usr/bin/python3}
  compgen -G "$here/python/mmh3lite*.so" >/dev/null || PYTHON=$py "$here/python/build.sh" >/dev/null
  cmds+=("py-sync-buffered=$py $here/python/sync_buffered.py $shards {out}"
         "py-asyncio-collect=$py $here/python/asyncio_collect.py $shards {out}"
         "py-sync-open-each/10=$py $here/python/sync_open_each.py $shards {out}"
         "py-threads/10=$py $here/python/threads.py $shards {out}"
         "py-asyncio-lock/10=$py $here/python/asyncio_lock.py $shards {out}")
fi
cmds+=(${extra[@]+"${extra[@]}"})

# timeloop RUNS WARMUP PREP CMD: runs PREP then CMD, WARMUP times untimed
# and RUNS times timed, and prints the median seconds of CMD; fails as
# soon as PREP or CMD fails.
timeloop() {
  local i t0 t1 times=()
  for ((i = 0; i < $2; i++)); do
    bash -c "$3" && bash -c "$4" >/dev/null 2>"$work/stderr" || return 1
  done
  for ((i = 0; i < $1; i++)); do
    bash -c "$3" || return 1
    t0=$(date +%s.%N)
    bash -c "$4" >/dev/null 2>"$work/stderr" || return 1
    t1=$(date +%s.%N)
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{ t[NR] = $1 } END { printf "%.6f\n", NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2 }'
}

# cpumed FILE SKIP: prints the median user+sys seconds of the lines of
# FILE (/usr/bin/time's "%U %S", one per run) after the first SKIP.
cpumed() {
  tail -n +$(($2 + 1)) "$1" | awk '{ print $1 + $2 }' | sort -g | awk '{ t[NR] = $1 } END {
    if (NR) printf "%.6f\n", NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2 }'
}
timecmd=/usr/bin/time
[[ -x $timecmd ]] || { timecmd=; echo "compare.sh: /usr/bin/time not found (Debian package time): no CPU columns" >&2; }

printf '%-22s %10s %12s %9s %8s %8s  %s\n' name median_s lines_per_s vs_cat cpu_s cpu_cat check
catmed= catcpu= failed=0
for c in "${cmds[@]}"; do
  name=${c%%=*} cmd=${c#*=}
  src=$in scale=1 r=$runs
  if [[ $name == */10 ]]; then src=$small scale=10 r=1; fi
  out=$work/out-${name//\//_}
  run=${cmd//\{out\}/$out}
  cpuf=$work/cpu-${name//\//_}
  : >"$cpuf"
  if [[ -n $timecmd ]]; then
    # The command alone (not the cat feeding it), one line per run.
    printf -v q '%q' "$run"
    run="$timecmd -f '%U %S' -a -o $cpuf bash -c $q"
  fi
  # Input comes through a pipe, as from a program that logs.
  if ((keep)); then prep="mkdir -p $out; find $out -type f ! -name '.*' -exec truncate -s 0 {} +"; rm -rf "$out"; else prep="rm -rf $out; mkdir -p $out"; fi
  warm=$((r > 1 ? 1 : 0))
  if [[ -n $hyperfine ]]; then
    if "$hyperfine" -r "$r" -w "$warm" --style none --shell=bash \
      --prepare "$prep" --export-json "$work/h.json" \
      "cat $src | $run" >/dev/null 2>"$work/stderr"; then
      med=$(sed -n 's/^ *"median": *\([0-9.eE+-]*\).*/\1/p' "$work/h.json" | head -1)
    else med=; fi
  else
    med=$(timeloop "$r" "$warm" "$prep" "cat $src | $run" || true)
  fi
  if [[ -z $med ]]; then
    printf '%-22s %10s %12s %9s %8s %8s  %s\n' "$name" - - - - - FAIL
    echo "compare.sh: $name failed${hyperfine:+ under hyperfine}; its stderr: $(tail -3 "$work/stderr")" >&2
    failed=1
    continue
  fi
  cpu=$(cpumed "$cpuf" "$warm") # before the check run below adds a line
  if ((keep)); then rm -rf "$out"; mkdir -p "$out"; bash -c "cat $src | $run" >/dev/null 2>&1; fi
  med=$(awk -v m="$med" -v s="$scale" 'BEGIN { printf "%.6f", m * s }')
  [[ -n $catmed ]] || catmed=$med
  [[ -z $cpu ]] || cpu=$(awk -v m="$cpu" -v s="$scale" 'BEGIN { printf "%.6f", m * s }')
  [[ -n $catcpu ]] || catcpu=$cpu
  ok=-
  if [[ $name != cat ]]; then
    flags=()
    [[ $name == naive || $name == py-threads* ]] && flags=(-unordered)
    if "$work/bin/check" ${flags[@]+"${flags[@]}"} "$src" "$shards" "$out" >"$work/check-${name//\//_}.txt" 2>&1; then ok=ok; else
      ok=FAIL failed=1
      { echo "compare.sh: $name: bench/check:"; head -6 "$work/check-${name//\//_}.txt"; tail -1 "$work/check-${name//\//_}.txt"; } >&2
    fi
  fi
  awk -v n="$name" -v m="$med" -v l="$lines" -v c="$catmed" -v u="$cpu" -v cu="$catcpu" -v ok="$ok" \
    'BEGIN { printf "%-22s %10.3f %12.0f %9.2f", n, m, l / m, m / c
      if (u == "") printf " %8s %8s", "-", "-"
      else if (cu + 0 > 0) printf " %8.3f %8.2f", u, u / cu
      else printf " %8.3f %8s", u, "-"
      printf "  %s\n", ok }'
done
exit "$failed"
