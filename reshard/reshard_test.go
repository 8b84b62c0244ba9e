package reshard

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/shardlog/shardlog/readback"
	"github.com/shardlog/shardlog/writer"
)

// shardFiles writes files (name to content) into a new directory of one
// shard, routed by the whole message with pattern s-%d.log, and returns
// that shard's files as listed, oldest first.
func shardFiles(t *testing.T, files map[string][]byte) []readback.File {
	t.Helper()
	dir := t.TempDir()
	rt, err := readback.NewRouting(writer.Routing{Shards: 1, Key: "message", FilePattern: "s-%d.log"})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := readback.List(dir, rt)
	if err != nil {
		t.Fatal(err)
	}
	return l.Shards[0]
}

// TestShardStream checks the stream reshard routes from: a shard's files
// in order, each record with its '\n', a torn last record given one (so
// that it does not run into the next file's first), a record longer than
// the longest whole record given back whole, and a broken file's records
// before the break, then the next file.
func TestShardStream(t *testing.T) {
	long := strings.Repeat("L", 100)
	var zb bytes.Buffer
	zw, _ := zstd.NewWriter(&zb)
	zw.Write([]byte("z1\nz2\n"))
	zw.Close()
	broken := zb.Bytes()[:zb.Len()-4]
	files := map[string][]byte{
		"s-0.log.20261201T000000.000000000Z":     []byte("a1\na2 torn"),
		"s-0.log.20261202T000000.000000000Z.zst": broken,
		"s-0.log.20261203T000000.000000000Z":     []byte(long + "\nb1\n"),
		"s-0.log":                                []byte("c1\n"),
	}
	files0 := shardFiles(t, files)
	var stderr bytes.Buffer
	var counts Counts
	rd := readback.NewReader(readback.Options{MaxRecord: 16})
	defer rd.Close()
	st := NewStream(context.Background(), rd, files0, &counts, &stderr)
	// One byte at a time: records are cut across reads.
	got, err := io.ReadAll(iotest.OneByteReader(st))
	if err != nil {
		t.Fatal(err)
	}
	if want := "a1\na2 torn\n" + long + "\nb1\nc1\n"; !strings.HasSuffix(string(got), "\n"+long+"\nb1\nc1\n") || !strings.HasPrefix(string(got), "a1\na2 torn\n") {
		t.Errorf("stream %q, want %q with the broken file's records before its break between", got, want)
	}
	if !st.Done() || counts.Files.Load() != 4 || !counts.Broken.Load() {
		t.Errorf("done %v, files %d, broken %v; want true, 4, true", st.Done(), counts.Files.Load(), counts.Broken.Load())
	}
	if s := stderr.String(); !strings.Contains(s, "line 2: torn last record") || !strings.Contains(s, ".zst") {
		t.Errorf("stderr %q: want the torn record and the broken file named", s)
	}
}

// TestShardStreamStops cancels a stream's context after each of several
// reads that end inside a record, the first one longer than the reader's
// MaxRecord (read in pieces): the stream ends at that record's end (never
// inside it, which the source would route as a record of its own), and it
// is not done.
func TestShardStreamStops(t *testing.T) {
	data := []byte(strings.Repeat("L", 3000) + "\n")
	for i := range 200 {
		data = append(data, fmt.Sprintf("record %d %s\n", i, strings.Repeat("x", i))...)
	}
	files0 := shardFiles(t, map[string][]byte{"s-0.log": data})
	for _, cut := range []int{1, 5, 100, 1000, 1500, 2999, 3000, 4000, 7000} {
		rd := readback.NewReader(readback.Options{MaxRecord: 1 << 10})
		ctx, cancel := context.WithCancel(context.Background())
		var counts Counts
		st := NewStream(ctx, rd, files0, &counts, io.Discard)
		got := make([]byte, cut)
		if _, err := io.ReadFull(st, got); err != nil {
			t.Fatal(err)
		}
		cancel()
		rest, err := io.ReadAll(st)
		rd.Close()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rest...)
		if !bytes.HasPrefix(data, got) || got[len(got)-1] != '\n' {
			t.Errorf("cut after %d bytes: the stream gave %d bytes ending %q, want whole records, the first ones", cut, len(got), got[max(0, len(got)-10):])
		}
		if len(got) == len(data) || st.Done() {
			t.Errorf("cut after %d bytes: %d of %d bytes, done %v: want the stream stopped early", cut, len(got), len(data), st.Done())
		}
	}
}

// TestWriteMarkerInPlace checks that a marker's updates are written into
// the space it reserved when it was made, so that they need no new space
// (a reshard stopped by a full disk can still say how far it got), and
// that each reads back as written.
func TestWriteMarkerInPlace(t *testing.T) {
	dir := t.TempDir()
	read := func() Progress {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, Marker))
		if err != nil {
			t.Fatal(err)
		}
		var p Progress
		if err := json.Unmarshal(data, &p); err != nil {
			t.Fatalf("marker %q: %v", data, err)
		}
		return p
	}
	if err := WriteMarker(dir, 0o640, Progress{State: "running"}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, Marker))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != markerSize || st.Mode().Perm() != 0o640 {
		t.Errorf("marker: %d bytes, mode %v; want %d, 0640", st.Size(), st.Mode().Perm(), markerSize)
	}
	ino := st.Sys().(*syscall.Stat_t).Ino
	done := make([]int, 64)
	for k := range done {
		done[k] = k
	}
	if err := WriteMarker(dir, 0o640, Progress{State: "interrupted", ShardsDone: done, RecordsWritten: 12345}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, Marker)); err != nil || st.Sys().(*syscall.Stat_t).Ino != ino || st.Size() != markerSize {
		t.Errorf("the update made another file or size (%v): want it written in place", err)
	}
	if p := read(); p.State != "interrupted" || p.RecordsWritten != 12345 || len(p.ShardsDone) != 64 {
		t.Errorf("marker reads back %+v", p)
	}
}

// TestShardStreamBreakInLongRecord reads a shard whose first file, gzip
// cut in half, breaks inside a record longer than MaxRecord whose first
// pieces were passed on: the stream ends that record with a newline (the
// part read is written as a record, the pieces being gone already), so
// the next file's record stays a record of its own.
func TestShardStreamBreakInLongRecord(t *testing.T) {
	// Random bytes in hex: gzip cannot shrink them much.
	raw := make([]byte, 8000)
	rand.NewChaCha8([32]byte{}).Read(raw)
	long := hex.EncodeToString(raw)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(long + "\n"))
	zw.Close()
	files0 := shardFiles(t, map[string][]byte{
		"s-0.log.20261201T000000.000000000Z.gz": gz.Bytes()[:gz.Len()/2],
		"s-0.log":                               []byte("n1\n"),
	})
	var stderr bytes.Buffer
	var counts Counts
	rd := readback.NewReader(readback.Options{MaxRecord: 1024})
	defer rd.Close()
	got, err := io.ReadAll(NewStream(context.Background(), rd, files0, &counts, &stderr))
	if err != nil {
		t.Fatal(err)
	}
	first, rest, _ := strings.Cut(string(got), "\n")
	if len(first) < 1024 || !strings.HasPrefix(long, first) || rest != "n1\n" {
		t.Errorf("stream: a first line of %d bytes (a prefix of the long record: %v), then %q; want the pieces read, ended, then \"n1\\n\"",
			len(first), strings.HasPrefix(long, first), rest)
	}
	if !counts.Broken.Load() || !strings.Contains(stderr.String(), "broken at line 1") {
		t.Errorf("broken %v, stderr %q: want the break reported", counts.Broken.Load(), stderr.String())
	}
}
