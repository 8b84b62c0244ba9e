package test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// daemon is a running shardlog whose standard input the test writes.
type daemon struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr syncBuffer
	done   chan struct{}
}

// syncBuffer is a bytes.Buffer that the process's output copier writes
// while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Contains(s string) bool { return strings.Contains(b.String(), s) }

// start starts shardlog with args, its standard input a pipe the test
// writes through d.stdin.
func start(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(bin, args...)}
	var err error
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	d.launch(t)
	return d
}

// launch starts d.cmd, which has its standard input set, and kills it when
// the test ends if it is still running.
func (d *daemon) launch(t *testing.T) {
	t.Helper()
	d.done = make(chan struct{})
	d.cmd.Stderr = &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
	})
}

// wait waits for the daemon to exit and returns its exit status.
func (d *daemon) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-d.done:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		t.Fatalf("shardlog did not exit within %s; stderr:\n%s", limit, d.stderr.String())
		return -1
	}
}

// TestTrickle writes one line at a time into an open pipe: each must reach
// its file while the input stays open. With batch.max_delay at an hour it
// still does: an idle writer takes its shard's records after a few
// milliseconds (the router's linger), whatever max_delay says.
func TestTrickle(t *testing.T) {
	for _, delay := range []string{"100ms", "1h"} {
		t.Run("max_delay="+delay, func(t *testing.T) {
			dir := t.TempDir()
			d := start(t, "run", "-n", "4", "-d", dir, "--batch-max-delay", delay)
			var sent []byte
			for i := range 3 {
				line := fmt.Appendf(nil, "trickle line %d at %s\n", i, time.Now().Format(time.RFC3339Nano))
				began := time.Now()
				if _, err := d.stdin.Write(line); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, line...)
				waitFor(t, fmt.Sprintf("line %d in its file", i), 10*time.Second, func() bool {
					return len(readAll(t, dir, 4)) == len(sent)
				})
				t.Logf("line %d visible after %s", i, time.Since(began))
			}
			checkFiles(t, dir, "shard-%03d.log", expect(split(sent, 1<<20), 4, 0))
			if err := d.stdin.Close(); err != nil {
				t.Fatal(err)
			}
			if code := d.wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit %d: %s", code, d.stderr.String())
			}
		})
	}
}

// TestSignalWritesEverythingRead sends a signal while the input is still
// open: shardlog must stop reading, write every line it read (a partial
// last line included), and exit 0. The batch delay is an hour, so what is
// still pending at the signal is written by the drain, not by the timer.
func TestSignalWritesEverythingRead(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			d := start(t, "run", "-n", "16", "-d", dir, "--batch-max-delay", "1h")
			var in []byte
			for i := range 60000 {
				in = fmt.Appendf(in, "record %06d of the signal test, padded to look like a log line\n", i)
			}
			in = append(in, "partial last line"...)
			// The pipe holds at most 1 MiB; once Write returns, shardlog has
			// read all but that much.
			if _, err := d.stdin.Write(in); err != nil {
				t.Fatal(err)
			}
			// Wait until shardlog has read the partial line too: then it
			// is blocked reading an open, empty pipe.
			pipeEmpty(t, d)
			// SIGHUP (logrotate, a closed terminal) must not kill it: it
			// reopens every file, losing and doubling nothing.
			if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "every file reopened", 30*time.Second, func() bool {
				return d.stderr.Contains("SIGHUP: reopened shard files") && d.stderr.Contains("reopened=16")
			})
			if err := d.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := d.wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit %d: %s", code, d.stderr.String())
			}
			checkFiles(t, dir, "shard-%03d.log", expect(split(in, 1<<20), 16, 0))
			if err := contains(d.stderr.String(), "stopping", sig.String()); err != nil {
				t.Error(err)
			}
		})
	}
}

// pipeEmpty waits until shardlog has read everything in its stdin pipe,
// as /proc shows the pipe's unread byte count through FIONREAD on our end.
func pipeEmpty(t *testing.T, d *daemon) {
	t.Helper()
	f, ok := d.stdin.(*os.File)
	if !ok {
		t.Fatal("stdin is not a pipe")
	}
	waitFor(t, "shardlog to read its input", 30*time.Second, func() bool {
		n, err := ioctlFIONREAD(f)
		if err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}

// TestSecondSignalExitsAtOnce checks the escape hatch: a second signal
// while shutdown is stuck exits with status 1.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	dir := t.TempDir()
	// /dev/full as a shard file makes every write fail with ENOSPC, a full
	// disk, which shardlog waits out for shutdown_timeout: shutdown is
	// stuck until then.
	for k := range 2 {
		if err := os.Symlink("/dev/full", filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k))); err != nil {
			t.Fatal(err)
		}
	}
	// shardlog makes its stdin non-blocking; a forced exit must still
	// restore it, as a shell sharing the terminal or pipe needs. The test
	// keeps the pipe's read end to look at the flag it shares.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	d := &daemon{cmd: exec.Command(bin, "run", "-n", "2", "-d", dir, "--batch-max-delay", "1ms"), stdin: w}
	d.cmd.Stdin = r
	d.launch(t)
	if _, err := d.stdin.Write([]byte("a\nb\nc\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the full disk to be logged", 30*time.Second, func() bool {
		return d.stderr.Contains("disk full")
	})
	if !nonblocking(t, r) {
		t.Fatal("shardlog did not make its stdin non-blocking: the test below shows nothing")
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first signal to be handled", 30*time.Second, func() bool {
		return d.stderr.Contains("stopping")
	})
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t, 10*time.Second); code != 1 {
		t.Fatalf("exit %d after a second signal, want 1", code)
	}
	if !d.stderr.Contains(`level=ERROR msg="second signal: giving up on what is not written yet"`) {
		t.Errorf("stderr lacks the second signal's error (records given up):\n%s", d.stderr.String())
	}
	if nonblocking(t, r) {
		t.Error("stdin left non-blocking after a forced exit")
	}
}

// nonblocking reports whether f's open file description, which a child
// process shares, has O_NONBLOCK set. (f.Fd would clear it.)
func nonblocking(t *testing.T, f *os.File) bool {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil {
		t.Fatal(err)
	}
	if ferr != nil {
		t.Fatal(ferr)
	}
	return flags&unix.O_NONBLOCK != 0
}
