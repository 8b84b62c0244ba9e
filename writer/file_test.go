package writer

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// send sends one batch of recs to w and waits until it comes back.
func send(t *testing.T, w *Writer, recs ...string) *Batch {
	t.Helper()
	home := make(chan *Batch, 1)
	b := NewBatch(home)
	for _, r := range recs {
		b.Bufs = append(b.Bufs, []byte(r+"\n"))
		b.Records++
		b.Bytes += len(r) + 1
	}
	w.In() <- b
	select {
	case got := <-home:
		if got.Err != nil {
			t.Fatalf("batch failed: %v", got.Err)
		}
		return got
	case <-time.After(30 * time.Second):
		t.Fatal("batch not handed back in 30s")
		return nil
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(data)
}

// waitUntil polls cond until it holds, for at most 30 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
	}
}

// TestReopen: Reopen (SIGHUP after logrotate's rename) moves later batches
// to a new file by the name, leaving earlier ones in the renamed file.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shard-000.log")
	w, err := Open(0, path, Options{CheckEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(w)
	send(t, w, "before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	w.Reopen(nil)
	waitUntil(t, "the file recreated", func() bool { _, err := os.Stat(path); return err == nil })
	send(t, w, "after")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path+".1"); got != "before\n" {
		t.Errorf("renamed file holds %q", got)
	}
	if got := readFile(t, path); got != "after\n" {
		t.Errorf("new file holds %q", got)
	}
	if st := w.Stats(); st.Reopens != 1 || st.Vanished != 0 {
		t.Errorf("reopens %d vanished %d, want 1 and 0", st.Reopens, st.Vanished)
	}
}

// TestVanishedFileIsReopened: without any signal, a file renamed, deleted,
// or taken away with its whole directory is noticed by the periodic check
// and reopened by name, so later records land where people look.
func TestVanishedFileIsReopened(t *testing.T) {
	cases := []struct {
		name   string
		vanish func(t *testing.T, path string)
	}{
		{"renamed", func(t *testing.T, path string) { must(t, os.Rename(path, path+".old")) }},
		{"deleted", func(t *testing.T, path string) { must(t, os.Remove(path)) }},
		{"directory removed", func(t *testing.T, path string) { must(t, os.RemoveAll(filepath.Dir(path))) }},
		{"replaced by another file", func(t *testing.T, path string) {
			must(t, os.Remove(path))
			must(t, os.WriteFile(path, []byte("someone else's\n"), 0o644))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out", "shard-000.log")
			must(t, os.MkdirAll(filepath.Dir(path), 0o755))
			log := &logBuffer{}
			w, err := Open(0, path, Options{CheckEvery: 5 * time.Millisecond, Log: log.logger()})
			if err != nil {
				t.Fatal(err)
			}
			stop := run(w)
			send(t, w, "before")
			tc.vanish(t, path)
			// What is written before the check notices goes to the old
			// file (the documented window): wait for it.
			waitUntil(t, "the file reopened", func() bool { return log.contains("reopened shard file") })
			send(t, w, "after")
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, path); !strings.HasSuffix(got, "after\n") || strings.Contains(got, "before") {
				t.Errorf("file at the path holds %q, want the later record only", got)
			}
			if st := w.Stats(); st.Vanished < 1 {
				t.Errorf("vanished %d, want at least 1", st.Vanished)
			}
		})
	}
}

// logBuffer collects a writer's log for a test to wait on.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestPathReplacedByDirectory: while the path cannot be opened (a directory
// stands there), the writer takes no batch and writes nowhere; once the
// path is usable again, it writes there.
func TestPathReplacedByDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shard-000.log")
	log := &logBuffer{}
	w, err := Open(0, path, Options{CheckEvery: 5 * time.Millisecond, Log: log.logger()})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(w)
	send(t, w, "before")
	must(t, os.Remove(path))
	must(t, os.Mkdir(path, 0o755))
	waitUntil(t, "the writer to find the path unusable", func() bool { return log.contains("cannot be opened") })
	home := make(chan *Batch, 1)
	b := NewBatch(home)
	b.Bufs, b.Records, b.Bytes = [][]byte{[]byte("after\n")}, 1, 6
	w.In() <- b
	select {
	case got := <-home:
		t.Fatalf("batch handed back (err %v) while its file cannot be opened", got.Err)
	case <-time.After(100 * time.Millisecond):
	}
	must(t, os.Remove(path))
	if got := <-home; got.Err != nil {
		t.Fatal(got.Err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "after\n" {
		t.Errorf("file holds %q", got)
	}
}

// TestRepairTail: a file whose last byte is not '\n' is cut back to its
// last whole record, and what is cut is kept in TornDir.
func TestRepairTail(t *testing.T) {
	long := strings.Repeat("x", 100<<10) // longer than one backwards read
	cases := []struct {
		name, content, want, cut string
	}{
		{"whole", "a\nb\n", "a\nb\n", ""},
		{"empty", "", "", ""},
		{"torn", "a\nb\nhalf a rec", "a\nb\n", "half a rec"},
		{"no newline at all", "only part", "", "only part"},
		{"long torn record", "a\n" + long, "a\n", long},
		{"newline far back", long + "\n" + long, long + "\n", long},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "shard-000.log")
			must(t, os.WriteFile(path, []byte(tc.content), 0o644))
			n, err := RepairTail(path, time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), discard(), Perms{})
			if err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, path); got != tc.want {
				t.Errorf("file holds %d bytes, want %d", len(got), len(tc.want))
			}
			if n != int64(len(tc.cut)) {
				t.Errorf("cut %d bytes, want %d", n, len(tc.cut))
			}
			kept, _ := filepath.Glob(filepath.Join(dir, TornDir, "shard-000.log.*"))
			if tc.cut == "" {
				if len(kept) != 0 {
					t.Errorf("kept %v for a whole file", kept)
				}
				return
			}
			if len(kept) != 1 || readFile(t, kept[0]) != tc.cut {
				t.Errorf("kept %v, want one file holding the cut bytes", kept)
			}
		})
	}
	if n, err := RepairTail(filepath.Join(t.TempDir(), "missing"), time.Now(), discard(), Perms{}); n != 0 || err != nil {
		t.Errorf("missing file: %d, %v", n, err)
	}
}

// TestSyncInterval: with SyncInterval, a batch carrying acknowledgements
// comes back only after the sync that covers it (here the final one, or
// one forced by MaxHeldBytes); a batch without comes back at once.
func TestSyncInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shard-000.log")
	w, err := Open(0, path, Options{Sync: SyncInterval, SyncInterval: time.Hour, MaxHeldBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(w)
	send(t, w, "no acks")
	home := make(chan *Batch, 2)
	b := NewBatch(home)
	b.Bufs, b.Records, b.Bytes, b.Acks = [][]byte{[]byte("acked\n")}, 1, 6, []Acker{nopAck{}}
	w.In() <- b
	select {
	case <-home:
		t.Fatal("a batch with acks came back before a sync")
	case <-time.After(100 * time.Millisecond):
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := <-home; got.Err != nil {
		t.Fatal(got.Err)
	}
	if st := w.Stats(); st.Syncs != 1 {
		t.Errorf("%d syncs, want 1 (at close)", st.Syncs)
	}

	// Holding more than MaxHeldBytes syncs at once.
	w, err = Open(0, path, Options{Sync: SyncInterval, SyncInterval: time.Hour, MaxHeldBytes: 4})
	if err != nil {
		t.Fatal(err)
	}
	stop = run(w)
	b.Reset()
	b.Bufs, b.Records, b.Bytes, b.Acks = [][]byte{[]byte("acked\n")}, 1, 6, []Acker{nopAck{}}
	w.In() <- b
	if got := <-home; got.Err != nil {
		t.Fatal(got.Err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Syncs != 1 {
		t.Errorf("%d syncs, want 1", st.Syncs)
	}
	if got := readFile(t, path); got != "no acks\nacked\nacked\n" {
		t.Errorf("file holds %q", got)
	}
}

type nopAck struct{}

func (nopAck) Ack() error { return nil }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestAnswers: a running writer answers at once, and so does one whose Run
// has returned (it is not stuck, only done).
func TestAnswers(t *testing.T) {
	w, err := Open(0, filepath.Join(t.TempDir(), "shard-000.log"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(w)
	if !w.Answers(10 * time.Second) {
		t.Error("a running writer did not answer")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !w.Answers(10 * time.Second) {
		t.Error("a writer that has returned did not answer")
	}
}

// TestFullDiskResumes fills a real small filesystem (a tmpfs, as root):
// the writer waits, takes back what part of the batch fit, writes the
// batch whole once space returns, and counts the wait once; waiting ends
// with it.
func TestFullDiskResumes(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("SKIP: cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	filler := filepath.Join(dir, "filler")
	must(t, os.WriteFile(filler, make([]byte, 900<<10), 0o644))
	path := filepath.Join(dir, "shard-000.log")
	log := &logBuffer{}
	w, err := Open(0, path, Options{Log: log.logger()})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(w)
	home := make(chan *Batch, 1)
	b := NewBatch(home)
	rec := bytes.Repeat([]byte("r"), 1023)
	for range 200 { // 200 KiB: more than is left
		b.Bufs = append(b.Bufs, append(rec[:1023:1023], '\n'))
		b.Records++
		b.Bytes += 1024
	}
	sent := time.Now()
	w.In() <- b
	waitUntil(t, "the full disk to be logged", func() bool { return log.contains("disk full") })
	if data := readFile(t, path); len(data)%1024 != 0 {
		t.Errorf("while waiting the file holds %d bytes: a torn record", len(data))
	}
	must(t, os.Remove(filler))
	if got := <-home; got.Err != nil {
		t.Fatal(got.Err)
	}
	waited := time.Since(sent)        // the longest the wait can have been
	time.Sleep(50 * time.Millisecond) // idle: the blocked time must not grow
	st, waiting := w.Live()
	if waiting {
		t.Error("still waiting after the batch was written")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); len(got) != 200*1024 {
		t.Errorf("file holds %d bytes, want %d", len(got), 200*1024)
	}
	final := w.Stats()
	if final.DiskFull != 1 || final.Blocked <= 0 || final.Blocked != st.Blocked {
		t.Errorf("disk full %d, blocked %s (live %s after idling); want 1 and one steady, positive wait", final.DiskFull, final.Blocked, st.Blocked)
	}
	if final.Blocked > waited {
		t.Errorf("blocked %s, longer than the %s from sending the batch to its return", final.Blocked, waited)
	}
}
