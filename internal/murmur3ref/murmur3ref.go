// Package murmur3ref is an independent murmur3 x86 32-bit for tests,
// written from the reference algorithm (as bench/python/murmur3_ref.py
// is) rather than shared with shard.Sum32, which shardlog routes with, so tests
// check shardlog's routing against code it does not share.
package murmur3ref

// Sum32 returns the murmur3 x86 32-bit hash of data with seed: what
// Python's mmh3.hash(data, seed, signed=False) returns.
func Sum32(data []byte, seed uint32) uint32 {
	const c1, c2 = 0xcc9e2d51, 0x1b873593
	rotl := func(x uint32, r uint) uint32 { return x<<r | x>>(32-r) }
	h := seed
	n := len(data) / 4 * 4
	for i := 0; i < n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k = rotl(k*c1, 15) * c2
		h = rotl(h^k, 13)*5 + 0xe6546b64
	}
	var k uint32
	switch tail := data[n:]; len(tail) {
	case 3:
		k ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		k ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		k ^= uint32(tail[0])
		h ^= rotl(k*c1, 15) * c2
	}
	h ^= uint32(len(data))
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// Vector is a published test vector: Sum32(Data, Seed) == Want.
type Vector struct {
	Data       string
	Seed, Want uint32
}

// Vectors returns published murmur3 x86 32-bit vectors, which are also what
// Python's mmh3.hash(data, seed, signed=False) returns.
func Vectors() []Vector {
	return []Vector{
		{"", 0, 0},
		{"", 1, 0x514E28B7},
		{"", 0xFFFFFFFF, 0x81F16F39},
		{"\xff\xff\xff\xff", 0, 0x76293B50},
		{"!Ce\x87", 0, 0xF55B516B},
		{"!Ce\x87", 0x5082EDEE, 0x2362F9DE},
		{"!Ce", 0, 0x7E4A8634},
		{"!C", 0, 0xA0F7B07A},
		{"!", 0, 0x72661CF4},
		{"\x00\x00\x00\x00", 0, 0x2362F9DE},
		{"Hello, world!", 0x9747B28C, 0x24884CBA},
		{"The quick brown fox jumps over the lazy dog", 0x9747B28C, 0x2FA826CD},
	}
}
