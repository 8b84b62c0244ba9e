//go:build amd64 && !purego

package shard

import "golang.org/x/sys/cpu"

// useAVX2 reports whether the processor has AVX2, which hash8 needs. It
// describes the CPU, not a configuration: it is set once at start-up and
// never changed.
var useAVX2 = cpu.X86.HasAVX2

// hash8NeedsAVX2 says that hash8 is the assembly, which only runs where
// useAVX2 is set.
const hash8NeedsAVX2 = true

// hash8 sets out[i], for each of eight lines, to murmur3's hash state
// after the first nb[i] 4-byte blocks of line i, data[starts[i]:][:lens[i]],
// from seed; and if fin is set, finishes it (see finishEnd) into Sum32 of the
// line. It loads 32 bytes of every line at once and transposes them, so
// that each AVX2 instruction works on one block of all eight lines: no
// gathers in the loop (one, for the lines' last 4 bytes, at the finish).
// The first full chunks of 32 bytes are whole blocks of every line; the
// rest, up to chunks, mix only each line's first nb[i] blocks.
//
// It reads data[starts[i] : starts[i]+32*chunks] for every i, whatever
// nb[i], and with fin data[starts[i]+lens[i]-4 : starts[i]+lens[i]]: the
// caller must have checked that these are inside data, that every nb[i] is
// at most 8*chunks and at least 8*full, and with fin, that nb[i] is
// lens[i]/4. It is written in assembly (hash_amd64.s) and needs AVX2.
//
//go:noescape
func hash8(data []byte, starts, lens, nb *[8]int32, full, chunks int, seed uint32, fin bool, out *[8]uint32)
