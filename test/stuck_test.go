package test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// stuckShard is the shard whose file the stuck-shard tests make unusable.
const stuckShard = 2

// stuckRun is a shardlog at N=4 fed through a pipe whose shard 2 has been
// made unwritable (a directory where its file was) after the first
// records; the file it wrote until then is kept as shard-002.log.old.
type stuckRun struct {
	d    *daemon
	dir  string
	want [][]byte // each shard's records, as routed, of everything fed so far
	fed  int      // lines fed
}

// startStuck starts shardlog with args added, feeds it 2000 lines, waits
// until they are written, then replaces shard 2's file by a directory and
// waits until shardlog finds it cannot open it.
func startStuck(t *testing.T, args ...string) *stuckRun {
	t.Helper()
	s := &stuckRun{dir: t.TempDir(), want: make([][]byte, 4)}
	// Small batches: every block of input hands shard 2's writer a batch
	// or more, so that its queue (16 batches) would fill within a few.
	s.d = start(t, append([]string{"run", "-n", "4", "-d", s.dir, "--batch-max-delay", "10ms", "--batch-max-bytes", "4KiB"}, args...)...)
	s.feed(t, 2000)
	waitFor(t, "the first records", 30*time.Second, func() bool { return s.written(t, false) })
	path := s.path(stuckShard)
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "shard 2's file found unusable", 30*time.Second, func() bool {
		return s.d.stderr.Contains("shard file cannot be opened")
	})
	return s
}

// path returns shard k's file.
func (s *stuckRun) path(k int) string { return filepath.Join(s.dir, fmt.Sprintf("shard-%03d.log", k)) }

// feed writes n more lines into shardlog's input.
func (s *stuckRun) feed(t *testing.T, n int) {
	t.Helper()
	in := lines(fmt.Sprintf("stuck shard, block from %06d:", s.fed), n)
	for k, recs := range expect(split(in, 1<<20), 4, 0) {
		s.want[k] = append(s.want[k], recs...)
	}
	s.fed += n
	if _, err := s.d.stdin.Write(in); err != nil {
		t.Fatal(err)
	}
}

// files returns the content of the shard files, nil for shard 2's while
// a directory stands at its path.
func (s *stuckRun) files(t *testing.T) [][]byte {
	t.Helper()
	files := make([][]byte, 4)
	for k := range files {
		data, err := os.ReadFile(s.path(k))
		if err != nil && !os.IsNotExist(err) && !(k == stuckShard && errors.Is(err, syscall.EISDIR)) {
			t.Fatal(err)
		}
		files[k] = data
	}
	return files
}

// written reports whether every shard but, unless all, shard 2 holds all
// its records fed so far; shard 2's are those of its old and new file.
func (s *stuckRun) written(t *testing.T, all bool) bool {
	t.Helper()
	files := s.files(t)
	for k := range files {
		if k == stuckShard {
			if !all {
				continue
			}
			old, err := os.ReadFile(s.path(k) + ".old")
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			files[k] = append(old, files[k]...)
		}
		if !bytes.Equal(files[k], s.want[k]) {
			return false
		}
	}
	return true
}

// TestStuckShardDoesNotStopOthers: a shard whose file cannot be written (a
// directory stands where it was) does not stop the others: fed over time,
// shards 0, 1 and 3 get all their records while shard 2 waits (its
// records kept in memory); once the path is usable again shard 2 catches
// up, and every record is in its file exactly once, in order.
func TestStuckShardDoesNotStopOthers(t *testing.T) {
	s := startStuck(t)
	// Forty blocks, one after the other as each is written: today's
	// 16-batch queue of shard 2 holds a fraction of them.
	for i := range 40 {
		s.feed(t, 450)
		waitFor(t, fmt.Sprintf("shards 0, 1 and 3 to write block %d while shard 2 is stuck", i), 30*time.Second,
			func() bool { return s.written(t, false) })
	}
	if fi, err := os.Stat(s.path(stuckShard)); err != nil || !fi.IsDir() {
		t.Fatalf("shard 2's path is no longer the directory (%v): the test shows nothing", err)
	}
	select {
	case <-s.d.done:
		t.Fatalf("shardlog exited while shard 2 was stuck: %s", s.d.stderr.String())
	default:
	}
	if err := os.Remove(s.path(stuckShard)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "shard 2 to catch up", 30*time.Second, func() bool { return s.written(t, true) })
	if err := s.d.stdin.Close(); err != nil {
		t.Fatal(err)
	}
	if code := s.d.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, s.d.stderr.String())
	}
	if !s.written(t, true) {
		t.Error("the files changed after shard 2 caught up")
	}
}

// TestStuckShardStopped: stopped while a shard is stuck, shardlog gives up
// on it after shutdown_timeout and exits 1, naming how many records were
// not written; written and failed add up to what was read, and the files
// hold exactly the records counted as written.
func TestStuckShardStopped(t *testing.T) {
	s := startStuck(t, "--shutdown-timeout", "1s")
	for range 10 {
		s.feed(t, 450)
	}
	pipeEmpty(t, s.d) // all read: a stop still routes what was read
	waitFor(t, "shards 0, 1 and 3 to write everything while shard 2 is stuck", 30*time.Second,
		func() bool { return s.written(t, false) })
	if err := s.d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.d.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, s.d.stderr.String())
	}
	stderr := s.d.stderr.String()
	m := summaryRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no summary: %s", stderr)
	}
	written, _ := strconv.Atoi(m[1])
	failed, _ := strconv.Atoi(m[2])
	inFiles := 0
	for k, f := range s.files(t) {
		if k == stuckShard {
			continue // a directory
		}
		if !bytes.Equal(f, s.want[k]) {
			t.Errorf("shard %d: %d bytes, want %d", k, len(f), len(s.want[k]))
		}
		inFiles += bytes.Count(f, []byte{'\n'})
	}
	old, err := os.ReadFile(s.path(stuckShard) + ".old")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(s.want[stuckShard], old) {
		t.Errorf("shard 2's old file holds other than the first of its records")
	}
	inFiles += bytes.Count(old, []byte{'\n'})
	if written != inFiles || written+failed != s.fed || failed == 0 {
		t.Errorf("summary says written=%d failed=%d; the files hold %d records of %d read", written, failed, inFiles, s.fed)
	}
	if err := contains(stderr, fmt.Sprintf("(%d records not written)", failed), "shutdown_timeout"); err != nil {
		t.Error(err)
	}
}
