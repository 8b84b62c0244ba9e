//go:build amd64

package shard

import "golang.org/x/sys/cpu"

// useAVX2 reports whether the processor has AVX2, which body8 needs. It
// describes the CPU, not a configuration: it is set once at start-up and
// never changed.
var useAVX2 = cpu.X86.HasAVX2

// body8 sets out[i], for each of eight lines, to murmur3's hash state after
// the first nb[i] 4-byte blocks of line i, which starts at data[starts[i]],
// from seed. It loads 32 bytes of every line at once and transposes them,
// so that each AVX2 instruction works on one block of all eight lines: no
// gathers. The first full chunks of 32 bytes are whole blocks of every
// line; the rest, up to chunks, mix only each line's first nb[i] blocks.
//
// It reads data[starts[i] : starts[i]+32*chunks] for every i, whatever
// nb[i]: the caller must have checked that these are inside data, and that
// every nb[i] is at most 8*chunks and at least 8*full. It is written in
// assembly (hash_amd64.s) and needs AVX2.
//
//go:noescape
func body8(data []byte, starts, nb *[8]int32, full, chunks int, seed uint32, out *[8]uint32)
