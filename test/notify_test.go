package test

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// notifySocket is a real unixgram socket standing in for systemd's
// NOTIFY_SOCKET: it records every datagram shardlog sends.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	s := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, string(buf[:n]))
			s.mu.Unlock()
		}
	}()
	return s
}

// all returns the datagrams received so far.
func (s *notifySocket) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// count returns how many datagrams so far hold state.
func (s *notifySocket) count(state string) int {
	n := 0
	for _, m := range s.all() {
		if slices.Contains(strings.Split(m, "\n"), state) {
			n++
		}
	}
	return n
}

// index returns the position of the nth datagram (from 1) holding state, or -1.
func (s *notifySocket) index(state string, nth int) int {
	for i, m := range s.all() {
		if slices.Contains(strings.Split(m, "\n"), state) {
			if nth--; nth == 0 {
				return i
			}
		}
	}
	return -1
}

// TestNotifyProtocol runs shardlog under a stand-in for systemd: READY=1
// once its files exist, WATCHDOG=1 pings, RELOADING=1 and READY=1 around a
// SIGHUP, a STATUS= line, and STOPPING=1 when it drains.
func TestNotifyProtocol(t *testing.T) {
	sock := listenNotify(t)
	setenv(t, "NOTIFY_SOCKET", sock.path, "WATCHDOG_USEC", "200000")
	dir := t.TempDir()
	d := start(t, "run", "-n", "4", "-d", dir, "--batch-max-delay", "10ms")
	waitFor(t, "READY=1", 30*time.Second, func() bool { return sock.count("READY=1") == 1 })
	for k := range 4 {
		if _, err := os.Stat(filepath.Join(dir, "shard-00"+string(rune('0'+k))+".log")); err != nil {
			t.Errorf("READY=1 sent before shard %d's file exists: %v", k, err)
		}
	}
	if !strings.Contains(sock.all()[0], "STATUS=") {
		t.Errorf("READY=1 came without a STATUS= line: %q", sock.all()[0])
	}
	waitFor(t, "watchdog pings", 30*time.Second, func() bool { return sock.count("WATCHDOG=1") >= 3 })
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "READY=1 after the reload", 30*time.Second, func() bool { return sock.count("READY=1") == 2 })
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, d.stderr.String())
	}
	ready, reloading, ready2, stopping := sock.index("READY=1", 1), sock.index("RELOADING=1", 1), sock.index("READY=1", 2), sock.index("STOPPING=1", 1)
	if !(ready == 0 && ready < reloading && reloading < ready2 && ready2 < stopping) {
		t.Errorf("order READY %d, RELOADING %d, READY %d, STOPPING %d; want increasing, READY first: %q",
			ready, reloading, ready2, stopping, sock.all())
	}
	if w := sock.index("WATCHDOG=1", 1); w < ready {
		t.Errorf("a watchdog ping before READY=1")
	}
}

// TestWatchdogWithheldWhenWriterStuck: a writer stuck in a system call (its
// file is a FIFO nobody reads: a write that never returns, as on a hung
// disk) stops the watchdog pings, so that systemd restarts shardlog.
func TestWatchdogWithheldWhenWriterStuck(t *testing.T) {
	sock := listenNotify(t)
	setenv(t, "NOTIFY_SOCKET", sock.path, "WATCHDOG_USEC", "200000")
	dir := t.TempDir()
	fifo := filepath.Join(dir, "shard-000.log")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// A reader that never reads: writes block once the pipe is full.
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, "run", "-n", "1", "-d", dir, "--batch-max-delay", "10ms")
	t.Cleanup(func() { _ = d.cmd.Process.Kill(); <-d.done; r.Close() })
	waitFor(t, "watchdog pings", 30*time.Second, func() bool { return sock.count("WATCHDOG=1") >= 2 })
	if _, err := d.stdin.Write(lines("stuck", 20000)); err != nil { // far more than a pipe holds
		t.Fatal(err)
	}
	waitFor(t, "the stuck writer to be noticed", 30*time.Second, func() bool { return d.stderr.Contains("does not answer") })
	// A ping sent before the check failed may still be on its way.
	time.Sleep(500 * time.Millisecond)
	before := sock.count("WATCHDOG=1")
	// Ten watchdog intervals without a ping.
	time.Sleep(2 * time.Second)
	if after := sock.count("WATCHDOG=1"); after != before {
		t.Errorf("%d watchdog pings while a writer is stuck", after-before)
	}
}
