#!/usr/bin/env bash
# Builds shardlog and the latency benchmark, then measures shardlog's
# latency at 10000, 100000 and 1000000 lines/s into 16 shards, one line of
# figures per rate. Arguments are passed to shardlog, to compare settings:
#
#   bench/latency/run.sh
#   bench/latency/run.sh --batch-max-delay 20ms
#
# DURATION (default 5s) sets each run's length, RATES the rates.
# It exits 1 if any run failed or lost, duplicated or garbled a line.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
make build GO="$GO" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$GO" build -o "$tmp/latency" ./bench/latency
status=0
for rate in ${RATES:-10000 100000 1000000}; do
  "$tmp/latency" -bin bin/shardlog -n 16 -rate "$rate" -duration "${DURATION:-5s}" -args "$*" || status=1
done
exit $status
