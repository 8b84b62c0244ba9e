#!/usr/bin/env bash
# NATS ingest benchmark of shardlog (docs/BENCHMARKS.md).
#
# Needs, in $NB (default /tmp/nb): shardlog, natsbench (with natsbench.diff applied: it uses
# -mode js-delete and -mode files -start) and nats-server v2.15.2, built with
#   cd "$(git rev-parse --show-toplevel)" && go build -o /tmp/nb/shardlog ./cmd/shardlog \
#     && go build -o /tmp/nb/natsbench ./bench/natsbench \
#     && GOBIN=/tmp/nb go install github.com/nats-io/nats-server/v2@v2.15.2
# Run: bench/natsbench/run.sh   (about 5 minutes; nothing else on the CPU)
#
# Per iteration, in this order (baseline, shardlog, baseline, shardlog):
#   core-base  bare core subscriber (natsbench -mode sub) while natsbench -mode pub publishes
#   core-shard shardlog on the subject; natsbench -mode files -start sub times from the first
#              message published to the last byte in the files
#   js-base    js-fill a fresh stream, then time a bare acking pull consumer (natsbench -mode js-sub)
#   js-shard   js-fill a fresh stream, then shardlog --js-stream (fresh durable); natsbench -mode
#              files -start js times from the first delivery to the durable to the last byte
# Results: $NB/logs/results.tsv (one row per run) and $NB/logs/<run>.* (raw outputs).
set -euo pipefail

NB=${NB:-/tmp/nb}
RUNS=${RUNS:-5}
MSGS=${MSGS:-2000000}
SIZE=${SIZE:-180}
N=${N:-16}
PORT=${PORT:-4333}
URL=nats://127.0.0.1:$PORT
OUT=$NB/out
LOGS=$NB/logs
LIMIT=${LIMIT:-300} # seconds before a consumer or files waiter counts as stuck
BENCH=("$NB/natsbench" -url "$URL" -subject logs.bench)

rm -rf "$LOGS" "$OUT" "$NB/js"
mkdir -p "$LOGS"
{ echo "date: $(date -u +%FT%TZ)"; echo "nproc: $(nproc)"; go version 2>/dev/null || /usr/local/go/bin/go version
  "$NB/nats-server" --version; uname -r; } | tee "$LOGS/env.txt"

"$NB/nats-server" -a 127.0.0.1 -p "$PORT" -js -sd "$NB/js" 2>"$LOGS/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

# wait_for FILE TEXT: wait (up to 30 s) until FILE contains TEXT.
wait_for() {
	for _ in $(seq 3000); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.01; done
	echo "timed out waiting for '$2' in $1" >&2; return 1
}
field() { awk -v k="$1=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) v = substr($i, length(k) + 1) } END { print v }' "$2"; } # field NAME FILE
settle() { sync; sleep 2; }                                     # let writeback of the last run finish
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }      # CPU jiffies busy, all processes
since_cpu() { awk -v a="$1" -v b="$(busy)" 'BEGIN { printf "%.2f", (b - a) / 100 }'; } # CPU-seconds since
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }     # seconds since

printf 'iter\trun\trate\tseconds\tpub_rate\tmessages\twritten\tacked\tslow_consumer\tdropped\tcpu_busy_s\twall_s\tfirstbyte_rate\tearly\tnote\n' >"$LOGS/results.tsv"
row() { printf '%s\t' "$@" | sed 's/\t$/\n/' >>"$LOGS/results.tsv"; }

core_base() { # iteration
	local p=$LOGS/core-base-$1 b0 t0
	# The stream of the last JetStream run captures logs.bench: it would store every core message.
	"${BENCH[@]}" -mode js-delete -stream BENCH
	settle; b0=$(busy); t0=$(date +%s.%N)
	timeout "$LIMIT" "${BENCH[@]}" -mode sub -msgs "$MSGS" >"$p.sub" 2>"$p.sub.err" &
	local sub=$!
	wait_for "$p.sub.err" subscribed
	"${BENCH[@]}" -mode pub -msgs "$MSGS" -size "$SIZE" >"$p.pub" 2>&1
	local note=ok; wait $sub || note="sub-failed-rc=$?"
	row "$1" core-base "$(field rate "$p.sub")" "$(field seconds "$p.sub")" "$(field rate "$p.pub")" \
		- - - - - "$(since_cpu "$b0")" "$(since "$t0")" - - "$note"
}

core_shard() { # iteration
	local p=$LOGS/core-shard-$1 b0 t0; rm -rf "$OUT"; settle; b0=$(busy); t0=$(date +%s.%N)
	"$NB/shardlog" run --nats-url "$URL" --subject logs.bench -n "$N" -d "$OUT" 2>"$p.shardlog" &
	local sl=$!
	wait_for "$p.shardlog" "receiving from NATS"
	timeout "$LIMIT" "${BENCH[@]}" -mode files -start sub -msgs "$MSGS" -size "$SIZE" -dir "$OUT" -n "$N" \
		>"$p.files" 2>"$p.files.err" &
	local files=$!
	wait_for "$p.files.err" ready
	"${BENCH[@]}" -mode pub -msgs "$MSGS" -size "$SIZE" >"$p.pub" 2>&1
	local note=ok; wait $files || note="files-failed-rc=$?"
	kill -TERM $sl; wait $sl || note="$note,shardlog-rc=$?"
	local lines; lines=$(cat "$OUT"/shard-*.log 2>/dev/null | wc -l || true)
	[ "$lines" = "$MSGS" ] || note="$note,lines=$lines"
	local s=$p.shardlog
	row "$1" core-shard "$(field rate "$p.files")" "$(field seconds "$p.files")" "$(field rate "$p.pub")" \
		"$(field messages "$s")" "$(field written "$s")" "$(field acked "$s")" "$(field slow_consumer "$s")" \
		"$(field dropped "$s")" "$(since_cpu "$b0")" "$(since "$t0")" \
		"$(field firstbyte_rate "$p.files")" "$(field early "$p.files")" "$note"
}

js_base() { # iteration
	local p=$LOGS/js-base-$1 b0 t0
	"${BENCH[@]}" -mode js-fill -msgs "$MSGS" -size "$SIZE" -stream BENCH >"$p.fill" 2>&1
	settle; b0=$(busy); t0=$(date +%s.%N)
	local note=ok
	timeout "$LIMIT" "${BENCH[@]}" -mode js-sub -msgs "$MSGS" -stream BENCH >"$p.sub" 2>&1 || note="js-sub-failed-rc=$?"
	row "$1" js-base "$(field rate "$p.sub")" "$(field seconds "$p.sub")" - - - - - - \
		"$(since_cpu "$b0")" "$(since "$t0")" - - "$note"
}

js_shard() { # iteration
	local p=$LOGS/js-shard-$1 b0 t0; rm -rf "$OUT"
	"${BENCH[@]}" -mode js-fill -msgs "$MSGS" -size "$SIZE" -stream BENCH >"$p.fill" 2>&1
	settle; b0=$(busy); t0=$(date +%s.%N)
	timeout "$LIMIT" "${BENCH[@]}" -mode files -start js -stream BENCH -durable "run$1" -msgs "$MSGS" -size "$SIZE" \
		-dir "$OUT" -n "$N" >"$p.files" 2>"$p.files.err" &
	local files=$!
	wait_for "$p.files.err" ready
	"$NB/shardlog" run --nats-url "$URL" --subject logs.bench -n "$N" -d "$OUT" \
		--js-stream BENCH --js-durable "run$1" 2>"$p.shardlog" &
	local sl=$!
	local note=ok; wait $files || note="files-failed-rc=$?"
	kill -TERM $sl; wait $sl || note="$note,shardlog-rc=$?"
	local lines; lines=$(cat "$OUT"/shard-*.log 2>/dev/null | wc -l || true)
	[ "$lines" = "$MSGS" ] || note="$note,lines=$lines"
	local s=$p.shardlog
	row "$1" js-shard "$(field rate "$p.files")" "$(field seconds "$p.files")" - \
		"$(field messages "$s")" "$(field written "$s")" "$(field acked "$s")" "$(field slow_consumer "$s")" \
		"$(field dropped "$s")" "$(since_cpu "$b0")" "$(since "$t0")" \
		"$(field firstbyte_rate "$p.files")" "$(field early "$p.files")" "$note"
}

for i in $(seq "$RUNS"); do
	ps -eo pid,ppid,etimes,time,comm >"$LOGS/ps-before-$i.txt"
	core_base "$i"; core_shard "$i"; js_base "$i"; js_shard "$i"
	ps -eo pid,ppid,etimes,time,comm >"$LOGS/ps-after-$i.txt"
	tail -n 4 "$LOGS/results.tsv"
done

# Medians and ratios.
awk -F'\t' 'NR > 1 { r[$2] = r[$2] " " $3 }
	function median(s,   a, n, i, j, t) { n = split(s, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	END { for (k in r) { m[k] = median(r[k]); printf "%-10s runs:%s median: %.0f msgs/s\n", k, r[k], m[k] }
		printf "core: shardlog / bare sub = %.3f (target >= 0.85)\n", m["core-shard"] / m["core-base"]
		printf "js:   shardlog / bare js-sub = %.3f (target >= 0.50)\n", m["js-shard"] / m["js-base"] }' \
	"$LOGS/results.tsv" | tee "$LOGS/summary.txt"
grep -ci 'slow consumer' "$LOGS/server.log" | sed 's/^/server log "slow consumer" lines: /' | tee -a "$LOGS/summary.txt" || true
