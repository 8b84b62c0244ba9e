package shard

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/spaolacci/murmur3"

	"github.com/shardlog/shardlog/internal/murmur3ref"
)

// goldenData is the input testdata/mmh3.txt hashes prefixes of.
func goldenData() []byte {
	d := make([]byte, 301)
	for i := range d {
		d[i] = byte(i*31 + 7)
	}
	return d
}

// TestSum32Golden checks Sum32 and both lanes of Sum32x2 against mmh3's
// values for every length 0..300 (testdata/mmh3.txt, made by a reference
// that holds the published vectors).
func TestSum32Golden(t *testing.T) {
	f, err := os.Open("testdata/mmh3.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := goldenData()
	s := bufio.NewScanner(f)
	cases := 0
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		var n int
		var seed, want uint32
		if _, err := fmt.Sscanf(line, "%d %v %v", &n, &seed, &want); err != nil {
			t.Fatalf("testdata/mmh3.txt: %q: %v", line, err)
		}
		d := data[:n]
		if got := Sum32(d, seed); got != want {
			t.Errorf("Sum32(len %d, seed %#x) = %#x, want %#x", n, seed, got, want)
		}
		// d in each lane, beside inputs shorter, equal and longer.
		for _, other := range [][]byte{data[:n/2], data[:n], data[:min(n+5, len(data))], data[3:]} {
			if h, _ := Sum32x2(d, other, seed); h != want {
				t.Errorf("Sum32x2 lane 0 (len %d beside %d, seed %#x) = %#x, want %#x", n, len(other), seed, h, want)
			}
			if _, h := Sum32x2(other, d, seed); h != want {
				t.Errorf("Sum32x2 lane 1 (len %d beside %d, seed %#x) = %#x, want %#x", n, len(other), seed, h, want)
			}
		}
		cases++
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if cases != 2*301 {
		t.Fatalf("testdata/mmh3.txt holds %d cases, want %d", cases, 2*301)
	}
}

// TestSum32Vectors checks the published vectors.
func TestSum32Vectors(t *testing.T) {
	for _, v := range murmur3ref.Vectors() {
		if got := Sum32([]byte(v.Data), v.Seed); got != v.Want {
			t.Errorf("Sum32(%q, %#x) = %#x, want %#x", v.Data, v.Seed, got, v.Want)
		}
	}
}

// TestSum32Long checks long inputs, whose lengths are not a multiple of 4,
// against the independent reference.
func TestSum32Long(t *testing.T) {
	line := bytes.Repeat([]byte("2026-11-25T00:00:00Z INFO long line\x00\xff\r "), 30000)
	for _, n := range []int{1 << 10, 1<<16 + 1, 1<<20 + 3, len(line)} {
		d := line[:n]
		want := murmur3ref.Sum32(d, 42)
		if got := Sum32(d, 42); got != want {
			t.Errorf("Sum32(len %d) = %#x, want %#x", n, got, want)
		}
		if _, got := Sum32x2(d[1:], d, 42); got != want {
			t.Errorf("Sum32x2(len %d) = %#x, want %#x", n, got, want)
		}
	}
}

// FuzzSum32 holds Sum32 and Sum32x2 equal to the independent reference on
// any input: the fuzzer's bytes cut into lanes at its chosen points.
func FuzzSum32(f *testing.F) {
	f.Add([]byte("hello, world"), uint32(0), uint8(3), uint8(7), uint8(9))
	f.Add([]byte{}, uint32(1), uint8(0), uint8(0), uint8(0))
	f.Add(goldenData(), uint32(0x9747b28c), uint8(100), uint8(200), uint8(250))
	f.Fuzz(func(t *testing.T, data []byte, seed uint32, i, j, k uint8) {
		if got, want := Sum32(data, seed), murmur3ref.Sum32(data, seed); got != want {
			t.Fatalf("Sum32(%q, %#x) = %#x, want %#x", data, seed, got, want)
		}
		cut := func(x uint8) int { return int(x) % (len(data) + 1) }
		for _, pair := range [][2][]byte{{data[:cut(i)], data[cut(i):]}, {data[cut(j):], data[:cut(k)]}} {
			var h [2]uint32
			h[0], h[1] = Sum32x2(pair[0], pair[1], seed)
			for l, d := range pair {
				if want := murmur3ref.Sum32(d, seed); h[l] != want {
					t.Fatalf("Sum32x2 lane %d (%q, %#x) = %#x, want %#x", l, d, seed, h[l], want)
				}
			}
		}
	})
}

// BenchmarkSum32 compares the library, Sum32 and Sum32x2 on log lines.
func BenchmarkSum32(b *testing.B) {
	lines := logLines(1 << 12)
	var size int64
	for _, l := range lines {
		size += int64(len(l))
	}
	b.Run("library", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			for _, l := range lines {
				hashSink += murmur3.Sum32WithSeed(l, 0)
			}
		}
	})
	b.Run("Sum32", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			for _, l := range lines {
				hashSink += Sum32(l, 0)
			}
		}
	})
	b.Run("Sum32x2", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			for i := 0; i+2 <= len(lines); i += 2 {
				h0, h1 := Sum32x2(lines[i], lines[i+1], 0)
				hashSink += h0 + h1
			}
		}
	})
}

// hashSink keeps the benchmarks' hashes from being optimised away.
var hashSink uint32

// TestShardLines checks that ShardLines gives every line the shard Shard
// gives it, for lines of every length and for keys that hash four lines at
// a time and one at a time, missing keys included.
func TestShardLines(t *testing.T) {
	var data []byte
	var ends []int32
	for i := range 700 {
		line := bytes.Repeat([]byte{byte('a' + i%26)}, i%301)
		if i%5 == 0 {
			line = fmt.Appendf(nil, `{"user":"u%d","n":%d}`, i%17, i)
		}
		data = append(data, line...)
		ends = append(ends, int32(len(data)))
		data = append(data, '\n')
	}
	for _, key := range []string{"message", "json:user"} {
		k, err := ParseKey(key)
		if err != nil {
			t.Fatal(err)
		}
		h := Hasher{key: k, seed: 0x9747b28c, n: 13}
		for _, lines := range []int{0, 1, 3, 4, 5, 699, 700} {
			got := make([]int32, lines)
			h.ShardLines(data, ends[:lines], got)
			start := 0
			for i, end := range ends[:lines] {
				want, ok := h.Shard(data[start:end], nil)
				if !ok {
					want = -1 - want
				}
				if int(got[i]) != want {
					t.Fatalf("key %s, %d lines: line %d got shard %d, want %d", key, lines, i, got[i], want)
				}
				start = int(end) + 1
			}
		}
	}
}
