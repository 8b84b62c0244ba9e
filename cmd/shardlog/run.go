package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/ingest"
	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

func runCmd(stderr io.Writer) *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "run [-c FILE] [-n N] [-d DIR] [flags]",
		Short: "Run the daemon: route messages from standard input into N files",
		Long: `Run reads messages, one per line, from standard input and appends each one
to the file of its shard. It exits 0 once the input ends and every record is
written. On SIGINT or SIGTERM it stops reading, writes everything already
read, and exits 0; a second signal makes it exit at once with status 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path, cmd.Flags())
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(stderr, nil))
			ctx, stop := signalContext(log)
			defer stop()
			return run(ctx, cfg, log)
		},
	}
	f := c.Flags()
	f.StringVarP(&path, "config", "c", "", "YAML configuration file")
	f.IntP("shards", "n", 16, "number of shards (files)")
	f.StringP("dir", "d", "", "directory of the shard files")
	f.String("file-pattern", "shard-%03d.log", "file name pattern, with one integer verb")
	f.String("stdin", "auto", "read standard input: auto, true or false")
	f.String("max-message-bytes", "1MiB", "longest message; longer lines are split")
	f.Bool("allow-routing-change", false, "proceed on a directory written with another routing")
	f.String("key", shard.KeyMessage, "routing key")
	f.Uint32("seed", 0, "murmur3 seed")
	f.String("batch-max-bytes", "1MiB", "write a shard's batch once it holds this much")
	f.Duration("batch-max-delay", 100*time.Millisecond, "longest a record waits before it is written")
	f.String("batch-buffer-bytes", "32MiB", "memory for pending and in-flight batches")
	return c
}

// signalContext returns a context canceled by the first SIGINT or SIGTERM.
// A second signal exits at once with status 1.
func signalContext(log *slog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case s := <-sigs:
			log.Info("stopping: finishing what was read", "signal", s.String())
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-sigs:
			log.Error("second signal: exiting without finishing", "signal", s.String())
			os.Exit(exitRuntime)
		case <-done:
		}
	})
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
		cancel()
	}
}

// run is shardlog run: it opens the shard files, routes standard input into
// them, and shuts down in order: the source stops, its router flushes, the
// writers write the rest and close their files.
func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	// A writer that gives up on its file stops the input: what was read
	// is still routed, the failure is reported, and shardlog exits 1.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	writers, err := openShards(cfg, writer.Options{Fail: cancel, Log: log})
	if err != nil {
		return err
	}

	outs := make([]chan<- *writer.Batch, len(writers))
	var wg sync.WaitGroup
	werrs := make([]error, len(writers))
	for k, w := range writers {
		outs[k] = w.In()
		wg.Go(func() { werrs[k] = w.Run() })
	}
	router, err := shard.New(shard.Config{
		Shards:          cfg.Shards,
		Seed:            cfg.Routing.Seed,
		Key:             cfg.Key(),
		MaxBatchBytes:   int(cfg.Batch.MaxBytes),
		MaxDelay:        cfg.Batch.MaxDelay,
		BufferBytes:     int(cfg.Batch.BufferBytes),
		MaxMessageBytes: int(cfg.MaxMessageBytes),
	}, outs)
	if err != nil {
		closeShards(writers, &wg)
		return &config.Error{Err: err}
	}
	stdin, restore := ingest.PrepareStdin()
	defer restore()
	src := ingest.NewLines(stdin, int(cfg.MaxMessageBytes))
	log.Info("started", "shards", cfg.Shards, "dir", cfg.Dir, "input", "stdin")

	srcErr := src.Run(ctx, router)
	closeShards(writers, &wg)

	rs := router.Stats()
	msgs, splits := src.Stats()
	if splits > 0 {
		log.Warn("lines longer than max_message_bytes were split", "splits", splits, "max_message_bytes", int64(cfg.MaxMessageBytes))
	}
	log.Info("stopped", "messages", msgs, "written", rs.Written, "failed", rs.Failed,
		"bytes", rs.Bytes, "batches", rs.Batches, "splits", splits)
	if err := errors.Join(append([]error{srcErr}, werrs...)...); err != nil {
		return runtimeError{fmt.Errorf("%w (%d records not written)", err, rs.Failed)}
	}
	return nil
}

// openShards prepares cfg.Dir, checks and records its routing, and opens
// every shard's file. Failures are configuration errors: nothing has been
// written yet.
func openShards(cfg config.Config, opt writer.Options) ([]*writer.Writer, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, &config.Error{Err: fmt.Errorf("dir: %w", err)}
	}
	routing := writer.Routing{Shards: cfg.Shards, Seed: cfg.Routing.Seed, Key: cfg.Key().String(), FilePattern: cfg.FilePattern}
	if err := writer.CheckRouting(cfg.Dir, routing, cfg.AllowRoutingChange); err != nil {
		return nil, &config.Error{Err: err}
	}
	writers := make([]*writer.Writer, 0, cfg.Shards)
	for k := range cfg.Shards {
		w, err := writer.Open(k, cfg.FilePath(k), opt)
		if err != nil {
			closeShards(writers, nil)
			return nil, &config.Error{Err: fmt.Errorf("dir %s: %w", cfg.Dir, err)}
		}
		writers = append(writers, w)
	}
	if err := writer.RecordRouting(cfg.Dir, routing); err != nil {
		closeShards(writers, nil)
		return nil, &config.Error{Err: fmt.Errorf("dir %s: %w", cfg.Dir, err)}
	}
	return writers, nil
}

// closeShards tells every writer that input has ended and waits for all of
// them to write what they hold and close their files. With a nil wg the
// writers were never started: their files are just closed.
func closeShards(writers []*writer.Writer, wg *sync.WaitGroup) {
	for _, w := range writers {
		w.CloseInput()
		if wg == nil {
			_ = w.Run()
		}
	}
	if wg != nil {
		wg.Wait()
	}
}
