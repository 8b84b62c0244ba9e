//go:build !amd64 || purego

package shard

// useAVX2 is false: only amd64 has the assembly of hash8, and the purego
// build tag leaves it out there too (go test -tags purego tests this file
// on amd64).
const useAVX2 = false

// hash8NeedsAVX2 is false: this hash8 is Go, and runs anywhere.
const hash8NeedsAVX2 = false

// hash8 sets out[i] to murmur3's hash state after the first nb[i] 4-byte
// blocks of line i, data[starts[i]:][:lens[i]], from seed, and if fin is
// set finishes it into Sum32 of the line. On amd64 it is assembly; here it
// is body and finishEnd, one line at a time, so that sum32x8 and its tests
// build and hold everywhere.
func hash8(data []byte, starts, lens, nb *[8]int32, full, chunks int, seed uint32, fin bool, out *[8]uint32) {
	for i := range out {
		s := int(starts[i])
		out[i] = body(seed, data[s:s+4*int(nb[i])])
		if fin {
			out[i] = finishEnd(out[i], data[:s+int(lens[i])], int(lens[i]))
		}
	}
}
