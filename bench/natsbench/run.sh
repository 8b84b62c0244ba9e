#!/usr/bin/env bash
# NATS ingest benchmark of shardlog (docs/BENCHMARKS.md): shardlog against a bare consumer,
# same publisher, same server, same iteration.
#
# Needs natsbench and shardlog, and a nats-server (and, for CASES=jscmp, natscli's `nats`):
#   cd "$(git rev-parse --show-toplevel)" && go build -o /tmp/nb/shardlog ./cmd/shardlog \
#     && go build -o /tmp/nb/natsbench ./bench/natsbench \
#     && GOBIN=/tmp/nb go install github.com/nats-io/nats-server/v2@v2.15.2 \
#     && GOBIN=/tmp/nb go install github.com/nats-io/natscli/nats@v0.5.1     # optional
# Run:
#   bench/natsbench/run.sh                                   # nats-server v2.15.2 from $NB
#   SERVER=/usr/sbin/nats-server bench/natsbench/run.sh      # Debian's v2.9.10
#   SHARDLOG=/tmp/other/shardlog CASES="core" RUNS=7 bench/natsbench/run.sh
# Variables: NB (/tmp/nb), SERVER ($NB/nats-server), SHARDLOG ($NB/shardlog), NATSBENCH
# ($NB/natsbench), NATSCLI ($NB/nats), RUNS (5), MSGS (3000000), JS_MSGS ($MSGS), CMP_MSGS
# (500000), SIZE (180), N (16), PORT (4333), CASES ("core js"; also "jscmp"), IDLE (1: before
# each run wait until the machine is idle, up to IDLE_MAX=120 s), OTHER_MAX (1.0: the summary
# also gives the ratios of the pairs in which other processes used less CPU-time than this),
# LOGS ($NB/logs-<server version>).
#
# Each iteration runs, for each case, the baseline and shardlog back to back (their order
# alternates between iterations, to cancel drift), and the summary gives the median, min and
# max of the per-iteration ratios shardlog / baseline:
#   core-base  bare core subscriber (natsbench -mode sub: discards; clock from its first message
#              to its last) while natsbench -mode pub publishes MSGS messages on one connection
#   core-shard shardlog on the subject, same publisher; natsbench -mode files -start sub times
#              from the first message published to the last byte in the files
#   js-base    js-fill a fresh stream, then a bare durable pull consumer that acks each message
#              (natsbench -mode js-sub -filter: shardlog's consumer settings, 32768-message pulls,
#              MaxAckPending 65536, FilterSubject; clock from its first message to its last)
#   js-shard   js-fill a fresh stream, then shardlog --js-stream (fresh durable); natsbench -mode
#              files -start js times from the first delivery to the durable to the last byte
#   jscmp      (CMP_MSGS, each after a fresh fill) js-sub as above; `nats bench js consume` with
#              its defaults (500-message pulls, MaxAckPending 500) and with --batch 32768; and
#              shardlog, timed both from the first delivery and from its own start
# After every shardlog run, natsbench -mode check verifies that each message is in the files
# once, byte for byte, in the file murmur3 routes it to; shardlog's slow_consumer and dropped
# must be 0, and the server must log no slow consumer. A failed check shows in the note column.
# CPU-seconds of the server, the consumer and the publisher are recorded per run (cpu_*), and
# cpu_other is what the rest of the machine used meanwhile (a busy neighbour shows there).
# Results: $LOGS/results.tsv (one row per run), $LOGS/summary.txt, and raw outputs $LOGS/<run>.*.
set -euo pipefail

NB=${NB:-/tmp/nb}
SERVER=${SERVER:-$NB/nats-server}
SHARDLOG=${SHARDLOG:-$NB/shardlog}
NATSBENCH=${NATSBENCH:-$NB/natsbench}
NATSCLI=${NATSCLI:-$NB/nats}
RUNS=${RUNS:-5}
MSGS=${MSGS:-3000000}
JS_MSGS=${JS_MSGS:-$MSGS}
CMP_MSGS=${CMP_MSGS:-500000}
SIZE=${SIZE:-180}
N=${N:-16}
PORT=${PORT:-4333}
CASES=${CASES:-core js}
IDLE=${IDLE:-1}
IDLE_MAX=${IDLE_MAX:-120}
OTHER_MAX=${OTHER_MAX:-1.0} # CPU-seconds of other processes above which a run counts as disturbed
LIMIT=${LIMIT:-300} # seconds before a consumer or files waiter counts as stuck
URL=nats://127.0.0.1:$PORT
VERSION=$("$SERVER" --version | awk '{ print $NF }')
LOGS=${LOGS:-$NB/logs-$VERSION}
OUT=$NB/out
STORE=$NB/js-$VERSION
BENCH=("$NATSBENCH" -url "$URL" -subject logs.bench -stream BENCH)

rm -rf "$LOGS" "$OUT" "$STORE"
mkdir -p "$LOGS"
{ echo "date: $(date -u +%FT%TZ)"; echo "nproc: $(nproc)"; go version 2>/dev/null || /usr/local/go/bin/go version
  echo "server: $SERVER $VERSION"; echo "shardlog: $SHARDLOG $(sha256sum <"$SHARDLOG" | cut -c1-12)"
  echo "natsbench: $NATSBENCH"; echo "runs=$RUNS msgs=$MSGS js_msgs=$JS_MSGS cmp_msgs=$CMP_MSGS size=$SIZE n=$N cases=$CASES"
  uname -r; } | tee "$LOGS/env.txt"

"$SERVER" -a 127.0.0.1 -p "$PORT" -js -sd "$STORE" 2>"$LOGS/server.log" &
SRV=$!
trap 'kill $SRV 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

# wait_for FILE TEXT: wait (up to 30 s) until FILE contains TEXT.
wait_for() {
	for _ in $(seq 3000); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.01; done
	echo "timed out waiting for '$2' in $1" >&2; return 1
}
field() { awk -v k="$1=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) v = substr($i, length(k) + 1) } END { print v }' "$2"; } # field NAME FILE
busy() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }  # CPU jiffies busy, all processes
cpu_of() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }               # CPU jiffies of a process
secs() { awk -v j="$1" 'BEGIN { printf "%.2f", j / 100 }'; }
tsum() { awk '{ s += $1 + $2 } END { printf "%.2f", s }' "$@"; }      # CPU-seconds in time -o files
slow_lines() { grep -ci 'slow consumer' "$LOGS/server.log" || true; }
# settle: let writeback of the last run finish; then, with IDLE=1, wait until the machine is
# idle (below 15% busy over one second) so that another user's build does not land in a run.
settle() {
	sync; sleep 2
	[ "$IDLE" = 1 ] || return 0
	local t b0 b1 a0 a1
	for ((t = 0; t < IDLE_MAX; t++)); do
		read -r b0 a0 < <(awk '/^cpu /{ print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8 }' /proc/stat); sleep 1
		read -r b1 a1 < <(awk '/^cpu /{ print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8 }' /proc/stat)
		[ $(((b1 - b0) * 100 / (a1 - a0))) -lt 15 ] && return 0
	done
	echo "machine still busy after ${IDLE_MAX}s; running anyway" >&2
}

printf 'iter\trun\trate\tseconds\tpub_rate\tmessages\twritten\tacked\tslow_consumer\tdropped\tsrv_slow\tcheck\tcpu_server\tcpu_consumer\tcpu_pub\tcpu_kernel\tcpu_other\twall_s\tfirstbyte_rate\tready_rate\tnote\n' >"$LOGS/results.tsv"
row() { printf '%s\t' "$@" | sed 's/\t$/\n/' >>"$LOGS/results.tsv"; tail -n 1 "$LOGS/results.tsv"; }

# Window accounting: begin sets B0/S0/T0/SL0, end (when the consumer has exited, before any
# check) B1/S1/T1; cpu_other = busy - server - the given CPU-seconds of our processes.
# cpu_kernel is what kernel threads (page-cache writeback of shardlog's files: about 2 CPU-seconds
# per 540 MB here) and interrupts used; cpu_other what is left: other users' processes.
kernel() { # CPU jiffies of kernel threads (children of kthreadd) and of irq and softirq
	{ cat /proc/[0-9]*/stat 2>/dev/null | sed 's/^.*) //' | awk '$2 == 2 { s += $12 + $13 } END { print s + 0 }'
	  awk '/^cpu /{ print $7 + $8 }' /proc/stat; } | awk '{ s += $1 } END { print s }'
}
begin() { SL0=$(slow_lines); K0=$(kernel); B0=$(busy); S0=$(cpu_of $SRV); T0=$(date +%s.%N); }
end() { B1=$(busy); S1=$(cpu_of $SRV); T1=$(date +%s.%N); K1=$(kernel); }
cpu_server() { secs $((S1 - S0)); }
cpu_kernel() { secs $((K1 - K0)); }
cpu_other() { awk -v b="$((B1 - B0))" -v s="$((S1 - S0))" -v k="$((K1 - K0))" -v o="$1" 'BEGIN { printf "%.2f", (b - s - k) / 100 - o }'; }
wall() { awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.3f", b - a }'; }
srv_slow() { echo $(($(slow_lines) - SL0)); }

# shardlog_run P ARGS...: start shardlog under time(1); sets SL (time's pid) and SLP (shardlog's).
shardlog_run() {
	local p=$1; shift
	/usr/bin/time -f '%U %S' -o "$p.cpu-shardlog" "$SHARDLOG" run --nats-url "$URL" --subject logs.bench \
		-n "$N" -d "$OUT" "$@" 2>"$p.shardlog" &
	SL=$!
}
# shardlog_stop P FILES_PID MSGS: wait for the files waiter or shardlog, whichever ends first;
# stop shardlog (SIGTERM: it drains and exits 0); check the files. Sets NOTE and CHECK.
shardlog_stop() {
	local p=$1 files=$2 rc=0
	NOTE=ok CHECK=-
	wait -n "$files" "$SL" || true
	if kill -0 "$files" 2>/dev/null; then # shardlog ended first: it failed
		kill "$files" 2>/dev/null || true; wait "$files" 2>/dev/null || true
		wait "$SL" || rc=$?
		end
		NOTE="shardlog-exited-rc=$rc:$(tail -n 1 "$p.shardlog" | tr ' \t' '__' | cut -c1-160)"; return
	fi
	wait "$files" || NOTE="files-failed-rc=$?"
	pkill -TERM -P "$SL" 2>/dev/null || true # the shardlog that time(1) runs
	wait "$SL" || NOTE="$NOTE,shardlog-rc=$?"
	end
	if "${BENCH[@]}" -mode check -msgs "$3" -size "$SIZE" -dir "$OUT" -n "$N" >"$p.check" 2>&1; then
		CHECK="ok,unordered=$(field unordered "$p.check")"
	else
		CHECK=$(tr ' ' ',' <"$p.check"); NOTE="$NOTE,check-failed"
	fi
	local s=$p.shardlog
	[ "$(field slow_consumer "$s")" = 0 ] && [ "$(field dropped "$s")" = 0 ] || NOTE="$NOTE,slow-consumer"
}

core_base() { # iteration
	local p=$LOGS/core-base-$1
	# The stream of the last JetStream run captures logs.bench: it would store every core message.
	"${BENCH[@]}" -mode js-delete
	settle; begin
	timeout "$LIMIT" /usr/bin/time -f '%U %S' -o "$p.cpu-sub" "${BENCH[@]}" -mode sub -msgs "$MSGS" >"$p.sub" 2>"$p.sub.err" &
	local sub=$!
	wait_for "$p.sub.err" subscribed
	/usr/bin/time -f '%U %S' -o "$p.cpu-pub" "${BENCH[@]}" -mode pub -msgs "$MSGS" -size "$SIZE" >"$p.pub" 2>&1
	local note=ok; wait $sub || note="sub-failed-rc=$?"
	end
	local ss; ss=$(srv_slow); [ "$ss" = 0 ] || note="$note,server-slow-consumer"
	row "$1" core-base "$(field rate "$p.sub")" "$(field seconds "$p.sub")" "$(field rate "$p.pub")" \
		- - - - - "$ss" - "$(cpu_server)" "$(tsum "$p.cpu-sub")" "$(field cpu_seconds "$p.pub")" \
		"$(cpu_kernel)" "$(cpu_other "$(tsum "$p.cpu-sub" "$p.cpu-pub")")" "$(wall)" - - "$note"
}

core_shard() { # iteration
	local p=$LOGS/core-shard-$1
	"${BENCH[@]}" -mode js-delete
	rm -rf "$OUT"; settle; begin
	shardlog_run "$p"
	wait_for "$p.shardlog" "receiving from NATS"
	timeout "$LIMIT" /usr/bin/time -f '%U %S' -o "$p.cpu-files" "${BENCH[@]}" -mode files -start sub -msgs "$MSGS" \
		-size "$SIZE" -dir "$OUT" -n "$N" >"$p.files" 2>"$p.files.err" &
	local files=$!
	wait_for "$p.files.err" ready
	/usr/bin/time -f '%U %S' -o "$p.cpu-pub" "${BENCH[@]}" -mode pub -msgs "$MSGS" -size "$SIZE" >"$p.pub" 2>&1
	shardlog_stop "$p" "$files" "$MSGS"
	local ss note=$NOTE; ss=$(srv_slow); [ "$ss" = 0 ] || note="$note,server-slow-consumer"
	local s=$p.shardlog
	row "$1" core-shard "$(field rate "$p.files")" "$(field seconds "$p.files")" "$(field rate "$p.pub")" \
		"$(field messages "$s")" "$(field written "$s")" "$(field acked "$s")" "$(field slow_consumer "$s")" \
		"$(field dropped "$s")" "$ss" "$CHECK" "$(cpu_server)" \
		"$(tsum "$p.cpu-shardlog")" "$(field cpu_seconds "$p.pub")" \
		"$(cpu_kernel)" "$(cpu_other "$(tsum "$p.cpu-shardlog" "$p.cpu-pub" "$p.cpu-files")")" "$(wall)" \
		"$(field firstbyte_rate "$p.files")" - "$note"
}

fill() { # P MSGS
	"${BENCH[@]}" -mode js-fill -msgs "$2" -size "$SIZE" >"$1.fill" 2>&1 || { cat "$1.fill" >&2; return 1; }
}

js_base() { # iteration [msgs name extra-args...]
	local msgs=${2:-$JS_MSGS} name=${3:-js-base}; local p=$LOGS/$name-$1
	fill "$p" "$msgs"; settle; begin
	local note=ok
	timeout "$LIMIT" /usr/bin/time -f '%U %S' -o "$p.cpu-sub" "${BENCH[@]}" -mode js-sub -msgs "$msgs" -filter "${@:4}" \
		>"$p.sub" 2>&1 || note="js-sub-failed-rc=$?"
	end
	row "$1" "$name" "$(field rate "$p.sub")" "$(field seconds "$p.sub")" - - - - - - "$(srv_slow)" - "$(cpu_server)" \
		"$(tsum "$p.cpu-sub")" - "$(cpu_kernel)" "$(cpu_other "$(tsum "$p.cpu-sub")")" "$(wall)" - - "$note"
}

js_shard() { # iteration [msgs name]
	local msgs=${2:-$JS_MSGS} name=${3:-js-shard}; local p=$LOGS/$name-$1
	rm -rf "$OUT"; fill "$p" "$msgs"; settle; begin
	timeout "$LIMIT" /usr/bin/time -f '%U %S' -o "$p.cpu-files" "${BENCH[@]}" -mode files -start js -durable "run$1" \
		-msgs "$msgs" -size "$SIZE" -dir "$OUT" -n "$N" >"$p.files" 2>"$p.files.err" &
	local files=$!
	wait_for "$p.files.err" ready
	shardlog_run "$p" --js-stream BENCH --js-durable "run$1"
	shardlog_stop "$p" "$files" "$msgs"
	local ss note=$NOTE; ss=$(srv_slow); [ "$ss" = 0 ] || note="$note,server-slow-consumer"
	local s=$p.shardlog
	row "$1" "$name" "$(field rate "$p.files")" "$(field seconds "$p.files")" - \
		"$(field messages "$s")" "$(field written "$s")" "$(field acked "$s")" "$(field slow_consumer "$s")" \
		"$(field dropped "$s")" "$ss" "$CHECK" "$(cpu_server)" \
		"$(tsum "$p.cpu-shardlog")" - "$(cpu_kernel)" "$(cpu_other "$(tsum "$p.cpu-shardlog" "$p.cpu-files")")" "$(wall)" \
		"$(field firstbyte_rate "$p.files")" "$(field ready_rate "$p.files")" "$note"
	case $note in shardlog-exited*) JS_BROKEN=$note ;; esac
}

natscli_js() { # iteration name extra-args...: nats bench js consume on a fresh fill
	local p=$LOGS/$2-$1 msgs=$CMP_MSGS
	fill "$p" "$msgs"; settle; begin
	local note=ok
	timeout "$LIMIT" /usr/bin/time -f '%U %S' -o "$p.cpu-sub" "$NATSCLI" bench js consume -s "$URL" --stream BENCH \
		--msgs "$msgs" --no-progress "${@:3}" >"$p.sub" 2>&1 || note="nats-bench-failed-rc=$?"
	end
	local rate; rate=$(grep -o 'stats: [0-9,]* msgs/sec' "$p.sub" | tr -d , | awk '{ print $2 }')
	row "$1" "$2" "${rate:--}" - - - - - - - "$(srv_slow)" - "$(cpu_server)" "$(tsum "$p.cpu-sub")" - \
		"$(cpu_kernel)" "$(cpu_other "$(tsum "$p.cpu-sub")")" "$(wall)" - - "$note"
}

JS_BROKEN=
for i in $(seq "$RUNS"); do
	ps -eo pid,ppid,etimes,time,comm >"$LOGS/ps-before-$i.txt"
	for c in $CASES; do
		case $c in
		core) if ((i % 2)); then core_base "$i"; core_shard "$i"; else core_shard "$i"; core_base "$i"; fi ;;
		js)
			if [ -n "$JS_BROKEN" ]; then continue; fi
			if ((i % 2)); then js_base "$i"; js_shard "$i"; else js_shard "$i"; [ -n "$JS_BROKEN" ] || js_base "$i"; fi ;;
		jscmp)
			# Rotate the order of the four runs from one iteration to the next.
			runs=(sub cli500 cli32k shard)
			for k in 0 1 2 3; do
				case ${runs[$(((k + i - 1) % 4))]} in
				sub) js_base "$i" "$CMP_MSGS" cmp-js-sub ;;
				cli500) [ -x "$NATSCLI" ] && natscli_js "$i" cmp-natscli-b500 ;;
				cli32k) [ -x "$NATSCLI" ] && natscli_js "$i" cmp-natscli-b32768 --batch 32768 ;;
				shard) [ -n "$JS_BROKEN" ] || js_shard "$i" "$CMP_MSGS" cmp-shard ;;
				esac
			done ;;
		*) echo "unknown case $c" >&2; exit 2 ;;
		esac
	done
	ps -eo pid,ppid,etimes,time,comm >"$LOGS/ps-after-$i.txt"
done

# Per-iteration ratios, their median, min and max.
{
	echo "server $VERSION; shardlog $SHARDLOG; $RUNS iterations"
	awk -F'\t' -v broken="$JS_BROKEN" -v omax="$OTHER_MAX" '
	NR > 1 { r[$1, $2] = $3; n[$1, $2] = $21; o[$1, $2] = $17; runs[$2] = runs[$2] " " $3; if ($1 > it) it = $1
		if ($3 + 0 > 0) { ccons[$2] = ccons[$2] " " $14; csrv[$2] = csrv[$2] " " $13 }
		if ($2 == "cmp-shard") { r[$1, "cmp-shard-own-start"] = $20; n[$1, "cmp-shard-own-start"] = $21; o[$1, "cmp-shard-own-start"] = $17 } }
	function median(s,   a, n, i, j, t) { n = split(s, a, " "); if (!n) return "-"
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	function ratios(label, num, den, target,   i, s, lo, hi, m, k, bad) { s = ""; lo = ""; hi = ""; k = 0; bad = 0
		for (i = 1; i <= it; i++) if (r[i, num] + 0 > 0 && r[i, den] + 0 > 0) {
			x = r[i, num] / r[i, den]; s = s " " sprintf("%.3f", x); k++
			if (lo == "" || x < lo) lo = x; if (hi == "" || x > hi) hi = x
			if (n[i, num] != "ok" || n[i, den] != "ok") bad++ }
		if (!k) { printf "%-44s no pairs\n", label; return }
		m = median(s)
		printf "%-44s median %.3f  min %.3f  max %.3f  (%d pairs:%s)%s%s\n", label, m, lo, hi, k, s,
			target ? sprintf("  target >= %.2f: %s", target, m >= target ? "met" : "NOT met") : "",
			bad ? sprintf("  [%d pairs with a failed check]", bad) : ""
		# The pairs in which neither run saw more than omax CPU-seconds used by other processes.
		s = ""; lo = ""; hi = ""; k = 0
		for (i = 1; i <= it; i++) if (r[i, num] + 0 > 0 && r[i, den] + 0 > 0 && o[i, num] < omax && o[i, den] < omax) {
			x = r[i, num] / r[i, den]; s = s " " sprintf("%.3f", x); k++
			if (lo == "" || x < lo) lo = x; if (hi == "" || x > hi) hi = x }
		if (k) printf "%-44s median %.3f  min %.3f  max %.3f  (%d pairs:%s)\n", "  quiet pairs (cpu_other < " omax ")", median(s), lo, hi, k, s
		else printf "  no quiet pairs (cpu_other < %s)\n", omax }
	END {
		for (k in runs) printf "%-22s median %9.0f msgs/s  CPU-s consumer %5.2f server %5.2f  runs:%s\n", k,
			median(runs[k]), median(ccons[k]), median(csrv[k]), runs[k]
		ratios("core: shardlog / bare sub", "core-shard", "core-base", 0.95)
		ratios("js: shardlog / bare acking pull consumer", "js-shard", "js-base", 0.90)
		ratios("jscmp: shardlog / js-sub", "cmp-shard", "cmp-js-sub", 0)
		ratios("jscmp: natscli b500 / js-sub", "cmp-natscli-b500", "cmp-js-sub", 0)
		ratios("jscmp: natscli b32768 / js-sub", "cmp-natscli-b32768", "cmp-js-sub", 0)
		ratios("jscmp: shardlog own start / natscli b500", "cmp-shard-own-start", "cmp-natscli-b500", 0)
		ratios("jscmp: shardlog / natscli b500", "cmp-shard", "cmp-natscli-b500", 0)
		if (broken != "") print "js: shardlog failed, JetStream pairs skipped: " broken }' "$LOGS/results.tsv"
	echo "server log \"slow consumer\" lines: $(slow_lines)"
	awk -F'\t' 'NR > 1 && $21 != "ok" { print "not ok: iteration " $1 " " $2 ": " $21 }' "$LOGS/results.tsv"
} | tee "$LOGS/summary.txt"
