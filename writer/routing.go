package writer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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

// RecordRouting writes r as dir's routing record, atomically.
func RecordRouting(dir string, r Routing) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, RoutingFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write routing record: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write routing record: %w", err)
	}
	return nil
}

// LockFile is the name of the file a running shardlog holds locked in its
// directory, so that a second instance does not write the same files.
const LockFile = ".shardlog.lock"

// LockDir takes dir's lock, or fails at once if another process holds it,
// naming that process. The lock lasts until release is called or the
// process ends; the lock file holds the holder's PID.
func LockDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
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
			return nil, fmt.Errorf("in use by %s (%s is locked): give each instance its own dir", who, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
