package readback

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shardlog/shardlog/writer"
)

// appendFile appends data to the file at path, creating it.
func appendFile(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// available returns the records t has now, up to io.EOF, torn ones
// marked "(torn)"; ErrTruncated is returned as the record "(truncated)".
func available(tb *testing.T, t *Tail) []string {
	tb.Helper()
	var recs []string
	for {
		rec, err := t.Next()
		switch {
		case errors.Is(err, io.EOF):
			return recs
		case errors.Is(err, ErrTruncated):
			recs = append(recs, "(truncated)")
		case err != nil:
			tb.Fatal(err)
		default:
			s := string(rec.Data)
			if rec.Torn {
				s += "(torn)"
			}
			recs = append(recs, s)
		}
	}
}

// rotate renames path as shardlog does, with the given stamp.
func rotate(t *testing.T, path, stamp string) string {
	t.Helper()
	to := path + "." + stamp
	if err := os.Rename(path, to); err != nil {
		t.Fatal(err)
	}
	return to
}

// TestTailFollow follows a shard's current file across a write in
// progress, a logrotate rename (records still written to the renamed
// file until the new one gets data), shardlog's rotations (several
// between two looks, one of them compressed and its original removed), a
// removal and a truncation.
func TestTailFollow(t *testing.T) {
	dir := t.TempDir()
	rt := testRouting(t, 1, "message")
	path := filepath.Join(dir, "shard-000.log")
	appendFile(t, path+".20261203T090000.000000000Z", "old\n")
	appendFile(t, path, "a\nb\n")
	fs, err := ListShard(dir, rt, 0)
	if err != nil {
		t.Fatal(err)
	}
	tl := NewTail(dir, rt, 0, &fs[0], true, Options{})
	defer tl.Close()
	steps := []struct {
		do   func()
		want []string
	}{
		{func() {}, []string{"a", "b"}},
		{func() { appendFile(t, path, "c\npar") }, []string{"c"}},
		{func() { appendFile(t, path, "tial\n") }, []string{"partial"}},
		// Renamed, and a new empty file made (logrotate's create): the
		// writer still writes to the renamed one.
		{func() {
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, "")
			appendFile(t, path+".1", "d\n")
		}, []string{"d"}},
		// Reopened: the old file's last records, then the new file's.
		{func() {
			appendFile(t, path+".1", "e\n")
			appendFile(t, path, "f\n")
		}, []string{"e", "f"}},
		// shardlog's own rotations, three between two looks; the second
		// rotated file compressed, its original removed.
		{func() {
			appendFile(t, path, "g\n")
			rotate(t, path, "20261203T100000.000000000Z")
			appendFile(t, path, "h\n")
			second := rotate(t, path, "20261203T100000.000000000Z.1")
			if err := os.WriteFile(second+".zst", compress(t, writer.CompressZstd, []byte("h\n")), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Remove(second)
			appendFile(t, path, "i\n")
			rotate(t, path, "20261203T100001.000000000Z")
			appendFile(t, path, "j\n")
		}, []string{"g", "h", "i", "j"}},
		// Removed and not made again yet.
		{func() { os.Remove(path) }, nil},
		{func() { appendFile(t, path, "k\n") }, []string{"k"}},
		// copytruncate.
		{func() {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, []string{"(truncated)"}},
		{func() { appendFile(t, path, "l\n") }, []string{"l"}},
	}
	for i, s := range steps {
		s.do()
		if got := available(t, tl); !slices.Equal(got, s.want) {
			t.Errorf("step %d: got %q, want %q", i, got, s.want)
		}
	}
}

// TestTailEnd reads, without following, the files rotated after a given
// one and the current file, whose torn last record comes back torn; the
// current file missing, it ends after the rotated ones.
func TestTailEnd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		current string // "" for none
		want    []string
	}{
		{"current", "c1\nc2", []string{"r2", "r3", "c1", "c2(torn)"}},
		{"no current", "", []string{"r2", "r3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rt := testRouting(t, 1, "message")
			path := filepath.Join(dir, "shard-000.log")
			appendFile(t, path+".20261203T090000.000000000Z", "r1\n")
			fs, err := ListShard(dir, rt, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Rotated after the listing.
			writeFile(t, path+".20261203T100000.000000000Z.gz", writer.CompressGzip, []byte("r2\n"))
			appendFile(t, path+".20261203T110000.000000000Z", "r3\n")
			if tc.current != "" {
				appendFile(t, path, tc.current)
			}
			tl := NewTail(dir, rt, 0, &fs[0], false, Options{})
			defer tl.Close()
			if got := available(t, tl); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			appendFile(t, path, "\nlater\n")
			if got := available(t, tl); len(got) > 0 {
				t.Errorf("after the end: %q", got)
			}
		})
	}
}
