package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/ingest"
	"github.com/shardlog/shardlog/readback"
	"github.com/shardlog/shardlog/reshard"
	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

// reshardCmd is shardlog reshard: it rewrites a directory's records into
// another number of shards, in a new directory.
func reshardCmd(stderr io.Writer) *cobra.Command {
	var path, to string
	c := &cobra.Command{
		Use:   "reshard [-c FILE] -d DIR --to NEWDIR -n M [--key K] [--seed S] [--file-pattern P] [flags]",
		Short: "Rewrite a directory's records into M shards in a new directory",
		Long: `Reshard reads every record of DIR (each shard's files in the order they were
written: rotated, compressed and current) and writes it into M shards in
NEWDIR, routed exactly as shardlog run routes, with the same writers: so
--rotate-*, --sync, --file-mode and --dir-mode (or -c FILE, SHARDLOG_*
variables) apply to NEWDIR. This is how N is changed: run refuses a
directory written with another routing.

DIR's routing is the one it records in .shardlog-routing.json (it must have
one). NEWDIR's key, seed and file pattern are DIR's unless --key, --seed or
--file-pattern say otherwise; -n M is required. NEWDIR records its routing.

Each key's records keep their order: all of them are in one shard of DIR
(verify checks that), which is read in order by one router, so they reach
their new shard's writer in order. Several source shards are read at once
(one per core), sharing NEWDIR's writers. Memory is bounded whatever the
input size: each router's buffer (--batch-buffer-bytes) and each reader's
(about --max-message-bytes), for each core.

DIR is never changed. Reshard holds DIR's lock shared while it reads, so
no shardlog starts writing there meanwhile, and it refuses to start while a
shardlog holds DIR (naming its PID). NEWDIR must be new, or empty but for a
routing record of the same routing and empty shard files: anything else
(records of the same routing, another routing's files) is refused, so that
no record is ever there twice.

While it runs, NEWDIR holds ` + reshard.Marker + `. On success the marker is
removed and NEWDIR is a shardlog directory like any other (shardlog run -d
NEWDIR -n M accepts it). Interrupted (SIGINT, SIGTERM; a writer giving up,
such as a full disk past --shutdown-timeout), reshard stops reading, writes
what it read, says what was done (source shards finished, records
written), leaves the marker with that progress, and exits 1. Run again on
that NEWDIR, it refuses, naming the marker: remove NEWDIR and start again.
(Reshard does not resume.) shardlog run refuses such a NEWDIR too.

A source file that cannot be read to its end (a truncated or corrupt .gz or
.zst) is named on standard error, with the line where it broke; its whole
records before the break and all other files are rewritten, and reshard
exits 1. The part of the record the break cut is not (it is no record),
except of a record longer than --max-message-bytes, whose pieces read
before the break are passed on as read: they are ended with a newline.
A torn last record (no newline) is rewritten whole, with its newline, and
noted. A record longer than --max-message-bytes is split as run splits it.

A summary line ends the output on standard error: source shards, files
read, records and bytes written, elapsed time.

Exit status: 0 done, 1 interrupted or a source file unreadable, 2 on a
usage or configuration error (nothing written).`,
		Example: `  shardlog reshard -d /var/log/app --to /var/log/app32 -n 32
  shardlog reshard -c /etc/shardlog/shardlog.yaml --to /var/log/app32 -n 32`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return &config.Error{Err: errors.New("--to: required: the new directory to write the records into")}
			}
			rs, err := newResharder(path, to, cmd.Flags(), stderr)
			if err != nil {
				return err
			}
			log := newLogger(stderr, rs.cfg.Log)
			sig := handleSignals(log, rs.cfg.ShutdownTimeout)
			defer sig.stop()
			return rs.run(sig, log)
		},
	}
	c.Flags().StringVarP(&path, "config", "c", "", "YAML configuration file (its dir is DIR; its rotate.*, sync, file_mode... apply to NEWDIR)")
	c.Flags().StringVar(&to, "to", "", "the new directory (required): new, or empty")
	all := pflag.NewFlagSet("run", pflag.ContinueOnError)
	runFlags(all)
	// The flags of run that reshard takes too: the new directory's
	// routing, its writers and their files, and the log.
	for _, name := range []string{
		"shards", "dir", "file-pattern", "max-message-bytes", "key", "seed", "batch-max-bytes", "batch-buffer-bytes",
		"sync", "sync-interval", "shutdown-timeout", "log-format", "log-level", "rotate-max-bytes", "rotate-max-age",
		"rotate-compress", "rotate-keep", "rotate-keep-for", "file-mode", "dir-mode", "file-group",
	} {
		c.Flags().AddFlag(all.Lookup(name))
	}
	_ = c.MarkFlagDirname("to")
	c.Flags().Lookup("dir").Usage = "the directory to read (never changed)"
	c.Flags().Lookup("shards").Usage = "number of shards of NEWDIR (required)"
	return c
}

// resharder rewrites a directory into another.
type resharder struct {
	from    string
	src     readback.Routing
	cfg     config.Config // NEWDIR's: Dir is NEWDIR
	routing writer.Routing
	stderr  io.Writer

	counts reshard.Counts // files read; whether one could not be read to its end
}

// newResharder loads the configuration and works out DIR's routing and
// NEWDIR's.
func newResharder(path, to string, flags *pflag.FlagSet, stderr io.Writer) (*resharder, error) {
	cfg, err := config.Load(path, flags)
	if err != nil {
		return nil, err
	}
	origins, err := config.Origins(path, flags)
	if err != nil {
		return nil, err
	}
	if origins["shards"] == "default" {
		return nil, &config.Error{Err: errors.New("-n (shards): required: the number of shards of the new directory")}
	}
	if cfg.Dir == "" {
		cfg.Dir = "."
	}
	rec, ok, err := writer.ReadRouting(cfg.Dir)
	if err != nil {
		return nil, &config.Error{Err: fmt.Errorf("dir %s: %w", cfg.Dir, err)}
	}
	if !ok {
		return nil, &config.Error{Err: fmt.Errorf("dir %s: no routing record (%s): reshard reads only a directory that says how it was written", cfg.Dir, writer.RoutingFile)}
	}
	src, err := readback.NewRouting(rec)
	if err != nil {
		return nil, &config.Error{Err: fmt.Errorf("dir %s: reshard cannot be done: %w", cfg.Dir, err)}
	}
	given := func(key string) bool { return origins[key] != "default" }
	if !given("routing.seed") {
		cfg.Routing.Seed = rec.Seed
	}
	if !given("routing.key") {
		cfg.Routing.Key = rec.Key
	}
	if !given("file_pattern") {
		cfg.FilePattern = rec.FilePattern
	}
	if k, err := shard.ParseKey(cfg.Routing.Key); err == nil && k.NeedsNATS() {
		return nil, &config.Error{Err: fmt.Errorf("routing.key %s: reshard routes by what records hold: message or json:<field>", cfg.Routing.Key)}
	}
	rs := &resharder{from: cfg.Dir, src: src, stderr: stderr}
	cfg.Dir = filepath.Clean(to)
	cfg.AllowRoutingChange = false
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if a, b := absPath(rs.from), absPath(cfg.Dir); a == b || strings.HasPrefix(b, a+string(filepath.Separator)) {
		return nil, &config.Error{Err: fmt.Errorf("--to %s: is DIR %s or inside it, which reshard never changes: give a directory elsewhere", to, rs.from)}
	}
	if err := reshard.CheckNewDir(cfg.Dir); err != nil {
		return nil, &config.Error{Err: err}
	}
	rs.cfg = cfg
	rs.routing = writer.Routing{Shards: cfg.Shards, Seed: cfg.Routing.Seed, Key: cfg.Key().String(), FilePattern: cfg.FilePattern}
	return rs, nil
}

// absPath returns p made absolute, with symbolic links resolved where
// they exist, to compare directories.
func absPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	return p
}

// run rewrites the records: it holds DIR's lock shared, opens NEWDIR's
// writers as run does, and has one goroutine per core read source shards,
// each through its own router, until all are read or a signal stops it.
func (rs *resharder) run(sig signals, log *slog.Logger) error {
	start := time.Now()
	cfg := rs.cfg
	release, err := readback.ShareLock(rs.from)
	if err != nil {
		return &config.Error{Err: fmt.Errorf("dir %s: %w: reshard reads a directory no shardlog writes to", rs.from, err)}
	}
	defer release()
	if err := fitFileLimit(cfg.Shards); err != nil {
		return err
	}
	l, err := readback.List(rs.from, rs.src)
	if err != nil {
		return &config.Error{Err: fmt.Errorf("dir %s: %w", rs.from, err)}
	}
	ctx, cancel := context.WithCancelCause(sig.ctx)
	defer cancel(nil)
	wopt := writerOptions(cfg, sig, cancel, log)
	archiver := newArchiver(cfg, nil, log)
	if archiver != nil {
		wopt.Rotated = archiver.Rotated
	}
	writers, unlock, err := openShards(cfg, wopt, nil)
	if err != nil {
		return err
	}
	defer unlock()
	// Checked again under NEWDIR's lock: another reshard may have begun.
	if err := reshard.CheckNewDir(cfg.Dir); err != nil {
		closeShards(writers, nil)
		return &config.Error{Err: err}
	}
	progress := reshard.Progress{From: absPath(rs.from), FromRouting: rs.src.Routing, Routing: rs.routing, Started: start.UTC(), State: "running"}
	if err := reshard.WriteMarker(cfg.Dir, os.FileMode(cfg.FileMode), progress); err != nil {
		closeShards(writers, nil)
		return runtimeError{err}
	}
	if archiver != nil {
		archiver.Start()
	}
	var wg sync.WaitGroup
	werrs := make([]error, len(writers))
	outs := make([]chan<- *writer.Batch, len(writers))
	for k, w := range writers {
		outs[k] = w.In()
		wg.Go(func() { werrs[k] = w.Run() })
	}
	sig.state.waiting.Store(new(func() bool { return anyWaiting(writers) }))

	// Workers take source shards in order; each shard is read by one
	// router, so a key's records reach their writer in order.
	var (
		next    atomic.Int64
		mu      sync.Mutex
		done    []int
		stats   shard.Stats
		serrs   []error
		workers sync.WaitGroup
	)
	rcfg := routerConfig(cfg)
	for range min(runtime.GOMAXPROCS(0), rs.src.Shards) {
		workers.Go(func() {
			rd := readback.NewReader(readback.Options{MaxRecord: int(cfg.MaxMessageBytes), ZstdConcurrency: 1})
			defer rd.Close()
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= rs.src.Shards {
					return
				}
				r, err := shard.New(rcfg, outs)
				if err != nil {
					panic(err) // Validate refuses what New refuses
				}
				// The stream, not the source, stops at ctx's end: at a
				// record's end (see reshard.Stream).
				st := reshard.NewStream(ctx, rd, l.Shards[k], &rs.counts, rs.stderr)
				err = ingest.NewLines(st, int(cfg.MaxMessageBytes)).Run(context.WithoutCancel(ctx), r)
				mu.Lock()
				s := r.Stats()
				stats.Records += s.Records
				stats.Written += s.Written
				stats.Bytes += s.Bytes
				stats.Failed += s.Failed
				if err != nil {
					cancel(err)
					serrs = append(serrs, err)
				} else if st.Done() && ctx.Err() == nil {
					done = append(done, k)
				}
				mu.Unlock()
			}
		})
	}
	workers.Wait()
	closeShards(writers, &wg)
	sig.state.drained.Store(true)
	if archiver != nil {
		closeArchiver(ctx, archiver, log)
	}
	slices.Sort(done)
	elapsed := time.Since(start).Round(time.Millisecond)
	summary := fmt.Sprintf("%d of %d source shards, %d files read, %d records (%d bytes) written into %d shards, %s",
		len(done), rs.src.Shards, rs.counts.Files.Load(), stats.Written, stats.Bytes, cfg.Shards, elapsed)
	werr := joinDistinct(append(serrs, werrs...))
	if werr != nil || ctx.Err() != nil || len(done) < rs.src.Shards {
		progress.State, progress.ShardsDone, progress.RecordsWritten = "interrupted", done, stats.Written
		merr := reshard.WriteMarker(cfg.Dir, os.FileMode(cfg.FileMode), progress)
		why := "interrupted"
		if werr != nil {
			why = strings.ReplaceAll(werr.Error(), "\n", "; ")
		}
		fmt.Fprintf(rs.stderr, "shardlog reshard: %s → %s: stopped (%s): %s; %s is incomplete (%s says how far it got): remove it and start again\n",
			rs.from, cfg.Dir, why, summary, cfg.Dir, reshard.Marker)
		if merr != nil {
			fmt.Fprintln(rs.stderr, "shardlog reshard:", merr)
		}
		return exitStatus(exitRuntime)
	}
	if err := os.Remove(filepath.Join(cfg.Dir, reshard.Marker)); err != nil {
		return runtimeError{fmt.Errorf("finish: %w", err)}
	}
	fmt.Fprintf(rs.stderr, "shardlog reshard: %s → %s: %s\n", rs.from, cfg.Dir, summary)
	if rs.counts.Broken.Load() {
		fmt.Fprintln(rs.stderr, "shardlog reshard: some source files could not be read to their end (named above): their records after the break are not in", cfg.Dir)
		return exitStatus(exitRuntime)
	}
	return nil
}
