//go:build !amd64

package shard

// useAVX2 is false: only amd64 has the assembly of body8.
const useAVX2 = false

// body8 sets out[i] to murmur3's hash state after the first nb[i] 4-byte
// blocks of the line at data[starts[i]], from seed: on amd64 it is
// assembly; here it is body, one line at a time, so that sum32x8 and its
// tests build and hold everywhere.
func body8(data []byte, starts, nb *[8]int32, full, chunks int, seed uint32, out *[8]uint32) {
	for i := range out {
		s := int(starts[i])
		out[i] = body(seed, data[s:s+4*int(nb[i])])
	}
}
