// Package reshard holds what shardlog reshard needs beside run's writers
// and routers: the marker it keeps in the directory it writes (how far it
// got, and that it did not finish), the checks of that directory, and the
// stream of a source shard's records that its routers read.
package reshard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/shardlog/shardlog/readback"
	"github.com/shardlog/shardlog/writer"
)

// Marker is the file a reshard keeps in the directory it writes
// while it runs, and leaves there when it does not finish: a directory
// holding it is incomplete, and a reshard refuses to write into it again.
const Marker = ".shardlog-reshard.json"

// CheckNewDir refuses a NEWDIR that a reshard began and did not finish,
// or that holds records: only a missing directory, or one without data
// (an empty shard file, its routing record, its lock), is written into.
// Another routing's record is openShards' to refuse, naming both.
func CheckNewDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == Marker {
			return fmt.Errorf("--to %s: a reshard into it began and did not finish (%s holds how far it got): "+
				"reshard does not resume; remove %s and start again", dir, filepath.Join(dir, Marker), dir)
		}
		if name == writer.RoutingFile || name == writer.LockFile {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("--to: %w", err)
		}
		if !info.Mode().IsRegular() || info.Size() > 0 {
			return fmt.Errorf("--to %s: holds %s (%d bytes): reshard writes into a new or empty directory, so that no record is there twice",
				dir, name, info.Size())
		}
	}
	return nil
}

// Unfinished refuses dir, for run, when a reshard into it began
// and did not finish: its records are incomplete. (Reshard itself refuses
// it earlier, in CheckNewDir.)
func Unfinished(dir string) error {
	path := filepath.Join(dir, Marker)
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	return fmt.Errorf("dir %s: a reshard into it began and did not finish (%s holds how far it got): its records are incomplete; "+
		"remove %s and reshard again", dir, path, dir)
}

// Progress is what the marker holds.
type Progress struct {
	From        string         `json:"from"`
	FromRouting writer.Routing `json:"from_routing"`
	Routing     writer.Routing `json:"routing"`
	Started     time.Time      `json:"started"`
	State       string         `json:"state"` // "running" or "interrupted"
	// ShardsDone are the source shards all of whose records were written.
	ShardsDone     []int `json:"source_shards_done"`
	RecordsWritten int64 `json:"records_written"`
}

// markerSize is the space a marker reserves when it is made: its updates
// are written in place, into it, so that a reshard stopped by a full disk
// can still say how far it got.
const markerSize = 4096

// WriteMarker writes p as dir's marker with mode. The first write makes
// the marker atomically (a temporary file renamed), padded with spaces to
// markerSize; later ones overwrite it in place, padded to its size, so
// that they need no new space on the disk.
func WriteMarker(dir string, mode os.FileMode, p Progress) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	path := filepath.Join(dir, Marker)
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		if st, err := f.Stat(); err == nil && int64(len(data)) <= st.Size() {
			_, werr := f.WriteAt(pad(data, int(st.Size())), 0)
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				return fmt.Errorf("write %s: %w", path, werr)
			}
			return nil
		}
		f.Close()
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pad(data, markerSize), 0o600); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// pad returns data followed by spaces up to n bytes (JSON allows trailing
// white space); data as it is if it is as long.
func pad(data []byte, n int) []byte {
	if len(data) >= n {
		return data
	}
	return append(data, bytes.Repeat([]byte{' '}, n-len(data))...)
}

// Counts is what the streams of one reshard add up: the files they
// opened, and whether one could not be read whole.
type Counts struct {
	Files  atomic.Int64
	Broken atomic.Bool
}

// Stream is the content of one source shard's files, read in order,
// as one stream of lines: each record with its '\n' (a torn last record
// gets one, so that it does not run into the next file's first). It feeds
// an ingest.Lines source, which frames and routes it as run routes
// standard input. Once its context is done it ends, at the end of the
// record it is copying out: the source must not be stopped by its own
// context, which would route the part of a record read so far as a
// record of its own (a pipe's reader does that with a last partial line;
// a file's reader must not).
type Stream struct {
	ctx    context.Context
	counts *Counts
	stderr io.Writer
	rd     *readback.Reader
	files  []readback.File
	open   bool   // a file is being read
	pend   []byte // the rest of the record being copied out
	nl     bool   // a '\n' follows pend
	more   bool   // pend is a piece of a record longer than MaxRecord, more follows
	done   bool   // every file was read
}

// NewStream returns the stream of files (a source shard's, in the order
// written) read with rd, adding to counts and noting on stderr what
// could not be read, until ctx is done.
func NewStream(ctx context.Context, rd *readback.Reader, files []readback.File, counts *Counts, stderr io.Writer) *Stream {
	return &Stream{ctx: ctx, counts: counts, stderr: stderr, rd: rd, files: files}
}

// Done reports whether every file was read.
func (s *Stream) Done() bool { return s.done }

// Read fills p with whole and partial records, file after file.
func (s *Stream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case len(s.pend) > 0:
			c := copy(p[n:], s.pend)
			s.pend = s.pend[c:]
			n += c
			continue
		case s.nl:
			p[n] = '\n'
			n++
			s.nl = false
			continue
		case s.ctx.Err() != nil && !s.more: // between two records
			if n > 0 {
				return n, nil
			}
			return 0, io.EOF
		case !s.open:
			if len(s.files) == 0 {
				s.done = true
				if n > 0 {
					return n, nil
				}
				return 0, io.EOF
			}
			f := s.files[0]
			s.files = s.files[1:]
			if _, err := s.rd.Open(f); err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					s.counts.Broken.Store(true)
					fmt.Fprintf(s.stderr, "shardlog reshard: %v\n", err)
				}
				continue
			}
			s.open = true
			s.counts.Files.Add(1)
			continue
		}
		rec, err := s.rd.Next()
		if errors.Is(err, io.EOF) {
			s.open = false
			continue
		}
		if err != nil {
			s.counts.Broken.Store(true)
			fmt.Fprintf(s.stderr, "shardlog reshard: %v: the records before the break are rewritten, the rest of the file is not\n", err)
			s.open = false
			if s.more {
				// The pieces of a long record the break cut are
				// passed on already: end that record here.
				s.nl, s.more = true, false
			}
			continue
		}
		if rec.Torn {
			fmt.Fprintf(s.stderr, "shardlog reshard: %s: line %d: torn last record: rewritten whole, with a newline\n", s.rd.Path(), rec.Line)
		}
		s.pend, s.nl, s.more = rec.Data, !rec.More, rec.More
	}
	return n, nil
}
