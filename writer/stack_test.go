package writer

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestWriterStackStaysSmall: a writer goroutine that has written batches
// and checked its path still runs in the smallest goroutine stack (2 KiB).
// At thousands of shards a doubled stack is a third of their memory (the
// memory per shard is documented in README). Measured as the growth of
// the stacks in use: an average, as a few writers may grow in the runtime.
func TestWriterStackStaysSmall(t *testing.T) {
	if raceBuild {
		t.Skip("the race detector deepens every stack; make test runs this test without -race too")
	}
	const n = 2048
	dir := t.TempDir()
	ws := make([]*Writer, n)
	for k := range ws {
		w, err := Open(k, filepath.Join(dir, fmt.Sprintf("s%04d.log", k)), Options{CheckEvery: 20 * time.Millisecond, Log: discard()})
		if err != nil {
			t.Fatal(err)
		}
		ws[k] = w
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			if err := w.Run(); err != nil {
				t.Error(err)
			}
		})
	}
	home := make(chan *Batch, n)
	for round := range 3 {
		for _, w := range ws {
			b := NewBatch(home)
			b.Bufs = [][]byte{fmt.Appendf(nil, "round %d\n", round), []byte("a record in two pages\n")}
			b.Records, b.Bytes = 2, len(b.Bufs[0])+len(b.Bufs[1])
			w.In() <- b
		}
		for range ws {
			if b := <-home; b.Err != nil {
				t.Fatal(b.Err)
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // negative check: several path checks run meanwhile
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	for _, w := range ws {
		w.CloseInput()
	}
	wg.Wait()
	perWriter := (int64(after.StackInuse) - int64(before.StackInuse)) / n
	t.Logf("%d bytes of stack per writer", perWriter)
	if perWriter > 3<<10 { // 2.3 KiB when written; 4 KiB when the write path outgrew 2 KiB
		t.Errorf("writers use %d bytes of stack each, want the smallest stack (2 KiB, plus a little)", perWriter)
	}
}
