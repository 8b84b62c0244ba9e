package main

import (
	"bytes"
	"math"
	"slices"
	"testing"
	"time"
)

func TestLineRoundTrip(t *testing.T) {
	const size = 180
	bodies := makeBodies(4, size-headerLen-1)
	cases := []struct {
		seq  uint64
		sent int64
	}{
		{0, 0},
		{1, 1},
		{123456, 987654321},
		{999_999_999_999, math.MaxInt64},
	}
	for i, c := range cases {
		line := appendLine(nil, c.seq, c.sent, bodies[i%len(bodies)])
		if len(line) != size || line[size-1] != '\n' || bytes.Count(line, []byte("\n")) != 1 {
			t.Fatalf("appendLine(%d, %d) = %q: want %d bytes with one '\\n' at the end", c.seq, c.sent, line, size)
		}
		seq, sent, ok := parseLine(line[:size-1])
		if !ok || seq != c.seq || sent != c.sent {
			t.Errorf("parseLine(%q) = %d, %d, %v; want %d, %d, true", line, seq, sent, ok, c.seq, c.sent)
		}
	}
}

func TestSentPatchedInPlace(t *testing.T) {
	// The writer formats lines with send time 0, then writes the time into
	// each line at sentOff just before the write.
	bodies := makeBodies(2, 100)
	var buf []byte
	for seq := range uint64(3) {
		buf = appendLine(buf, seq, 0, bodies[seq%2])
	}
	size := headerLen + 100 + 1
	var digits [sentLen]byte
	putDigits(digits[:], uint64(1500*time.Millisecond))
	for off := 0; off < len(buf); off += size {
		copy(buf[off+sentOff:], digits[:])
	}
	for i, line := range bytes.SplitAfter(buf, []byte("\n"))[:3] {
		seq, sent, ok := parseLine(line[:len(line)-1])
		if !ok || seq != uint64(i) || sent != int64(1500*time.Millisecond) {
			t.Errorf("line %d %q: parsed %d, %d, %v", i, line, seq, sent, ok)
		}
	}
}

func TestParseLineRejects(t *testing.T) {
	good := appendLine(nil, 42, 7, makeBodies(1, 20)[0])
	good = good[:len(good)-1]
	for _, line := range [][]byte{
		nil,
		[]byte("hello world"),
		good[:headerLen-1],
		append([]byte("seq=00000000004x"), good[16:]...),
		append([]byte("SEQ="), good[4:]...),
	} {
		if _, _, ok := parseLine(line); ok {
			t.Errorf("parseLine(%q) ok; want rejected", line)
		}
	}
	if _, _, ok := parseLine(good); !ok {
		t.Errorf("parseLine(%q) rejected", good)
	}
}

func TestBodiesDistinctLength(t *testing.T) {
	bodies := makeBodies(16, 137)
	for i, b := range bodies {
		if len(b) != 137 || bytes.IndexByte(b, '\n') >= 0 {
			t.Fatalf("body %d = %q: want 137 bytes without '\\n'", i, b)
		}
	}
	if bytes.Equal(bodies[0], bodies[1]) {
		t.Errorf("bodies 0 and 1 are equal: %q", bodies[0])
	}
}

func TestPercentile(t *testing.T) {
	// 1..100 shuffled: the nearest rank of p is p itself.
	s := make([]int32, 100)
	for i := range s {
		s[i] = int32((i*37)%100 + 1)
	}
	p := summarize(s)
	if p != (percentiles{p50: 50, p90: 90, p99: 99, max: 100}) {
		t.Errorf("summarize(1..100) = %+v", p)
	}
	for _, c := range []struct {
		s    []int32
		p    float64
		want int32
	}{
		{nil, 50, 0},
		{[]int32{7}, 1, 7},
		{[]int32{7}, 100, 7},
		{[]int32{1, 2, 3, 4}, 50, 2},
		{[]int32{1, 2, 3, 4}, 51, 3},
		{[]int32{1, 2, 3, 4}, 99, 4},
		{[]int32{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, 90, 90},
	} {
		if got := percentile(c.s, c.p); got != c.want {
			t.Errorf("percentile(%v, %v) = %d; want %d", c.s, c.p, got, c.want)
		}
	}
}

func TestReaderCountsOnce(t *testing.T) {
	// Lines split across reads, a duplicate, a malformed line, a line sent
	// during the warm-up (counted, not measured) and one never seen.
	const size = 60
	body := makeBodies(1, size-headerLen-1)[0]
	r := newReader(t.TempDir(), "shard-%03d.log", 1, size, 5, 100*time.Millisecond)
	var data []byte
	data = appendLine(data, 0, int64(50*time.Millisecond), body)
	data = appendLine(data, 1, int64(200*time.Millisecond), body)
	data = appendLine(data, 1, int64(200*time.Millisecond), body)
	data = append(data, "garbage\n"...)
	data = appendLine(data, 3, int64(300*time.Millisecond), body)
	rest := r.consume(data[:size+10], int64(250*time.Millisecond))
	rest = r.consume(append(rest, data[size+10:]...), int64(400*time.Millisecond))
	if len(rest) != 0 {
		t.Fatalf("consume left %q", rest)
	}
	lost, dup, extra := r.tally(4)
	if lost != 1 || dup != 1 || extra != 0 || r.bad != 1 {
		t.Errorf("lost, dup, extra, bad = %d, %d, %d, %d; want 1, 1, 0, 1", lost, dup, extra, r.bad)
	}
	want := []int32{200_000, 200_000, 100_000}
	if !slices.Equal(r.samples, want) {
		t.Errorf("samples = %v; want %v", r.samples, want)
	}
}

func TestFilePattern(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "shard-%03d.log"},
		{[]string{"--batch-max-delay", "20ms"}, "shard-%03d.log"},
		{[]string{"--file-pattern", "s%d.txt"}, "s%d.txt"},
		{[]string{"--file-pattern=p-%04d"}, "p-%04d"},
	} {
		if got := filePattern(c.args); got != c.want {
			t.Errorf("filePattern(%q) = %q; want %q", c.args, got, c.want)
		}
	}
}
