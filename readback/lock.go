package readback

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/shardlog/shardlog/writer"
)

// ErrLocked is wrapped by ShareLock's error when a shardlog holds the
// directory's lock: it is writing there.
var ErrLocked = errors.New("a shardlog holds the directory")

// ShareLock takes dir's lock (writer.LockFile) shared, without changing
// the directory: no shardlog can take it while it is held (a start is
// refused), and it is refused, wrapping ErrLocked and naming the PID the
// lock file holds, while a shardlog holds it. A directory without a lock
// file was never written by a running shardlog: nothing is locked. The
// lock lasts until release is called or the process ends.
func ShareLock(dir string) (release func(), err error) {
	path := filepath.Join(dir, writer.LockFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := "a shardlog"
			if pid, _ := io.ReadAll(io.LimitReader(f, 32)); len(strings.TrimSpace(string(pid))) > 0 {
				who = "shardlog PID " + strings.TrimSpace(string(pid))
			}
			return nil, fmt.Errorf("%w: %s (%s is locked)", ErrLocked, who, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
