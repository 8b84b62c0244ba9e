#!/usr/bin/env bash
# shardlog route against `nats bench js pub async` (the server's ingest limit), in interleaved
# rounds (A B, B A, ...), and the median of the per-round throughput ratios route / nats bench
# (docs/BENCHMARKS.md, issue 17).
#
#   A  nats bench js pub async: as many messages as route publishes, of route's mean batch size,
#      each with a message id (--dedup), into a file-storage stream (purged first)
#   B  cat INPUT | shardlog route --cluster bench (N shards, a fresh cluster each round, no
#      members: the stream keeps what route stores); it exits once the stream stored every batch
#
# Both are timed by the wall clock around the whole command (process start included), and
# rated in MB/s of payload. One nats-server (file storage in $work) serves every round.
#
#   bench/route.sh [-r ROUNDS] [-l LINES] [-n N] [-p]
#
# -p pins the server to CPU 0 and the clients (cat and route, or nats bench) to CPU 1, as if
# route ran on a host of its own: without it all share both cores.
#
# Needs SERVER (default /tmp/nb/nats-server, 2.11 or later) and NATS (natscli, default
# /tmp/nb/nats: GOBIN=/tmp/nb go install github.com/nats-io/natscli/nats@v0.5.0). SHARDLOG
# (default: built from this checkout). The input is LINES lines from bench/gen (default
# 1000000), made once in $BENCH_WORK (default /tmp/shardlog-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=7 lines=1000000 n=16 srvpin=() clipin=()
while getopts r:l:n:p o; do
  case $o in r) rounds=$OPTARG ;; l) lines=$OPTARG ;; n) n=$OPTARG ;; p) srvpin=(taskset -c 0) clipin=(taskset -c 1) ;; *) exit 2 ;; esac
done
work=${BENCH_WORK:-/tmp/shardlog-bench}
server=${SERVER:-/tmp/nb/nats-server}
natscli=${NATS:-/tmp/nb/nats}
port=${PORT:-4378}
[[ -x $server ]] || { echo "$0: no nats-server at $server (set SERVER)" >&2; exit 2; }
[[ -x $natscli ]] || { echo "$0: no natscli at $natscli (set NATS)" >&2; exit 2; }
mkdir -p "$work"
in=$work/input-$lines.log
[[ -s $in ]] || go run ./bench/gen -lines "$lines" >"$in"
if [[ -z ${SHARDLOG:-} ]]; then
  SHARDLOG=$work/shardlog-route
  go build -o "$SHARDLOG" ./cmd/shardlog
fi
url=nats://127.0.0.1:$port
store=$work/rt-store
rm -rf "$store"
"${srvpin[@]}" "$server" -a 127.0.0.1 -p "$port" -js -sd "$store" 2>"$work/rt-server.err" &
spid=$!
trap 'kill $spid 2>/dev/null; wait $spid 2>/dev/null' EXIT
for _ in $(seq 100); do grep -q "Server is ready" "$work/rt-server.err" && break; sleep 0.1; done

now() { date +%s.%N; }

# route: prints seconds, and leaves route's log in rt-route.err.
runB() {
  "$SHARDLOG" cluster delete --nats-url "$url" --cluster bench >/dev/null 2>&1 || true
  "$SHARDLOG" cluster create --nats-url "$url" --cluster bench -n "$n" --members a >/dev/null
  sync
  local t0 t1
  t0=$(now)
  "${clipin[@]}" cat "$in" | "${clipin[@]}" "$SHARDLOG" route --nats-url "$url" --cluster bench 2>"$work/rt-route.err"
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

runB >/dev/null # warm up, and learn route's batches
read -r batches bytes < <(sed -n 's/.*msg=published .*batches=\([0-9]*\) bytes=\([0-9]*\).*/\1 \2/p' "$work/rt-route.err")
size=$((bytes / batches))
echo "route publishes $batches batches, $bytes bytes: nats bench sends $batches messages of $size bytes"
"$natscli" -s "$url" bench js pub async bench.x --create --storage file --maxbytes 4GB --msgs 1 --size 16 --no-progress >/dev/null 2>&1

runA() {
  sync
  local t0 t1
  t0=$(now)
  "${clipin[@]}" "$natscli" -s "$url" bench js pub async bench.x --purge --dedup --msgs "$batches" --size "$size" --no-progress >"$work/rt-natsbench.out" 2>&1
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

runA >/dev/null
ratios=()
for i in $(seq "$rounds"); do
  if ((i % 2)); then a=$(runA); b=$(runB); else b=$(runB); a=$(runA); fi
  r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
  ratios+=("$r")
  printf 'round %2d: nats bench %ss (%s MB/s)  route %ss (%s MB/s)  route/nats-bench %s\n' "$i" \
    "$a" "$(awk -v s="$a" -v b="$bytes" 'BEGIN { printf "%.0f", b / s / 1e6 }')" \
    "$b" "$(awk -v s="$b" -v b="$bytes" 'BEGIN { printf "%.0f", b / s / 1e6 }')" "$r"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ r[NR] = $1 } END {
  m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
  printf "route/nats-bench throughput over %d rounds: median %.3f, min %.3f, max %.3f\n", NR, m, r[1], r[NR] }'
