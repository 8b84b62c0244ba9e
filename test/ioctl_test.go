package test

import (
	"os"

	"golang.org/x/sys/unix"
)

// ioctlFIONREAD returns how many bytes wait unread in the pipe f belongs to.
func ioctlFIONREAD(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ioErr error
	if err := rc.Control(func(fd uintptr) { n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); err != nil {
		return 0, err
	}
	return n, ioErr
}
