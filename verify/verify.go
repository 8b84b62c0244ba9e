// Package verify checks a shard directory against its routing: that
// every record of every file (rotated and compressed included) is in the
// shard its key hashes to, that files end with whole records, that
// compressed files read to their end, that rotated files' names agree with
// what their times tell, and, for a cluster member's directory, that it
// holds only its own shards. shardlog verify is built on it.
//
// Checking changes nothing in the directory and takes no lock.
package verify

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shardlog/shardlog/readback"
	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

// DefaultMaxPerFile is how many records in a wrong shard are named one by
// one per file before the rest are counted in one finding.
const DefaultMaxPerFile = 100

// Slack is how far apart two times may be before they count as out of
// order: file systems and clocks are not exact.
const Slack = time.Second

// Options configure Check.
type Options struct {
	// Shards limits the check to these shards (nil: all of them).
	Shards []int
	// Workers is how many shards are read at once (0: GOMAXPROCS).
	Workers int
	// MaxRecord is the longest record read whole (readback.Options).
	MaxRecord int
	// MaxPerFile bounds the records in a wrong shard named one by one in
	// a file (0: DefaultMaxPerFile); the others are counted in one finding,
	// so that memory stays bounded however wrong a file is.
	MaxPerFile int
	// Live says that a shardlog holds the directory (its lock): a torn last
	// record of a current file is then a write in progress, noted, not a
	// finding. Holder names it.
	Live   bool
	Holder string
	// Now is the clock, for stamps in the future (nil: time.Now).
	Now func() time.Time
}

// Finding is one thing Check found, about one file (Path) and, when Line
// is not zero, one of its records.
type Finding struct {
	Shard int
	Path  string
	Line  int64
	Text  string
	// Note says that it is worth a look but no fault: an ignored name, a
	// write in progress.
	Note bool
}

// String writes f as one line: "path: line n: text" (notes begin with
// "note: ").
func (f Finding) String() string {
	var b strings.Builder
	if f.Note {
		b.WriteString("note: ")
	}
	b.WriteString(f.Path)
	if f.Line > 0 {
		b.WriteString(": line ")
		b.WriteString(strconv.FormatInt(f.Line, 10))
	}
	b.WriteString(": ")
	b.WriteString(f.Text)
	return b.String()
}

// Summary counts what Check read and found.
type Summary struct {
	Files, Records, Bytes int64
	Findings, Notes       int64
}

func (s *Summary) add(o Summary) {
	s.Files += o.Files
	s.Records += o.Records
	s.Bytes += o.Bytes
	s.Findings += o.Findings
	s.Notes += o.Notes
}

// Check checks the files of dir under rt and calls report with each
// finding, in order: notes about the directory first, then shard by
// shard, file by file in the order they were written, line by line.
// Shards are read by Options.Workers goroutines at once, each with its
// own readback.Reader; the findings of a shard read ahead of its turn wait
// in memory, at most MaxPerFile-odd of them per file. It returns what it
// read and found; an error only when the directory cannot be listed.
func Check(dir string, rt readback.Routing, opt Options, report func(Finding)) (Summary, error) {
	if opt.MaxPerFile <= 0 {
		opt.MaxPerFile = DefaultMaxPerFile
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	own, err := memberShards(rt.MemberShards, rt.Shards)
	if err != nil {
		return Summary{}, fmt.Errorf("routing record's member_shards: %w", err)
	}
	l, err := readback.List(dir, rt)
	if err != nil {
		return Summary{}, err
	}
	shards := opt.Shards
	if shards == nil {
		shards = make([]int, rt.Shards)
		for k := range shards {
			shards[k] = k
		}
	}
	var sum Summary
	if opt.Shards == nil {
		for _, name := range l.Ignored {
			if ownFile(name) {
				continue
			}
			sum.Notes++
			report(Finding{Shard: -1, Path: dir + "/" + name, Note: true, Text: fmt.Sprintf(
				"ignored: not a file of this directory's shards (%d shards, file pattern %q)", rt.Shards, rt.FilePattern)})
		}
	}

	// Each shard's findings go to its own slot; the caller's goroutine
	// reports them in shard order as they complete.
	type result struct {
		fs  []Finding
		sum Summary
	}
	results := make([]chan result, len(shards))
	for i := range results {
		results[i] = make(chan result, 1)
	}
	next := make(chan int)
	var wg sync.WaitGroup
	zc := 2
	if opt.Workers > 1 {
		zc = 1 // the shards read at once keep the cores busy
	}
	for range min(opt.Workers, len(shards)) {
		wg.Go(func() {
			rd := readback.NewReader(readback.Options{MaxRecord: opt.MaxRecord, ZstdConcurrency: zc})
			defer rd.Close()
			for i := range next {
				c := checker{rt: rt, opt: opt, rd: rd, k: shards[i]}
				if own != nil && !own[c.k] {
					c.alien = true
				}
				c.shard(l.Shards[c.k])
				results[i] <- result{c.found, c.sum}
			}
		})
	}
	wg.Go(func() {
		defer close(next)
		for i := range shards {
			next <- i
		}
	})
	for i := range shards {
		r := <-results[i]
		for _, f := range r.fs {
			report(f)
		}
		sum.add(r.sum)
	}
	wg.Wait()
	return sum, nil
}

// ownFile reports whether name is one of shardlog's own files in a shard
// directory, which are no shard files and need no note.
func ownFile(name string) bool {
	switch name {
	case writer.RoutingFile, writer.LockFile, writer.RoutingFile + ".tmp":
		return true
	}
	return strings.HasPrefix(name, ".shardlog-")
}

// checker checks the files of one shard.
type checker struct {
	rt    readback.Routing
	opt   Options
	rd    *readback.Reader
	k     int
	alien bool // the shard is another member's
	found []Finding
	sum   Summary
}

func (c *checker) add(path string, line int64, note bool, format string, a ...any) {
	c.found = append(c.found, Finding{Shard: c.k, Path: path, Line: line, Note: note, Text: fmt.Sprintf(format, a...)})
	if note {
		c.sum.Notes++
	} else {
		c.sum.Findings++
	}
}

// shard checks the files of the shard, in the order written.
func (c *checker) shard(files []readback.File) {
	now := c.opt.Now()
	for _, f := range files {
		if c.alien && !emptyCurrent(f) {
			c.add(f.Path, 0, false, "shard %d is not this member's (member %s of cluster %s has shards %s)",
				c.k, c.rt.Member, c.rt.Cluster, c.rt.MemberShards)
		}
		if f.Kind == readback.Rotated {
			c.names(f, now)
		}
		c.file(f)
		for _, alt := range f.Alts() {
			c.copyOf(f, alt)
		}
	}
}

// emptyCurrent reports whether f is an empty current file, which a
// member's directory may hold for another member's shard: members of
// earlier versions opened every shard's file and wrote only their own.
func emptyCurrent(f readback.File) bool {
	st, err := os.Stat(f.Path)
	return f.Kind == readback.Current && err == nil && st.Size() == 0
}

// names checks what a rotated file's name and times tell: its stamp (the
// time it was rotated) is not in the future, and a plain one was not
// written after it.
func (c *checker) names(f readback.File, now time.Time) {
	if f.Stamp.After(now.Add(Slack)) {
		c.add(f.Path, 0, false, "rotated name out of order: its time %s is in the future", f.Stamp.Format(time.RFC3339Nano))
	}
	if f.Compression != writer.CompressNone {
		return // compressed after it was rotated: its time is the compression's
	}
	if st, err := os.Stat(f.Path); err == nil && st.ModTime().After(f.Stamp.Add(Slack)) {
		c.add(f.Path, 0, false, "rotated name out of order: modified at %s, after the time in its name (%s)",
			st.ModTime().UTC().Format(time.RFC3339Nano), f.Stamp.Format(time.RFC3339Nano))
	}
}

// file reads f's records, checking each one's shard.
func (c *checker) file(f readback.File) {
	path, err := c.rd.Open(f)
	if errors.Is(err, fs.ErrNotExist) {
		return // removed by retention since it was listed
	}
	if err != nil {
		c.add(f.Path, 0, false, "unreadable: %v", err)
		return
	}
	c.sum.Files++
	wrong, more := 0, false
	var line int64
	for {
		rec, err := c.rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *readback.StreamError
			if errors.As(err, &se) {
				c.add(path, se.Line, false, "unreadable from here: %v (after %d bytes of content, %d bytes of the file read)", se.Err, se.Offset, se.Read)
			} else {
				c.add(path, line, false, "unreadable: %v", err)
			}
			break
		}
		line = rec.Line
		c.sum.Bytes += int64(len(rec.Data))
		if !rec.More && !rec.Torn {
			c.sum.Bytes++ // its '\n'
		}
		if more {
			more = rec.More
			continue // a piece of a long record: its first piece was checked
		}
		more = rec.More
		c.sum.Records++
		if rec.Torn {
			if f.Kind == readback.Current && c.opt.Live {
				c.add(path, rec.Line, true, "last record without its newline: a write in progress (%s holds the directory)", c.opt.Holder)
			} else {
				c.add(path, rec.Line, false, "torn last record: no newline at the end of the file")
			}
			continue // incomplete: its key may be cut short
		}
		if rec.More && c.rt.Key == shard.KeyMessage {
			continue // longer than MaxRecord: its whole-message key is not at hand
		}
		key, _ := c.rt.KeyOf(rec.Data)
		if k := c.rt.ShardOf(key); k != c.k {
			wrong++
			if wrong <= c.opt.MaxPerFile {
				c.add(path, rec.Line, false, "record in shard %d belongs to shard %d", c.k, k)
			}
		}
	}
	if wrong > c.opt.MaxPerFile {
		c.add(path, 0, false, "%d more records in the wrong shard (the first %d are named above)", wrong-c.opt.MaxPerFile, c.opt.MaxPerFile)
	}
}

// copyOf compares a rotated file's other copy (plain and compressed both
// present: a compression just finished, or one that went wrong) with the
// file: their contents must have the same length.
func (c *checker) copyOf(f readback.File, alt string) {
	st, err := os.Stat(f.Path)
	if err != nil {
		return
	}
	comp := writer.CompressGzip
	if strings.HasSuffix(alt, ".zst") {
		comp = writer.CompressZstd
	}
	h, err := os.Open(alt)
	if err != nil {
		return // removed since it was listed
	}
	defer h.Close()
	if err := c.rd.Reset(h, alt, comp); err != nil {
		c.add(alt, 0, false, "unreadable: %v", err)
		return
	}
	var n int64
	for {
		rec, err := c.rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			c.add(alt, 0, false, "unreadable copy of %s: %v", f.Name, err)
			return
		}
		n += int64(len(rec.Data))
		if !rec.More && !rec.Torn {
			n++
		}
	}
	if n != st.Size() {
		c.add(alt, 0, false, "compressed copy of %s holds %d bytes, the plain file %d", f.Name, n, st.Size())
	}
}

// ParseShards parses a list of shards such as "3,7" or "0-3,8" (a
// member's "0-3+8-11" too) among n, in the order given, each once.
func ParseShards(s string, n int) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for part := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ',' || r == '+' }) {
		a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
		first, err1 := strconv.Atoi(a)
		last := first
		var err2 error
		if isRange {
			last, err2 = strconv.Atoi(b)
		}
		switch {
		case err1 != nil || err2 != nil || first < 0:
			return nil, fmt.Errorf("%q: want shard numbers or ranges such as 3,7 or 0-3", part)
		case last < first:
			return nil, fmt.Errorf("%q: the range ends before it starts", part)
		case last >= n:
			return nil, fmt.Errorf("%q: there are shards 0 to %d", part, n-1)
		}
		for k := first; k <= last; k++ {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q: no shard given", s)
	}
	return out, nil
}

// memberShards returns the set of a member's shards, or nil when ranges
// is empty (no member: every shard is the directory's).
func memberShards(ranges string, n int) (map[int]bool, error) {
	if ranges == "" {
		return nil, nil
	}
	ks, err := ParseShards(ranges, n)
	if err != nil {
		return nil, err
	}
	own := make(map[int]bool, len(ks))
	for _, k := range ks {
		own[k] = true
	}
	return own, nil
}
