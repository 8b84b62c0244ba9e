package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/shardlog/shardlog/cluster"
	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/ingest"
	"github.com/shardlog/shardlog/reshard"
	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

func runCmd(stderr io.Writer) *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "run [-c FILE] [-n N] [-d DIR] [flags]",
		Short: "Run the daemon: route messages from stdin or NATS into N files",
		Long: `Run reads messages, one per line from standard input, and/or from NATS
subjects, and appends each one to the file of its shard. With only standard
input it exits 0 once the input ends, every record is written, and rotated
files are compressed and trimmed as rotate.* says; with NATS it runs until
stopped. On SIGINT or SIGTERM it stops reading and writes
(and, for JetStream, acknowledges) everything already received; when all of
it is written it exits 0. Only a writer that cannot finish (one waiting for
disk space past shutdown_timeout, or any at a second signal) makes it give
up on the rest: the files are cut back to whole records, and it exits 1
naming how many records it could not write. SIGHUP reopens every shard
file by name (after logrotate renamed them).

With --cluster NAME --member M (and --nats-url), run is member M of a
cluster (see shardlog cluster): it takes N, seed, key and file pattern from
the cluster's layout, and writes the batches of M's shards from the
cluster's stream, each to the file of the shard its subject names,
acknowledging them once written. Instances with the same member name are
one active and hot standbys; a standby takes over when the active one has
not pulled for --pinned-ttl. It needs nats-server 2.11 or later.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path, cmd.Flags())
			if err != nil {
				return err
			}
			var layout *cluster.Layout // set for a member of a cluster
			if cfg.MemberOn() {
				if cfg, layout, err = memberConfig(path, cmd.Flags(), cfg, stderr); err != nil {
					return err
				}
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := newLogger(stderr, cfg.Log)
			sig := handleSignals(log, cfg.ShutdownTimeout)
			defer sig.stop()
			return run(sig, cfg, layout, log)
		},
	}
	c.Flags().StringVarP(&path, "config", "c", "", "YAML configuration file")
	runFlags(c.Flags())
	return c
}

// runFlags adds run's flags, one for each configuration key a person sets
// often, to f. check-config takes them too.
func runFlags(f *pflag.FlagSet) {
	f.IntP("shards", "n", 16, "number of shards (files)")
	f.StringP("dir", "d", "", "directory of the shard files")
	f.String("file-pattern", "shard-%03d.log", "file name pattern, with one integer verb")
	f.String("stdin", "auto", "read standard input: auto (when no NATS input), true or false")
	f.String("max-message-bytes", "1MiB", "longest message; longer lines are split")
	f.Bool("allow-routing-change", false, "proceed on a directory written with another routing")
	f.String("key", shard.KeyMessage, "routing key: message, subject, header:<name> or json:<field>")
	f.Uint32("seed", 0, "murmur3 seed")
	f.String("batch-max-bytes", "256KiB", "write a shard's batch once it holds this much")
	f.Duration("batch-max-delay", 100*time.Millisecond, "longest a record waits before it is written")
	f.String("batch-buffer-bytes", "32MiB", "memory for pending and in-flight batches, per input")
	f.String("sync", "none", "fsync policy: none, interval (every --sync-interval), or batch (each batch before acking)")
	f.Duration("sync-interval", time.Second, "with --sync interval: how often files that got data are synced")
	f.Duration("shutdown-timeout", 30*time.Second, "how long a stop waits for a writer blocked on a full disk")
	f.String("metrics-listen", "", "serve Prometheus metrics, /healthz and /readyz on HOST:PORT")
	f.String("log-format", "text", "format of shardlog's own log on stderr: text (logfmt) or json")
	f.String("log-level", "info", "least severe level logged: debug, info, warn or error")
	f.String("rotate-max-bytes", "0", "rotate a shard file once it holds this much (0: never; else at least 32KiB)")
	f.Duration("rotate-max-age", 0, "rotate a shard file once it has been open this long (0: never)")
	f.String("rotate-compress", "none", "compress rotated files: none, gzip or zstd")
	f.Int("rotate-keep", 0, "rotated files kept per shard (0: all)")
	f.Duration("rotate-keep-for", 0, "delete rotated files older than this (0: never)")
	f.String("nats-url", "", "NATS server URL(s), comma-separated")
	f.StringSlice("subject", nil, "NATS subject to read (repeatable; wildcards allowed)")
	f.String("queue", "", "NATS queue group shared by instances (core NATS)")
	f.String("nats-creds", "", "NATS credentials file")
	f.String("js-stream", "", "JetStream stream to consume with a durable pull consumer")
	f.String("js-durable", "shardlog", "JetStream durable consumer name")
	f.Bool("js-create", false, "create the JetStream stream over the subjects if missing")
	f.Bool("js-update-filter", false, "let an existing durable be changed to read the configured subjects")
	f.Bool("nats-embedded", false, "run a NATS server inside shardlog")
	f.String("nats-embedded-listen", "127.0.0.1:4222", "address of the embedded NATS server")
	f.String("nats-embedded-store", "", "JetStream storage directory of the embedded server (enables JetStream)")
	f.String("nats-embedded-config", "", "nats-server configuration file for the embedded server (authorization, TLS, limits)")
	f.String("file-mode", "0640", "mode (octal) of the files shardlog creates, whatever the umask")
	f.String("dir-mode", "0750", "mode (octal) of the directories shardlog creates, whatever the umask")
	f.String("file-group", "", "group (name or ID) of the files and directories shardlog creates")
	f.String("cluster", "", "with --member: run as a member of this cluster, its layout read from NATS")
	f.String("member", "", "with --cluster: the member to run as (same name on several hosts: one active, the rest standbys)")
	f.Duration("pinned-ttl", 5*time.Second, "as a member: how long the active instance stays pinned without pulling")
}

// signals is what the process's signals mean to run.
type signals struct {
	// ctx is canceled by the first SIGINT or SIGTERM: stop reading.
	ctx context.Context
	// hup receives a token for each SIGHUP: reopen the shard files.
	hup <-chan struct{}
	// abort is closed shutdown_timeout after the first signal, or at a
	// second one: writers stop waiting for disk space and give up.
	abort <-chan struct{}
	// stop stops the handling and waits for its goroutine.
	stop func()
	// state tells the handling what a second signal would give up.
	state *stopState
}

// stopState is what run tells the signal handling about the stop, so that
// a second signal is logged as an error only when it gives something up.
// (timeout(1) sends SIGTERM to its command and then to its process group:
// shardlog run under timeout gets two at once.)
type stopState struct {
	// waiting, once set, reports whether a writer waits (for disk space,
	// or for its path): what a second signal makes it give up.
	waiting atomic.Pointer[func() bool]
	// drained is set once the writers have stopped: a signal then gives
	// up nothing.
	drained atomic.Bool
}

// givesUp reports whether a second signal now gives up records.
func (s *stopState) givesUp() bool {
	if s.drained.Load() {
		return false
	}
	w := s.waiting.Load()
	return w != nil && (*w)()
}

// forcedExitAfter is how long shardlog lets writers cut their files back to
// whole records after a second signal before it exits regardless.
const forcedExitAfter = 5 * time.Second

// handleSignals starts the signal handling run relies on. SIGPIPE is
// ignored: a log reader that went away (shardlog 2>&1 | logger) makes log
// writes fail, and must neither kill shardlog nor stop its data path.
func handleSignals(log *slog.Logger, shutdownTimeout time.Duration) signals {
	signal.Ignore(syscall.SIGPIPE)
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	hup := make(chan struct{}, 1)
	abort := make(chan struct{})
	done := make(chan struct{})
	state := &stopState{}
	var wg sync.WaitGroup
	wg.Go(func() {
		var timeout, forced <-chan time.Time
		stopping, aborted := false, false
		abortNow := func() {
			if !aborted {
				aborted = true
				close(abort)
			}
		}
		for {
			select {
			case s := <-sigs:
				switch {
				case s == syscall.SIGHUP:
					log.Debug("SIGHUP: reopening shard files")
					select {
					case hup <- struct{}{}:
					default:
					}
				case !stopping:
					stopping = true
					log.Info("stopping: finishing what was read", "signal", s.String())
					cancel()
					timeout = time.After(shutdownTimeout)
				default:
					// It is an error only when a writer waits (for disk
					// space, for its path) and so gives up its records;
					// either way the stop goes on, and exits regardless
					// after forcedExitAfter.
					if state.givesUp() {
						log.Error("second signal: giving up on what is not written yet", "signal", s.String())
					} else {
						log.Info("second signal: already finishing", "signal", s.String())
					}
					abortNow()
					if forced == nil {
						forced = time.After(forcedExitAfter)
					}
				}
			case <-timeout:
				log.Error("shutdown_timeout passed: giving up on what is not written yet", "shutdown_timeout", shutdownTimeout)
				abortNow()
			case <-forced:
				log.Error("exiting without finishing")
				ingest.RestoreStdin()
				os.Exit(exitRuntime)
			case <-done:
				return
			}
		}
	})
	return signals{ctx: ctx, hup: hup, abort: abort, state: state, stop: func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
		cancel()
	}}
}

// source is an input: Run routes messages through its own router until
// its input ends or ctx is done, then closes the router. Close releases an
// input that will not be run.
type source interface {
	Run(ctx context.Context, r *shard.Router) error
	Close()
}

// stopServer shuts the embedded NATS server down, if there is one.
func stopServer(srv *ingest.Embedded) {
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// discardServer shuts down the embedded NATS server of a start that
// failed, if there is one, removing the store directory it made.
func discardServer(srv *ingest.Embedded) {
	if srv != nil {
		srv.Discard()
	}
}

// run is shardlog run. It opens the shard files, starts the inputs, each
// with its own router, and shuts down in order: the inputs stop, their
// routers flush and wait for their batches to be written (JetStream
// messages are acknowledged then), the writers close their files, and
// the embedded NATS server, if any, stops last.
func run(sig signals, cfg config.Config, layout *cluster.Layout, log *slog.Logger) error {
	// A writer that gives up on its file, or an input that fails, stops
	// every input: what was received is still routed, the failure is
	// reported, and shardlog exits 1.
	if err := fitFileLimit(cfg.Shards); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(sig.ctx)
	defer cancel(nil)
	// The metrics address and the inputs first: a port in use or a NATS
	// server that refuses us fails the start before any file is created.
	m, err := listenMetrics(cfg.Metrics.Listen, cfg.Metrics.PerShard, log)
	if err != nil {
		return err
	}
	if m != nil {
		defer m.close()
	}
	srcs, srv, err := startInputs(cfg, layout, log)
	if err != nil {
		return err
	}
	warnUnreadStdin(cfg, log)
	wopt := writerOptions(cfg, sig, cancel, log)
	if m != nil {
		wopt.Observer = m
	}
	archiver := newArchiver(cfg, layout, log)
	if archiver != nil {
		wopt.Rotated = archiver.Rotated
	}
	writers, unlock, err := openShards(cfg, wopt, layout)
	if err != nil {
		for _, src := range srcs {
			src.Close()
		}
		discardServer(srv)
		return err
	}
	defer unlock()
	if archiver != nil {
		archiver.Start()
	}
	log.Info("started", "shards", cfg.Shards, "dir", cfg.Dir, "stdin", cfg.StdinOn(), "nats", cfg.NATSOn())
	var wg sync.WaitGroup
	werrs := make([]error, len(writers))
	// A member opens only its own shards' files: the others' channels stay
	// nil, and its router, which routes by subject, never sends on them.
	outs := make([]chan<- *writer.Batch, cfg.Shards)
	for i, w := range writers {
		outs[w.Shard()] = w.In()
		wg.Go(func() { werrs[i] = w.Run() })
	}
	sig.state.waiting.Store(new(func() bool { return anyWaiting(writers) }))
	routerCfg := routerConfig(cfg)
	routers := make([]*shard.Router, len(srcs))
	var mins []metricInput
	for i, src := range srcs {
		if routers[i], err = shard.New(routerCfg, outs); err != nil {
			panic(err) // Validate refuses what New refuses
		}
		mins = append(mins, metricInput{name: inputName(src), src: src, router: routers[i]})
	}
	if m != nil {
		m.attach(writers, mins, archiver)
	}

	// SIGHUP reopens every file, each by its own writer between batches;
	// the first signal begins the drain.
	sd := &notifier{log: log, writers: writers, routers: routers}
	hupDone := make(chan struct{})
	var hups sync.WaitGroup
	reopen := newReopens(log, writers)
	hups.Go(func() {
		done := ctx.Done()
		stopping := func() {
			if m != nil {
				m.ready.Store(false)
			}
			sd.stop()
		}
		for {
			select {
			case <-sig.hup:
				sd.reloading(reopen.start)
			case err := <-reopen.replies:
				reopen.reply(err)
			case <-done:
				done = nil
				stopping()
			case <-hupDone:
				if done != nil {
					stopping()
				}
				return
			}
		}
	})
	serrs := make([]error, len(srcs))
	var inputs sync.WaitGroup
	for i, src := range srcs {
		inputs.Go(func() {
			if serrs[i] = src.Run(ctx, routers[i]); serrs[i] != nil {
				cancel(serrs[i])
			}
		})
	}
	// Ready once the files are open and every input receives (NATS: its
	// subscriptions are in place, so nothing published after READY=1 is
	// missed).
	for _, src := range srcs {
		if r, ok := src.(interface{ Receiving() <-chan struct{} }); ok {
			select {
			case <-r.Receiving():
			case <-ctx.Done():
			}
		}
	}
	if ctx.Err() == nil {
		sd.start()
		if m != nil {
			m.ready.Store(true)
		}
	}
	inputs.Wait()
	closeShards(writers, &wg)
	sig.state.drained.Store(true)
	close(hupDone)
	hups.Wait()
	stopServer(srv)
	var as writer.ArchiveStats
	if archiver != nil {
		as = closeArchiver(ctx, archiver, log)
	}

	var ws writer.Stats
	for _, w := range writers {
		ws.Add(w.Stats())
	}
	log.Info("files", "syncs", ws.Syncs, "reopens", ws.Reopens, "vanished", ws.Vanished,
		"disk_full", ws.DiskFull, "blocked", ws.Blocked.Round(time.Millisecond), "rotations", ws.Rotations,
		"compressed", as.Compressed, "removed", as.Removed, "archive_errors", as.Errors)
	var failed int64
	for i, src := range srcs {
		failed += routers[i].Stats().Failed
		logStats(log, src, routers[i].Stats(), cfg)
	}
	if err := joinDistinct(append(serrs, werrs...)); err != nil {
		return runtimeError{fmt.Errorf("%w (%d records not written)", err, failed)}
	}
	return nil
}

// writerOptions are the shard writers' options of cfg, for run and
// reshard: a writer that gives up calls fail, and the signals' abort makes
// a waiting writer give up.
func writerOptions(cfg config.Config, sig signals, fail func(error), log *slog.Logger) writer.Options {
	policy := map[config.SyncMode]writer.SyncPolicy{
		config.SyncNone: writer.SyncNone, config.SyncInterval: writer.SyncInterval, config.SyncBatch: writer.SyncBatch,
	}[cfg.Sync]
	return writer.Options{
		Fail: fail, Log: log, Sync: policy, SyncInterval: cfg.SyncInterval, Abort: sig.abort,
		// A writer holds batches for the interval sync up to its share
		// of the buffer, so that the routers never starve waiting.
		MaxHeldBytes: max(int(cfg.Batch.BufferBytes)/(2*cfg.Shards), shard.DefaultPageSize),
		RotateBytes:  int64(cfg.Rotate.MaxBytes), RotateAge: cfg.Rotate.MaxAge,
	}
}

// routerConfig is the router configuration of cfg, for run and route.
func routerConfig(cfg config.Config) shard.Config {
	return shard.Config{
		Shards:          cfg.Shards,
		Seed:            cfg.Routing.Seed,
		Key:             cfg.Key(),
		MaxBatchBytes:   maxBatch(cfg),
		MaxDelay:        cfg.Batch.MaxDelay,
		BufferBytes:     int(cfg.Batch.BufferBytes),
		MaxMessageBytes: int(cfg.MaxMessageBytes),
	}
}

// maxBatch is the largest batch a router hands a writer: batch.max_bytes,
// but with size rotation at most a quarter of rotate.max_bytes, since a
// file is rotated between batches and may outgrow the limit by one.
func maxBatch(cfg config.Config) int {
	n := int(cfg.Batch.MaxBytes)
	if r := int(cfg.Rotate.MaxBytes); r > 0 {
		n = min(n, max(r/4, shard.DefaultPageSize))
	}
	return n
}

// newArchiver returns the archiver of rotated files (compression and
// retention), or nil when neither rotation nor its settings are configured.
func newArchiver(cfg config.Config, layout *cluster.Layout, log *slog.Logger) *writer.Archiver {
	r := cfg.Rotate
	if !r.On() && r.Compress == config.CompressNone && r.Keep == 0 && r.KeepFor == 0 {
		return nil
	}
	var names []string
	for _, k := range ownShards(cfg, layout) {
		names = append(names, cfg.FileName(k))
	}
	return writer.NewArchiver(writer.ArchiveOptions{
		Dir: cfg.Dir, Names: names, Compress: writer.Compression(r.Compress), Keep: r.Keep, KeepFor: r.KeepFor, Log: log,
		Compressor: niceCompressor,
	})
}

// anyWaiting reports whether one of the writers waits for its file.
func anyWaiting(writers []*writer.Writer) bool {
	for _, w := range writers {
		if _, waiting := w.Live(); waiting {
			return true
		}
	}
	return false
}

// closeArchiver stops the archiver once the writers have stopped. When
// the input ended on its own (standard input's end: ctx is not done), it
// first finishes compression and retention, so that a piped run leaves
// its rotated files as a daemon does; a signal during that wait stops it.
// After a signal or a failure it does not wait: the next start finishes
// what is left.
func closeArchiver(ctx context.Context, a *writer.Archiver, log *slog.Logger) writer.ArchiveStats {
	if ctx.Err() == nil {
		log.Debug("input ended: finishing compression and retention of rotated files before exit")
		_ = a.Finish(ctx) // a signal ends the wait: Close cuts the work short
	}
	return a.Close()
}

// fdReserve is how many file descriptors shardlog keeps for itself beside
// its shard files: standard streams, NATS connections, the lock, the
// routing record, files being rotated or compressed.
const fdReserve = 64

// fitFileLimit raises the open-file soft limit to the hard limit, and
// refuses a shard count whose files and shardlog's own descriptors do not
// fit in it, before anything is created.
func fitFileLimit(shards int) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil // nothing to go by: opening the files will tell
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = raised.Max
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &raised) == nil {
			lim = raised
		}
	}
	if need := uint64(shards) + fdReserve; need > lim.Cur {
		return &config.Error{Err: fmt.Errorf("shards: %d: needs %d open files with shardlog's own, but the limit is %d "+
			"(hard limit %d): raise it (ulimit -n %d in the shell, LimitNOFILE=%d in the systemd unit) or use fewer shards",
			shards, need, lim.Cur, lim.Max, need, need)}
	}
	return nil
}

// joinDistinct joins errs, leaving out nils and errors that say what an
// earlier one said (a writer's failure comes back through its router too).
func joinDistinct(errs []error) error {
	var out []error
	seen := map[string]bool{}
	for _, err := range errs {
		if err != nil && !seen[err.Error()] {
			seen[err.Error()] = true
			out = append(out, err)
		}
	}
	return errors.Join(out...)
}

// startInputs readies the configured inputs: the embedded NATS server,
// the NATS connection (so that wrong credentials fail here, at startup),
// and standard input.
func startInputs(cfg config.Config, layout *cluster.Layout, log *slog.Logger) ([]source, *ingest.Embedded, error) {
	if layout != nil {
		src, err := startMember(cfg, layout, log)
		if err != nil {
			return nil, nil, err
		}
		return []source{src}, nil, nil
	}
	var srcs []source
	var srv *ingest.Embedded
	if cfg.NATS.Embedded {
		var err error
		if srv, err = ingest.StartEmbedded(cfg.NATS, log); err != nil {
			if errors.As(err, new(*config.Error)) {
				return nil, nil, err
			}
			return nil, nil, runtimeError{err}
		}
	}
	if cfg.NATSOn() {
		n := ingest.NewNATS(cfg.NATS, int(cfg.MaxMessageBytes), log)
		if err := n.Connect(srv); err != nil {
			discardServer(srv)
			return nil, nil, runtimeError{err}
		}
		srcs = append(srcs, n)
	}
	if cfg.StdinOn() {
		stdin, restore := ingest.PrepareStdin()
		srcs = append(srcs, stdinSource{ingest.NewLines(stdin, int(cfg.MaxMessageBytes)), restore})
	}
	return srcs, srv, nil
}

// warnUnreadStdin warns, once, when standard input holds data that will
// not be read: NATS input is configured and stdin is auto (so not read),
// and standard input is a pipe or a regular file, as in
// "run -c shardlog.yaml < input.log", which otherwise runs until stopped
// without a word. A terminal, /dev/null or a socket says nothing.
func warnUnreadStdin(cfg config.Config, log *slog.Logger) {
	if cfg.Stdin != config.StdinAuto || !cfg.NATSOn() || cfg.MemberOn() {
		return
	}
	var st unix.Stat_t
	if err := unix.Fstat(0, &st); err != nil {
		return
	}
	if m := st.Mode & unix.S_IFMT; m == unix.S_IFIFO || m == unix.S_IFREG {
		log.Warn("standard input is not read: NATS input is configured (stdin: auto); use --stdin true to read both")
	}
}

// stdinSource is standard input as a source: it restores stdin's blocking
// mode once done.
type stdinSource struct {
	*ingest.Lines
	restore func()
}

func (s stdinSource) Run(ctx context.Context, r *shard.Router) error {
	defer s.restore()
	return s.Lines.Run(ctx, r)
}

func (s stdinSource) Close() { s.restore() }

// inputName names an input in logs and metrics.
func inputName(src source) string {
	if _, ok := src.(*ingest.NATS); ok {
		return "nats"
	}
	return "stdin"
}

// logStats logs what an input did.
func logStats(log *slog.Logger, src source, rs shard.Stats, cfg config.Config) {
	attrs := []any{"written", rs.Written, "failed", rs.Failed, "bytes", rs.Bytes, "batches", rs.Batches}
	var splits int64
	switch s := src.(type) {
	case stdinSource:
		var msgs int64
		msgs, splits = s.Stats()
		attrs = append([]any{"input", "stdin", "messages", msgs}, attrs...)
	case *ingest.NATS:
		st := s.Stats()
		splits = st.Splits
		attrs = append([]any{"input", "nats", "messages", st.Messages, "multiline", st.Multiline}, attrs...)
		attrs = append(attrs, "acked", rs.Acked, "ack_errors", rs.AckErrors, "slow_consumer", st.SlowConsumer, "dropped", st.Dropped)
		if cfg.NATS.JetStream.Stream != "" || cfg.Cluster.Member != "" {
			attrs = append(attrs, "redelivered", st.Redelivered)
		}
		if cfg.Cluster.Member != "" {
			attrs = append(attrs, "foreign", st.Foreign, "unterminated", st.Unterminated)
		}
	}
	attrs = append(attrs, "splits", splits, "key_fallbacks", rs.KeyFallbacks)
	if splits > 0 {
		log.Warn("messages longer than max_message_bytes were split", "splits", splits, "max_message_bytes", int64(cfg.MaxMessageBytes))
	}
	log.Info("stopped", attrs...)
}

// openShards prepares cfg.Dir, locks it, checks and records its routing,
// and opens the file of every shard it writes (all, or a member's own:
// see ownShards). The caller holds the lock until the files
// are closed, then calls unlock. Failures are configuration errors:
// nothing has been written yet.
func openShards(cfg config.Config, opt writer.Options, layout *cluster.Layout) (_ []*writer.Writer, unlock func(), err error) {
	if opt.Perms, err = perms(cfg); err != nil {
		return nil, nil, err
	}
	if err := opt.Perms.MkdirAll(cfg.Dir); err != nil {
		return nil, nil, &config.Error{Err: fmt.Errorf("dir: %w", permsHint(err, cfg))}
	}
	lock, err := writer.LockDir(cfg.Dir, opt.Perms)
	if err != nil {
		return nil, nil, &config.Error{Err: fmt.Errorf("dir %s: %w", cfg.Dir, permsHint(err, cfg))}
	}
	unlock = lock.Close
	if err := reshard.Unfinished(cfg.Dir); err != nil {
		unlock()
		return nil, nil, &config.Error{Err: err}
	}
	routing := writer.Routing{Shards: cfg.Shards, Seed: cfg.Routing.Seed, Key: cfg.Key().String(), FilePattern: cfg.FilePattern}
	routing = memberRouting(routing, cfg, layout)
	allowed, err := writer.CheckRouting(cfg.Dir, routing, cfg.AllowRoutingChange)
	if err != nil {
		unlock()
		return nil, nil, &config.Error{Err: err}
	}
	if len(allowed) > 0 {
		opt.Log.Warn("routing changed on purpose (allow_routing_change): files written before mix the old routing with the new",
			"dir", cfg.Dir, "changes", strings.Join(allowed, "; "))
	}
	writers := make([]*writer.Writer, 0, cfg.Shards)
	for _, k := range ownShards(cfg, layout) {
		w, err := writer.Open(k, cfg.FilePath(k), opt)
		if err != nil {
			closeShards(writers, nil)
			unlock()
			return nil, nil, &config.Error{Err: fmt.Errorf("dir %s: %w", cfg.Dir, permsHint(err, cfg))}
		}
		writers = append(writers, w)
	}
	if err := writer.RecordRouting(cfg.Dir, routing, opt.Perms); err != nil {
		closeShards(writers, nil)
		unlock()
		return nil, nil, &config.Error{Err: fmt.Errorf("dir %s: %w", cfg.Dir, err)}
	}
	// rm -rf of the directory takes the lock and the record with it:
	// they come back with the files, so that no second instance is let in.
	stopKeep := lock.Keep(routing, time.Second, opt.Log)
	return writers, func() { stopKeep(); lock.Close() }, nil
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
