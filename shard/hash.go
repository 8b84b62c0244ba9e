package shard

import (
	"encoding/binary"
	"math/bits"
)

// The murmur3 x86 32-bit constants.
const (
	c1 = 0xcc9e2d51
	c2 = 0x1b873593
)

// Sum32 returns the murmur3 x86 32-bit hash of data with seed: what
// Python's mmh3.hash(data, seed, signed=False) returns, and the hash every
// route of shardlog's is chosen by. It reads data with bounds-checked
// loads, so it runs under the race detector's pointer checks.
func Sum32(data []byte, seed uint32) uint32 {
	return finish(body(seed, data), data)
}

// body mixes the whole 4-byte blocks of data into h.
func body(h uint32, data []byte) uint32 {
	for len(data) >= 8 {
		k := binary.LittleEndian.Uint64(data)
		h = mix(mix(h, uint32(k)), uint32(k>>32))
		data = data[8:]
	}
	if len(data) >= 4 {
		h = mix(h, binary.LittleEndian.Uint32(data))
		data = data[4:]
	}
	return h
}

// mix mixes one 4-byte block k into h.
func mix(h, k uint32) uint32 {
	k *= c1
	k = bits.RotateLeft32(k, 15)
	k *= c2
	h ^= k
	h = bits.RotateLeft32(h, 13)
	return h*5 + 0xe6546b64
}

// finish mixes in the last len(data)%4 bytes of data and the length, and
// finalizes h, which holds the whole blocks of data.
func finish(h uint32, data []byte) uint32 {
	tail := data[len(data)&^3:]
	var k uint32
	switch len(tail) {
	case 3:
		k ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		k ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		k ^= uint32(tail[0])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
	}
	h ^= uint32(len(data))
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// Sum32x2 returns Sum32 of two inputs. It hashes them side by side, eight
// bytes of each per step, so that the processor overlaps two chains of
// multiplications where Sum32 waits on one: on log lines it is about 1.4
// times as fast as two calls to Sum32 or to the murmur3 library. (Four
// lanes are slower in pure Go: their state no longer fits in registers.)
func Sum32x2(a, b []byte, seed uint32) (uint32, uint32) {
	ha, hb := seed, seed
	n := min(len(a), len(b)) &^ 7
	// Slicing both to n lets the compiler drop the bounds checks.
	a8, b8 := a[:n], b[:n]
	for i := 0; i+8 <= len(a8) && i+8 <= len(b8); i += 8 {
		ka := binary.LittleEndian.Uint64(a8[i:])
		kb := binary.LittleEndian.Uint64(b8[i:])
		ha = mix(ha, uint32(ka))
		hb = mix(hb, uint32(kb))
		ha = mix(ha, uint32(ka>>32))
		hb = mix(hb, uint32(kb>>32))
	}
	return finish(body(ha, a[n:]), a), finish(body(hb, b[n:]), b)
}

// sum32x8 sets out[i] to Sum32 of line i, data[starts[i]:starts[i]+lens[i]],
// for eight lines at once. hash8 mixes the lines' 4-byte blocks in chunks
// of 32 bytes of each line, eight lines a step, as many chunks as the
// longest line needs unless it is much longer than the second (a chunk
// costs about what 64 bytes of one line cost in Go), but none that would
// read past the end of data. When that covers every line and each ends at
// least 4 bytes into data, hash8 also finishes the hashes; otherwise what
// it left of each line, the last 1-3 bytes and the length are mixed in
// here, one line at a time. The processor must have AVX2 (useAVX2) unless
// hash8 is the portable one.
func sum32x8(data []byte, starts, lens *[8]int32, seed uint32, out *[8]uint32) {
	var nb [8]int32
	chunks := uint(len(data)) / 32
	first, second := uint(0), uint(0) // the chunks of the longest two lines
	fin := true
	for i := range 8 {
		s, l := int(starts[i]), int(lens[i])
		_ = data[s : s+l] // the line is inside data (panics if not)
		nb[i] = int32(uint(l) / 4)
		chunks = min(chunks, uint(len(data)-s)/32)
		c := (uint(l)/4 + 7) / 8
		second = max(second, min(first, c))
		first = max(first, c)
		fin = fin && s+l >= 4
	}
	if raceEnabled {
		raceRead(data, starts, lens)
	}
	chunks = min(chunks, first, 2*second+2)
	full := chunks
	for i, n := range nb {
		if uint(n) > 8*chunks {
			nb[i] = int32(8 * chunks)
			fin = false
		}
		full = min(full, uint(nb[i])/8)
	}
	hash8(data, starts, lens, &nb, int(full), int(chunks), seed, fin, out)
	if fin {
		return
	}
	for i := range 8 {
		s, l := int(starts[i]), int(lens[i])
		line := data[s : s+l]
		h := out[i]
		if rest := line[4*nb[i]:]; len(rest) >= 4 {
			h = body(h, rest)
		}
		if s+l >= 4 {
			out[i] = finishEnd(h, data[:s+l], l)
		} else {
			out[i] = finish(h, line)
		}
	}
}

// finishEnd is finish for the last n bytes of data, which holds at least 4
// bytes (the line's own, or bytes before it too), without a branch on the
// length of the tail, which is as random as the lengths of log lines: it
// loads the last 4 bytes of data and shifts the tail's n%4 bytes down.
func finishEnd(h uint32, data []byte, n int) uint32 {
	// A shift by 32, for no tail, gives 0, which mixes in as nothing.
	k := binary.LittleEndian.Uint32(data[len(data)-4:]) >> (32 - 8*uint(n&3))
	k *= c1
	k = bits.RotateLeft32(k, 15)
	k *= c2
	h ^= k
	h ^= uint32(n)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// raceRead reads every byte of the eight lines in Go, so that the race
// detector sees the reads hash8's assembly makes (it sees none of them).
//
//go:noinline
func raceRead(data []byte, starts, lens *[8]int32) (x byte) {
	for i := range 8 {
		for _, c := range data[starts[i] : starts[i]+lens[i]] {
			x ^= c
		}
	}
	return x
}
