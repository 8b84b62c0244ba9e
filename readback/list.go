package readback

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shardlog/shardlog/writer"
)

// Kind says who named a shard file.
type Kind int

// The kinds of shard files, in the order a shard's files are listed.
const (
	// LogrotateDated is a file rotated by logrotate with dateext:
	// <file>-YYYYMMDD[.gz|.zst]. Older dates were written first.
	LogrotateDated Kind = iota
	// LogrotateNumbered is a file rotated by logrotate: <file>.<n>[.gz|.zst].
	// Higher numbers were written first.
	LogrotateNumbered
	// Rotated is a file rotated by shardlog itself:
	// <file>.<UTC stamp>[.<n>][.gz|.zst].
	Rotated
	// Current is the file shardlog writes to: <file>.
	Current
)

func (k Kind) String() string {
	switch k {
	case LogrotateDated:
		return "logrotate-dated"
	case LogrotateNumbered:
		return "logrotate-numbered"
	case Rotated:
		return "rotated"
	}
	return "current"
}

// StampLayout is the layout of the UTC time in the name of a file shardlog
// rotated (writer's): fixed width, so that names sort in time order.
const StampLayout = "20060102T150405.000000000Z"

// dateLayout is the layout of logrotate's dateext suffix (its default
// dateformat, -%Y%m%d).
const dateLayout = "20060102"

// File is one file of a shard, as found in its directory.
type File struct {
	// Name is the file's name in the directory; Path is Dir joined with it.
	Name, Path string
	Shard      int
	Kind       Kind
	// Compression is how the file is compressed, by its suffix.
	Compression writer.Compression
	// Stamp is, for a file shardlog rotated, the time in its name: when it
	// was rotated, so no record in it is later. For a file logrotate named
	// with a date, that date (UTC midnight). Zero for others.
	Stamp time.Time
	// Seq is the [.<n>] counter of a file shardlog rotated (0 for none),
	// or logrotate's number.
	Seq int
	// From and To bound the times at which the file's records were
	// written, as far as names tell: To is the file's own Stamp, From the
	// Stamp of the file rotated before it. Zero means unknown: for the
	// current file To is zero (it is still written to), and for files
	// logrotate named both are zero.
	From, To time.Time

	// alts are the same file's other names, read when Name is gone:
	// its compressed copy, complete, while the original waits to be
	// removed (see writer.Archiver).
	alts []alt
}

// alt is another name of a file's content.
type alt struct {
	path string
	comp writer.Compression
}

// Overlaps reports whether the file may hold records written between
// since and until, both included, by its From and To; a zero since or
// until is no bound. A file whose times are unknown always overlaps.
func (f File) Overlaps(since, until time.Time) bool {
	if !since.IsZero() && !f.To.IsZero() && f.To.Before(since) {
		return false
	}
	if !until.IsZero() && !f.From.IsZero() && f.From.After(until) {
		return false
	}
	return true
}

// Listing is what List found in a directory.
type Listing struct {
	// Shards holds, for each shard k, its files in the order they were
	// written: files logrotate named with a date (oldest first), then
	// those it numbered (highest first), then those shardlog rotated (by
	// the time in their names, then by counter, .10 after .9), then the
	// current file. A name that exists both plain and compressed (a
	// compression just finished) is listed once, plain.
	Shards [][]File
	// Ignored lists the names in the directory that are no shard files of
	// the routing: the routing record, the lock, compressed copies being
	// written (*.tmp), anything else.
	Ignored []string
}

// List lists the files of every shard of r in dir. Mixing logrotate's
// rotation with shardlog's own in one directory is not supported (see
// deploy/logrotate.conf): both are listed, logrotate's first.
func List(dir string, r Routing) (Listing, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Listing{}, fmt.Errorf("list %s: %w", dir, err)
	}
	names := make(map[string]int, r.Shards)
	for k := range r.Shards {
		names[r.FileName(k)] = k
	}
	l := Listing{Shards: make([][]File, r.Shards)}
	for _, e := range entries {
		f, ok := parseName(e.Name(), names)
		if !ok || !e.Type().IsRegular() {
			l.Ignored = append(l.Ignored, e.Name())
			continue
		}
		f.Path = filepath.Join(dir, f.Name)
		l.Shards[f.Shard] = append(l.Shards[f.Shard], f)
	}
	for k, fs := range l.Shards {
		l.Shards[k] = order(fs)
	}
	return l, nil
}

// ListShard lists the files of shard k of r in dir, as List does.
func ListShard(dir string, r Routing, k int) ([]File, error) {
	if k < 0 || k >= r.Shards {
		return nil, fmt.Errorf("shard %d: not one of 0 to %d", k, r.Shards-1)
	}
	l, err := List(dir, r)
	if err != nil {
		return nil, err
	}
	return l.Shards[k], nil
}

// parseName parses name as a file of one of the shards whose current
// files are named (name to shard).
func parseName(name string, names map[string]int) (File, bool) {
	f := File{Name: name, Compression: writer.CompressNone}
	if strings.HasSuffix(name, ".tmp") {
		return f, false // a compressed copy being written
	}
	s := name
	for _, c := range []struct {
		suffix string
		comp   writer.Compression
	}{{".gz", writer.CompressGzip}, {".zst", writer.CompressZstd}} {
		if t, ok := strings.CutSuffix(s, c.suffix); ok {
			s, f.Compression = t, c.comp
			break
		}
	}
	if k, ok := names[s]; ok {
		f.Shard, f.Kind = k, Current
		return f, f.Compression == writer.CompressNone
	}
	// <file>.<n>: logrotate's number, or the counter after a stamp.
	if i := strings.LastIndexByte(s, '.'); i >= 0 && isDigits(s[i+1:]) {
		n, err := strconv.Atoi(s[i+1:])
		if err != nil {
			return f, false
		}
		if k, ok := names[s[:i]]; ok {
			f.Shard, f.Kind, f.Seq = k, LogrotateNumbered, n
			return f, true
		}
		if f, ok := parseStamped(f, s[:i], names); ok {
			f.Seq = n
			return f, true
		}
		return f, false
	}
	if f, ok := parseStamped(f, s, names); ok {
		return f, true
	}
	// <file>-YYYYMMDD: logrotate's dateext.
	if i := strings.LastIndexByte(s, '-'); i >= 0 && len(s)-i-1 == len(dateLayout) && isDigits(s[i+1:]) {
		t, err := time.Parse(dateLayout, s[i+1:])
		if k, ok := names[s[:i]]; ok && err == nil {
			f.Shard, f.Kind, f.Stamp = k, LogrotateDated, t
			return f, true
		}
	}
	return f, false
}

// parseStamped parses s as <file>.<stamp> into f.
func parseStamped(f File, s string, names map[string]int) (File, bool) {
	if len(s) < len(StampLayout)+2 || s[len(s)-len(StampLayout)-1] != '.' {
		return f, false
	}
	t, err := time.Parse(StampLayout, s[len(s)-len(StampLayout):])
	if err != nil {
		return f, false
	}
	k, ok := names[s[:len(s)-len(StampLayout)-1]]
	if !ok {
		return f, false
	}
	f.Shard, f.Kind, f.Stamp = k, Rotated, t
	return f, true
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// order sorts one shard's files in the order written, lists a file found
// both plain and compressed once, and sets their From and To.
func order(fs []File) []File {
	slices.SortFunc(fs, func(x, y File) int {
		if c := cmp.Compare(x.Kind, y.Kind); c != 0 {
			return c
		}
		switch x.Kind {
		case LogrotateNumbered:
			if c := cmp.Compare(y.Seq, x.Seq); c != 0 {
				return c
			}
		default:
			if c := x.Stamp.Compare(y.Stamp); c != 0 {
				return c
			}
			if c := cmp.Compare(x.Seq, y.Seq); c != 0 {
				return c
			}
		}
		return cmp.Compare(compRank(x.Compression), compRank(y.Compression))
	})
	// Copies of one content sort next to each other, plain first.
	var out []File
	for _, f := range fs {
		if n := len(out); n > 0 && sameContent(out[n-1], f) {
			out[n-1].alts = append(out[n-1].alts, alt{f.Path, f.Compression})
			continue
		}
		out = append(out, f)
	}
	var prev time.Time // the Stamp of the file before, when known
	for i := range out {
		f := &out[i]
		switch f.Kind {
		case Rotated:
			f.From, f.To = prev, f.Stamp
			prev = f.Stamp
		case Current:
			f.From = prev
		default:
			prev = time.Time{}
		}
	}
	return out
}

// compRank orders the copies of one content: plain (the fastest to read)
// first.
func compRank(c writer.Compression) int {
	switch c {
	case writer.CompressNone:
		return 0
	case writer.CompressZstd:
		return 1
	}
	return 2
}

// sameContent reports whether x and y are copies of one file: the same
// name but for the compression suffix.
func sameContent(x, y File) bool {
	return x.Kind == y.Kind && x.Kind != Current && x.Shard == y.Shard && x.Stamp.Equal(y.Stamp) && x.Seq == y.Seq
}

// open opens f, or, if it is gone, one of its other copies: a rotated
// file is removed once its compressed copy is complete, possibly between
// List and open. It returns the path and compression of the copy opened.
func (f File) open() (*os.File, string, writer.Compression, error) {
	h, err := os.Open(f.Path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return h, f.Path, f.Compression, err
	}
	for _, a := range f.alts {
		if h, aerr := os.Open(a.path); aerr == nil || !errors.Is(aerr, fs.ErrNotExist) {
			return h, a.path, a.comp, aerr
		}
	}
	return nil, f.Path, f.Compression, err
}

// Alts returns the paths of the file's other copies (plain and
// compressed copies of one rotated file, found together), which Open
// reads when Path is gone.
func (f File) Alts() []string {
	var ps []string
	for _, a := range f.alts {
		ps = append(ps, a.path)
	}
	return ps
}
