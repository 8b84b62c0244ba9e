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
	for len(data) >= 4 {
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

// Sum32x4 returns Sum32 of four inputs. It hashes them side by side, one
// block of each per step, so the processor overlaps four chains of
// multiplications where Sum32 waits on one: on lines of similar length it
// is about twice as fast as four calls to Sum32.
func Sum32x4(a, b, c, d []byte, seed uint32) (uint32, uint32, uint32, uint32) {
	ha, hb, hc, hd := seed, seed, seed, seed
	n := min(len(a), len(b), len(c), len(d)) &^ 3
	// Slicing to n first lets the compiler drop the bounds checks.
	a4, b4, c4, d4 := a[:n], b[:n], c[:n], d[:n]
	for i := 0; i+4 <= len(a4) && i+4 <= len(b4) && i+4 <= len(c4) && i+4 <= len(d4); i += 4 {
		ha = mix(ha, binary.LittleEndian.Uint32(a4[i:]))
		hb = mix(hb, binary.LittleEndian.Uint32(b4[i:]))
		hc = mix(hc, binary.LittleEndian.Uint32(c4[i:]))
		hd = mix(hd, binary.LittleEndian.Uint32(d4[i:]))
	}
	return finish(body(ha, a[n:]), a), finish(body(hb, b[n:]), b),
		finish(body(hc, c[n:]), c), finish(body(hd, d[n:]), d)
}
