package grep

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/shardlog/shardlog/readback"
	"github.com/shardlog/shardlog/writer"
)

// TestMayHold checks that grep's shortcut never skips a record whose key
// is asked for: whenever a record's key (as the router takes it) is one
// of the keys, mayHold says it may hold it; and that it does skip records
// that cannot.
func TestMayHold(t *testing.T) {
	records := []string{
		`{"user":"u42","x":1}`,
		`{"user":"u\u0034\u0032","x":2}`, // u42, spelled with escapes
		`{"user":"u420"}`,
		`{"user":42}`,
		`{"x":"u42"}`, // no user field: the router takes the whole record
		`{"user":"u4\"2"}`,
		`u42`,
		`plain line with u42 inside`,
		`{"user":"\u00e9t\u00e9"}`,
		``,
	}
	keySets := [][]string{
		{"u42"}, {"42"}, {"u420"}, {`u4"2`}, {"été"}, {"u42", "u43"}, {"nobody"},
		{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "u42"}, // more than maxLiterals
	}
	skipped := 0
	for _, key := range []string{"json:user", "message"} {
		rt, err := readback.NewRouting(writer.Routing{Shards: 4, Key: key, FilePattern: "shard-%03d.log"})
		if err != nil {
			t.Fatal(err)
		}
		for _, keys := range keySets {
			ks := keySet{set: map[string]struct{}{}}
			for _, k := range keys {
				ks.set[k] = struct{}{}
				ks.lits = append(ks.lits, []byte(k))
			}
			for _, rec := range records {
				k, ok := rt.KeyOf([]byte(rec))
				_, want := ks.set[string(k)]
				may := ks.mayHold([]byte(rec))
				if ok && want && !may {
					t.Errorf("key %s, keys %q: record %s has key %q, but mayHold says it cannot", key, keys, rec, k)
				}
				if !may {
					skipped++
				}
			}
		}
	}
	if skipped == 0 {
		t.Error("mayHold never skipped a record")
	}
}

// TestReadFilesInOrder checks that the files read at once print their
// records in file order, whether each keeps its output until its turn or
// overflows and waits for it (a small spillMax), and count every record.
func TestReadFilesInOrder(t *testing.T) {
	dir := t.TempDir()
	rt, err := readback.NewRouting(writer.Routing{Shards: 1, Key: "json:user", FilePattern: "shard-%03d.log"})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	stamp := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for f := range 5 {
		var data strings.Builder
		for i := range 200 {
			user := "k"
			if i%3 == 1 {
				user = "other"
			}
			rec := fmt.Sprintf(`{"user":"%s","file":%d,"n":%d}`, user, f, i)
			data.WriteString(rec + "\n")
			if user == "k" {
				want.WriteString(rec + "\n")
			}
		}
		name := "shard-000.log." + stamp.Add(time.Duration(f)*time.Minute).Format(readback.StampLayout)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := readback.List(dir, rt)
	if err != nil {
		t.Fatal(err)
	}
	for _, max := range []int{1, 100, spillMax} {
		var out, stderr bytes.Buffer
		g := &Grep{rt: rt, keys: map[int]keySet{0: {set: map[string]struct{}{"k": {}}, lits: [][]byte{[]byte("k")}}},
			out: bufio.NewWriterSize(&out, 256), stderr: &stderr, spillMax: max}
		g.main = sink{out: g.out, stderr: &stderr}
		if err := g.readFiles(context.Background(), l.Shards[0], g.keys[0]); err != nil {
			t.Fatal(err)
		}
		if err := g.out.Flush(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want.String() || g.main.found != int64(strings.Count(want.String(), "\n")) || stderr.Len() > 0 {
			t.Errorf("spillMax %d: %d bytes, want %d; found %d; stderr %q", max, out.Len(), want.Len(), g.main.found, stderr.String())
		}
	}
}

// TestBreakEndsLongRecord checks that a break in a file (a gzip file cut
// in half) inside a record longer than MaxRecord, whose first pieces were
// printed, ends that record's line: the next file's record is printed on
// a line of its own, and the break is reported.
func TestBreakEndsLongRecord(t *testing.T) {
	dir := t.TempDir()
	rt, err := readback.NewRouting(writer.Routing{Shards: 1, Key: "json:user", FilePattern: "shard-%03d.log"})
	if err != nil {
		t.Fatal(err)
	}
	// Random bytes in hex: gzip cannot shrink them much, so half the
	// file holds about half the record.
	raw := make([]byte, 8000)
	rand.NewChaCha8([32]byte{}).Read(raw)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	fmt.Fprintf(zw, `{"user":"k","long":"%s"}`+"\n", hex.EncodeToString(raw))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	stamp := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	files := map[string][]byte{
		"shard-000.log." + stamp.Format(readback.StampLayout) + ".gz":          gz.Bytes()[:gz.Len()/2],
		"shard-000.log." + stamp.Add(time.Minute).Format(readback.StampLayout): []byte(`{"user":"k","ok":2}` + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, stderr bytes.Buffer
	g := New(rt, []string{"k"}, &out, Options{MaxRecord: 1024, Stderr: &stderr})
	if err := g.Run(context.Background(), dir, false); err != nil {
		t.Fatal(err)
	}
	if _, failed, err := g.Finish(); err != nil || !failed {
		t.Errorf("finish: failed %v, err %v; want the break reported", failed, err)
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], `{"user":"k","long":"`) || len(lines[0]) < 1024 || lines[1] != `{"user":"k","ok":2}` || lines[2] != "" {
		t.Errorf("output %d lines: %.80q ... %q; want the long record's pieces before the break on a line, then the next file's record on its own", len(lines), lines[0], lines[1:])
	}
	if !strings.Contains(stderr.String(), "broken at line 1") {
		t.Errorf("stderr %q: want the break at line 1 named", stderr.String())
	}
}
