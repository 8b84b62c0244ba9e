package readback

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/shardlog/shardlog/writer"
)

// ErrTruncated is returned by Tail.Next when the current file became
// shorter than what was read of it (logrotate's copytruncate): reading
// goes on from its start.
var ErrTruncated = errors.New("file truncated: reading it again from its start")

// Tail reads a shard's newest records: the files shardlog rotated after a
// given one, then the current file, opened by name. Following, it goes on
// reading the current file as it grows, as tail -F does, across rotations:
//
//   - shardlog's own: when files were rotated after the last one read,
//     the first of them is the file being read (it was the current one,
//     renamed): it is read to its end, then the others (compressed or
//     not), then the new current file from its start. However many
//     rotations happen between two looks, no file is skipped.
//   - logrotate's rename with SIGHUP: when the name points to another file
//     that holds data, the renamed file is read to its end, then the new
//     one. Until it holds data (shardlog reopens the name on SIGHUP, after
//     logrotate created it), records still go to the renamed file, and
//     after it never again.
//
// A last record without its '\n' is a write in progress while following:
// it is returned once whole. A Tail is used by one goroutine.
type Tail struct {
	dir    string
	rt     Routing
	k      int
	path   string
	follow bool

	after   *File  // the last rotated file read; nil: none
	pending []File // rotated files to read before f
	opt     Options
	rd      *Reader // reading pending[0]; its file is open while rdOpen; nil until needed
	rdOpen  bool

	f        *os.File // the current file, as opened by name; nil: not yet
	fi       os.FileInfo
	sp       splitter
	draining bool // f is read to its end, then dropped
	done     bool // not following: the current file is read
}

// NewTail returns a Tail of shard k of rt in dir that reads the files
// rotated after the rotated file after (nil: every rotated file), then
// the current file. With follow it goes on as the files grow and rotate;
// without, it ends (io.EOF) at the current file's end as it is then.
func NewTail(dir string, rt Routing, k int, after *File, follow bool, opt Options) *Tail {
	opt = opt.withDefaults()
	return &Tail{dir: dir, rt: rt, k: k, path: filepath.Join(dir, rt.FileName(k)), follow: follow, after: after, opt: opt,
		sp: newSplitter(opt.MaxRecord)}
}

// Path returns the path of the file being read.
func (t *Tail) Path() string {
	if t.rdOpen {
		return t.rd.Path()
	}
	return t.path
}

// Next returns the next record. It returns io.EOF when there is none for
// now: following, call it again later (poll); else the end. An error
// about one file (a *StreamError, one wrapping fs.ErrNotExist for a
// rotated file removed before it was read, ErrTruncated) is returned
// once; the next call goes on with what follows.
func (t *Tail) Next() (Record, error) {
	for {
		if t.rdOpen {
			rec, err := t.rd.Next()
			if err == nil {
				return rec, nil
			}
			t.doneRotated()
			if !errors.Is(err, io.EOF) {
				return Record{}, err
			}
			continue
		}
		if len(t.pending) > 0 {
			if t.rd == nil {
				t.rd = NewReader(t.opt)
			}
			if _, err := t.rd.Open(t.pending[0]); err != nil {
				t.doneRotated()
				return Record{}, err
			}
			t.rdOpen = true
			continue
		}
		if t.done {
			return Record{}, io.EOF
		}
		if t.f == nil {
			if err := t.acquire(); err != nil {
				return Record{}, err
			}
			if len(t.pending) > 0 {
				continue
			}
			if t.f == nil {
				t.done = !t.follow
				return Record{}, io.EOF
			}
		}
		rec, err := t.sp.next(t.follow && !t.draining)
		switch {
		case err == nil:
			return rec, nil
		case !errors.Is(err, io.EOF):
			t.drop()
			t.done = !t.follow
			return Record{}, &StreamError{Path: t.path, Line: t.sp.line, Offset: t.sp.off, Err: err}
		case !t.follow:
			t.drop()
			t.done = true
			return Record{}, io.EOF
		case t.draining:
			t.drop() // then the files rotated after it, and the new one
			continue
		}
		again, err := t.check()
		if err != nil {
			return Record{}, err
		}
		if !again {
			return Record{}, io.EOF
		}
	}
}

// doneRotated ends the reading of pending[0].
func (t *Tail) doneRotated() {
	t.rd.closeFile()
	t.rdOpen = false
	f := t.pending[0]
	t.after = &f
	t.pending = t.pending[1:]
}

// acquire opens the current file by name, then lists the files rotated
// after t.after, up to the one that is the file opened (rotated already):
// those are read first. Opening first and listing after, no rotation can
// fall between the two unseen.
func (t *Tail) acquire() error {
	f, err := os.Open(t.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = nil // not there yet: pending files may be
		}
		f = nil
	}
	var fi os.FileInfo
	if f != nil {
		if fi, err = f.Stat(); err != nil {
			f.Close()
			return fmt.Errorf("follow %s: %w", t.path, err)
		}
	}
	rotated, lerr := t.rotatedAfter()
	if lerr != nil {
		if f != nil {
			f.Close()
		}
		return lerr
	}
	for _, r := range rotated {
		if fi != nil && r.Compression == writer.CompressNone {
			if rfi, err := os.Stat(r.Path); err == nil && os.SameFile(rfi, fi) {
				break
			}
		}
		t.pending = append(t.pending, r)
	}
	if f != nil {
		t.f, t.fi = f, fi
		t.sp.reset(f)
	}
	return err
}

// rotatedAfter lists shard k's files shardlog rotated after t.after, in
// order.
func (t *Tail) rotatedAfter() ([]File, error) {
	fs, err := ListShard(t.dir, t.rt, t.k)
	if err != nil {
		return nil, err
	}
	var out []File
	for _, f := range fs {
		if f.Kind == Rotated && (t.after == nil || rotatedAfter(f, *t.after)) {
			out = append(out, f)
		}
	}
	return out, nil
}

// rotatedAfter reports whether rotated file f was rotated after g.
func rotatedAfter(f, g File) bool {
	if c := f.Stamp.Compare(g.Stamp); c != 0 {
		return c > 0
	}
	return f.Seq > g.Seq
}

// check looks, at the end of the current file, whether it was rotated,
// truncated or replaced. It reports whether to read on at once. While the
// name still points to the file being read, which is the common case at
// each look, it costs one stat: the directory is listed only once the
// name points elsewhere.
func (t *Tail) check() (bool, error) {
	now, err := os.Stat(t.path)
	if err == nil && os.SameFile(now, t.fi) {
		if cur, err := t.f.Stat(); err == nil && cur.Size() < t.sp.off+int64(t.sp.w-t.sp.r) {
			if _, err := t.f.Seek(0, io.SeekStart); err != nil {
				return false, &StreamError{Path: t.path, Line: t.sp.line, Offset: t.sp.off, Err: err}
			}
			t.sp.reset(t.f)
			return false, ErrTruncated
		}
		return false, nil
	}
	rotated, lerr := t.rotatedAfter()
	if lerr != nil {
		return false, lerr
	}
	switch {
	case len(rotated) > 0:
		// shardlog rotated it: the file being read is the first rotated
		// after t.after. Read it to its end, then the others, then the
		// new current file.
		first := rotated[0]
		t.after = &first
	case err != nil:
		return false, nil // gone for now: the old file may still grow
	case now.Size() == 0:
		return false, nil // not written to yet: the old file may still be
	}
	t.draining = true
	return true, nil
}

// drop closes the current file, read.
func (t *Tail) drop() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	t.draining = false
}

// Close closes the files open and releases the decoders.
func (t *Tail) Close() error {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	if t.rd == nil {
		return nil
	}
	return t.rd.Close()
}
