package shard

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shardlog/shardlog/internal/murmur3ref"
)

// skipNoAVX2 skips a test of sum32x8 on an amd64 processor without AVX2,
// where hash8's assembly cannot run (elsewhere, and with the purego tag,
// hash8 is portable Go).
func skipNoAVX2(t testing.TB) {
	if hash8NeedsAVX2 && !useAVX2 {
		t.Skip("no AVX2")
	}
}

// layout returns a slice holding pad bytes and then lines in the given
// order, each followed by a '\n' but the last, and the start and length of
// each line in it. The last line ends where readable memory does (see
// atGuard), so that a read past it faults.
func layout(t testing.TB, pad int, lines [][]byte, order []int) ([]byte, [8]int32, [8]int32) {
	var starts, lens [8]int32
	b := bytes.Repeat([]byte{0xa5}, pad)
	for n, i := range order {
		starts[i], lens[i] = int32(len(b)), int32(len(lines[i]))
		b = append(b, lines[i]...)
		if n < len(order)-1 {
			b = append(b, '\n')
		}
	}
	return atGuard(t, b), starts, lens
}

// checkSum32x8 compares every lane of sum32x8 with the independent reference.
func checkSum32x8(t *testing.T, what string, data []byte, starts, lens [8]int32, seed uint32) {
	t.Helper()
	var out [8]uint32
	sum32x8(data, &starts, &lens, seed, &out)
	for i, h := range out {
		line := data[starts[i] : starts[i]+lens[i]]
		if want := murmur3ref.Sum32(line, seed); h != want {
			t.Fatalf("%s: lane %d (%d bytes at %d, seed %#x) = %#x, want %#x (lengths %v)",
				what, i, len(line), starts[i], seed, h, want, lens)
		}
	}
}

// TestSum32x8Lengths checks sum32x8 on every length 0..300 in every lane,
// beside lines shorter, as long and longer, with the line last in memory
// (ending where data does) or first, at even and odd offsets.
func TestSum32x8Lengths(t *testing.T) {
	skipNoAVX2(t)
	src := make([]byte, 700)
	for i := range src {
		src[i] = byte(i*131 + i>>8 + 7)
	}
	for n := 0; n <= 300; n++ {
		// A subtest per length, so that its guarded mappings are
		// unmapped when it ends, not all 19k at the test's end.
		t.Run(fmt.Sprint(n), func(t *testing.T) { sum32x8Length(t, src, n) })
	}
}

// sum32x8Length is TestSum32x8Lengths for lines of length n.
func sum32x8Length(t *testing.T, src []byte, n int) {
	for lane := range 8 {
		for other, olen := range []int{n, n / 2, n + 37, 164} {
			lines := make([][]byte, 8)
			for i := range lines {
				l := olen + i%3
				if i == lane {
					l = n
				}
				lines[i] = src[i*41 : i*41+l]
			}
			last := make([]int, 0, 8) // lane last in memory, the rest in order
			for i := range 8 {
				if i != lane {
					last = append(last, i)
				}
			}
			last = append(last, lane)
			first := append([]int{lane}, last[:7]...)
			seed := []uint32{0, 0x9747b28c, 1, 0xffffffff}[other]
			for pad, order := range [][]int{last, first} {
				data, starts, lens := layout(t, pad*3, lines, order)
				checkSum32x8(t, fmt.Sprintf("length %d in lane %d, others %d, pad %d", n, lane, olen, pad*3), data, starts, lens, seed)
			}
		}
	}
}

// TestSum32x8Mixed checks lines of very different lengths side by side (an
// empty one, one of 4 KiB, one the chunking leaves partly to Go), in every
// pair of lanes, each in turn last in memory, and lines that overlap.
func TestSum32x8Mixed(t *testing.T) {
	skipNoAVX2(t)
	r := rand.New(rand.NewPCG(3, 4))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	for empty := range 8 {
		for long := range 8 {
			if long == empty {
				continue
			}
			lines := make([][]byte, 8)
			for i := range lines {
				lines[i] = rnd(100 + r.IntN(120))
			}
			lines[empty] = nil
			lines[long] = rnd(4096 + long)
			lines[(long+1)%8] = rnd(1000 + empty) // a second long one: the chunks cover both
			for _, lastLane := range []int{empty, long} {
				order := []int{}
				for i := range 8 {
					if i != lastLane {
						order = append(order, i)
					}
				}
				order = append(order, lastLane)
				for _, seed := range []uint32{0, 0x5082edee} {
					data, starts, lens := layout(t, 1, lines, order)
					checkSum32x8(t, fmt.Sprintf("empty lane %d, long lane %d, last %d", empty, long, lastLane), data, starts, lens, seed)
				}
			}
		}
	}
	// Lines that overlap, and eight times the same line, at every offset.
	data := atGuard(t, rnd(2000))
	for off := 0; off < 64; off++ {
		var starts, lens [8]int32
		for i := range 8 {
			starts[i], lens[i] = int32(off+i*7), int32(150+i*13+off)
		}
		checkSum32x8(t, fmt.Sprintf("overlapping at %d", off), data, starts, lens, uint32(off))
		for i := range 8 {
			starts[i], lens[i] = int32(len(data)-200-off), int32(200+off)
		}
		checkSum32x8(t, fmt.Sprintf("the same line, ending at data's end, at %d", off), data, starts, lens, 42)
	}
}

// TestSum32x8Random checks random lengths and offsets, the lines in random
// order in memory and the last at data's end.
func TestSum32x8Random(t *testing.T) {
	skipNoAVX2(t)
	r := rand.New(rand.NewPCG(5, 6))
	for iter := range 3000 {
		lines := make([][]byte, 8)
		for i := range lines {
			n := r.IntN(400)
			if r.IntN(8) == 0 {
				n = r.IntN(8)
			}
			lines[i] = make([]byte, n)
			for j := range lines[i] {
				lines[i][j] = byte(r.Uint32())
			}
		}
		order := r.Perm(8)
		data, starts, lens := layout(t, r.IntN(40), lines, order)
		checkSum32x8(t, fmt.Sprintf("iteration %d", iter), data, starts, lens, r.Uint32())
	}
}

// checkShardLines compares ShardLines with eight lines at a time, with two,
// and Shard of each line.
func checkShardLines(t *testing.T, data []byte, ends []int32, seed uint32, n uint32) {
	t.Helper()
	h := Hasher{key: Key{kind: kindMessage}, seed: seed, n: n}
	got8 := make([]int32, len(ends))
	got2 := make([]int32, len(ends))
	h.shardLines(data, ends, got8, true)
	h.shardLines(data, ends, got2, false)
	start := 0
	for i, end := range ends {
		want, _ := h.Shard(data[start:end], nil)
		if got8[i] != int32(want) || got2[i] != int32(want) {
			t.Fatalf("line %d of %d (%d bytes, seed %#x, %d shards): eight at a time %d, two at a time %d, Shard %d",
				i, len(ends), int(end)-start, seed, n, got8[i], got2[i], want)
		}
		start = int(end) + 1
	}
}

// FuzzShardLines holds ShardLines, eight lines at a time, equal to
// ShardLines two at a time and to Shard of each line, on random blocks:
// the fuzzer's bytes, with a '\n' put every few bytes if every is not zero,
// as they are and cut at the last line's end, where readable memory ends.
func FuzzShardLines(f *testing.F) {
	var block []byte
	for _, l := range logLines(40) {
		block = append(append(block, l...), '\n')
	}
	f.Add(block, uint32(0), uint16(16), uint8(0))
	f.Add(block, uint32(0x9747b28c), uint16(1024), uint8(0))
	f.Add([]byte("a\nbb\nccc\ndddd\neeeee\nffffff\nggggggg\nhhhhhhhh\n\n\n"), uint32(1), uint16(3), uint8(0))
	f.Add(goldenData(), uint32(7), uint16(5), uint8(37))
	f.Add(bytes.Repeat([]byte{'x'}, 5000), uint32(2), uint16(16), uint8(199))
	f.Add(bytes.Repeat([]byte("\n"), 20), uint32(0), uint16(1), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, seed uint32, n uint16, every uint8) {
		skipNoAVX2(t)
		data = append([]byte(nil), data...)
		if every > 0 {
			for i := int(every) - 1; i < len(data); i += int(every) {
				data[i] = '\n'
			}
		}
		var ends []int32
		for i, c := range data {
			if c == '\n' {
				ends = append(ends, int32(i))
			}
		}
		shards := max(1, uint32(n))
		// As the reader gives it (the last '\n' is in data), and cut at
		// the last end, so that the last line ends where memory does.
		checkShardLines(t, data, ends, seed, shards)
		if len(ends) > 0 {
			checkShardLines(t, atGuard(t, data[:ends[len(ends)-1]]), ends, seed, shards)
		}
	})
}

// TestShardLinesEightBlocks checks ShardLines eight lines at a time on a
// 256 KiB block of generated log lines, and on the same block ending at the
// last line's end, where readable memory does.
func TestShardLinesEightBlocks(t *testing.T) {
	skipNoAVX2(t)
	data, ends := lineBlock(256 << 10)
	cut := atGuard(t, data[:ends[len(ends)-1]])
	for _, n := range []uint32{1, 16, 1024, 1<<31 + 11} {
		checkShardLines(t, data, ends, 0x9747b28c, n)
		checkShardLines(t, cut, ends, 0, n)
	}
}

// lineBlock returns up to size bytes of logLines, each with its '\n', and
// where each line ends, in a slice whose capacity is its length.
func lineBlock(size int) ([]byte, []int32) {
	var data []byte
	var ends []int32
	for _, l := range logLines(1 << 14) {
		if len(data)+len(l)+1 > size {
			break
		}
		data = append(data, l...)
		ends = append(ends, int32(len(data)))
		data = append(data, '\n')
	}
	return data[:len(data):len(data)], ends
}
