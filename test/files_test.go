package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lines returns n distinct log-like lines, each ending in '\n'.
func lines(prefix string, n int) []byte {
	var in []byte
	for i := range n {
		in = fmt.Appendf(in, "%s %06d padded to look like a log line of a busy service\n", prefix, i)
	}
	return in
}

// shardFiles returns the content of dir's n shard files.
func shardFiles(t *testing.T, dir string, n int) [][]byte {
	t.Helper()
	files := make([][]byte, n)
	for k := range n {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k)))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		files[k] = data
	}
	return files
}

// equalFiles compares files with want, shard by shard.
func equalFiles(t *testing.T, files, want [][]byte) {
	t.Helper()
	for k := range want {
		if !bytes.Equal(files[k], want[k]) {
			t.Errorf("shard %d: %d bytes, want %d; first difference at byte %d", k, len(files[k]), len(want[k]), firstDiff(files[k], want[k]))
		}
	}
}

// TestTooManyShardsForFileLimit: shards that do not fit in the open-file
// limit are refused before anything is created, naming the key, the limit
// and how to raise it.
func TestTooManyShardsForFileLimit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command("sh", "-c", `ulimit -n 100 && exec "$0" "$@"`, bin, "run", "-n", "200", "-d", dir)
	cmd.Stdin = strings.NewReader("x\n")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Fatalf("exit %d (%v), want 2: %s", code, err, out)
	}
	if err := contains(string(out), "shards: 200", "limit is 100", "ulimit -n", "LimitNOFILE"); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s exists after the refusal (%v)", dir, err)
	}
	// The same count within the limit runs.
	cmd = exec.Command("sh", "-c", `ulimit -n 300 && exec "$0" "$@"`, bin, "run", "-n", "200", "-d", dir)
	cmd.Stdin = strings.NewReader("x\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("200 shards with a limit of 300: %v: %s", err, out)
	}
}

// TestDeadLogReader: with stderr a pipe whose reader is gone, a log line
// must not kill shardlog (SIGPIPE): a stop still writes every line read.
func TestDeadLogReader(t *testing.T) {
	dir := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: exec.Command(bin, "run", "-n", "4", "-d", dir, "--batch-max-delay", "5s")}
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	d.done = make(chan struct{})
	d.cmd.Stderr = w
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { _ = d.cmd.Process.Kill(); <-d.done })
	w.Close()
	r.Close() // the log reader dies
	in := lines("dead log reader", 5000)
	if _, err := d.stdin.Write(in); err != nil {
		t.Fatal(err)
	}
	pipeEmpty(t, d)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		t.Fatal("shardlog did not exit")
	}
	if ws := d.cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() || ws.ExitStatus() != 0 {
		t.Fatalf("shardlog ended with %v, want exit 0", d.cmd.ProcessState)
	}
	equalFiles(t, shardFiles(t, dir, 4), expect(split(in, 1<<20), 4, 0))
}

// TestTornTailRepairedOnStart: a file whose last record was torn (a crash)
// is cut back to its last whole record before anything is appended, and
// what was cut is kept aside and logged.
func TestTornTailRepairedOnStart(t *testing.T) {
	dir := t.TempDir()
	torn := map[int]string{0: "whole record\nhalf a rec", 2: "no newline at all", 3: "fine\n"}
	for k, content := range torn {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in := lines("after the crash", 1000)
	res := shardlog(t, in, nil, "run", "-n", "4", "-d", dir)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	want := expect(split(in, 1<<20), 4, 0)
	for k, before := range map[int]string{0: "whole record\n", 3: "fine\n"} {
		want[k] = append([]byte(before), want[k]...)
	}
	equalFiles(t, shardFiles(t, dir, 4), want)
	kept, _ := filepath.Glob(filepath.Join(dir, ".shardlog-torn", "*"))
	var keptData []string
	for _, p := range kept {
		data, _ := os.ReadFile(p)
		keptData = append(keptData, string(data))
	}
	if len(kept) != 2 || !strings.Contains(strings.Join(keptData, "|"), "half a rec") ||
		!strings.Contains(strings.Join(keptData, "|"), "no newline at all") {
		t.Errorf("kept aside %q, want the two torn tails", keptData)
	}
	// Logged (one line per kind per 10 s: the second file's may be
	// counted as suppressed in a later line rather than shown).
	if err := contains(res.stderr, "cut an incomplete record"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(res.stderr, "bytes=10") && !strings.Contains(res.stderr, "bytes=17") {
		t.Errorf("no count of the bytes cut: %s", res.stderr)
	}
}

// TestKillDuringLargeBatches: kill -9 while large batches are being
// written, then start again: every file ends with a whole record, every
// record is one that was sent, and what a kill tore is kept aside.
func TestKillDuringLargeBatches(t *testing.T) {
	in := lines("killed", 300000)
	sent := map[string]bool{}
	for _, l := range bytes.Split(bytes.TrimSuffix(in, []byte("\n")), []byte("\n")) {
		sent[string(l)] = true
	}
	dir := t.TempDir()
	for trial := range 3 {
		d := start(t, "run", "-n", "4", "-d", dir, "--batch-max-bytes", "8MiB", "--batch-buffer-bytes", "64MiB")
		go func() { _, _ = d.stdin.Write(in) }()
		waitFor(t, "some records written", 60*time.Second, func() bool {
			n := 0
			for _, f := range shardFiles(t, dir, 4) {
				n += len(f)
			}
			return n > (trial+1)*4<<20
		})
		if err := d.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-d.done
		if res := shardlog(t, nil, nil, "run", "-n", "4", "-d", dir); res.code != 0 {
			t.Fatalf("restart: exit %d: %s", res.code, res.stderr)
		}
		for k, f := range shardFiles(t, dir, 4) {
			if len(f) > 0 && f[len(f)-1] != '\n' {
				t.Fatalf("trial %d: shard %d ends with a torn record after the restart", trial, k)
			}
			for _, r := range bytes.Split(bytes.TrimSuffix(f, []byte("\n")), []byte("\n")) {
				if len(r) > 0 && !sent[string(r)] {
					t.Fatalf("trial %d: shard %d holds %q, never sent", trial, k, r)
				}
			}
		}
	}
}

// mountTmpfs mounts a tmpfs of size bytes, a real small filesystem, or
// skips the test where mounting is refused.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("SKIP: cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill fills the filesystem of dir, leaving about room bytes free, with a
// file it returns.
func fill(t *testing.T, dir string, room int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	path := filepath.Join(dir, "filler")
	if err := os.WriteFile(path, make([]byte, max(0, free-room)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var summaryRE = regexp.MustCompile(`written=(\d+) failed=(\d+)`)

// TestFullDiskWaitedOut fills a real small filesystem under shardlog: it
// must block without exiting or tearing a record, and finish with every
// record in place once space is freed. Stopped while blocked, it gives up
// after shutdown_timeout, and its summary matches the files exactly.
func TestFullDiskWaitedOut(t *testing.T) {
	t.Run("space returns", func(t *testing.T) {
		fs := mountTmpfs(t, "8m")
		dir := filepath.Join(fs, "out")
		filler := fill(t, fs, 1<<20)
		in := lines("full disk", 40000) // about 3 MiB: more than fits
		d := start(t, "run", "-n", "4", "-d", dir, "--batch-max-delay", "10ms")
		go func() { _, _ = d.stdin.Write(in); d.stdin.Close() }()
		waitFor(t, "the full disk to be logged", 60*time.Second, func() bool { return d.stderr.Contains("disk full") })
		// Blocked, not gone, and the files end with whole records: a
		// writer's writev may fill what space there is (space another
		// writer's take-back just freed, say) before ENOSPC makes it take
		// that part back, so a file may end torn for an instant; it must
		// not stay so while the writers wait.
		waitFor(t, "every file to end with a whole record while blocked", 30*time.Second, func() bool {
			for _, f := range shardFiles(t, dir, 4) {
				if len(f) > 0 && f[len(f)-1] != '\n' {
					return false
				}
			}
			return true
		})
		select {
		case <-d.done:
			t.Fatalf("shardlog exited on a full disk: %s", d.stderr.String())
		default:
		}
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		if code := d.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("exit %d: %s", code, d.stderr.String())
		}
		equalFiles(t, shardFiles(t, dir, 4), expect(split(in, 1<<20), 4, 0))
		if n := strings.Count(d.stderr.String(), "disk full"); n > 8 {
			t.Errorf("%d log lines about the full disk: want it said once per shard and then periodically", n)
		}
	})

	t.Run("stopped while blocked", func(t *testing.T) {
		fs := mountTmpfs(t, "8m")
		dir := filepath.Join(fs, "out")
		fill(t, fs, 1<<20)
		in := lines("full disk", 40000)
		d := start(t, "run", "-n", "4", "-d", dir, "--batch-max-delay", "10ms", "--shutdown-timeout", "1s")
		go func() { _, _ = d.stdin.Write(in) }()
		waitFor(t, "the full disk to be logged", 60*time.Second, func() bool { return d.stderr.Contains("disk full") })
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := d.wait(t, 60*time.Second); code != 1 {
			t.Fatalf("exit %d, want 1: %s", code, d.stderr.String())
		}
		m := summaryRE.FindStringSubmatch(d.stderr.String())
		if m == nil {
			t.Fatalf("no summary: %s", d.stderr.String())
		}
		written, _ := strconv.Atoi(m[1])
		failed, _ := strconv.Atoi(m[2])
		inFiles := 0
		for k, f := range shardFiles(t, dir, 4) {
			if len(f) > 0 && f[len(f)-1] != '\n' {
				t.Errorf("shard %d ends with a torn record", k)
			}
			inFiles += bytes.Count(f, []byte{'\n'})
		}
		if written != inFiles || failed == 0 {
			t.Errorf("summary says written=%d failed=%d; the files hold %d records", written, failed, inFiles)
		}
		if err := contains(d.stderr.String(), fmt.Sprintf("(%d records not written)", failed), "shutdown_timeout"); err != nil {
			t.Error(err)
		}
	})
}

// TestOutputDirRemoved: with the whole output directory removed under it,
// shardlog recreates it and writes later records there, rather than into
// files nobody can see.
func TestOutputDirRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	d := start(t, "run", "-n", "4", "-d", dir, "--batch-max-delay", "10ms")
	first := lines("before", 100)
	if _, err := d.stdin.Write(first); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first records", 30*time.Second, func() bool { return count(records(t, dir, 4)) == 100 })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every file reopened", 30*time.Second, func() bool {
		return strings.Count(d.stderr.String(), "reopened shard file") == 4
	})
	second := lines("after", 100)
	if _, err := d.stdin.Write(second); err != nil {
		t.Fatal(err)
	}
	d.stdin.Close()
	if code := d.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, d.stderr.String())
	}
	equalFiles(t, shardFiles(t, dir, 4), expect(split(second, 1<<20), 4, 0))
}

// TestLogrotate drives a running shardlog with the real logrotate and the
// shipped deploy/logrotate.conf (create mode, SIGHUP in postrotate): the
// records before the rotation are in the rotated files, those after in the
// new ones, none lost or doubled.
func TestLogrotate(t *testing.T) {
	logrotate, err := exec.LookPath("logrotate")
	if err != nil {
		if logrotate, err = exec.LookPath("/usr/sbin/logrotate"); err != nil {
			t.Skip("SKIP: logrotate not installed (Debian: apt-get install logrotate; .ci/run installs it)")
		}
	}
	conf, err := os.ReadFile("../deploy/logrotate.conf")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "out")
	if !bytes.Contains(conf, []byte("/var/log/shardlog/*.log")) {
		t.Fatal("deploy/logrotate.conf no longer names /var/log/shardlog/*.log")
	}
	conf = bytes.ReplaceAll(conf, []byte("/var/log/shardlog/*.log"), []byte(dir+"/*.log"))
	confPath := filepath.Join(tmp, "logrotate.conf")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, "run", "-n", "4", "-d", dir, "--batch-max-delay", "10ms")
	before := lines("before rotation", 2000)
	if _, err := d.stdin.Write(before); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first records", 30*time.Second, func() bool { return count(records(t, dir, 4)) == 2000 })
	out, err := exec.Command(logrotate, "-f", "-s", filepath.Join(tmp, "state"), confPath).CombinedOutput()
	if err != nil {
		t.Fatalf("logrotate: %v: %s", err, out)
	}
	waitFor(t, "every file reopened", 30*time.Second, func() bool {
		return d.stderr.Contains("SIGHUP: reopened shard files") && d.stderr.Contains("reopened=4")
	})
	after := lines("after rotation", 2000)
	if _, err := d.stdin.Write(after); err != nil {
		t.Fatal(err)
	}
	d.stdin.Close()
	if code := d.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, d.stderr.String())
	}
	equalFiles(t, shardFiles(t, dir, 4), expect(split(after, 1<<20), 4, 0))
	rotated := make([][]byte, 4)
	for k := range rotated {
		// delaycompress leaves the newest rotated file as it is.
		rotated[k], err = os.ReadFile(filepath.Join(dir, fmt.Sprintf("shard-%03d.log.1", k)))
		if err != nil {
			t.Fatal(err)
		}
	}
	equalFiles(t, rotated, expect(split(before, 1<<20), 4, 0))
}
