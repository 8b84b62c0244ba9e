package writer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAdvance(t *testing.T) {
	cases := []struct {
		in   []string
		n    int
		want []string
	}{
		{[]string{"abc", "de"}, 0, []string{"abc", "de"}},
		{[]string{"abc", "de"}, 2, []string{"c", "de"}},
		{[]string{"abc", "de"}, 3, []string{"de"}},
		{[]string{"abc", "de"}, 4, []string{"e"}},
		{[]string{"abc", "de"}, 5, nil},
		{[]string{"", "", "x"}, 0, []string{"x"}},
		{[]string{"ab", "", "c"}, 2, []string{"c"}},
	}
	for _, tc := range cases {
		iov := make([][]byte, len(tc.in))
		for i, s := range tc.in {
			iov[i] = []byte(s)
		}
		var got []string
		for _, b := range advance(iov, tc.n) {
			got = append(got, string(b))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("advance(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// run starts w and returns a function that closes its input and returns
// Run's result.
func run(w *Writer) func() error {
	errc := make(chan error, 1)
	go func() { errc <- w.Run() }()
	return func() error { w.CloseInput(); return <-errc }
}

func TestWriterAppendsAndHandsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shard-000.log")
	if err := os.WriteFile(path, []byte("existing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Open(0, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(w)
	home := make(chan *Batch, 8)
	want := "existing\n"
	// More buffers than one writev takes, to cover the split into calls.
	b := NewBatch(home)
	for i := range 3000 {
		rec := fmt.Sprintf("rec %d\n", i)
		b.Bufs = append(b.Bufs, []byte(rec))
		b.Records++
		b.Bytes += len(rec)
		want += rec
	}
	w.In() <- b
	got := <-home
	if got != b || got.Err != nil {
		t.Fatalf("handed back %p err %v, want %p nil", got, got.Err, b)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != want {
		t.Errorf("file holds %d bytes, want %d", len(data), len(want))
	}
	if st := w.Stats(); st.Records != 3000 || st.Bytes != int64(len(want)-len("existing\n")) || st.Batches != 1 {
		t.Errorf("stats %d records %d bytes %d batches", st.Records, st.Bytes, st.Batches)
	}
}

// TestWriterWaitsOutAFullDiskUntilAborted: a full disk is waited out, not
// given up on; closing Abort (shutdown has waited long enough) makes the
// writer give up and fail that batch and every later one, naming the shard.
func TestWriterWaitsOutAFullDiskUntilAborted(t *testing.T) {
	// /dev/full fails every write with ENOSPC: a real disk-full file.
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	var failed error
	abort := make(chan struct{})
	w, err := Open(3, "/dev/full", Options{RetryFor: 1, Abort: abort, Fail: func(err error) { failed = err }})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(w)
	home := make(chan *Batch, 2)
	for range 2 {
		b := NewBatch(home)
		b.Bufs, b.Records, b.Bytes = [][]byte{[]byte("x\n")}, 1, 2
		w.In() <- b
	}
	select {
	case b := <-home:
		t.Fatalf("a batch came back (err %v) while the disk is full", b.Err)
	case <-time.After(200 * time.Millisecond):
	}
	close(abort)
	for range 2 {
		if b := <-home; b.Err == nil || !strings.Contains(b.Err.Error(), "shard 3") {
			t.Errorf("batch error %v, want one naming shard 3", b.Err)
		}
	}
	err = stop()
	if err == nil || err != failed {
		t.Errorf("Run = %v, Fail got %v; want the same error", err, failed)
	}
	if st := w.Stats(); st.DiskFull != 1 || st.Blocked <= 0 {
		t.Errorf("stats: disk full %d times, blocked %s; want 1 and some time", st.DiskFull, st.Blocked)
	}
}

func TestOpenFailureNamesShard(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(5, filepath.Join(dir, "missing", "f.log"), Options{})
	if err == nil || !strings.Contains(err.Error(), "shard 5") {
		t.Errorf("Open error %v, want one naming shard 5", err)
	}
}

func TestRoutingRecord(t *testing.T) {
	base := Routing{Shards: 16, Seed: 0, Key: "message", FilePattern: "shard-%03d.log"}
	cases := []struct {
		name   string
		change func(*Routing)
		allow  bool
		want   []string // substrings of the error; nil means accepted
	}{
		{"same", func(*Routing) {}, false, nil},
		{"shards", func(r *Routing) { r.Shards = 8 }, false, []string{"shards was 16, now 8"}},
		{"seed", func(r *Routing) { r.Seed = 7 }, false, []string{"routing.seed was 0, now 7"}},
		{"key", func(r *Routing) { r.Key = "subject" }, false, []string{"routing.key was message, now subject"}},
		{"pattern", func(r *Routing) { r.FilePattern = "s%d" }, false, []string{`file_pattern was "shard-%03d.log", now "s%d"`}},
		{"two at once", func(r *Routing) { r.Shards, r.Seed = 4, 1 }, false, []string{"shards was 16, now 4", "routing.seed was 0, now 1"}},
		{"allowed", func(r *Routing) { r.Shards = 8 }, true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := CheckRouting(dir, base, false); err != nil {
				t.Fatalf("empty dir refused: %v", err)
			}
			if err := RecordRouting(dir, base, Perms{}); err != nil {
				t.Fatal(err)
			}
			now := base
			tc.change(&now)
			allowed, err := CheckRouting(dir, now, tc.allow)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tc.allow && len(allowed) == 0 {
					t.Errorf("an allowed change was not reported")
				}
				return
			}
			if !errors.Is(err, ErrRoutingChanged) {
				t.Fatalf("err %v, want ErrRoutingChanged", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{16 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("batch=%dKiB", size>>10), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "shard.log")
			w, err := Open(0, path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			stop := run(w)
			page := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 128) // 8 KiB
			home := make(chan *Batch, 1)
			batch := NewBatch(home)
			for batch.Bytes < size {
				batch.Bufs = append(batch.Bufs, page)
				batch.Bytes += len(page)
				batch.Records += 128
			}
			bufs := batch.Bufs
			b.SetBytes(int64(batch.Bytes))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				w.In() <- batch
				batch = <-home
				batch.Bufs = bufs
				if i%256 == 255 {
					// Keep the file small: truncating is not a write path.
					_ = os.Truncate(path, 0)
				}
			}
			if err := stop(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
