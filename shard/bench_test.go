package shard

import (
	"bytes"
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

// genLines returns the first n lines of bench/gen's output (logfmt, about
// 164 bytes a line), each with its '\n': the same format and generator.
func genLines(n int) []byte {
	const format = "2026-11-25T%02d:%02d:%02d.%06dZ %-5s svc=api-%d req=%016x user=u%05d method=GET path=%s status=%d bytes=%d dur_ms=%d msg=\"request completed\"\n"
	levels := []string{"INFO", "INFO", "INFO", "WARN", "DEBUG", "ERROR"}
	paths := []string{"/api/v1/orders", "/api/v1/users", "/health", "/api/v2/search", "/static/app.js"}
	var b []byte
	x := uint64(88172645463325252)
	for i := range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b = fmt.Appendf(b, format,
			i/3600000%24, i/60000%60, i/1000%60, i%1000*1000, levels[x%6], x>>8%8, x, x>>16%50000, paths[x>>24%5],
			[]int{200, 200, 200, 404, 500}[x>>32%5], x>>40%65536, x>>48%1000)
	}
	return b
}

// BenchmarkShardLines measures the hash of standard input's reader:
// ShardLines, whole-message key, N=16, on a 256 KiB block of bench/gen's
// lines, eight lines at a time with AVX2 (where the CPU has it) and two at
// a time (Sum32x2). -count runs each variant's runs back to back, so
// compare them by running the test binary alternately (docs/BENCHMARKS.md).
func BenchmarkShardLines(b *testing.B) {
	gen := genLines(4000)
	var data []byte
	var ends []int32
	for len(gen) > 0 {
		i := bytes.IndexByte(gen, '\n')
		if len(data)+i+1 > 256<<10 {
			break
		}
		data = append(data, gen[:i+1]...)
		ends = append(ends, int32(len(data)-1))
		gen = gen[i+1:]
	}
	h := Hasher{key: Key{kind: kindMessage}, seed: 0, n: 16}
	shards := make([]int32, len(ends))
	for _, v := range []struct {
		name string
		avx2 bool
	}{{"eight", true}, {"two", false}} {
		b.Run(v.name, func(b *testing.B) {
			if v.avx2 && !useAVX2 {
				b.Skip("no AVX2")
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				h.shardLines(data, ends, shards, v.avx2)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ends)), "ns/line")
		})
	}
}
