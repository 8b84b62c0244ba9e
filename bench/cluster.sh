#!/usr/bin/env bash
# The cluster path on one host against `shardlog run` (docs/BENCHMARKS.md, issue 17), in
# interleaved rounds (A B, B A, ...), and the median of the per-round ratios B/A.
#
#   A  cat INPUT | shardlog run -n N -d DIR                   (one process writes the files)
#   B  cat INPUT | shardlog route --cluster bench, with members a and b running
#      (shardlog run --cluster bench --member a|b -d DIR), timed from the first line into
#      route until a's and b's files together hold every byte of the input
#
# Each B round starts a fresh nats-server (file storage in $work, not timed), creates the
# cluster (N shards, members a and b, replicas 1), and starts both members before its clock
# starts; the round is over when the members' files hold as many bytes as the input. After
# the last round bench/check checks both outputs record by record (a's and b's directories
# seen as one).
#
#   bench/cluster.sh [-r ROUNDS] [-l LINES] [-n N]
#
# Needs a nats-server of 2.11 or later: SERVER (default /tmp/nb/nats-server, e.g.
# GOBIN=/tmp/nb go install github.com/nats-io/nats-server/v2@v2.15.2). SHARDLOG is the binary
# to measure (default: built from this checkout). The input is LINES lines from bench/gen
# (default 1000000), made once in $BENCH_WORK (default /tmp/shardlog-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5 lines=1000000 n=16
while getopts r:l:n: o; do
  case $o in r) rounds=$OPTARG ;; l) lines=$OPTARG ;; n) n=$OPTARG ;; *) exit 2 ;; esac
done
work=${BENCH_WORK:-/tmp/shardlog-bench}
server=${SERVER:-/tmp/nb/nats-server}
port=${PORT:-4377}
[[ -x $server ]] || { echo "$0: no nats-server at $server (set SERVER)" >&2; exit 2; }
mkdir -p "$work"
in=$work/input-$lines.log
[[ -s $in ]] || go run ./bench/gen -lines "$lines" >"$in"
size=$(stat -c %s "$in")
if [[ -z ${SHARDLOG:-} ]]; then
  SHARDLOG=$work/shardlog-cluster
  go build -o "$SHARDLOG" ./cmd/shardlog
fi
go build -o "$work/check" ./bench/check
url=nats://127.0.0.1:$port
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# bytes DIR...: the bytes of the shard files under DIRs.
bytes() { find "$@" -name 'shard-*.log' -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }

# now: seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }

runA() {
  local out=$work/cl-run
  rm -rf "$out"; sync
  local t0 t1
  t0=$(now)
  cat "$in" | "$SHARDLOG" run -n "$n" -d "$out" 2>"$work/cl-run.err"
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

runB() {
  local out=$work/cl-cluster store=$work/cl-store
  rm -rf "$out" "$store"; mkdir -p "$out/a" "$out/b"
  "$server" -a 127.0.0.1 -p "$port" -js -sd "$store" 2>"$work/cl-server.err" &
  local spid=$!
  for _ in $(seq 100); do grep -q "Server is ready" "$work/cl-server.err" && break; sleep 0.1; done
  "$SHARDLOG" cluster create --nats-url "$url" --cluster bench -n "$n" --members a,b >/dev/null
  "$SHARDLOG" run --nats-url "$url" --cluster bench --member a -d "$out/a" 2>"$work/cl-a.err" &
  local apid=$!
  "$SHARDLOG" run --nats-url "$url" --cluster bench --member b -d "$out/b" 2>"$work/cl-b.err" &
  local bpid=$!
  pids=("$spid" "$apid" "$bpid")
  for _ in $(seq 100); do
    grep -q 'msg=started' "$work/cl-a.err" && grep -q 'msg=started' "$work/cl-b.err" && break
    sleep 0.1
  done
  sync
  local t0 t1
  t0=$(now)
  cat "$in" | "$SHARDLOG" route --nats-url "$url" --cluster bench 2>"$work/cl-route.err"
  while (($(bytes "$out") < size)); do sleep 0.02; done
  t1=$(now)
  kill -TERM "$apid" "$bpid"; wait "$apid" "$bpid" || true
  kill -TERM "$spid"; wait "$spid" || true
  pids=()
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

runA >/dev/null; runB >/dev/null # warm up
ratios=()
for i in $(seq "$rounds"); do
  if ((i % 2)); then a=$(runA); b=$(runB); else b=$(runB); a=$(runA); fi
  r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')
  ratios+=("$r")
  printf 'round %2d: run %ss  cluster %ss  cluster/run %s\n' "$i" "$a" "$b" "$r"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ r[NR] = $1 } END {
  m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
  printf "cluster/run over %d rounds: median %.3f, min %.3f, max %.3f\n", NR, m, r[1], r[NR] }'

# Check both outputs: a's and b's files seen as one directory (hard links).
all=$work/cl-all
rm -rf "$all"; mkdir -p "$all"
ln "$work"/cl-cluster/a/shard-*.log "$work"/cl-cluster/b/shard-*.log "$all"/
bad=0
for o in cl-run cl-all; do
  if "$work/check" "$in" "$n" "$work/$o" >"$work/check-$o" 2>&1; then
    echo "check $o: $(tail -1 "$work/check-$o")"
  else
    echo "check $o: FAIL" >&2; head -6 "$work/check-$o" >&2; bad=1
  fi
done
exit "$bad"
