package writer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// RoutingFile is the name of the file in which a directory records the
// routing its shard files were written with. Its leading dot keeps it out
// of globs such as shard-*.log.
const RoutingFile = ".shardlog-routing.json"

// Routing is what decides which file a message lands in. A directory's
// files are only meaningful under the routing they were written with.
type Routing struct {
	Shards      int    `json:"shards"`
	Seed        uint32 `json:"seed"`
	Key         string `json:"key"`
	FilePattern string `json:"file_pattern"`
	// Cluster, Member and MemberShards are set in the directory of a
	// member of a cluster: the cluster, the member, and the member's
	// shards as ranges ("0-7", "0-3+8-11"). They are empty for run
	// without a cluster, and in records written before clusters existed.
	Cluster      string `json:"cluster,omitempty"`
	Member       string `json:"member,omitempty"`
	MemberShards string `json:"member_shards,omitempty"`
}

// ErrRoutingChanged is wrapped by CheckRouting's error when dir was written
// with a different routing.
var ErrRoutingChanged = errors.New("routing changed")

// ReadRouting returns the routing recorded in dir, and false if dir has no
// record.
func ReadRouting(dir string) (Routing, bool, error) {
	path := filepath.Join(dir, RoutingFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Routing{}, false, nil
	}
	if err != nil {
		return Routing{}, false, fmt.Errorf("read routing record: %w", err)
	}
	var r Routing
	if err := json.Unmarshal(data, &r); err != nil {
		return Routing{}, false, fmt.Errorf("read routing record %s: %w", path, err)
	}
	return r, true, nil
}

// Diff lists how now differs from had, as "key was X, now Y".
func (had Routing) Diff(now Routing) []string {
	var diffs []string
	add := func(key string, was, now any) {
		if was != now {
			diffs = append(diffs, fmt.Sprintf("%s was %v, now %v", key, was, now))
		}
	}
	add("shards", had.Shards, now.Shards)
	add("routing.seed", had.Seed, now.Seed)
	add("routing.key", had.Key, now.Key)
	add("file_pattern", fmt.Sprintf("%q", had.FilePattern), fmt.Sprintf("%q", now.FilePattern))
	add("cluster.name", fmt.Sprintf("%q", had.Cluster), fmt.Sprintf("%q", now.Cluster))
	add("cluster.member", fmt.Sprintf("%q", had.Member), fmt.Sprintf("%q", now.Member))
	add("member shards", fmt.Sprintf("%q", had.MemberShards), fmt.Sprintf("%q", now.MemberShards))
	return diffs
}

// CheckRouting compares want with the routing recorded in dir. It returns
// an error wrapping ErrRoutingChanged, naming every value that differs,
// unless allowChange is set; then it returns the differences it allowed.
// A directory without a record is accepted.
func CheckRouting(dir string, want Routing, allowChange bool) (allowed []string, err error) {
	had, ok, err := ReadRouting(dir)
	if err != nil || !ok {
		return nil, err
	}
	diffs := had.Diff(want)
	if len(diffs) == 0 || allowChange {
		return diffs, nil
	}
	return nil, fmt.Errorf("%w: %s was written with another routing (%s); files would mix both: use another dir, or pass --allow-routing-change to proceed",
		ErrRoutingChanged, dir, strings.Join(diffs, ", "))
}

// RecordRouting writes r as dir's routing record, atomically, in a new
// file with p's mode and group.
func RecordRouting(dir string, r Routing, p Perms) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, RoutingFile)
	tmp := path + ".tmp"
	os.Remove(tmp) // left by a crash
	f, err := p.createFile(tmp)
	if err != nil {
		return fmt.Errorf("write routing record: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write routing record %s: %w", path, err)
	}
	return nil
}

// LockFile is the name of the file a running shardlog holds locked in its
// directory, so that a second instance does not write the same files.
const LockFile = ".shardlog.lock"

// DirLock is a directory's lock, held by this process: the lock file, open
// and flocked, holding the holder's PID.
type DirLock struct {
	dir, path string
	perms     Perms
	f         *os.File
}

// LockDir takes dir's lock, or fails at once if another process holds it,
// naming that process. The lock lasts until Close or the process ends.
// A lock file LockDir creates gets p's mode and group.
func LockDir(dir string, p Perms) (*DirLock, error) {
	l := &DirLock{dir: dir, path: filepath.Join(dir, LockFile), perms: p}
	f, err := l.lock()
	if err != nil {
		return nil, err
	}
	l.f = f
	return l, nil
}

// lock opens (creating it if missing) and locks the lock file, and writes
// this process's PID in it.
func (l *DirLock) lock() (*os.File, error) {
	f, err := l.perms.openFile(l.path, unix.O_RDWR)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := "another shardlog"
			if pid, _ := io.ReadAll(io.LimitReader(f, 32)); len(strings.TrimSpace(string(pid))) > 0 {
				who = "shardlog PID " + strings.TrimSpace(string(pid))
			}
			return nil, fmt.Errorf("in use by %s (%s is locked): give each instance its own dir", who, l.path)
		}
		return nil, fmt.Errorf("lock %s: %w", l.path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Close releases the lock.
func (l *DirLock) Close() { l.f.Close() }

// held reports whether the lock file's path still names the file this
// process holds locked: not so once the directory or the file was removed
// (rm -rf) or replaced.
func (l *DirLock) held() bool {
	var open, now unix.Stat_t
	if unix.Fstat(int(l.f.Fd()), &open) != nil {
		return true // nothing to go by
	}
	if unix.Stat(l.path, &now) != nil {
		return false
	}
	return open.Dev == now.Dev && open.Ino == now.Ino
}

// Relock takes the lock again if its file's path no longer names the file
// this process holds locked: the directory was removed, say, and a second
// instance would otherwise be let in while this one writes. It creates the
// directory (with l's Perms) and the lock file again, locks it, and writes
// the routing record r again. It reports whether it had to, and what
// failed; on failure the old lock is kept (it guards nothing any more) and
// a later call tries again.
func (l *DirLock) Relock(r Routing) (bool, error) {
	if l.held() {
		return false, nil
	}
	if err := l.perms.MkdirAll(l.dir); err != nil {
		return true, fmt.Errorf("lock again: %w", err)
	}
	f, err := l.lock()
	if err != nil {
		return true, fmt.Errorf("lock again: %w", err)
	}
	l.f.Close()
	l.f = f
	if err := RecordRouting(l.dir, r, l.perms); err != nil {
		return true, err
	}
	return true, nil
}

// Keep calls Relock every period on a goroutine of its own, logging what it
// does, until stop is called; stop waits for the goroutine. Nothing else
// may use l meanwhile.
func (l *DirLock) Keep(r Routing, every time.Duration, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		failing := false
		for {
			select {
			case <-t.C:
				did, err := l.Relock(r)
				switch {
				case err != nil && !failing:
					log.Error("directory lock and routing record lost, and not made again: a second instance may write here",
						"dir", l.dir, "err", err)
				case did && err == nil:
					log.Warn("directory lock and routing record were gone (directory removed?): made again", "dir", l.dir, "path", l.path)
				}
				failing = err != nil
			case <-done:
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
