#!/usr/bin/env bash
# CPU-seconds of each process of the cluster path (nats-server, route, members a and b) and of
# `shardlog run` alone, on the same input, three times (docs/BENCHMARKS.md, issue 17).
#
#   bench/clustercpu.sh          # after bench/cluster.sh has made the input
#
# SERVER (default /tmp/nb/nats-server, 2.11 or later), SHARDLOG (default: built from this
# checkout), LINES (1000000), BENCH_WORK (/tmp/shardlog-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${BENCH_WORK:-/tmp/shardlog-bench}
server=${SERVER:-/tmp/nb/nats-server}
in=$work/input-${LINES:-1000000}.log
[[ -s $in ]] || go run ./bench/gen -lines "${LINES:-1000000}" >"$in"
if [[ -z ${SHARDLOG:-} ]]; then
  SHARDLOG=$work/shardlog-cpu
  go build -o "$SHARDLOG" ./cmd/shardlog
fi
url=nats://127.0.0.1:${PORT:-4393} w=$work/cpu size=$(stat -c %s "$in")
# cpu PID: the CPU-seconds (user + system) PID has used so far.
cpu() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
for i in 1 2 3; do
  rm -rf "$w"; mkdir -p "$w/a" "$w/b"
  "$server" -a 127.0.0.1 -p "${url##*:}" -js -sd "$w/store" 2>"$w/server.err" & sp=$!
  for _ in $(seq 100); do grep -q "Server is ready" "$w/server.err" && break; sleep 0.1; done
  "$SHARDLOG" cluster create --nats-url "$url" --cluster bench -n 16 --members a,b >/dev/null
  "$SHARDLOG" run --nats-url "$url" --cluster bench --member a -d "$w/a" 2>"$w/a.err" & ap=$!
  "$SHARDLOG" run --nats-url "$url" --cluster bench --member b -d "$w/b" 2>"$w/b.err" & bp=$!
  sleep 1
  s0=$(cpu $sp) a0=$(cpu $ap) b0=$(cpu $bp)
  /usr/bin/time -f "%U %S" -o "$w/route.time" "$SHARDLOG" route --nats-url "$url" --cluster bench <"$in" 2>/dev/null
  while (($(find "$w/a" "$w/b" -name 'shard-*' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }') < size)); do sleep 0.05; done
  awk -v r="$(awk '{ print $1 + $2 }' "$w/route.time")" -v s="$(cpu $sp)" -v s0="$s0" -v a="$(cpu $ap)" -v a0="$a0" \
    -v b="$(cpu $bp)" -v b0="$b0" 'BEGIN { printf "cluster: route %.2f  server %.2f  a %.2f  b %.2f  all %.2f CPU-s\n",
      r, s - s0, a - a0, b - b0, r + s - s0 + a - a0 + b - b0 }'
  kill $ap $bp; wait $ap $bp || true
  kill $sp; wait $sp || true
  rm -rf "$w/r"
  /usr/bin/time -f "run: %U user %S system CPU-s" "$SHARDLOG" run -n 16 -d "$w/r" <"$in" 2>&1 | tail -1
done
