package test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// rotatedFiles returns shard k's rotated files in dir in the order they
// were written (by name, without a compression suffix), and any compressed
// copy cut short (.tmp).
func rotatedFiles(t *testing.T, dir string, k int) (files, tmp []string) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, fmt.Sprintf("shard-%03d.log.*", k)))
	if err != nil {
		t.Fatal(err)
	}
	strip := func(p string) string { return strings.TrimSuffix(strings.TrimSuffix(p, ".gz"), ".zst") }
	for _, p := range paths {
		if strings.HasSuffix(p, ".tmp") {
			tmp = append(tmp, p)
		} else {
			files = append(files, p)
		}
	}
	slices.SortFunc(files, func(a, b string) int { return strings.Compare(strip(a), strip(b)) })
	return files, tmp
}

// unpack returns a file's content, decompressed by its suffix; a
// compressed file that does not decode whole fails the test.
func unpack(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader
	switch {
	case strings.HasSuffix(path, ".gz"):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r = zr
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer zr.Close()
		r = zr
	default:
		return data
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s does not decompress whole: %v", path, err)
	}
	return out
}

// history returns shard k's records across its rotated files (in order)
// and its current file, and the rotated files.
func history(t *testing.T, dir string, k int) ([]byte, []string) {
	t.Helper()
	files, _ := rotatedFiles(t, dir, k)
	var all []byte
	for _, f := range files {
		data := unpack(t, f)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			t.Errorf("%s ends within a record", f)
		}
		all = append(all, data...)
	}
	cur, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k)))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return append(all, cur...), files
}

// finishArchiving runs shardlog with args (and no input) until every
// rotated file of dir's n shards is compressed and retention applied, as a
// daemon's next start does in the background, then stops it.
func finishArchiving(t *testing.T, dir string, n int, args []string) {
	t.Helper()
	d := start(t, args...)
	waitFor(t, "the rotated files compressed at the next start", 60*time.Second, func() bool {
		for k := range n {
			files, tmp := rotatedFiles(t, dir, k)
			if len(tmp) > 0 {
				return false
			}
			for _, f := range files {
				if !strings.HasSuffix(f, ".zst") && !strings.HasSuffix(f, ".gz") {
					return false
				}
			}
		}
		return true
	})
	d.stdin.Close()
	if code := d.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, d.stderr.String())
	}
}

// TestRotationCompressionRetention: with size rotation and compression,
// every record is found, byte for byte and in order, across the rotated
// (decompressed) files and the current one; with retention, what is kept
// is the newest part of that history.
func TestRotationCompressionRetention(t *testing.T) {
	in := lines("rotated", 60000) // about 4 MiB
	want := expect(split(in, 1<<20), 2, 0)
	for _, compress := range []string{"zstd", "gzip", "none"} {
		t.Run(compress, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"run", "-n", "2", "-d", dir, "--rotate-max-bytes", "256KiB", "--rotate-compress", compress}
			res := shardlog(t, in, nil, args...)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			// The end of input finished compression; a next start
			// finds nothing left to do and must not undo anything.
			if compress != "none" {
				finishArchiving(t, dir, 2, args)
			}
			for k := range 2 {
				got, files := history(t, dir, k)
				if !bytes.Equal(got, want[k]) {
					t.Errorf("shard %d: %d bytes across %d files, want %d; first difference at %d",
						k, len(got), len(files), len(want[k]), firstDiff(got, want[k]))
				}
				if len(files) < 4 {
					t.Errorf("shard %d: %d rotated files, want about 8", k, len(files))
				}
				for _, f := range files {
					if compress != "none" && !strings.HasSuffix(f, map[string]string{"zstd": ".zst", "gzip": ".gz"}[compress]) {
						t.Errorf("%s not compressed", f)
					}
				}
			}
			if err := contains(res.stderr, "rotations=", "archive_errors=0"); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("keep", func(t *testing.T) {
		dir := t.TempDir()
		args := []string{"run", "-n", "2", "-d", dir, "--rotate-max-bytes", "256KiB", "--rotate-compress", "zstd", "--rotate-keep", "2"}
		if res := shardlog(t, in, nil, args...); res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		finishArchiving(t, dir, 2, args)
		for k := range 2 {
			got, files := history(t, dir, k)
			if len(files) != 2 {
				t.Errorf("shard %d keeps %d rotated files, want 2", k, len(files))
			}
			if !bytes.HasSuffix(want[k], got) || len(got) < 512<<10 {
				t.Errorf("shard %d: what is kept (%d bytes) is not the newest part of its records", k, len(got))
			}
		}
	})
	t.Run("keep_for", func(t *testing.T) {
		dir := t.TempDir()
		// A rotated file of a week ago, of this run's naming: expired.
		old := filepath.Join(dir, "shard-000.log."+time.Now().UTC().Add(-7*24*time.Hour).Format("20060102T150405.000000000Z")+".zst")
		if err := os.WriteFile(old, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		res := shardlog(t, []byte("x\n"), nil, "run", "-n", "4", "-d", dir, "--rotate-max-age", "1h", "--rotate-keep-for", "24h")
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		if _, err := os.Stat(old); !os.IsNotExist(err) {
			t.Errorf("a rotated file older than keep_for survived (%v)", err)
		}
	})
}

// TestKillDuringRotationAndCompression: kill -9 while files rotate and
// compress leaves no half file under a final name; the next start finishes
// or cleans what was left, and every shard's history is a prefix of what
// was sent, in order.
func TestKillDuringRotationAndCompression(t *testing.T) {
	in := lines("killed while rotating", 150000)
	want := expect(split(in, 1<<20), 2, 0)
	dir := t.TempDir()
	args := []string{"run", "-n", "2", "-d", dir, "--rotate-max-bytes", "256KiB", "--rotate-compress", "zstd"}
	d := start(t, args...)
	go func() { _, _ = d.stdin.Write(in) }()
	waitFor(t, "rotated files", 60*time.Second, func() bool {
		files, _ := rotatedFiles(t, dir, 0)
		return len(files) >= 6
	})
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.done
	for k := range 2 {
		files, _ := rotatedFiles(t, dir, k)
		for _, f := range files {
			unpack(t, f) // a compressed file under its final name is whole
		}
	}
	finishArchiving(t, dir, 2, args)
	for k := range 2 {
		got, files := history(t, dir, k)
		if !bytes.HasPrefix(want[k], got) {
			t.Errorf("shard %d: %d bytes across %d files are not a prefix of what was sent (first difference at %d)",
				k, len(got), len(files), firstDiff(got, want[k]))
		}
		_, tmp := rotatedFiles(t, dir, k)
		if len(tmp) > 0 {
			t.Errorf("shard %d: compressions cut short left after the restart: %v", k, tmp)
		}
		for _, f := range files {
			if !strings.HasSuffix(f, ".zst") {
				t.Errorf("%s left uncompressed after the restart", f)
			}
		}
	}
}
