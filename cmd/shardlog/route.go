package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/shardlog/shardlog/cluster"
	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/ingest"
	"github.com/shardlog/shardlog/publish"
	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

func routeCmd(stderr io.Writer) *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "route --cluster NAME --nats-url URL [-c FILE] [flags]",
		Short: "Route standard input or NATS into a cluster's stream, one message per batch",
		Long: `Route reads messages, as run does (one per line from standard input,
and/or from NATS subjects, core or JetStream), routes them exactly as run
does, with N, seed and key from the cluster's layout (see shardlog
cluster), and publishes each shard's batch as one JetStream message to
the shard's subject, <prefix>.<k>, with a Nats-Msg-Id, instead of
appending it to a file. The cluster's members write the files. It opens
no file and needs no directory; many route instances may run at once
(with --queue, instances split core NATS subjects; with --js-stream,
instances with the same --js-durable share the stream).

A refused or unanswered publish is retried, in order, until the stream
stores it; at most --max-pending batches await the server's
acknowledgement at once. A JetStream input message is acknowledged only
once the stream has stored the batches holding its records. With only
standard input, route exits 0 once it ends and the stream has stored
every batch; with NATS input it runs until stopped. On SIGINT or SIGTERM
it stops reading and publishes (and, for JetStream, acknowledges) what it
read; past shutdown_timeout, or at a second signal, it gives up on the
rest and exits 1 naming how many records were not stored. A routing
value given (flag, variable or file) that contradicts the layout, and an
input subject or stream that is the cluster's own, exit 2.
--metrics-listen serves metrics as run does, with the publisher's
counters (shardlog_published_*, shardlog_publish_*).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path, cmd.Flags())
			if err != nil {
				return err
			}
			if err := cfg.ValidateCluster(); err != nil {
				return err
			}
			cfg, layout, err := routeConfig(path, cmd.Flags(), cfg, stderr)
			if err != nil {
				return err
			}
			log := newLogger(stderr, cfg.Log)
			sig := handleSignals(log, cfg.ShutdownTimeout)
			defer sig.stop()
			return route(sig, cfg, layout, log)
		},
	}
	c.Flags().StringVarP(&path, "config", "c", "", "YAML configuration file")
	routeFlags(c.Flags())
	return c
}

// routeFlags adds route's flags to f: the cluster and its NATS server,
// the inputs, routing and batch settings run takes too, and the window.
// The routing values are the layout's; one given must agree with it.
func routeFlags(f *pflag.FlagSet) {
	// run's flags (their defaults are run's), with route's words where
	// they mean something else here.
	run := pflag.NewFlagSet("run", pflag.ContinueOnError)
	runFlags(run)
	for _, d := range []struct{ name, usage string }{
		{"cluster", "the cluster whose layout and stream to route into"},
		{"nats-url", ""}, {"nats-creds", ""},
		{"shards", "number of shards: the layout's; if given, it must agree"},
		{"key", "routing key: the layout's; if given, it must agree"},
		{"seed", "murmur3 seed: the layout's; if given, it must agree"},
		{"max-message-bytes", ""},
		{"batch-max-bytes", "publish a shard's batch once it holds this much"},
		{"batch-max-delay", "longest a record waits before it is published"},
		{"batch-buffer-bytes", "memory for pending and unacknowledged batches"},
		{"stdin", ""},
		{"subject", "NATS subject to read (repeatable; wildcards allowed); not the cluster's own"},
		{"queue", "NATS queue group shared by route instances (core NATS)"},
		{"js-stream", "JetStream stream to read with a durable pull consumer; not the cluster's own"},
		{"js-durable", ""}, {"js-create", ""}, {"js-update-filter", ""},
		{"shutdown-timeout", "how long a stop waits for the stream to store what was read"},
		{"metrics-listen", ""}, {"log-format", ""}, {"log-level", ""},
	} {
		fl := run.Lookup(d.name)
		if d.usage != "" {
			fl.Usage = d.usage
		}
		f.AddFlag(fl)
	}
	f.Int("max-pending", publish.DefaultWindow, "most batches awaiting the server's acknowledgement at once (1 to 4096)")
}

// routeConfig reads the layout of cfg's cluster from NATS and returns cfg
// with the layout's routing (shards, seed, key, prefix), and the layout.
// A missing cluster, a routing value given that contradicts the layout,
// an input that is the cluster's own output, or a bad batch or input
// setting is a configuration error naming it.
func routeConfig(path string, fs *pflag.FlagSet, cfg config.Config, stderr io.Writer) (config.Config, *cluster.Layout, error) {
	if err := cluster.CheckName("cluster.name", cfg.Cluster.Name); err != nil {
		return cfg, nil, err
	}
	if err := cfg.ValidateRoute(); err != nil {
		return cfg, nil, err
	}
	cfg, l, err := layoutConfig(path, fs, cfg, clusterConn(cfg), stderr, nil)
	if err != nil {
		return cfg, nil, err
	}
	// run's checks of what route shares with it (batch.*, the key,
	// max_message_bytes, shutdown_timeout, the inputs), on the copy
	// standing for run reading route's inputs.
	if err := routeInputs(cfg).Validate(); err != nil {
		return cfg, nil, err
	}
	if err := checkOwnOutput(cfg, l); err != nil {
		return cfg, nil, err
	}
	return cfg, l, nil
}

// clusterConn returns cfg's connection settings alone, without route's
// NATS input (subjects, queue, JetStream): for the connections that read
// the layout and publish, which subscribe to nothing and consume nothing.
func clusterConn(cfg config.Config) config.Config {
	cfg.NATS.Subjects, cfg.NATS.Queue, cfg.NATS.JetStream = nil, "", config.JetStream{}
	return cfg
}

// routeInputs returns cfg as run's input code (startInputs) takes it for
// route's inputs: no directory, no cluster, and NATS input only when
// nats.subjects or nats.jetstream.stream is set (route's nats.url always
// is: it names the cluster's servers), so that stdin auto reads standard
// input exactly when route reads no NATS.
func routeInputs(cfg config.Config) config.Config {
	cfg.Dir, cfg.Cluster = ".", config.Cluster{}
	if !cfg.RouteNATSOn() {
		cfg.NATS.URL = ""
	}
	return cfg
}

// checkOwnOutput refuses an input that would make route read what it
// publishes: a subject that overlaps the cluster's subjects,
// <prefix>.*, or the cluster's stream.
func checkOwnOutput(cfg config.Config, l *cluster.Layout) error {
	for _, own := range l.Subjects() {
		for _, s := range cfg.NATS.Subjects {
			if ingest.SubjectsIntersect(s, own) {
				return &config.Error{Err: fmt.Errorf("nats.subjects: %q: overlaps %s, the subjects of cluster %s (prefix %q), "+
					"which route publishes to: it would read its own output; read other subjects", s, own, l.Name, l.Prefix)}
			}
		}
	}
	if s := cfg.NATS.JetStream.Stream; s != "" && s == l.Stream {
		return &config.Error{Err: fmt.Errorf("nats.jetstream.stream: %q: the stream of cluster %s, which route publishes to: "+
			"it would read its own output; read another stream", s, l.Name)}
	}
	return nil
}

// route is shardlog route. It connects to NATS, starts one publisher for
// the layout's shards, and routes each input (standard input, NATS) to it
// through a router of its own configured as run's; it shuts down in
// order, as run does: the inputs end (standard input) or a signal stops
// them, each router flushes and waits until every batch it sent is
// stored (or given up), JetStream input messages being acknowledged then,
// and the publisher stops.
func route(sig signals, cfg config.Config, l *cluster.Layout, log *slog.Logger) error {
	// A batch that fails for good, or an input that fails, stops every
	// input: what was read is still published, the failure is reported,
	// and route exits 1.
	ctx, cancel := context.WithCancelCause(sig.ctx)
	defer cancel(nil)
	// The metrics address first: a port in use fails the start.
	m, err := listenMetrics(cfg.Metrics.Listen, cfg.Metrics.PerShard, log)
	if err != nil {
		return err
	}
	if m != nil {
		defer m.close()
	}
	// The publisher has a connection of its own: an input closes its
	// connection when it stops, while the publisher still stores what
	// the other inputs routed.
	conn := ingest.NewNATS(clusterConn(cfg).NATS, 1, log)
	if err := conn.Connect(nil); err != nil {
		return runtimeError{err}
	}
	defer conn.Close()
	js, err := jetstream.New(conn.Conn())
	if err != nil {
		return runtimeError{fmt.Errorf("JetStream: %w", err)}
	}
	p, err := publish.New(js, publishOptions(cfg, l, sig.abort, cancel, log))
	if err != nil {
		return runtimeError{err}
	}
	in := routeInputs(cfg)
	srcs, _, err := startInputs(in, nil, log)
	if err != nil {
		return err
	}
	warnUnreadStdin(in, log)
	outs := make([]chan<- *writer.Batch, l.N)
	for k := range outs {
		outs[k] = p.In(k)
	}
	routers := make([]*shard.Router, len(srcs))
	var mins []metricInput
	for i, src := range srcs {
		if routers[i], err = shard.New(routerConfig(cfg), outs); err != nil {
			panic(err) // Validate refuses what New refuses
		}
		mins = append(mins, metricInput{name: inputName(src), src: src, router: routers[i]})
	}
	if m != nil {
		m.extra = append(m.extra, newPublishCollector(p))
		m.blocked = func() string { return publishBlocked(p) }
		m.attach(nil, mins, nil)
	}
	var pubs sync.WaitGroup
	var perr error
	pubs.Go(func() { perr = p.Run() })
	sig.state.waiting.Store(new(func() bool { return p.Stats().Waiting > 0 }))
	log.Info("routing", "cluster", l.Name, "stream", l.Stream, "shards", l.N, "publisher", p.ID(),
		"max_pending", cfg.Cluster.MaxPending, "stdin", in.StdinOn(), "nats", in.NATSOn())

	serrs := make([]error, len(srcs))
	var inputs sync.WaitGroup
	for i, src := range srcs {
		inputs.Go(func() {
			if serrs[i] = src.Run(ctx, routers[i]); serrs[i] != nil {
				cancel(serrs[i])
			}
		})
	}
	// Ready, for /readyz, once every input receives, until the stop.
	stopReady := make(chan struct{})
	var ready sync.WaitGroup
	if m != nil {
		ready.Go(func() { markReady(ctx, stopReady, m, srcs) })
	}
	inputs.Wait()
	close(stopReady)
	ready.Wait()
	p.CloseInput()
	pubs.Wait()
	sig.state.drained.Store(true)

	ps := p.Stats()
	log.Info("published", "records", ps.Records, "batches", ps.Batches, "bytes", ps.Bytes,
		"retries", ps.Retries, "duplicates", ps.Duplicates, "failed_batches", ps.Failed)
	var failed int64
	for i, src := range srcs {
		failed += routers[i].Stats().Failed
		logStats(log, src, routers[i].Stats(), in)
	}
	if err := joinDistinct(append(serrs, perr)); err != nil {
		return runtimeError{fmt.Errorf("%w (%d records not stored)", err, failed)}
	}
	return nil
}

// publishOptions returns the options of route's publisher for cfg and
// layout l: l's shards and prefix, and cluster.max_pending as the window.
func publishOptions(cfg config.Config, l *cluster.Layout, abort <-chan struct{}, fail func(error), log *slog.Logger) publish.Options {
	return publish.Options{
		Shards: l.N, Prefix: l.Prefix, Window: cfg.Cluster.MaxPending, Abort: abort, Fail: fail, Log: log,
	}
}

// markReady sets m ready once every one of srcs receives (NATS: its
// subscriptions are in place), and not ready again once ctx is done (a
// signal or a failure) or stop is closed (the inputs have ended).
func markReady(ctx context.Context, stop <-chan struct{}, m *metrics, srcs []source) {
	for _, src := range srcs {
		if r, ok := src.(interface{ Receiving() <-chan struct{} }); ok {
			select {
			case <-r.Receiving():
			case <-ctx.Done():
			case <-stop:
			}
		}
	}
	select {
	case <-ctx.Done():
	case <-stop:
	default:
		m.ready.Store(true)
		select {
		case <-ctx.Done():
		case <-stop:
		}
	}
	m.ready.Store(false)
}
