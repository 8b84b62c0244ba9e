//go:build linux && (386 || arm || mips || mipsle)

package writer

import "golang.org/x/sys/unix"

// sysFstatat is the stat-by-path system call whose result is unix.Stat_t
// on this architecture (stat64's layout on 32-bit systems).
const sysFstatat = unix.SYS_FSTATAT64
