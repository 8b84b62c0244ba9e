//go:build unix

package shard

import (
	"testing"

	"golang.org/x/sys/unix"
)

// atGuard returns a copy of b that ends where readable memory does: right
// before a page mapped with no access, so that reading one byte past it
// faults. The memory is unmapped when the test ends.
func atGuard(t testing.TB, b []byte) []byte {
	t.Helper()
	ps := unix.Getpagesize()
	n := (len(b) + ps - 1) / ps * ps
	m, err := unix.Mmap(-1, 0, n+ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	if err := unix.Mprotect(m[n:], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	c := m[n-len(b) : n : n]
	copy(c, b)
	return c
}
