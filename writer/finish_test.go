package writer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// text returns what l holds.
func (l *logBuffer) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// writeRotated writes n rotated files of shard file name into dir, a
// minute apart, each holding its own records, and returns their paths,
// oldest first.
func writeRotated(t *testing.T, dir, name string, n int) []string {
	t.Helper()
	var paths []string
	for i := range n {
		stamp := time.Date(2026, 11, 25, 10, i, 0, 0, time.UTC).Format(stampLayout)
		p := filepath.Join(dir, name+"."+stamp)
		must(t, os.WriteFile(p, bytes.Repeat(fmt.Appendf(nil, "%s rotated file %d\n", name, i), 100), 0o644))
		paths = append(paths, p)
	}
	return paths
}

// TestArchiverFinish: Finish, at the end of input, returns only once
// every rotated file is compressed and retention applied: those queued,
// and those that found the queue full while compression was held up.
func TestArchiverFinish(t *testing.T) {
	dir := t.TempDir()
	gate := make(chan struct{})
	var calls atomic.Int64
	held := func(ctx context.Context, src, dst string, c Compression) error {
		if calls.Add(1) == 1 {
			select { // compression falls behind while files are handed over
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return CompressFile(ctx, src, dst, c)
	}
	var log logBuffer
	names := []string{"s0.log", "s1.log"}
	const keep = 3
	a := NewArchiver(ArchiveOptions{Dir: dir, Names: names, Compress: CompressZstd, Keep: keep, Log: log.logger(), Compressor: held})
	a.Start()
	a.Wait()         // the start's scan of the empty directory is done
	n := cap(a.jobs) // per shard: together twice what the queue holds
	paths := map[string][]string{}
	for _, name := range names {
		paths[name] = writeRotated(t, dir, name, n)
	}
	for i := range n {
		for _, name := range names {
			a.Rotated(paths[name][i]) // must not wait, though the queue is full
		}
		if i == 0 {
			waitUntil(t, "the first compression to start", func() bool { return calls.Load() == 1 })
		}
	}
	finished := make(chan error, 1)
	go func() { finished <- a.Finish(context.Background()) }()
	close(gate)
	if err := <-finished; err != nil {
		t.Fatalf("Finish: %v", err)
	}
	// Finish is done: the directory is final before Close.
	for _, name := range names {
		left, err := filepath.Glob(filepath.Join(dir, name+".*"))
		must(t, err)
		if len(left) != keep {
			t.Errorf("%s: %d rotated files left, want %d: %v", name, len(left), keep, left)
		}
		for i, p := range left {
			orig := paths[name][n-keep+i]
			if p != orig+".zst" {
				t.Errorf("%s: left %s, want %s.zst", name, filepath.Base(p), filepath.Base(orig))
				continue
			}
			want := bytes.Repeat(fmt.Appendf(nil, "%s rotated file %d\n", name, n-keep+i), 100)
			if got := decompress(t, p); !bytes.Equal(got, want) {
				t.Errorf("%s does not hold its records", p)
			}
		}
	}
	st := a.Close()
	if st.Errors != 0 {
		t.Errorf("%d archive errors", st.Errors)
	}
	if strings.Contains(log.text(), "left uncompressed") {
		t.Errorf("Close reports files left after Finish:\n%s", log.text())
	}
}

// TestArchiverRetainsBeforeCompressing: a backlog found at start (or at
// the end of input) is trimmed to keep first, so that no file is
// compressed only to be deleted; the work is logged with its size.
func TestArchiverRetainsBeforeCompressing(t *testing.T) {
	dir := t.TempDir()
	names := []string{"s0.log", "s1.log"}
	for _, name := range names {
		writeRotated(t, dir, name, 10)
	}
	var log logBuffer
	a := NewArchiver(ArchiveOptions{Dir: dir, Names: names, Compress: CompressGzip, Keep: 2, Log: log.logger()})
	a.Start()
	a.Wait()
	st := a.Close()
	if st.Compressed != 4 || st.Removed != 16 || st.Errors != 0 {
		t.Errorf("compressed %d, removed %d, %d errors; want 4 (2 kept per shard), 16, 0", st.Compressed, st.Removed, st.Errors)
	}
	if !strings.Contains(log.text(), `msg="compressing rotated files left by an earlier run" files=4`) {
		t.Errorf("the backlog is not logged with its size:\n%s", log.text())
	}
}

// TestArchiverLogsProgress: a long run of compressions says how far it
// is every ProgressEvery (here each file takes a minute of a fake clock).
func TestArchiverLogsProgress(t *testing.T) {
	dir := t.TempDir()
	writeRotated(t, dir, "s0.log", 4)
	var mu sync.Mutex
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	minute := func(ctx context.Context, src, dst string, c Compression) error {
		mu.Lock()
		now = now.Add(time.Minute)
		mu.Unlock()
		return CompressFile(ctx, src, dst, c)
	}
	var log logBuffer
	a := NewArchiver(ArchiveOptions{Dir: dir, Names: []string{"s0.log"}, Compress: CompressGzip, Log: log.logger(),
		Now: clock, ProgressEvery: 90 * time.Second, Compressor: minute})
	a.Start()
	if err := a.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.Close()
	// After files 2 and 4 two minutes have passed; after the last one
	// nothing is said (the run's summary counts it).
	got := log.text()
	for _, want := range []string{`msg="compressing rotated files" done=2 of=4`} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, `msg="compressing rotated files" `); n != 1 {
		t.Errorf("%d progress lines, want 1:\n%s", n, got)
	}
}

// TestArchiverFinishStopped: a signal during Finish (its ctx done) ends
// the wait at once, though a compression is in progress; Close then cuts
// it short and logs how many files are left for the next start.
func TestArchiverFinishStopped(t *testing.T) {
	dir := t.TempDir()
	paths := writeRotated(t, dir, "s0.log", 5)
	started := make(chan struct{}, len(paths))
	stuck := func(ctx context.Context, src, dst string, c Compression) error {
		started <- struct{}{}
		<-ctx.Done() // a compression that takes as long as it is let
		return ctx.Err()
	}
	var log logBuffer
	a := NewArchiver(ArchiveOptions{Dir: dir, Names: []string{"s0.log"}, Compress: CompressGzip, Log: log.logger(), Compressor: stuck})
	a.Start()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan error, 1)
	go func() { finished <- a.Finish(ctx) }()
	cancel()
	if err := <-finished; !errors.Is(err, context.Canceled) {
		t.Fatalf("Finish returned %v after its ctx was canceled, want context.Canceled", err)
	}
	if st := a.Close(); st.Errors != 0 || st.Compressed != 0 {
		t.Errorf("%d errors, %d compressed; want 0, 0", st.Errors, st.Compressed)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("rotated file not left for the next start: %v", err)
		}
	}
	if !strings.Contains(log.text(), `msg="rotated files left uncompressed until the next start" files=5`) {
		t.Errorf("Close does not count what it leaves:\n%s", log.text())
	}
}
