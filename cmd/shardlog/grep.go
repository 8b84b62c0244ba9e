package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardlog/shardlog/cluster"
	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/readback"
	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

// exitStatus is an error that only sets the exit status: grep's 1 for
// "nothing found" is no failure to report.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// grepPoll is how often grep --follow looks for new records.
const grepPoll = 200 * time.Millisecond

// grepCmd is shardlog grep: it prints the records of keys, reading only
// their shards' files.
func grepCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		path                 string
		count, files, follow bool
		sinceFlag, untilFlag string
	)
	c := &cobra.Command{
		Use:   "grep [-c FILE] [-d DIR] [--key K] [--seed S] [-n N] [--count | --files | -f] [--since T] [--until T] KEY...",
		Short: "Print the records of keys, reading only their shards' files",
		Long: `Print the records whose key is one of the KEYs given, reading only the files of
the KEYs' shards: each shard's rotated files in the order they were written
(.gz and .zst decompressed as a stream, never to disk), then its current
file. With --key json:<field> a record's key is its field's value (u42 for
{"user":"u42"}: a string's contents, another value's JSON text), and records
without the field are not printed; with --key message, the whole record.
Records of other keys that share a shard are skipped.

The routing (shards, seed, key, file pattern) is the one DIR records in
.shardlog-routing.json: -n, --seed, --key and --file-pattern (or -c FILE or
SHARDLOG_* variables) are needed only for a directory without a record,
and one that contradicts the record is an error naming both values. A
directory written with --key subject or header:<name> cannot be read
back by key: those keys are not in the records (an error says so).

Records are printed in file order within a shard; with KEYs of several
shards, shard by shard, in increasing shard number. Each shard is read
once, whatever the number of its KEYs.

Files read, in order: shardlog's rotated FILE.<UTC time>[.<n>][.gz|.zst]
by the time in their names, then the current FILE; logrotate's FILE.<n>
(highest first) and FILE-YYYYMMDD (dateext) are read too, before them.
A rotated file found both plain and compressed (its compression just
finished) is read once. Other files in DIR are ignored.

--since and --until (an RFC 3339 time such as 2026-12-03T10:00:00Z, or a
duration ago such as 2h) skip the rotated files written entirely outside
the range, by the times in their names: a rotated file's name holds the
time it was rotated (its last record's time at most), and its first
record is not older than the file rotated before it. Both ends are
included. Records carry no time: the files that overlap the range are
printed whole, so records somewhat outside it may be printed. Files
logrotate named are always read.

-f (--follow) goes on printing the KEYs' new records as they are written,
until SIGINT or SIGTERM, as tail -F does: across shardlog's rotation and
logrotate's rename followed by a SIGHUP reopen (the renamed file is read
to its end once the new one holds data). It looks for new records every
200ms; a record is printed once its newline is written.

A truncated or corrupt .gz or .zst file is named on standard error with
the line where it broke; the records before the break and the other
files are still printed, and the exit status is 2. A last record
without its newline (torn) is printed as it is, with a newline, and
noted on standard error.

Exit status: 0 when a record was printed (or counted, or, with --files,
a file listed), 1 when none, 2 on an error. A standard output closed
early (shardlog grep ... | head) ends grep quietly, with status 0.`,
		Example: `  shardlog grep -d /var/log/app --key json:user u42
  shardlog grep -d /var/log/app --since 2h --count u42 u43
  shardlog grep -d /var/log/app -f u42`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, keys []string) error {
			since, err := grepTime("since", sinceFlag)
			if err != nil {
				return err
			}
			until, err := grepTime("until", untilFlag)
			if err != nil {
				return err
			}
			switch {
			case !since.IsZero() && !until.IsZero() && since.After(until):
				return &config.Error{Err: fmt.Errorf("--since %s is after --until %s", sinceFlag, untilFlag)}
			case follow && (count || files || untilFlag != ""):
				return &config.Error{Err: errors.New("--follow: cannot be combined with --count, --files or --until")}
			case count && files:
				return &config.Error{Err: errors.New("--count and --files: give one")}
			}
			ctx := context.Background()
			if follow {
				// Before anything is read or said, so that a stop
				// is always grep's to handle.
				var stop context.CancelFunc
				ctx, stop = signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
				defer stop()
			}
			g, dir, err := newGrepper(path, cmd, keys, stdout, stderr)
			if err != nil {
				return err
			}
			g.since, g.until, g.count = since, until, count
			// A reader that went away (| head) makes writes fail with
			// EPIPE instead of killing grep: it ends quietly.
			signal.Ignore(syscall.SIGPIPE)
			defer signal.Reset(syscall.SIGPIPE)
			if files {
				return g.listFiles(dir)
			}
			return g.run(ctx, dir, follow)
		},
	}
	f := c.Flags()
	f.StringVarP(&path, "config", "c", "", "YAML configuration file (its dir and routing are used)")
	f.StringP("dir", "d", "", "directory of the shard files (default .)")
	f.IntP("shards", "n", 0, "number of shards, for a directory without a routing record (default 16)")
	f.Uint32("seed", 0, "murmur3 seed, for a directory without a routing record")
	f.String("key", "", "routing key whose values KEY are, for a directory without a routing record: message or json:<field> (default message)")
	f.String("file-pattern", "", "file name pattern, for a directory without a routing record (default shard-%03d.log)")
	f.BoolVar(&count, "count", false, "print the number of records found instead of the records")
	f.BoolVar(&files, "files", false, "print the files that would be read, in order, instead of the records")
	f.BoolVarP(&follow, "follow", "f", false, "go on printing new records as they are written, until SIGINT or SIGTERM")
	f.StringVar(&sinceFlag, "since", "", "skip rotated files written entirely before this time (RFC 3339, or a duration ago such as 2h)")
	f.StringVar(&untilFlag, "until", "", "skip files written entirely after this time (RFC 3339, or a duration ago such as 2h)")
	return c
}

// grepTime parses the value of --since or --until: an RFC 3339 time, or a
// duration meaning that long ago. An empty value is no bound.
func grepTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, &config.Error{Err: fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-12-03T10:00:00Z, or a duration ago such as 2h", flag, v)}
}

// recordedRouting reads the routing record of cfg's directory, if it has
// one (ok), for command name, which reads files back: a routing value
// given (origins says by what) that contradicts the record is a
// configuration error naming both, since files are read with the
// routing they were written with.
func recordedRouting(name string, cfg config.Config, origins map[string]string) (rec writer.Routing, ok bool, err error) {
	rec, ok, err = writer.ReadRouting(cfg.Dir)
	if err != nil {
		return rec, false, &config.Error{Err: fmt.Errorf("dir %s: %w", cfg.Dir, err)}
	}
	if !ok {
		return rec, false, nil
	}
	if diffs := rec.Diff(givenRouting(rec, cfg, origins)); len(diffs) > 0 {
		var from []string
		for _, k := range []string{"shards", "routing.seed", "routing.key", "file_pattern"} {
			if origins[k] != "default" {
				from = append(from, k+" from "+origins[k])
			}
		}
		return rec, false, &config.Error{Err: fmt.Errorf("dir %s: its routing record (%s) contradicts what was given: %s (%s); "+
			"%s reads files with the routing they were written with: leave the value out",
			cfg.Dir, writer.RoutingFile, strings.Join(diffs, ", "), strings.Join(from, ", "), name)}
	}
	return rec, true, nil
}

// grepper finds the records of keys in their shards' files.
type grepper struct {
	rt     readback.Routing
	keys   map[int]keySet // the keys asked for, by shard
	opt    readback.Options
	out    *bufio.Writer
	stderr io.Writer

	since, until time.Time
	count        bool

	// spillMax is how much a file read ahead of its turn may keep of its
	// output (the constant spillMax; tests make it small).
	spillMax int

	// main is where records go when read one file at a time (the current
	// files, and everything while following), and what the files read at
	// once add up to.
	main sink
}

// sink is where the records found in some files go, with what was found:
// each file read at once with others has its own, so that the records
// are printed in file order.
type sink struct {
	out      *bufio.Writer
	stderr   io.Writer
	found    int64 // records printed or counted
	failed   bool  // an error was reported: exit 2
	printing bool  // a long record's pieces are being printed
}

// errClosed says that standard output was closed by its reader.
var errClosed = errors.New("standard output closed")

// newGrepper loads the configuration, finds the directory's routing (its
// record; given values only where it has none, and none contradicting
// it) and groups keys by shard. It returns the directory.
func newGrepper(path string, cmd *cobra.Command, keys []string, stdout, stderr io.Writer) (*grepper, string, error) {
	cfg, err := config.Load(path, cmd.Flags())
	if err != nil {
		return nil, "", err
	}
	if cfg.Dir == "" {
		cfg.Dir = "."
	}
	if _, err := shard.ParseKey(cfg.Routing.Key); err != nil {
		return nil, "", &config.Error{Err: err}
	}
	origins, err := config.Origins(path, cmd.Flags())
	if err != nil {
		return nil, "", err
	}
	rec, ok, err := recordedRouting("grep", cfg, origins)
	if err != nil {
		return nil, "", err
	}
	if ok {
		cfg.Shards, cfg.Routing.Seed, cfg.Routing.Key, cfg.FilePattern = rec.Shards, rec.Seed, rec.Key, rec.FilePattern
	} else {
		fmt.Fprintf(stderr, "shardlog grep: %s has no routing record (%s): reading it as shards %d, seed %d, key %s, file pattern %q\n",
			cfg.Dir, writer.RoutingFile, cfg.Shards, cfg.Routing.Seed, cfg.Routing.Key, cfg.FilePattern)
	}
	// Validate as which does: a subject or header key needs no NATS
	// here (readback refuses it, saying why).
	key := cfg.Routing.Key
	if k, err := shard.ParseKey(key); err == nil && k.NeedsNATS() {
		cfg.Routing.Key = shard.KeyMessage
	}
	err = cfg.Validate()
	cfg.Routing.Key = key
	if err != nil {
		return nil, "", err
	}
	rt, err := readback.NewRouting(writer.Routing{Shards: cfg.Shards, Seed: cfg.Routing.Seed, Key: key, FilePattern: cfg.FilePattern})
	if err != nil {
		return nil, "", &config.Error{Err: fmt.Errorf("dir %s: %w", cfg.Dir, err)}
	}
	g := &grepper{rt: rt, keys: map[int]keySet{}, opt: readback.Options{MaxRecord: int(cfg.MaxMessageBytes)},
		out: bufio.NewWriterSize(stdout, 256<<10), stderr: stderr}
	g.main = sink{out: g.out, stderr: stderr}
	g.spillMax = spillMax
	var mine []cluster.Range // a member's directory holds these shards only
	if ok && rec.MemberShards != "" {
		if mine, err = cluster.ParseRanges(rec.MemberShards); err != nil {
			return nil, "", fmt.Errorf("dir %s: %s: %w", cfg.Dir, writer.RoutingFile, err)
		}
	}
	for _, key := range keys {
		k := rt.ShardOf([]byte(key))
		if mine != nil && !cluster.InRanges(mine, k) {
			fmt.Fprintf(stderr, "shardlog grep: %s: key %q is in shard %d, which member %s of cluster %s (shards %s) does not hold: "+
				"shardlog which --cluster %s names its member\n", cfg.Dir, key, k, rec.Member, rec.Cluster, rec.MemberShards, rec.Cluster)
		}
		ks := g.keys[k]
		if ks.set == nil {
			ks.set = map[string]struct{}{}
		}
		if _, dup := ks.set[key]; !dup {
			ks.set[key] = struct{}{}
			ks.lits = append(ks.lits, []byte(key))
		}
		g.keys[k] = ks
	}
	return g, cfg.Dir, nil
}

// shards returns the shards to read, in increasing order.
func (g *grepper) shards() []int {
	var ks []int
	for k := range g.keys {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// files returns the files of shard k in l that the time range keeps.
func (g *grepper) files(l readback.Listing, k int) []readback.File {
	var fs []readback.File
	for _, f := range l.Shards[k] {
		if f.Overlaps(g.since, g.until) {
			fs = append(fs, f)
		}
	}
	return fs
}

// listFiles prints the files grep would read, in order.
func (g *grepper) listFiles(dir string) error {
	l, err := readback.List(dir, g.rt)
	if err != nil {
		return err
	}
	for _, k := range g.shards() {
		for _, f := range g.files(l, k) {
			g.main.found++
			fmt.Fprintln(g.out, f.Path)
		}
	}
	return g.end(nil)
}

// run prints the records of the keys, shard by shard, and with follow
// goes on until ctx is done.
func (g *grepper) run(ctx context.Context, dir string, follow bool) error {
	l, err := readback.List(dir, g.rt)
	if err != nil {
		return err
	}
	type tail struct {
		k int
		t *readback.Tail
	}
	var tails []tail
	defer func() {
		for _, t := range tails {
			t.t.Close()
		}
	}()
	for _, k := range g.shards() {
		if ctx.Err() != nil { // stopped while following
			return g.end(nil)
		}
		t, err := g.readShard(ctx, dir, l, k, follow)
		if t != nil {
			tails = append(tails, tail{k, t})
		}
		if err != nil {
			return g.end(err)
		}
	}
	if !follow {
		return g.end(nil)
	}
	tick := time.NewTicker(grepPoll)
	defer tick.Stop()
	for {
		for _, t := range tails {
			if err := g.readTail(t.t, t.k); err != nil {
				return g.end(err)
			}
		}
		if err := g.out.Flush(); err != nil {
			return g.end(err)
		}
		select {
		case <-ctx.Done():
			return g.end(nil)
		case <-tick.C:
		}
	}
}

// readShard prints the matching records of shard k's files: the rotated
// ones listed in l, then, through a readback.Tail, those rotated since
// and the current one. With follow it returns the Tail, to read on.
func (g *grepper) readShard(ctx context.Context, dir string, l readback.Listing, k int, follow bool) (*readback.Tail, error) {
	keys := g.keys[k]
	var last, current *readback.File
	var files []readback.File
	for _, f := range l.Shards[k] {
		switch f.Kind {
		case readback.Current:
			current = &f
			continue
		case readback.Rotated:
			last = &f
		}
		if f.Overlaps(g.since, g.until) {
			files = append(files, f)
		}
	}
	if err := g.readFiles(ctx, files, keys); err != nil {
		return nil, err
	}
	if current != nil && !current.Overlaps(g.since, g.until) {
		return nil, nil
	}
	t := readback.NewTail(dir, g.rt, k, last, follow, g.opt)
	if err := g.readTail(t, k); err != nil || !follow {
		t.Close()
		return nil, err
	}
	return t, nil
}

// spillMax is how much a file read ahead of its turn may hold of its
// output before it waits for its turn and writes straight out.
const spillMax = 4 << 20

// readFiles prints the records of keys in files, in file order, reading
// files at once on every core: each file read ahead of its turn keeps
// its output (up to spillMax, then it waits for its turn), and files
// that hold little of a key, as most do, cost only their decompression.
func (g *grepper) readFiles(ctx context.Context, files []readback.File, keys keySet) error {
	if len(files) == 0 {
		return nil
	}
	// Stop (cancel) first, then wait for the feeder and the readers.
	var wg, feed sync.WaitGroup
	defer wg.Wait()
	defer feed.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		f      readback.File
		turn   chan struct{} // closed when the file is the next to print
		done   chan struct{}
		spill  *spill
		stderr bytes.Buffer
		sink   sink
		err    error
	}
	jobs := make([]*job, len(files))
	next := make(chan *job)
	workers := min(runtime.GOMAXPROCS(0), len(files))
	opt := g.opt
	if workers > 1 {
		opt.ZstdConcurrency = 1 // the files read at once keep the cores busy
	}
	for range workers {
		wg.Go(func() {
			rd := readback.NewReader(opt)
			defer rd.Close()
			for j := range next {
				j.err = g.readFile(rd, j.f, keys, &j.sink)
				if j.err == nil {
					j.err = j.sink.out.Flush()
				}
				close(j.done)
			}
		})
	}
	for i, f := range files {
		j := &job{f: f, turn: make(chan struct{}), done: make(chan struct{})}
		j.spill = &spill{max: g.spillMax, turn: j.turn, stop: ctx.Done(), to: g.out}
		j.sink = sink{out: bufio.NewWriterSize(j.spill, 64<<10), stderr: &j.stderr}
		jobs[i] = j
	}
	feed.Go(func() {
		defer close(next)
		for _, j := range jobs {
			select {
			case next <- j:
			case <-ctx.Done():
				return
			}
		}
	})
	for _, j := range jobs {
		close(j.turn)
		<-j.done
		if _, err := g.out.Write(j.spill.buf.Bytes()); err != nil {
			return err
		}
		_, _ = g.stderr.Write(j.stderr.Bytes())
		g.main.found += j.sink.found
		g.main.failed = g.main.failed || j.sink.failed
		if j.err != nil {
			return j.err
		}
	}
	return nil
}

// spill is the output of a file read ahead of its turn: kept until the
// file's turn comes, or, past spillMax, written out once it has come.
type spill struct {
	max  int // spillMax, or less in tests
	buf  bytes.Buffer
	turn <-chan struct{}
	stop <-chan struct{}
	to   io.Writer
	// direct is set once the turn has come and buf was written out:
	// from then on writes go straight to to.
	direct bool
}

func (s *spill) Write(p []byte) (int, error) {
	if !s.direct && s.buf.Len()+len(p) > s.max {
		select {
		case <-s.turn:
		case <-s.stop:
			return 0, errors.New("grep stopped")
		}
		if _, err := s.to.Write(s.buf.Bytes()); err != nil {
			return 0, err
		}
		s.buf.Reset()
		s.direct = true
	}
	if s.direct {
		return s.to.Write(p)
	}
	return s.buf.Write(p)
}

func (g *grepper) readFile(rd *readback.Reader, f readback.File, keys keySet, to *sink) error {
	if _, err := rd.Open(f); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(to.stderr, "shardlog grep: %s: removed since it was listed (retention): skipped\n", f.Path)
			return nil
		}
		to.report(err)
		return nil
	}
	return g.readRecords(rd, keys, to)
}

// readRecords prints the matching records rd reads, to the end of its
// file. A broken file is reported; only a failed write ends it early.
func (g *grepper) readRecords(rd *readback.Reader, keys keySet, to *sink) error {
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			to.report(err)
			return nil
		}
		if rec.Torn {
			fmt.Fprintf(to.stderr, "shardlog grep: %s: line %d: torn last record (no newline at the end of the file)\n", rd.Path(), rec.Line)
		}
		if err := g.record(rec, keys, to); err != nil {
			return err
		}
	}
}

// record prints rec if its key is one of keys (counts it with --count).
// The pieces of a record longer than the longest whole record follow its
// first piece's fate; with the whole message as key such a record is
// longer than any key.
func (g *grepper) record(rec readback.Record, keys keySet, to *sink) error {
	cont := to.printing
	if !cont {
		if !keys.mayHold(rec.Data) {
			return nil
		}
		key, ok := g.rt.KeyOf(rec.Data)
		_, hit := keys.set[string(key)]
		if !ok || !hit || rec.More && (g.rt.Key == shard.KeyMessage || g.rt.Key == "") {
			return nil
		}
		to.found++
	}
	to.printing = rec.More
	if g.count {
		return nil
	}
	if _, err := to.out.Write(rec.Data); err != nil || rec.More {
		return err
	}
	return to.out.WriteByte('\n')
}

// keySet is the keys asked for in one shard.
type keySet struct {
	set  map[string]struct{}
	lits [][]byte // the keys as bytes, in the order given
}

// maxLiterals is the most keys of a shard for which mayHold looks for
// each in a record; with more, every record is parsed.
const maxLiterals = 8

// mayHold reports whether rec may have one of the keys: false only when
// it cannot, because no key appears in it as written. A record's key is
// the record itself, or a JSON field's value, which appears in the record
// as it is unless a JSON escape spells it (a record with a backslash is
// always parsed). Looking for a few byte strings is much cheaper than
// finding the field in every record of the shard.
func (ks keySet) mayHold(rec []byte) bool {
	if len(ks.lits) > maxLiterals || bytes.IndexByte(rec, '\\') >= 0 {
		return true
	}
	for _, lit := range ks.lits {
		if bytes.Contains(rec, lit) {
			return true
		}
	}
	return false
}

// report notes err on standard error; grep then exits 2.
func (s *sink) report(err error) {
	s.failed = true
	fmt.Fprintln(s.stderr, "shardlog grep:", err)
}

// end flushes the output and returns run's result: the exit status for
// what was found, or err. A standard output closed by its reader ends
// grep quietly.
func (g *grepper) end(err error) error {
	if err == nil {
		if g.count {
			fmt.Fprintln(g.out, g.main.found)
		}
		err = g.out.Flush()
	}
	switch {
	case err != nil && errors.Is(err, syscall.EPIPE):
		return nil
	case err != nil:
		return fmt.Errorf("write standard output: %w", err)
	case g.main.failed:
		return exitStatus(exitUsage)
	case g.main.found == 0:
		return exitStatus(exitRuntime)
	}
	return nil
}

// readTail prints the matching records t has for now: files rotated
// since the listing, then the current file's, as far as it is written.
func (g *grepper) readTail(t *readback.Tail, k int) error {
	for {
		rec, err := t.Next()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, readback.ErrTruncated):
			fmt.Fprintf(g.stderr, "shardlog grep: %s: truncated (copytruncate?): reading it again from its start\n", t.Path())
			continue
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(g.stderr, "shardlog grep: %v: removed since it was listed (retention): skipped\n", err)
			continue
		case err != nil:
			g.main.report(err)
			return nil
		}
		if rec.Torn {
			fmt.Fprintf(g.stderr, "shardlog grep: %s: line %d: torn last record (no newline at the end of the file)\n", t.Path(), rec.Line)
		}
		if err := g.record(rec, g.keys[k], &g.main); err != nil {
			return err
		}
	}
}
