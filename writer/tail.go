package writer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// TornDir is the directory, inside the shard files' directory, where bytes
// cut off the end of a shard file are kept: a record torn by a crash, or
// the part of a batch written before the writer gave up.
const TornDir = ".shardlog-torn"

// RepairTail cuts a file whose last byte is not '\n' back to its last whole
// record, before anything is appended to it: what a crash or a power loss
// left half written. The bytes cut are kept in TornDir and logged with
// their count, in files made with p's mode and group. It returns how many
// bytes it cut; a missing file is fine.
func RepairTail(path string, now time.Time, log *slog.Logger, p Perms) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return repairTail(f, path, now, log, p)
}

// repairTail is RepairTail on f, the file at path, open for reading and
// writing.
func repairTail(f *os.File, path string, now time.Time, log *slog.Logger, p Perms) (int64, error) {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		return 0, err
	}
	size := fi.Size()
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, size-1); err != nil {
		return 0, fmt.Errorf("repair %s: %w", path, err)
	}
	if last[0] == '\n' {
		return 0, nil
	}
	// Find the last '\n', reading backwards in blocks.
	end := int64(0) // length of the whole records
	buf := make([]byte, 64<<10)
	for off := size; off > 0; {
		n := min(int64(len(buf)), off)
		off -= n
		if _, err := f.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			return 0, fmt.Errorf("repair %s: %w", path, err)
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = off + int64(i) + 1
			break
		}
	}
	cut := size - end
	if err := cutTail(f, path, cut, now, log, p); err != nil {
		return 0, fmt.Errorf("repair %s: %w", path, err)
	}
	return cut, nil
}

// cutTail cuts the last n bytes off f (the open file at path), keeping them
// in TornDir beside it first, and logs it. If they cannot be kept aside
// they are cut all the same (the file must end with a whole record), and
// the error says so. TornDir and the file made in it get p's mode and group.
func cutTail(f *os.File, path string, n int64, now time.Time, log *slog.Logger, p Perms) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cut torn tail: %w", err)
	}
	size := fi.Size()
	n = min(n, size)
	tail := make([]byte, n)
	if _, err := f.ReadAt(tail, size-n); err != nil && err != io.EOF {
		return fmt.Errorf("cut torn tail: read: %w", err)
	}
	kept, keepErr := keepAside(path, tail, now, p)
	if err := f.Truncate(size - n); err != nil {
		return fmt.Errorf("cut torn tail: %w", err)
	}
	if keepErr != nil {
		log.Error("cut an incomplete record off a shard file; could not keep it aside", "path", path, "bytes", n, "err", keepErr)
		return fmt.Errorf("cut %d bytes off %s, could not keep them: %w", n, path, keepErr)
	}
	log.Warn("cut an incomplete record off a shard file; kept aside", "path", path, "bytes", n, "kept", kept)
	return nil
}

// keepAside writes data to a new file in TornDir beside path; TornDir, if
// made, and the file get p's mode and group.
func keepAside(path string, data []byte, now time.Time, p Perms) (string, error) {
	dir := filepath.Join(filepath.Dir(path), TornDir)
	if err := p.MkdirAll(dir); err != nil {
		return "", err
	}
	base := filepath.Join(dir, filepath.Base(path)+"."+now.UTC().Format("20060102T150405.000000000Z"))
	name := base
	for i := 1; ; i++ {
		f, err := p.createFile(name)
		if errors.Is(err, os.ErrExist) {
			name = fmt.Sprintf("%s.%d", base, i)
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(name)
			return "", err
		}
		return name, nil
	}
}

// unwrite takes the last n bytes back out of f: the start of a batch that
// will be written again, whole, elsewhere.
func unwrite(f *os.File, n int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return f.Truncate(max(0, fi.Size()-n))
}
