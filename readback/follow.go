package readback

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTruncated is returned by Follower.Next when the file followed became
// shorter than what was read of it (logrotate's copytruncate): reading
// goes on from its start.
var ErrTruncated = errors.New("file truncated: reading it again from its start")

// Follower reads the records written to a shard's current file, by name,
// as tail -F does. When the name comes to point to another file (shardlog
// rotated the file, or logrotate renamed it and shardlog reopened the name
// on SIGHUP) it reads the file it had to its end, then the new one from its
// start. It switches only once the new file holds data: until shardlog
// reopens the name (between logrotate's rename and the SIGHUP), records
// still go to the renamed file, and after it never again. A last record
// without its '\n' is a write in progress: it is returned once whole.
type Follower struct {
	path     string
	f        *os.File
	fi       os.FileInfo
	sp       splitter
	draining bool // the name points to a new file: read f to its end
}

// NewFollower returns a Follower of the file named path, open as f, read
// from its start. It takes f over: Close closes it.
func NewFollower(path string, f *os.File, opt Options) (*Follower, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", path, err)
	}
	r := NewReader(opt) // for its defaults
	t := &Follower{path: path, f: f, fi: fi, sp: newSplitter(r.opt.MaxRecord)}
	t.sp.reset(f)
	return t, nil
}

// Next returns the next whole record written, or io.EOF when there is
// none for now: call it again later (poll). It returns ErrTruncated, once,
// when the file was cut short and is read again from its start, and a
// *StreamError when the file cannot be read.
func (t *Follower) Next() (Record, error) {
	for {
		rec, err := t.sp.next(!t.draining)
		if err == nil {
			return rec, nil
		}
		if !errors.Is(err, io.EOF) {
			return Record{}, &StreamError{Path: t.path, Line: t.sp.line, Offset: t.sp.off, Read: t.sp.off + int64(t.sp.w-t.sp.r), Err: err}
		}
		if t.draining {
			if err := t.switchFile(); err != nil {
				return Record{}, io.EOF // try again at the next poll
			}
			continue
		}
		now, err := os.Stat(t.path)
		if err != nil {
			return Record{}, io.EOF // gone for now: the old file may still grow
		}
		if os.SameFile(now, t.fi) {
			if cur, err := t.f.Stat(); err == nil && cur.Size() < t.sp.off+int64(t.sp.w-t.sp.r) {
				if _, err := t.f.Seek(0, io.SeekStart); err != nil {
					return Record{}, &StreamError{Path: t.path, Line: t.sp.line, Offset: t.sp.off, Err: err}
				}
				t.sp.reset(t.f)
				return Record{}, ErrTruncated
			}
			return Record{}, io.EOF
		}
		if now.Size() == 0 {
			return Record{}, io.EOF // not written to yet: the old file may still be
		}
		t.draining = true
	}
}

// switchFile opens the file the name now points to, to read from its
// start, once the old one is read to its end.
func (t *Follower) switchFile() error {
	f, err := os.Open(t.path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	t.f.Close()
	t.f, t.fi, t.draining = f, fi, false
	t.sp.reset(f)
	return nil
}

// Path returns the path followed.
func (t *Follower) Path() string { return t.path }

// Close closes the file being read.
func (t *Follower) Close() error { return t.f.Close() }
