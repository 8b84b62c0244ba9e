package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shardlog/shardlog/ingest"
	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

// metrics serves Prometheus metrics at /metrics, liveness at /healthz and
// readiness at /readyz on metrics.listen. Counters are read at scrape time
// from what the writers, routers and sources publish per batch, so the
// data path pays nothing per message; histograms are observed per batch.
type metrics struct {
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	wg       sync.WaitGroup
	perShard bool
	ready    atomic.Bool

	// What is read at scrape time; set by attach before serving.
	writers  []*writer.Writer
	inputs   []metricInput
	archiver *writer.Archiver

	batchBytes, writeSeconds, fsyncSeconds prometheus.Histogram

	// extra are more collectors, set before attach: route's publisher.
	extra []prometheus.Collector
	// blocked, if set, says why input is blocked beside a full disk
	// (route: batches the stream refuses), or "".
	blocked func() string
}

// metricInput is one input with its router.
type metricInput struct {
	name   string // stdin or nats
	src    source
	router *shard.Router
}

// listenMetrics binds metrics.listen, so that an address in use fails the
// start before anything is created. An empty address turns metrics off.
func listenMetrics(addr string, perShard bool, log *slog.Logger) (*metrics, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, runtimeError{fmt.Errorf("metrics.listen %s: %w", addr, err)}
	}
	m := &metrics{log: log, ln: ln, perShard: perShard}
	m.batchBytes = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "shardlog_batch_bytes", Help: "Size of the batches appended to shard files.",
		Buckets: prometheus.ExponentialBuckets(256, 4, 9), // 256 B to 16 MiB
	})
	m.writeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "shardlog_write_duration_seconds", Help: "Time to append a batch to its file, retries included.",
		Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10), // 10 µs to 2.6 s
	})
	m.fsyncSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "shardlog_fsync_duration_seconds", Help: "Time of an fdatasync of a shard file.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9), // 100 µs to 6.5 s
	})
	return m, nil
}

// BatchWritten and Synced make metrics a writer.Observer.
func (m *metrics) BatchWritten(_, _, bytes int, took time.Duration) {
	m.batchBytes.Observe(float64(bytes))
	m.writeSeconds.Observe(took.Seconds())
}

func (m *metrics) Synced(_ int, took time.Duration) { m.fsyncSeconds.Observe(took.Seconds()) }

// attach gives the metrics what they read, and starts serving.
func (m *metrics) attach(writers []*writer.Writer, inputs []metricInput, archiver *writer.Archiver) {
	m.writers, m.inputs, m.archiver = writers, inputs, archiver
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.batchBytes, m.writeSeconds, m.fsyncSeconds, collector{m: m, d: newMetricDescs()})
	reg.MustRegister(m.extra...)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", m.readyz)
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	m.wg.Go(func() {
		if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics server", "err", err)
		}
	})
	m.log.Info("serving metrics", "url", "http://"+m.ln.Addr().String()+"/metrics")
}

// readyz answers 200 while shardlog takes input: started, connected to
// NATS (if it reads NATS), and no file waiting for disk space.
func (m *metrics) readyz(w http.ResponseWriter, _ *http.Request) {
	why := ""
	switch {
	case !m.ready.Load():
		why = "not started, or stopping"
	case m.waiting() > 0:
		why = fmt.Sprintf("%d shard files waiting for disk space (their records wait in memory; input pauses once the buffer is full)", m.waiting())
	case m.blocked != nil && m.blocked() != "":
		why = m.blocked()
	}
	for _, in := range m.inputs {
		if n, ok := in.src.(*ingest.NATS); ok && why == "" && n.Conn().Status() != nats.CONNECTED {
			why = "NATS " + n.Conn().Status().String()
		}
	}
	if why != "" {
		http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

func (m *metrics) waiting() int {
	n := 0
	for _, w := range m.writers {
		if _, wt := w.Live(); wt {
			n++
		}
	}
	return n
}

// close stops serving.
func (m *metrics) close() {
	m.ready.Store(false)
	if m.srv == nil {
		m.ln.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = m.srv.Shutdown(ctx)
	m.wg.Wait()
}

// collector reads the counters at scrape time.
type collector struct {
	m *metrics
	d metricDescs
}

func (c collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// metricDescs describes the metrics collector reads at scrape time.
type metricDescs struct {
	buildInfo, records, bytes, shardRecs, shardBytes, syncs, reopens, vanished, diskFull, blocked, waiting, rotations, compressed, removed, archiveErrs, messages, routed, failed, fallbacks, splits, buffer, bufferCap, connected, reconnects, slow, dropped, multiline, acks, ackErrors, redelivered *prometheus.Desc
	// For a member of a cluster only.
	memberRedelivered, memberForeign, memberUnterminated *prometheus.Desc
}

// newMetricDescs returns the descriptions of the metrics collector reads.
func newMetricDescs() metricDescs {
	return metricDescs{
		buildInfo:   desc("shardlog_build_info", "shardlog's version, as labels; always 1.", "version", "goversion"),
		records:     desc("shardlog_records_written_total", "Records appended to shard files."),
		bytes:       desc("shardlog_written_bytes_total", "Bytes appended to shard files, newlines included."),
		shardRecs:   desc("shardlog_shard_records_written_total", "Records appended, per shard (metrics.per_shard).", "shard"),
		shardBytes:  desc("shardlog_shard_written_bytes_total", "Bytes appended, per shard (metrics.per_shard).", "shard"),
		syncs:       desc("shardlog_fsyncs_total", "fdatasync calls on shard files."),
		reopens:     desc("shardlog_file_reopens_total", "Shard files reopened by name (SIGHUP, or the file vanished)."),
		vanished:    desc("shardlog_files_vanished_total", "Shard files found renamed or deleted under shardlog, and reopened."),
		diskFull:    desc("shardlog_disk_full_total", "Writes that found the disk full and began a wait."),
		blocked:     desc("shardlog_disk_full_seconds_total", "Time shard writers spent waiting for disk space (or a usable path)."),
		waiting:     desc("shardlog_files_waiting", "Shard files whose writer waits for disk space now (their records wait in memory; input pauses once the buffer is full)."),
		rotations:   desc("shardlog_rotations_total", "Shard files rotated."),
		compressed:  desc("shardlog_compressions_total", "Rotated files compressed."),
		removed:     desc("shardlog_rotated_files_removed_total", "Rotated files removed by retention."),
		archiveErrs: desc("shardlog_archive_errors_total", "Failures compressing or removing rotated files."),
		messages:    desc("shardlog_messages_received_total", "Messages received, per input (NATS: messages, not lines).", "input"),
		routed:      desc("shardlog_records_routed_total", "Records routed to shard batches, per input.", "input"),
		failed:      desc("shardlog_records_failed_total", "Records given up on (never written), per input.", "input"),
		fallbacks:   desc("shardlog_key_fallbacks_total", "Messages routed by the whole message for want of their key, per input.", "input"),
		splits:      desc("shardlog_splits_total", "Pieces cut off lines longer than max_message_bytes, per input.", "input"),
		buffer:      desc("shardlog_buffer_bytes", "Memory holding records pending or being written, per input (backpressure at capacity).", "input"),
		bufferCap:   desc("shardlog_buffer_capacity_bytes", "batch.buffer_bytes, per input.", "input"),
		connected:   desc("shardlog_nats_connected", "1 while connected to NATS."),
		reconnects:  desc("shardlog_nats_reconnects_total", "Reconnections to NATS."),
		slow:        desc("shardlog_nats_slow_consumer_total", "Times the NATS client fell behind and dropped messages."),
		dropped:     desc("shardlog_nats_dropped_messages_total", "Core NATS messages the client dropped (counted when a subscription drains)."),
		multiline:   desc("shardlog_nats_multiline_payloads_total", "NATS payloads of several lines, each routed as a message."),
		acks:        desc("shardlog_jetstream_acks_total", "JetStream acknowledgements sent for written records."),
		ackErrors:   desc("shardlog_jetstream_ack_errors_total", "JetStream acknowledgements that could not be sent (the message comes back)."),
		redelivered: desc("shardlog_jetstream_redelivered_total", "JetStream messages delivered before, to this process or another (after a crash or ack_wait): their records may be written, or by route stored, twice."),

		memberRedelivered:  desc("shardlog_member_redelivered_total", "Member: stream messages delivered before, to this instance or another (after a failover or ack_wait): their records may be written twice."),
		memberForeign:      desc("shardlog_member_foreign_total", "Member: stream messages refused for a shard that is not the member's (not written, not acknowledged)."),
		memberUnterminated: desc("shardlog_member_unterminated_total", "Member: stream messages whose payload did not end in a newline (written as whole records)."),
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.d.buildInfo, 1, buildVersion(), runtime.Version())
	var sum writer.Stats
	waiting := 0
	for _, w := range m.writers {
		st, wt := w.Live()
		sum.Add(st)
		if wt {
			waiting++
		}
		if m.perShard {
			counter(c.d.shardRecs, float64(st.Records), strconv.Itoa(w.Shard()))
			counter(c.d.shardBytes, float64(st.Bytes), strconv.Itoa(w.Shard()))
		}
	}
	counter(c.d.records, float64(sum.Records))
	counter(c.d.bytes, float64(sum.Bytes))
	counter(c.d.syncs, float64(sum.Syncs))
	counter(c.d.reopens, float64(sum.Reopens))
	counter(c.d.vanished, float64(sum.Vanished))
	counter(c.d.diskFull, float64(sum.DiskFull))
	counter(c.d.blocked, sum.Blocked.Seconds())
	gauge(c.d.waiting, float64(waiting))
	counter(c.d.rotations, float64(sum.Rotations))
	var as writer.ArchiveStats
	if m.archiver != nil {
		as = m.archiver.Stats()
	}
	counter(c.d.compressed, float64(as.Compressed))
	counter(c.d.removed, float64(as.Removed))
	counter(c.d.archiveErrs, float64(as.Errors))

	for _, in := range m.inputs {
		rs, buf := in.router.Live()
		var msgs, splits int64
		switch s := in.src.(type) {
		case stdinSource:
			msgs, splits = s.Stats()
		case *ingest.NATS:
			st := s.Stats()
			msgs, splits = st.Messages, st.Splits
			connected := 0.0
			if s.Conn().Status() == nats.CONNECTED {
				connected = 1
			}
			gauge(c.d.connected, connected)
			counter(c.d.reconnects, float64(s.Conn().Stats().Reconnects))
			counter(c.d.slow, float64(st.SlowConsumer))
			counter(c.d.dropped, float64(st.Dropped))
			counter(c.d.multiline, float64(st.Multiline))
			counter(c.d.acks, float64(rs.Acked))
			counter(c.d.ackErrors, float64(rs.AckErrors))
			counter(c.d.redelivered, float64(st.Redelivered))
			if s.IsMember() {
				counter(c.d.memberRedelivered, float64(st.Redelivered))
				counter(c.d.memberForeign, float64(st.Foreign))
				counter(c.d.memberUnterminated, float64(st.Unterminated))
			}
		}
		counter(c.d.messages, float64(msgs), in.name)
		counter(c.d.routed, float64(rs.Records), in.name)
		counter(c.d.failed, float64(rs.Failed), in.name)
		counter(c.d.fallbacks, float64(rs.KeyFallbacks), in.name)
		counter(c.d.splits, float64(splits), in.name)
		gauge(c.d.buffer, float64(buf), in.name)
		gauge(c.d.bufferCap, float64(in.router.BufferCapacity()), in.name)
	}
}
