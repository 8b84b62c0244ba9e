// Package grep finds the records of keys in a shard directory, reading
// only the files of the keys' shards (see package readback): the rotated
// ones in the order they were written, several at once, then the current
// file, and, following, what is written next. Records print in file
// order, shard by shard.
package grep

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/shardlog/shardlog/readback"
	"github.com/shardlog/shardlog/shard"
)

// poll is how often Run, following, looks for new records.
const poll = 200 * time.Millisecond

// Options say what a Grep prints and where it notes problems.
type Options struct {
	// Since and Until skip the files written entirely outside them, by
	// the times in their names (zero: no bound).
	Since, Until time.Time
	// Count counts the records found instead of printing them; Finish
	// prints the count.
	Count bool
	// MaxRecord is the longest record read whole (readback.Options).
	MaxRecord int
	// Stderr receives notes (a torn record, a file removed since it was
	// listed) and errors about files.
	Stderr io.Writer
}

// New returns a Grep that prints to out the records of rt's directory
// whose key is one of keys.
func New(rt readback.Routing, keys []string, out io.Writer, opt Options) *Grep {
	w := bufio.NewWriterSize(out, 256<<10)
	g := &Grep{rt: rt, keys: map[int]keySet{}, opt: readback.Options{MaxRecord: opt.MaxRecord},
		out: w, stderr: opt.Stderr, since: opt.Since, until: opt.Until, count: opt.Count, spillMax: spillMax}
	g.main = sink{out: w, stderr: opt.Stderr}
	for _, key := range keys {
		k := rt.ShardOf([]byte(key))
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
	return g
}

// Finish prints the count (with Options.Count) and flushes the output;
// it returns what was found (records, or files listed), whether a
// problem with a file was noted, and the output's error.
func (g *Grep) Finish() (found int64, failed bool, err error) {
	if g.count {
		fmt.Fprintln(g.out, g.main.found)
	}
	return g.main.found, g.main.failed, g.out.Flush()
}

// Grep finds the records of keys in a shard directory. It is used by one
// goroutine; the files it reads at once have goroutines of their own,
// which it stops and waits for.
type Grep struct {
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

// shards returns the shards to read, in increasing order.
func (g *Grep) shards() []int {
	var ks []int
	for k := range g.keys {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// files returns the files of shard k in l that the time range keeps.
func (g *Grep) files(l readback.Listing, k int) []readback.File {
	var fs []readback.File
	for _, f := range l.Shards[k] {
		if f.Overlaps(g.since, g.until) {
			fs = append(fs, f)
		}
	}
	return fs
}

// ListFiles prints the files Run would read, in order, one path a line;
// each counts as found.
func (g *Grep) ListFiles(dir string) error {
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
	return nil
}

// Run prints the records of the keys, shard by shard, and with follow
// goes on until ctx is done. Problems with files (broken, removed) are
// noted on Options.Stderr and reading goes on (Finish then reports
// them); the error returned is one that stops it: the directory cannot
// be listed, or the output cannot be written.
func (g *Grep) Run(ctx context.Context, dir string, follow bool) error {
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
			return nil
		}
		t, err := g.readShard(ctx, dir, l, k, follow)
		if t != nil {
			tails = append(tails, tail{k, t})
		}
		if err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		for _, t := range tails {
			if err := g.readTail(t.t, t.k); err != nil {
				return err
			}
		}
		if err := g.out.Flush(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// readShard prints the matching records of shard k's files: the rotated
// ones listed in l, then, through a readback.Tail, those rotated since
// and the current one. With follow it returns the Tail, to read on.
func (g *Grep) readShard(ctx context.Context, dir string, l readback.Listing, k int, follow bool) (*readback.Tail, error) {
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
func (g *Grep) readFiles(ctx context.Context, files []readback.File, keys keySet) error {
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

func (g *Grep) readFile(rd *readback.Reader, f readback.File, keys keySet, to *sink) error {
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
func (g *Grep) readRecords(rd *readback.Reader, keys keySet, to *sink) error {
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return to.broken(err, g.count)
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
func (g *Grep) record(rec readback.Record, keys keySet, to *sink) error {
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

// broken reports the break err in a file and ends the long record whose
// pieces were being printed when it came, if any, so that the next
// record printed starts a line of its own. Only a failed write is
// returned.
func (s *sink) broken(err error, count bool) error {
	s.report(err)
	if !s.printing {
		return nil
	}
	s.printing = false
	if count {
		return nil
	}
	return s.out.WriteByte('\n')
}

// readTail prints the matching records t has for now: files rotated
// since the listing, then the current file's, as far as it is written.
func (g *Grep) readTail(t *readback.Tail, k int) error {
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
			return g.main.broken(err, g.count)
		}
		if rec.Torn {
			fmt.Fprintf(g.stderr, "shardlog grep: %s: line %d: torn last record (no newline at the end of the file)\n", t.Path(), rec.Line)
		}
		if err := g.record(rec, g.keys[k], &g.main); err != nil {
			return err
		}
	}
}
