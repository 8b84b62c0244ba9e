//go:build linux && (amd64 || mips64 || mips64le || ppc64 || ppc64le || s390x)

package writer

import "golang.org/x/sys/unix"

// sysFstatat is the stat-by-path system call whose result is unix.Stat_t
// on this architecture.
const sysFstatat = unix.SYS_NEWFSTATAT
