package readback

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
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

// available returns the records t has now, up to io.EOF; ErrTruncated is
// returned as the record "(truncated)".
func available(tb *testing.T, t *Follower) []string {
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

// TestFollower follows a file across a write in progress, a rotation by
// rename (records still written to the renamed file until the new one
// gets data, as between logrotate's rename and shardlog's reopen), and a
// truncation.
func TestFollower(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shard-000.log")
	appendFile(t, path, "a\nb\n")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := NewFollower(path, f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
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
		// shardlog's own rotation: renamed, a new file with data at once.
		{func() {
			appendFile(t, path, "g\n")
			if err := os.Rename(path, path+".20261203T100000.000000000Z"); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, "h\n")
		}, []string{"g", "h"}},
		// Removed and not made again yet.
		{func() { os.Remove(path) }, nil},
		{func() { appendFile(t, path, "i\n") }, []string{"i"}},
		// copytruncate.
		{func() {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, []string{"(truncated)"}},
		{func() { appendFile(t, path, "j\n") }, []string{"j"}},
	}
	for i, s := range steps {
		s.do()
		if got := available(t, fl); !slices.Equal(got, s.want) {
			t.Errorf("step %d: got %q, want %q", i, got, s.want)
		}
	}
}
