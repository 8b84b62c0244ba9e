//go:build !unix

package shard

import "testing"

// atGuard returns a copy of b whose capacity is its length (without
// mmap, no guard page follows it).
func atGuard(t testing.TB, b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}
