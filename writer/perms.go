package writer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Perms say what the files and directories shardlog creates get: their
// permission bits, whatever the umask, and optionally their group. Files
// and directories that already exist are left as they are.
//
// The zero value gives files 0640 and directories 0750, and leaves the
// group as the creating process's.
type Perms struct {
	// File and Dir are the permission bits of new files and directories;
	// zero means DefaultFileMode and DefaultDirMode.
	File, Dir fs.FileMode
	// Group, if SetGroup, is the group ID new files and directories get
	// (chown -1:Group), so that its members may read the logs.
	Group    int
	SetGroup bool
}

// The default modes of new files and directories.
const (
	DefaultFileMode fs.FileMode = 0o640
	DefaultDirMode  fs.FileMode = 0o750
)

// fileMode returns the mode of new files.
func (p Perms) fileMode() fs.FileMode {
	if p.File == 0 {
		return DefaultFileMode
	}
	return p.File.Perm()
}

// dirMode returns the mode of new directories.
func (p Perms) dirMode() fs.FileMode {
	if p.Dir == 0 {
		return DefaultDirMode
	}
	return p.Dir.Perm()
}

// apply gives fd, a file or directory shardlog has just created at path,
// mode (which the umask may have narrowed) and the group.
func (p Perms) apply(fd int, path string, mode fs.FileMode) error {
	if err := unix.Fchmod(fd, uint32(mode)); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	if p.SetGroup {
		if err := unix.Fchown(fd, -1, p.Group); err != nil {
			return &os.PathError{Op: fmt.Sprintf("chown to group %d", p.Group), Path: path, Err: err}
		}
	}
	return nil
}

// openFile opens path with flags (which must not hold O_CREAT), creating
// the file if it is missing: a file it creates gets p's mode and group.
// It uses unix.Open rather than os.OpenFile, which on Linux tries a
// regular file on the network poller and undoes it: system calls saved
// per file, which shows at thousands of shards. An existing file, the
// usual case, costs one open.
func (p Perms) openFile(path string, flags int) (*os.File, error) {
	flags |= unix.O_CLOEXEC
	for {
		fd, err := openRetry(path, flags, 0)
		if err == nil {
			return os.NewFile(uintptr(fd), path), nil
		}
		if err != unix.ENOENT {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		mode := p.fileMode()
		fd, err = openRetry(path, flags|unix.O_CREAT|unix.O_EXCL, uint32(mode))
		if err == unix.EEXIST {
			continue // created meanwhile by someone else: open theirs
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		if err := p.apply(fd, path, mode); err != nil {
			unix.Close(fd)
			os.Remove(path)
			return nil, err
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// openRetry is unix.Open, retried while interrupted (as os.OpenFile does,
// for network file systems).
func openRetry(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// createFile creates path, which must not exist, for writing, with p's
// mode and group.
func (p Perms) createFile(path string) (*os.File, error) {
	return p.createFileMode(path, p.fileMode())
}

// createFileMode creates path, which must not exist, for writing, with
// mode and p's group.
func (p Perms) createFileMode(path string, mode fs.FileMode) (*os.File, error) {
	fd, err := openRetry(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: path, Err: err}
	}
	if err := p.apply(fd, path, mode.Perm()); err != nil {
		unix.Close(fd)
		os.Remove(path)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// copyPerms gives dst, a file just created, src's permission bits and
// group (src's stat). If dst cannot have src's group (a group this
// process is not a member of), it gets src's bits for its owner only:
// never readable by more than src.
func copyPerms(dst *os.File, src *unix.Stat_t) error {
	mode := uint32(fs.FileMode(src.Mode).Perm())
	var st unix.Stat_t
	if err := unix.Fstat(int(dst.Fd()), &st); err != nil {
		return &os.PathError{Op: "stat", Path: dst.Name(), Err: err}
	}
	if st.Gid != src.Gid && unix.Fchown(int(dst.Fd()), -1, int(src.Gid)) != nil {
		mode &= 0o700
	}
	if err := unix.Fchmod(int(dst.Fd()), mode); err != nil {
		return &os.PathError{Op: "chmod", Path: dst.Name(), Err: err}
	}
	return nil
}

// MkdirAll creates dir and any missing parents, as os.MkdirAll does; each
// directory it creates gets p's directory mode and group. Existing
// directories are left as they are.
func (p Perms) MkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &os.PathError{Op: "mkdir", Path: dir, Err: unix.ENOTDIR}
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := p.MkdirAll(parent); err != nil {
			return err
		}
	}
	mode := p.dirMode()
	if err := unix.Mkdir(dir, uint32(mode)); err != nil {
		if errors.Is(err, unix.EEXIST) {
			// Made meanwhile (another writer of the same directory):
			// whoever made it sets its mode.
			if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
				return nil
			}
		}
		return &os.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	fd, err := openRetry(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := p.apply(fd, dir, mode); err != nil {
		unix.Rmdir(dir) // not left with the wrong mode or group
		return err
	}
	return nil
}
