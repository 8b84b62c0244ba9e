package writer

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// withUmask runs f with the process's umask set to mask.
func withUmask(mask int, f func()) {
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	f()
}

// modeGid returns path's permission bits and group.
func modeGid(t *testing.T, path string) (fs.FileMode, int) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fs.FileMode(st.Mode).Perm(), int(st.Gid)
}

// otherGroup returns a group other than the process's that it may give
// files, or skips the test.
func otherGroup(t *testing.T) int {
	t.Helper()
	if os.Geteuid() == 0 {
		return os.Getegid() + 4242
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g != os.Getegid() {
			return g
		}
	}
	t.Skip("SKIP: not root and in no supplementary group: cannot test file groups")
	return 0
}

// TestPermsWhateverUmask: everything the writer package creates (the
// directory and its parents, a shard file, the routing record, the lock,
// TornDir and what it keeps) gets the configured mode and group, whatever
// the umask.
func TestPermsWhateverUmask(t *testing.T) {
	gid := otherGroup(t)
	for _, tc := range []struct {
		name      string
		umask     int
		perms     Perms
		file, dir fs.FileMode
		gid       int // -1: the process's
	}{
		{"defaults, umask 022", 0o022, Perms{}, 0o640, 0o750, -1},
		{"defaults, umask 000", 0o000, Perms{}, 0o640, 0o750, -1},
		{"defaults, umask 077", 0o077, Perms{}, 0o640, 0o750, -1},
		{"0600/0700 with a group, umask 000", 0o000, Perms{File: 0o600, Dir: 0o700, Group: gid, SetGroup: true}, 0o600, 0o700, gid},
		{"0644/0755, umask 027", 0o027, Perms{File: 0o644, Dir: 0o755}, 0o644, 0o755, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.gid
			if want < 0 {
				want = os.Getegid()
			}
			dir := filepath.Join(t.TempDir(), "a", "b")
			path := filepath.Join(dir, "shard-000.log")
			withUmask(tc.umask, func() {
				must(t, tc.perms.MkdirAll(dir))
				w, err := Open(0, path, Options{Perms: tc.perms, Log: discard()})
				must(t, err)
				stop := run(w)
				send(t, w, "one")
				must(t, stop())
				must(t, RecordRouting(dir, Routing{Shards: 1}, tc.perms))
				lock, err := LockDir(dir, tc.perms)
				must(t, err)
				lock.Close()
				must(t, os.WriteFile(path, []byte("whole\ntorn"), 0o600))
				if _, err := RepairTail(path, time.Now(), discard(), tc.perms); err != nil {
					t.Fatal(err)
				}
			})
			torn, _ := filepath.Glob(filepath.Join(dir, TornDir, "*"))
			if len(torn) != 1 {
				t.Fatalf("kept aside: %v, want one file", torn)
			}
			for _, c := range []struct {
				path string
				mode fs.FileMode
			}{
				{filepath.Dir(dir), tc.dir}, {dir, tc.dir}, {path, tc.file},
				{filepath.Join(dir, RoutingFile), tc.file}, {filepath.Join(dir, LockFile), tc.file},
				{filepath.Join(dir, TornDir), tc.dir}, {torn[0], tc.file},
			} {
				if mode, g := modeGid(t, c.path); mode != c.mode || g != want {
					t.Errorf("%s: mode %04o group %d, want %04o group %d", c.path, mode, g, c.mode, want)
				}
			}
		})
	}
}

// TestPermsLeaveExistingFiles: a file or directory that exists keeps its
// mode and group.
func TestPermsLeaveExistingFiles(t *testing.T) {
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o711))
	path := filepath.Join(dir, "shard-000.log")
	must(t, os.WriteFile(path, nil, 0o604))
	must(t, os.Chmod(path, 0o604))
	p := Perms{File: 0o600, Dir: 0o700}
	must(t, p.MkdirAll(dir))
	w, err := Open(0, path, Options{Perms: p, Log: discard()})
	must(t, err)
	stop := run(w)
	send(t, w, "one")
	w.Reopen(nil)
	send(t, w, "two")
	must(t, stop())
	if mode, _ := modeGid(t, path); mode != 0o604 {
		t.Errorf("existing file's mode changed to %04o", mode)
	}
	if mode, _ := modeGid(t, dir); mode != 0o711 {
		t.Errorf("existing directory's mode changed to %04o", mode)
	}
}

// TestCompressedCopyKeepsPerms: a compressed copy has its original's mode
// and group, whatever the umask: readable by whoever could read the
// rotated file, and by no one else.
func TestCompressedCopyKeepsPerms(t *testing.T) {
	gid := otherGroup(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "shard-000.log.20261203T000000.000000000Z")
	must(t, os.WriteFile(src, []byte("a\nb\n"), 0o600))
	must(t, os.Chmod(src, 0o640))
	must(t, os.Chown(src, -1, gid))
	for _, c := range []Compression{CompressGzip, CompressZstd} {
		dst := src + c.suffix()
		withUmask(0o000, func() { must(t, CompressFile(context.Background(), src, dst, c)) })
		if mode, g := modeGid(t, dst); mode != 0o640 || g != gid {
			t.Errorf("%s: mode %04o group %d, want 0640 group %d", c, mode, g, gid)
		}
	}
}

// TestRelock: once the directory is removed, Relock makes it, the lock
// and the routing record again, and the lock is held: a second LockDir
// fails naming this process.
func TestRelock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	p := Perms{}
	must(t, p.MkdirAll(dir))
	lock, err := LockDir(dir, p)
	must(t, err)
	defer lock.Close()
	r := Routing{Shards: 4, Key: "message", FilePattern: "shard-%03d.log"}
	must(t, RecordRouting(dir, r, p))
	if did, err := lock.Relock(r); did || err != nil {
		t.Fatalf("Relock with the lock in place: %v %v, want nothing done", did, err)
	}
	must(t, os.RemoveAll(dir))
	if did, err := lock.Relock(r); !did || err != nil {
		t.Fatalf("Relock after rm -rf: %v %v, want done", did, err)
	}
	if got, ok, err := ReadRouting(dir); !ok || err != nil || got != r {
		t.Errorf("routing record after Relock: %+v %v %v, want %+v", got, ok, err, r)
	}
	if _, err := LockDir(dir, p); err == nil || !strings.Contains(err.Error(), "in use by shardlog PID") {
		t.Errorf("a second lock after Relock: %v, want refused", err)
	}
	if mode, _ := modeGid(t, dir); mode != DefaultDirMode {
		t.Errorf("directory made again with mode %04o", mode)
	}
}
