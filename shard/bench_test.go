package shard

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shardlog/shardlog/writer"
)

// logLines returns n lines shaped like the benchmark generator's
// (bench/gen): about 170 bytes each.
func logLines(n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"request", "completed", "user", "cache", "miss", "timeout", "retry", "payment", "order", "session"}
	lines := make([][]byte, n)
	for i := range lines {
		l := fmt.Appendf(nil, "2026-11-24T00:00:%02d.%06dZ INFO  api req=%016x user=u%05d latency_ms=%d msg=\"",
			i%60, i, r.Uint64(), r.IntN(50000), r.IntN(3000))
		for w := 3 + r.IntN(18); w > 0; w-- {
			l = append(append(l, words[r.IntN(len(words))]...), ' ')
		}
		lines[i] = append(l, '"')
	}
	return lines
}

// BenchmarkRoute measures the router alone: hashing and batching, with
// batches handed straight back as if written instantly.
func BenchmarkRoute(b *testing.B) {
	lines := logLines(1 << 14)
	var size int64
	for _, l := range lines {
		size += int64(len(l) + 1)
	}
	for _, n := range []int{16, 1024, 4096} {
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			outs, stop := discard(n)
			defer stop()
			r, err := New(Config{Shards: n, MaxBatchBytes: 1 << 20, MaxDelay: time.Hour,
				BufferBytes: 32 << 20, MaxMessageBytes: 1 << 20}, outs)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				for _, l := range lines {
					r.Route(l, nil)
				}
			}
			if err := r.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// discard returns n writer inputs whose batches one goroutine hands back
// unwritten, and a function that stops that goroutine and waits for it.
func discard(n int) ([]chan<- *writer.Batch, func()) {
	ch := make(chan *writer.Batch, 1024)
	outs := make([]chan<- *writer.Batch, n)
	for k := range outs {
		outs[k] = ch
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range ch {
			b.Done(nil)
		}
	}()
	return outs, func() { close(ch); <-done }
}

// BenchmarkRouteLines measures the router's part of standard input:
// RouteLines on 256 KiB blocks of log lines already framed and hashed,
// with batches handed straight back as if written instantly.
func BenchmarkRouteLines(b *testing.B) {
	var data []byte
	for _, l := range logLines(1 << 14) {
		if len(data)+len(l)+1 > 256<<10 {
			break
		}
		data = append(append(data, l...), '\n')
	}
	for _, n := range []int{16, 1024} {
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			outs, stop := discard(n)
			defer stop()
			r, err := New(Config{Shards: n, MaxBatchBytes: 256 << 10, MaxDelay: time.Hour,
				BufferBytes: 32 << 20, MaxMessageBytes: 1 << 20}, outs)
			if err != nil {
				b.Fatal(err)
			}
			var ends []int32
			for i, c := range data {
				if c == '\n' {
					ends = append(ends, int32(i))
				}
			}
			shards := make([]int32, len(ends))
			r.Hasher().ShardLines(data, ends, shards)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				r.RouteLines(data, ends, shards)
				r.reclaim()
			}
			if err := r.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
