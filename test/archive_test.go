package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// suffixes are the compressions' file name suffixes.
var suffixes = map[string]string{"gzip": ".gz", "zstd": ".zst"}

// checkArchived checks that each of dir's n shards has exactly keep
// rotated files, all compressed with suffix, and none cut short.
func checkArchived(t *testing.T, dir string, n, keep int, suffix string) {
	t.Helper()
	for k := range n {
		files, tmp := rotatedFiles(t, dir, k)
		if len(tmp) > 0 {
			t.Errorf("shard %d: compressions cut short left: %v", k, tmp)
		}
		if len(files) != keep {
			t.Errorf("shard %d: %d rotated files, want %d: %v", k, len(files), keep, files)
		}
		for _, f := range files {
			if !strings.HasSuffix(f, suffix) {
				t.Errorf("shard %d: %s not compressed", k, filepath.Base(f))
			}
		}
	}
}

// runDevNull runs shardlog with args and /dev/null as its standard input,
// and waits for it.
func runDevNull(t *testing.T, args ...string) result {
	t.Helper()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	d := &daemon{cmd: exec.Command(bin, args...)}
	d.cmd.Stdin = null
	d.launch(t)
	code := d.wait(t, 2*time.Minute)
	return result{stderr: d.stderr.String(), code: code}
}

// TestEndOfInputFinishesArchive: at the end of standard input shardlog
// compresses and applies retention to every rotated file before it exits,
// as a daemon would over time: a short piped run with rotate.keep 1 leaves
// exactly one compressed rotated file per shard, and that file and the
// current one hold the newest records of the shard, whole and in order.
// (Before, such a run left dozens of rotated files uncompressed.)
func TestEndOfInputFinishesArchive(t *testing.T) {
	const n = 4
	in := lines("finished", 20000) // about 1.3 MiB: some ten rotations per shard
	want := expect(split(in, 1<<20), n, 0)
	for _, compress := range []string{"gzip", "zstd"} {
		t.Run(compress, func(t *testing.T) {
			dir := t.TempDir()
			res := shardlog(t, in, nil, "run", "-n", fmt.Sprint(n), "-d", dir,
				"--rotate-max-bytes", "32KiB", "--rotate-keep", "1", "--rotate-compress", compress)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			checkArchived(t, dir, n, 1, suffixes[compress])
			for k := range n {
				got, files := history(t, dir, k)
				// What is kept is the newest part of the shard's records,
				// beginning with a whole record, and at least a full
				// rotated file.
				cut := len(want[k]) - len(got)
				if !bytes.HasSuffix(want[k], got) || cut > 0 && want[k][cut-1] != '\n' || len(got) < 32<<10 {
					t.Errorf("shard %d: what is kept (%d bytes in %v and the current file) is not the newest records of its %d bytes",
						k, len(got), files, len(want[k]))
				}
			}
			if err := contains(res.stderr, "archive_errors=0"); err != nil {
				t.Error(err)
			}
			if strings.Contains(res.stderr, "left uncompressed") {
				t.Errorf("files left uncompressed at the end of input:\n%s", res.stderr)
			}
		})
	}
}

// writeLeftovers writes, for each of n shards, count rotated files of size
// bytes, uncompressed, as a stopped run leaves them, and returns the
// newest one's name and content per shard.
func writeLeftovers(t *testing.T, dir string, n, count, size int) (newest []string, content [][]byte) {
	t.Helper()
	base := time.Now().UTC().Add(-time.Hour)
	for k := range n {
		var name string
		var data []byte
		for i := range count {
			name = fmt.Sprintf("shard-%03d.log.%s", k, base.Add(time.Duration(i)*time.Second).Format("20060102T150405.000000000Z"))
			data = bytes.Repeat(fmt.Appendf(nil, "shard %d left over in rotated file %d, a log line\n", k, i), size/48+1)
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		newest, content = append(newest, name), append(content, data)
	}
	return newest, content
}

// TestEmptyInputFinishesLeftovers: a start on empty input (/dev/null)
// finishes what an earlier run left before it exits: rotated files beyond
// rotate.keep are deleted and the rest compressed. (Before, it deleted
// them and compressed none.)
func TestEmptyInputFinishesLeftovers(t *testing.T) {
	const n = 4
	for _, compress := range []string{"gzip", "zstd"} {
		t.Run(compress, func(t *testing.T) {
			dir := t.TempDir()
			newest, content := writeLeftovers(t, dir, n, 5, 64<<10)
			res := runDevNull(t, "run", "-n", fmt.Sprint(n), "-d", dir, "--rotate-max-bytes", "1MiB",
				"--rotate-keep", "1", "--rotate-compress", compress)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			checkArchived(t, dir, n, 1, suffixes[compress])
			for k := range n {
				path := filepath.Join(dir, newest[k]+suffixes[compress])
				if _, err := os.Stat(path); err != nil {
					t.Errorf("shard %d: the newest rotated file is not what is kept: %v", k, err)
					continue
				}
				if got := unpack(t, path); !bytes.Equal(got, content[k]) {
					t.Errorf("shard %d: %s holds %d bytes, want the %d of its original", k, filepath.Base(path), len(got), len(content[k]))
				}
			}
			if err := contains(res.stderr, "compressed=4", "removed=16", "archive_errors=0"); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestSignalDoesNotWaitForCompression: a stop by signal never waits for
// compression, neither while input is open nor once it has ended and
// shardlog is finishing a backlog: it exits 0 at once, cutting the
// compression in progress short and leaving the rest (logged) to the next
// start. The backlog (80 files, each compressed by a child process) takes
// far longer to compress than a signal takes to arrive.
func TestSignalDoesNotWaitForCompression(t *testing.T) {
	const n, count = 2, 40
	cases := []struct {
		name string
		// input gives the daemon's standard input: a pipe left open, or
		// /dev/null (input ended at once: shardlog is finishing).
		devNull bool
	}{
		{"input open", false},
		{"input ended", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeLeftovers(t, dir, n, count, 256<<10)
			args := []string{"run", "-n", fmt.Sprint(n), "-d", dir, "--rotate-max-bytes", "1MiB", "--rotate-compress", "gzip", "--log-level", "debug"}
			var d *daemon
			if tc.devNull {
				null, err := os.Open(os.DevNull)
				if err != nil {
					t.Fatal(err)
				}
				defer null.Close()
				d = &daemon{cmd: exec.Command(bin, args...)}
				d.cmd.Stdin = null
				d.launch(t)
			} else {
				d = start(t, args...)
			}
			waitFor(t, "the backlog to be taken up", 60*time.Second, func() bool {
				return d.stderr.Contains("compressing rotated files left by an earlier run")
			})
			if tc.devNull {
				waitFor(t, "shardlog to wait for compression at the end of input", 60*time.Second, func() bool {
					return d.stderr.Contains("input ended: finishing compression")
				})
			}
			if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := d.wait(t, 60*time.Second); code != 0 {
				t.Fatalf("exit %d: %s", code, d.stderr.String())
			}
			left := 0
			for k := range n {
				files, tmp := rotatedFiles(t, dir, k)
				if len(tmp) > 0 {
					t.Errorf("shard %d: compressions cut short left: %v", k, tmp)
				}
				if len(files) != count {
					t.Errorf("shard %d: %d rotated files, want all %d", k, len(files), count)
				}
				for _, f := range files {
					if !strings.HasSuffix(f, ".gz") {
						left++
					}
				}
			}
			if left == 0 {
				t.Fatalf("every rotated file was compressed before the exit: the stop waited for compression\n%s", d.stderr.String())
			}
			if err := contains(d.stderr.String(), fmt.Sprintf("rotated files left uncompressed until the next start\" files=%d", left)); err != nil {
				t.Error(err)
			}
		})
	}
}
