package test

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecondSignalNothingPending: a second signal that gives nothing up
// (every record read is written, no writer waits) is no error: shardlog
// says it is already finishing and exits 0. timeout(1) does this to every
// command it stops: it sends SIGTERM to the command, then to its process
// group. Here the process is stopped (SIGSTOP) while the two signals are
// sent, so that both are pending when it goes on.
func TestSecondSignalNothingPending(t *testing.T) {
	dir := t.TempDir()
	d := start(t, "run", "-n", "4", "-d", dir)
	in := lines("before the signals", 1000)
	if _, err := d.stdin.Write(in); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every line written", 30*time.Second, func() bool { return len(readAll(t, dir, 4)) == len(in) })
	p := d.cmd.Process
	// SIGTERM twice would be merged into one by the kernel while the
	// process is stopped: SIGTERM and SIGINT stay two.
	for _, sig := range []syscall.Signal{syscall.SIGSTOP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCONT} {
		if err := p.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	if code := d.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, d.stderr.String())
	}
	// Most runs see both signals; a run that finishes its drain before
	// the second reaches the signal handling exits without it, which is
	// no error either.
	stderr := d.stderr.String()
	if strings.Contains(stderr, "second signal") && !strings.Contains(stderr, "second signal: already finishing") {
		t.Errorf("the second signal is not logged as already finishing:\n%s", stderr)
	}
	if strings.Contains(stderr, "level=ERROR") {
		t.Errorf("an error logged with nothing given up:\n%s", stderr)
	}
	checkFiles(t, dir, "shard-%03d.log", expect(split(in, 1<<20), 4, 0))
}
