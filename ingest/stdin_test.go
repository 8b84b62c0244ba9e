package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

// runLines runs a Lines source on in into one shard file and returns the
// file's content and Run's error.
func runLines(t *testing.T, ctx context.Context, in io.Reader, maxMessage int) (string, *Lines, error) {
	t.Helper()
	return runLinesTo(t, ctx, in, maxMessage, filepath.Join(t.TempDir(), "shard-000.log"), time.Hour)
}

func runLinesTo(t *testing.T, ctx context.Context, in io.Reader, maxMessage int, path string, maxDelay time.Duration) (string, *Lines, error) {
	w, err := writer.Open(0, path, writer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() { werr <- w.Run() }()
	r, err := shard.New(shard.Config{Shards: 1, MaxBatchBytes: 1 << 20, MaxDelay: maxDelay,
		BufferBytes: 1 << 20, MaxMessageBytes: maxMessage}, []chan<- *writer.Batch{w.In()})
	if err != nil {
		t.Fatal(err)
	}
	src := NewLines(in, maxMessage)
	runErr := src.Run(ctx, r)
	w.CloseInput()
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data), src, runErr
}

func TestFraming(t *testing.T) {
	cases := []struct {
		name, in, want string
		splits         int64
	}{
		{"empty input", "", "", 0},
		{"lines", "a\nb\n", "a\nb\n", 0},
		{"last line without newline", "a\nb", "a\nb\n", 0},
		{"empty lines", "\n\n\n", "\n\n\n", 0},
		{"crlf kept", "a\r\nb\r\n", "a\r\nb\r\n", 0},
		{"odd bytes", "x\x00y\xff\xfe\n\x00\n", "x\x00y\xff\xfe\n\x00\n", 0},
		{"exactly max", "01234567\n", "01234567\n", 0},
		{"one over max", "012345678\n", "01234567\n8\n", 1},
		{"long line", "0123456789abcdef0123\nz\n", "01234567\n89abcdef\n0123\nz\n", 2},
		{"long last line", "z\n0123456789", "z\n01234567\n89\n", 1},
		{"max without newline at end", "01234567", "01234567\n", 0},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"byte by byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"eof with data", iotest.DataErrReader},
	}
	for _, tc := range cases {
		for _, rd := range readers {
			t.Run(tc.name+"/"+rd.name, func(t *testing.T) {
				got, src, err := runLines(t, context.Background(), rd.wrap(strings.NewReader(tc.in)), 8)
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("file %q, want %q", got, tc.want)
				}
				msgs, splits := src.Stats()
				if want := int64(strings.Count(tc.want, "\n")); msgs != want || splits != tc.splits {
					t.Errorf("stats %d messages %d splits, want %d and %d", msgs, splits, want, tc.splits)
				}
			})
		}
	}
}

func TestReadErrorIsReported(t *testing.T) {
	boom := errors.New("device gone")
	in := io.MultiReader(strings.NewReader("kept\npartial"), iotest.ErrReader(boom))
	got, _, err := runLines(t, context.Background(), in, 64)
	if !errors.Is(err, boom) {
		t.Errorf("Run = %v, want %v", err, boom)
	}
	if got != "kept\npartial\n" {
		t.Errorf("file %q: what was read before the error must be written", got)
	}
}

// TestCancelStopsBlockedRead cancels while a read waits on an open pipe:
// Run must return, with everything read written, the partial line included.
func TestCancelStopsBlockedRead(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	defer pr.Close()
	if _, err := pw.Write([]byte("a\nb\npart")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		got string
		err error
	}
	done := make(chan result, 1)
	path := filepath.Join(t.TempDir(), "shard-000.log")
	go func() {
		got, _, err := runLinesTo(t, ctx, pr, 64, path, time.Millisecond)
		done <- result{got, err}
	}()
	// Once the whole lines are in the file, the read that took them
	// (the pipe's whole content) is done.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if data, _ := os.ReadFile(path); string(data) == "a\nb\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lines not written within 10s")
		}
	}
	cancel()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.got != "a\nb\npart\n" {
		t.Errorf("file %q, want %q", res.got, "a\nb\npart\n")
	}
}

// TestCancelStopsReadingAFile: a regular file's reads never block, so no
// deadline stops them; cancelling must still stop reading well before the
// end of a large file.
func TestCancelStopsReadingAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.log")
	line := strings.Repeat("x", 99) + "\n"
	if err := os.WriteFile(path, []byte(strings.Repeat(line, 200_000)), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, src, err := runLines(t, ctx, f, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := src.Stats()
	if msgs >= 200_000 || int64(strings.Count(got, "\n")) != msgs {
		t.Errorf("routed %d of 200000 lines after cancel (file holds %d)", msgs, strings.Count(got, "\n"))
	}
}

// FuzzFraming checks framing against a plain reference on any input: the
// file must hold each line (cut into pieces of at most max bytes) followed
// by '\n', and nothing else. The seeds run as part of the normal tests.
func FuzzFraming(f *testing.F) {
	f.Add([]byte("a\nb"), uint8(8))
	f.Add([]byte("\n\n\r\n\x00\xff"), uint8(1))
	f.Add([]byte("0123456789abcdef\n012345678"), uint8(4))
	f.Fuzz(func(t *testing.T, in []byte, max uint8) {
		maxMessage := int(max%64) + 1
		got, _, err := runLines(t, context.Background(), iotest.HalfReader(bytes.NewReader(in)), maxMessage)
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		for len(in) > 0 {
			line := in
			if i := bytes.IndexByte(in, '\n'); i >= 0 {
				line, in = in[:i], in[i+1:]
			} else {
				in = nil
			}
			for len(line) > maxMessage {
				want = append(append(want, line[:maxMessage]...), '\n')
				line = line[maxMessage:]
			}
			want = append(append(want, line...), '\n')
		}
		if got != string(want) {
			t.Errorf("max %d: file %q, want %q", maxMessage, got, want)
		}
	})
}
