package readback

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardlog/shardlog/writer"
)

// TestShareLock checks that ShareLock is refused, naming the PID, while
// the directory's lock is held (as shardlog run holds it), keeps a start
// out while it is held itself, and changes nothing in the directory.
func TestShareLock(t *testing.T) {
	dir := t.TempDir()
	release, err := ShareLock(dir)
	if err != nil {
		t.Fatalf("a directory without lock file: %v", err)
	}
	release()
	if _, err := os.Stat(filepath.Join(dir, writer.LockFile)); err == nil {
		t.Errorf("ShareLock created the lock file")
	}

	held, err := writer.LockDir(dir, writer.Perms{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ShareLock(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("shardlog PID %d", os.Getpid())) {
		t.Errorf("while held: %v; want ErrLocked naming PID %d", err, os.Getpid())
	}
	held.Close()

	before, _ := os.ReadFile(filepath.Join(dir, writer.LockFile))
	release, err = ShareLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.LockDir(dir, writer.Perms{}); err == nil {
		t.Errorf("a shardlog could take the lock while ShareLock held it")
	}
	release()
	after, _ := os.ReadFile(filepath.Join(dir, writer.LockFile))
	if string(before) != string(after) {
		t.Errorf("the lock file changed from %q to %q", before, after)
	}
	l, err := writer.LockDir(dir, writer.Perms{})
	if err != nil {
		t.Errorf("after release: %v", err)
	} else {
		l.Close()
	}
}
