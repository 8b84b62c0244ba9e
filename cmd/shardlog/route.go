package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

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
		Short: "Route standard input into a cluster's stream, one message per batch",
		Long: `Route reads messages, one per line from standard input, routes them
exactly as run does, with N, seed and key from the cluster's layout (see
shardlog cluster), and publishes each shard's batch as one JetStream
message to the shard's subject, <prefix>.<k>, with a Nats-Msg-Id, instead
of appending it to a file. The cluster's members write the files. It opens
no file and needs no directory; many route instances may run at once.

A refused or unanswered publish is retried, in order, until the stream
stores it. Route exits 0 once standard input ends and the stream has stored
every batch. On SIGINT or SIGTERM it stops reading and publishes what it
read; past shutdown_timeout, or at a second signal, it gives up on the
rest and exits 1 naming how many records were not stored. A routing value
given (flag, variable or file) that contradicts the layout exits 2.

This version reads standard input only.`,
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

// routeFlags adds route's flags to f: the cluster and its NATS server, and
// the routing and batch settings run takes too. The routing values are
// the layout's; one given must agree with it.
func routeFlags(f *pflag.FlagSet) {
	f.String("cluster", "", "the cluster whose layout and stream to route into")
	f.String("nats-url", "", "NATS server URL(s), comma-separated")
	f.String("nats-creds", "", "NATS credentials file")
	f.IntP("shards", "n", 16, "number of shards: the layout's; if given, it must agree")
	f.String("key", shard.KeyMessage, "routing key: the layout's; if given, it must agree")
	f.Uint32("seed", 0, "murmur3 seed: the layout's; if given, it must agree")
	f.String("max-message-bytes", "1MiB", "longest message; longer lines are split")
	f.String("batch-max-bytes", "256KiB", "publish a shard's batch once it holds this much")
	f.Duration("batch-max-delay", 100*time.Millisecond, "longest a record waits before it is published")
	f.String("batch-buffer-bytes", "32MiB", "memory for pending and unacknowledged batches")
	f.Duration("shutdown-timeout", 30*time.Second, "how long a stop waits for the stream to store what was read")
	f.String("log-format", "text", "format of shardlog's own log on stderr: text (logfmt) or json")
	f.String("log-level", "info", "least severe level logged: debug, info, warn or error")
}

// routeConfig reads the layout of cfg's cluster from NATS and returns cfg
// with the layout's routing (shards, seed, key, prefix), and the layout.
// A missing cluster, a routing value given that contradicts the layout,
// or a bad batch setting is a configuration error naming it.
func routeConfig(path string, fs *pflag.FlagSet, cfg config.Config, stderr io.Writer) (config.Config, *cluster.Layout, error) {
	if err := cluster.CheckName("cluster.name", cfg.Cluster.Name); err != nil {
		return cfg, nil, err
	}
	origins, err := config.Origins(path, fs)
	if err != nil {
		return cfg, nil, err
	}
	var l *cluster.Layout
	err = withJetStream(cfg, stderr, func(ctx context.Context, js jetstream.JetStream) error {
		var rerr error
		l, rerr = readLayout(ctx, js, cfg.Cluster.Name)
		return rerr
	})
	if err != nil {
		return cfg, nil, err
	}
	if err := checkAgainstLayout(cfg, origins, l); err != nil {
		return cfg, nil, err
	}
	cfg.Shards, cfg.Routing.Seed, cfg.Routing.Key, cfg.FilePattern = l.N, l.Seed, l.Key, l.FilePattern
	cfg.Cluster.Prefix = l.Prefix
	// run's checks of what route shares with it (batch.*, the key,
	// max_message_bytes, shutdown_timeout), on a copy standing for run
	// reading standard input: route has no directory and no NATS input.
	c := cfg
	c.Dir, c.Stdin, c.NATS = ".", config.StdinOn, config.NATS{}
	if err := c.Validate(); err != nil {
		return cfg, nil, err
	}
	return cfg, l, nil
}

// route is shardlog route. It connects to NATS, starts one publisher for
// the layout's shards, and routes standard input to it through a router
// configured as run's; it shuts down in order: the input ends (or a
// signal stops it), the router flushes and waits until every batch is
// stored (or given up), and the publisher stops.
func route(sig signals, cfg config.Config, l *cluster.Layout, log *slog.Logger) error {
	// A batch that fails for good stops the input: what was read is
	// still published, the failure is reported, and route exits 1.
	ctx, cancel := context.WithCancelCause(sig.ctx)
	defer cancel(nil)
	conn := ingest.NewNATS(cfg.NATS, 1, log)
	if err := conn.Connect(nil); err != nil {
		return runtimeError{err}
	}
	defer conn.Close()
	js, err := jetstream.New(conn.Conn())
	if err != nil {
		return runtimeError{fmt.Errorf("JetStream: %w", err)}
	}
	p, err := publish.New(js, publish.Options{
		Shards: l.N, Prefix: l.Prefix, Abort: sig.abort, Fail: cancel, Log: log,
	})
	if err != nil {
		return runtimeError{err}
	}
	outs := make([]chan<- *writer.Batch, l.N)
	for k := range outs {
		outs[k] = p.In(k)
	}
	r, err := shard.New(routerConfig(cfg), outs)
	if err != nil {
		panic(err) // Validate refuses what New refuses
	}
	var pubs sync.WaitGroup
	var perr error
	pubs.Go(func() { perr = p.Run() })
	sig.state.waiting.Store(new(func() bool { return p.Stats().Waiting > 0 }))
	log.Info("routing", "cluster", l.Name, "stream", l.Stream, "shards", l.N, "publisher", p.ID())

	stdin, restore := ingest.PrepareStdin()
	src := stdinSource{ingest.NewLines(stdin, int(cfg.MaxMessageBytes)), restore}
	serr := src.Run(ctx, r)
	p.CloseInput()
	pubs.Wait()
	sig.state.drained.Store(true)

	ps, rs := p.Stats(), r.Stats()
	log.Info("published", "records", ps.Records, "batches", ps.Batches, "bytes", ps.Bytes,
		"retries", ps.Retries, "duplicates", ps.Duplicates, "failed_batches", ps.Failed)
	logStats(log, src, rs, cfg)
	if err := joinDistinct([]error{serr, perr}); err != nil {
		return runtimeError{fmt.Errorf("%w (%d records not stored)", err, rs.Failed)}
	}
	return nil
}
