package writer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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

// CheckRouting compares want with the routing recorded in dir. It returns
// an error wrapping ErrRoutingChanged, naming every value that differs,
// unless allowChange is set. A directory without a record is accepted.
func CheckRouting(dir string, want Routing, allowChange bool) error {
	path := filepath.Join(dir, RoutingFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read routing record: %w", err)
	}
	var had Routing
	if err := json.Unmarshal(data, &had); err != nil {
		return fmt.Errorf("read routing record %s: %w", path, err)
	}
	var diffs []string
	add := func(key string, was, now any) {
		if was != now {
			diffs = append(diffs, fmt.Sprintf("%s was %v, now %v", key, was, now))
		}
	}
	add("shards", had.Shards, want.Shards)
	add("routing.seed", had.Seed, want.Seed)
	add("routing.key", had.Key, want.Key)
	add("file_pattern", fmt.Sprintf("%q", had.FilePattern), fmt.Sprintf("%q", want.FilePattern))
	if len(diffs) == 0 || allowChange {
		return nil
	}
	return fmt.Errorf("%w: %s was written with another routing (%s); files would mix both: use another dir, or pass --allow-routing-change to proceed",
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

// LockDir takes dir's lock, or fails at once if another process holds it.
// The lock lasts until release is called or the process ends.
func LockDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("in use by another shardlog (%s is locked): give each instance its own dir", path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
