package writer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// rotations collects the paths a writer rotated.
type rotations struct {
	mu    sync.Mutex
	paths []string
}

func (r *rotations) add(p string) { r.mu.Lock(); r.paths = append(r.paths, p); r.mu.Unlock() }
func (r *rotations) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.paths)
}

// TestRotateBySize: the writer rotates between batches once the file
// holds RotateBytes; no record spans two files, the rotated names sort in
// the order written, and together the files hold every record in order.
func TestRotateBySize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shard-000.log")
	var rot rotations
	// A clock that stands still: names must still grow.
	still := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	w, err := Open(0, path, Options{RotateBytes: 100, Rotated: rot.add, Now: func() time.Time { return still }})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(w)
	var want []byte
	for i := range 20 {
		recs := []string{fmt.Sprintf("batch %02d record a", i), fmt.Sprintf("batch %02d record b", i)}
		send(t, w, recs...)
		want = append(want, strings.Join(recs, "\n")+"\n"...)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	paths := rot.get()
	if len(paths) < 5 {
		t.Fatalf("%d rotations, want about 7", len(paths))
	}
	if !slices.IsSorted(paths) {
		t.Errorf("rotated names do not sort in the order written: %v", paths)
	}
	var got []byte
	for _, p := range append(paths, path) {
		data := []byte(readFile(t, p))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			t.Errorf("%s ends within a record", p)
		}
		if p != path && len(data) < 100 {
			t.Errorf("%s rotated at %d bytes, under RotateBytes", p, len(data))
		}
		got = append(got, data...)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("files hold %q, want %q", got, want)
	}
	if st := w.Stats(); st.Rotations != int64(len(paths)) {
		t.Errorf("stats: %d rotations, callback saw %d", st.Rotations, len(paths))
	}
}

// TestRotateByAge: a file open for RotateAge (by the injected clock) is
// rotated by the periodic check; an empty one is not.
func TestRotateByAge(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shard-000.log")
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	var rot rotations
	w, err := Open(0, path, Options{RotateAge: time.Hour, CheckEvery: 2 * time.Millisecond, Rotated: rot.add, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(w)
	now.Add(int64(2 * time.Hour)) // empty: nothing to rotate
	send(t, w, "first")
	now.Add(int64(2 * time.Hour))
	waitUntil(t, "a rotation", func() bool { return len(rot.get()) == 1 })
	send(t, w, "second")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	paths := rot.get()
	if want := path + ".20261125T140000.000000000Z"; paths[0] != want {
		t.Errorf("rotated to %s, want %s", paths[0], want)
	}
	if readFile(t, paths[0]) != "first\n" || readFile(t, path) != "second\n" {
		t.Errorf("rotated %q, current %q", readFile(t, paths[0]), readFile(t, path))
	}
}

// decompress returns the content of a rotated file, compressed or not.
func decompress(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".gz"):
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestArchiverCompressesAndRetains(t *testing.T) {
	for _, c := range []Compression{CompressGzip, CompressZstd, CompressNone} {
		t.Run(string(c), func(t *testing.T) {
			dir := t.TempDir()
			now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			a := NewArchiver(ArchiveOptions{Dir: dir, Names: []string{"s0.log", "s1.log"}, Compress: c, Keep: 3,
				Log: discard(), Now: func() time.Time { return now }})
			a.Start()
			contents := map[string][]byte{}
			for i := range 5 {
				name := fmt.Sprintf("s0.log.%s", now.Add(time.Duration(i)*time.Minute).Format(stampLayout))
				data := bytes.Repeat(fmt.Appendf(nil, "rotated file %d\n", i), 1000)
				must(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
				contents[name] = data
				a.Rotated(filepath.Join(dir, name))
			}
			other := filepath.Join(dir, "s1.log."+now.Format(stampLayout))
			must(t, os.WriteFile(other, []byte("other shard\n"), 0o644))
			a.Rotated(other)
			a.Wait()
			st := a.Close()
			// What a stop left queued, the next start finishes.
			next := NewArchiver(ArchiveOptions{Dir: dir, Names: []string{"s0.log", "s1.log"}, Compress: c, Keep: 3,
				Log: discard(), Now: func() time.Time { return now }})
			next.Start()
			next.Wait()
			st2 := next.Close()
			st.Errors += st2.Errors
			entries, _ := os.ReadDir(dir)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			var s0 []string
			for _, n := range names {
				if strings.HasPrefix(n, "s0.log.") {
					s0 = append(s0, n)
				}
			}
			if len(s0) != 3 {
				t.Fatalf("shard 0 keeps %v, want the newest 3", s0)
			}
			for i, n := range s0 {
				orig := strings.TrimSuffix(n, c.suffix())
				if orig == n && c != CompressNone {
					t.Errorf("%s not compressed", n)
				}
				if want := contents[orig]; !bytes.Equal(decompress(t, filepath.Join(dir, n)), want) || want == nil {
					t.Errorf("%s does not hold rotated file %d", n, i+2)
				}
			}
			if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "s1.log.") }) {
				t.Errorf("shard 1's file was taken by shard 0's retention: %v", names)
			}
			if st.Errors != 0 {
				t.Errorf("%d errors", st.Errors)
			}
		})
	}
}

func TestArchiverKeepFor(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, age := range []time.Duration{72 * time.Hour, 25 * time.Hour, time.Hour} {
		must(t, os.WriteFile(filepath.Join(dir, "s0.log."+now.Add(-age).Format(stampLayout)+".gz"), nil, 0o644))
	}
	a := NewArchiver(ArchiveOptions{Dir: dir, Names: []string{"s0.log"}, KeepFor: 24 * time.Hour, Log: discard(),
		Now: func() time.Time { return now }})
	a.Start()
	a.Wait()
	a.Close()
	left, _ := filepath.Glob(filepath.Join(dir, "s0.log.*"))
	if len(left) != 1 || !strings.Contains(left[0], now.Add(-time.Hour).Format(stampLayout)) {
		t.Errorf("left %v, want only the file of an hour ago", left)
	}
}

// TestArchiverRecovers: what a crash left is finished or cleaned at start:
// a compressed copy cut short is removed and the file compressed again, an
// original whose compressed copy is complete is removed, a rotated file
// never compressed is compressed. Files that are not rotated shard files
// are left alone.
func TestArchiverRecovers(t *testing.T) {
	dir := t.TempDir()
	stamp := func(m int) string {
		return time.Date(2026, 11, 25, 10, m, 0, 0, time.UTC).Format(stampLayout)
	}
	data := []byte("a rotated record\n")
	cutShort := "s0.log." + stamp(1)
	must(t, os.WriteFile(filepath.Join(dir, cutShort), data, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, cutShort+".zst.tmp"), []byte("half"), 0o644))
	complete := "s0.log." + stamp(2) + ".1"
	must(t, os.WriteFile(filepath.Join(dir, complete), data, 0o644))
	must(t, CompressFile(context.Background(), filepath.Join(dir, complete), filepath.Join(dir, complete+".zst"), CompressZstd))
	never := "s0.log." + stamp(3)
	must(t, os.WriteFile(filepath.Join(dir, never), data, 0o644))
	for _, n := range []string{"s0.log", "notes.txt", "s0.log.bak", "other.log." + stamp(4)} {
		must(t, os.WriteFile(filepath.Join(dir, n), data, 0o644))
	}
	a := NewArchiver(ArchiveOptions{Dir: dir, Names: []string{"s0.log"}, Compress: CompressZstd, Log: discard()})
	a.Start()
	a.Wait()
	a.Close()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"notes.txt", "other.log." + stamp(4), "s0.log", cutShort + ".zst", complete + ".zst", never + ".zst", "s0.log.bak"}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("directory holds %v, want %v", names, want)
	}
	for _, n := range []string{cutShort, complete, never} {
		if got := decompress(t, filepath.Join(dir, n+".zst")); !bytes.Equal(got, data) {
			t.Errorf("%s.zst holds %q", n, got)
		}
	}
}

// TestArchiverStopCutsShort: Close cuts the compression in progress short
// and leaves it, and the queue, for the next start; nothing is lost and no
// temporary file stays behind.
func TestArchiverStopCutsShort(t *testing.T) {
	dir := t.TempDir()
	var names []string
	for i := range 20 {
		name := filepath.Join(dir, "s0.log."+time.Date(2026, 11, 25, 10, i, 0, 0, time.UTC).Format(stampLayout))
		must(t, os.WriteFile(name, bytes.Repeat([]byte("x log line\n"), 100000), 0o644))
		names = append(names, name)
	}
	a := NewArchiver(ArchiveOptions{Dir: dir, Names: []string{"s0.log"}, Compress: CompressGzip, Log: discard()})
	a.Start()
	for _, n := range names {
		a.Rotated(n)
	}
	if st := a.Close(); st.Errors != 0 {
		t.Errorf("%d errors on a stop", st.Errors)
	}
	for _, n := range names {
		_, errRaw := os.Stat(n)
		_, errGz := os.Stat(n + ".gz")
		if (errRaw == nil) == (errGz == nil) {
			t.Errorf("%s: want the rotated file or its compressed copy, one of them", n)
		}
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(tmp) != 0 {
		t.Errorf("left %v", tmp)
	}
}

// TestArchiverFallsBehind: with more rotated files than the queue holds,
// Rotated does not wait, and the archiver still compresses them all, by
// scanning the directory once it has caught up.
func TestArchiverFallsBehind(t *testing.T) {
	dir := t.TempDir()
	gate := make(chan struct{})
	var calls atomic.Int64
	slow := func(ctx context.Context, src, dst string, c Compression) error {
		if calls.Add(1) == 1 {
			<-gate // compression falls behind while the queue fills
		}
		return CompressFile(ctx, src, dst, c)
	}
	a := NewArchiver(ArchiveOptions{Dir: dir, Names: []string{"s0.log"}, Compress: CompressGzip, Log: discard(), Compressor: slow})
	a.Start()
	n := 2*cap(a.jobs) + 2
	for i := range n {
		name := filepath.Join(dir, "s0.log."+time.Date(2026, 11, 25, 10, 0, i, 0, time.UTC).Format(stampLayout))
		must(t, os.WriteFile(name, []byte("a record\n"), 0o644))
		a.Rotated(name) // must not wait, though the queue is full
		if i == 0 {
			waitUntil(t, "the first compression to start", func() bool { return calls.Load() == 1 })
		}
	}
	close(gate)
	a.Wait() // also finds the files that found the queue full
	a.Close()
	gz, _ := filepath.Glob(filepath.Join(dir, "*.gz"))
	if len(gz) != n {
		t.Errorf("%d of %d rotated files compressed", len(gz), n)
	}
}

// TestRetentionOrdersCounters: files rotated within one timestamp carry
// .1, .2, ... .10; retention keeps the newest by number, not by string
// order (where .10 sorts before .2).
func TestRetentionOrdersCounters(t *testing.T) {
	dir := t.TempDir()
	stamp := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).Format(stampLayout)
	var names []string
	for i := range 12 {
		name := "s0.log." + stamp
		if i > 0 {
			name += fmt.Sprintf(".%d", i)
		}
		must(t, os.WriteFile(filepath.Join(dir, name), []byte("x\n"), 0o644))
		names = append(names, name)
	}
	a := NewArchiver(ArchiveOptions{Dir: dir, Names: []string{"s0.log"}, Keep: 3, Log: discard()})
	a.Start()
	a.Wait()
	a.Close()
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	slices.Sort(left)
	want := []string{names[10], names[11], names[9]} // string order of .10, .11, .9
	if !slices.Equal(left, want) {
		t.Errorf("kept %v, want %v", left, want)
	}
}
