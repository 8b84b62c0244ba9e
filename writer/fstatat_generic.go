//go:build linux && (arm64 || riscv64 || loong64)

package writer

import "golang.org/x/sys/unix"

// sysFstatat is the stat-by-path system call whose result is unix.Stat_t
// on this architecture (the generic system call table's fstatat).
const sysFstatat = unix.SYS_FSTATAT
