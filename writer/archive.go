package writer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// Compression names how rotated files are compressed.
type Compression string

// The compressions, and the suffix each appends to a file name.
const (
	CompressNone Compression = "none"
	CompressGzip Compression = "gzip"
	CompressZstd Compression = "zstd"
)

func (c Compression) suffix() string {
	switch c {
	case CompressGzip:
		return ".gz"
	case CompressZstd:
		return ".zst"
	}
	return ""
}

// tmpSuffix marks a compressed copy being written: it gets its final name
// only when complete.
const tmpSuffix = ".tmp"

// stampLayout formats the UTC time in a rotated file's name. It is fixed
// width, so names sort in time order.
const stampLayout = "20060102T150405.000000000Z"

// ArchiveOptions configure an Archiver.
type ArchiveOptions struct {
	// Dir holds the shard files; Names[k] is shard k's file name.
	Dir   string
	Names []string
	// Compress is how rotated files are compressed.
	Compress Compression
	// Keep is how many rotated files are kept per shard (0: all);
	// KeepFor how long (by the time in their names; 0: forever).
	Keep    int
	KeepFor time.Duration
	// Log receives what the archiver does; nil means slog.Default().
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ProgressEvery is how often a long run of compressions (a backlog
	// found at start, or finished at the end of input) logs how far it
	// is; zero means 5s.
	ProgressEvery time.Duration
	// Compressor writes src compressed with c to dst, synced, stopping
	// with ctx's error when ctx is done; nil means CompressFile, in this
	// process. (shardlog runs it in a child process at the lowest CPU
	// priority, so that compression takes only CPU the write path leaves.)
	Compressor func(ctx context.Context, src, dst string, c Compression) error
}

// ArchiveStats counts what an Archiver did.
type ArchiveStats struct {
	Compressed, Removed, Errors int64
}

// archiveCounts are an Archiver's counters, safe to read while it runs.
type archiveCounts struct {
	compressed, removed, errors atomic.Int64
}

// Archiver compresses rotated shard files and applies retention, on one
// background goroutine, off the writers' path. Compression is crash-safe: a
// compressed copy is written under a temporary name and renamed when
// complete, and only then is the original removed; Start finishes or
// cleans what a crash left.
type Archiver struct {
	opt    ArchiveOptions
	shards map[string]int  // file name to shard
	jobs   chan archiveJob // rotated files to compress
	behind atomic.Bool     // a rotated file found the queue full
	wake   chan struct{}   // a token when behind is set
	ctx    context.Context // canceled by Close: stop compressing
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stats  archiveCounts

	// finishing takes Finish's requests, each a channel closed when done.
	finishing chan chan struct{}
}

// NewArchiver returns an Archiver; Start starts it.
func NewArchiver(opt ArchiveOptions) *Archiver {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Compress == "" {
		opt.Compress = CompressNone
	}
	if opt.Compressor == nil {
		opt.Compressor = CompressFile
	}
	if opt.ProgressEvery <= 0 {
		opt.ProgressEvery = 5 * time.Second
	}
	shards := make(map[string]int, len(opt.Names))
	for k, n := range opt.Names {
		shards[n] = k
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Archiver{opt: opt, shards: shards, jobs: make(chan archiveJob, 4*len(opt.Names)+16), wake: make(chan struct{}, 1),
		finishing: make(chan chan struct{}), ctx: ctx, cancel: cancel}
}

// Start starts the background goroutine, which first finishes what an
// earlier run left (compressions cut short, rotated files not compressed,
// retention), then takes rotated files as writers hand them over.
func (a *Archiver) Start() {
	a.wg.Go(func() {
		a.recover("compressing rotated files left by an earlier run")
		// keep_for applies to shards that do not rotate, too.
		var retention <-chan time.Time
		if a.opt.KeepFor > 0 {
			t := time.NewTicker(min(a.opt.KeepFor, time.Minute))
			defer t.Stop()
			retention = t.C
		}
		for {
			if len(a.jobs) == 0 && a.behind.Swap(false) {
				// Files handed over while the queue was full.
				a.recover("compression fell behind: compressing rotated files left over")
			}
			select {
			case <-a.wake:
			case <-retention:
				a.retainAll()
			case done := <-a.finishing:
				a.finish(done)
			case j := <-a.jobs:
				if j.done != nil {
					// Files handed over before Wait include those that
					// found the queue full: find them before answering.
					if a.behind.Swap(false) {
						a.recover("compression fell behind: compressing rotated files left over")
					}
					close(j.done)
				} else {
					a.archive(j.path)
				}
			case <-a.ctx.Done():
				return
			}
		}
	})
}

// Rotated hands over a file a writer has just rotated. It never waits:
// when compression falls behind and the queue is full, the archiver notes
// it and, once it has caught up, finds the files left over by scanning the
// directory, so the write path never waits for compression.
func (a *Archiver) Rotated(path string) {
	select {
	case a.jobs <- archiveJob{path: path}:
	default:
		a.behind.Store(true)
		select { // wake the loop, which may be waiting on an empty queue
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// archiveJob is a rotated file to archive, or, with done set, a marker
// that Wait waits for.
type archiveJob struct {
	path string
	done chan struct{}
}

// Wait waits until the archiver has finished what an earlier run left and
// every file handed over before the call.
func (a *Archiver) Wait() {
	done := make(chan struct{})
	a.jobs <- archiveJob{done: done}
	<-done
}

// Finish compresses every rotated file of the directory not yet
// compressed, those queued and those the queue had no room for included,
// and applies retention to every shard, logging its progress when that
// takes a while; it returns once that is done, or with ctx's error once
// ctx is done (Close then cuts the work short). Call it before Close,
// once the writers have stopped, at the end of input, so that a short run
// leaves its rotated files as a long one does, and not to a next start.
func (a *Archiver) Finish(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case a.finishing <- done:
	case <-ctx.Done():
		return ctx.Err()
	case <-a.ctx.Done(): // closed already
		return a.ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finish does Finish's work on the archiver's goroutine and closes done.
// The files still queued are taken from the queue and found again by one
// scan of the directory, which also finds those that found it full, so
// that retention removes what it will before any of them is compressed.
func (a *Archiver) finish(done chan struct{}) {
	var waits []chan struct{}
	for drained := false; !drained; {
		select {
		case j := <-a.jobs:
			if j.done != nil {
				waits = append(waits, j.done)
			}
		default:
			drained = true
		}
	}
	a.behind.Store(false)
	a.recover("input ended: compressing rotated files before exit")
	close(done)
	for _, w := range waits {
		close(w)
	}
}

// Close stops the archiver, cutting short the compression in progress,
// and waits for it; call it once the writers have stopped. The file being
// compressed and those not yet compressed are left as they are (logged):
// compression is background work and must not hold up a stop, so the next
// start compresses them.
func (a *Archiver) Close() ArchiveStats {
	a.cancel()
	a.wg.Wait()
	if left := a.uncompressed(); left > 0 {
		a.opt.Log.Info("rotated files left uncompressed until the next start", "files", left)
	}
	return a.Stats()
}

// uncompressed counts the rotated files in the directory that are to be
// compressed and are not yet.
func (a *Archiver) uncompressed() int {
	if a.opt.Compress == CompressNone {
		return 0
	}
	byShard, err := a.list()
	if err != nil {
		return 0
	}
	n := 0
	for _, rs := range byShard {
		for _, r := range rs {
			if !r.tmp && r.comp == CompressNone {
				n++
			}
		}
	}
	return n
}

// Stats returns what the archiver has done so far; safe to call while it
// runs.
func (a *Archiver) Stats() ArchiveStats {
	return ArchiveStats{Compressed: a.stats.compressed.Load(), Removed: a.stats.removed.Load(), Errors: a.stats.errors.Load()}
}

// rotated is a rotated file's name, parsed.
type rotated struct {
	name  string // the whole name
	base  string // without compression and temporary suffixes
	shard int
	stamp time.Time
	seq   int         // the [.n] suffix of names with the same stamp; 0 for none
	comp  Compression // CompressNone if not compressed
	tmp   bool        // a compressed copy cut short
}

// parseRotated parses name as the name of a rotated file of one of the
// shards: <file>.<stamp>[.<n>][.gz|.zst][.tmp].
func (a *Archiver) parseRotated(name string) (rotated, bool) {
	r := rotated{name: name, comp: CompressNone}
	s := name
	if strings.HasSuffix(s, tmpSuffix) {
		r.tmp, s = true, strings.TrimSuffix(s, tmpSuffix)
	}
	for _, c := range []Compression{CompressGzip, CompressZstd} {
		if strings.HasSuffix(s, c.suffix()) {
			r.comp, s = c, strings.TrimSuffix(s, c.suffix())
			break
		}
	}
	r.base = s
	if i := strings.LastIndexByte(s, '.'); i >= 0 && i+1 < len(s) && strings.Trim(s[i+1:], "0123456789") == "" {
		n, err := strconv.Atoi(s[i+1:])
		if err != nil {
			return r, false
		}
		r.seq, s = n, s[:i] // a [.n] suffix
	}
	if len(s) < len(stampLayout)+2 || s[len(s)-len(stampLayout)-1] != '.' {
		return r, false
	}
	t, err := time.Parse(stampLayout, s[len(s)-len(stampLayout):])
	if err != nil {
		return r, false
	}
	k, ok := a.shards[s[:len(s)-len(stampLayout)-1]]
	r.shard, r.stamp = k, t
	return r, ok
}

// list returns the rotated files in the directory, by shard, each shard's
// in the order they were written.
func (a *Archiver) list() (map[int][]rotated, error) {
	entries, err := os.ReadDir(a.opt.Dir)
	if err != nil {
		return nil, err
	}
	byShard := map[int][]rotated{}
	for _, e := range entries {
		if r, ok := a.parseRotated(e.Name()); ok && e.Type().IsRegular() {
			byShard[r.shard] = append(byShard[r.shard], r)
		}
	}
	for _, rs := range byShard {
		slices.SortFunc(rs, func(x, y rotated) int {
			if c := x.stamp.Compare(y.stamp); c != 0 {
				return c
			}
			return cmp.Compare(x.seq, y.seq) // .10 after .9
		})
	}
	return byShard, nil
}

// recover finishes the work on every rotated file in the directory, such
// as what an earlier run left: it removes compressed copies cut short and
// originals whose compressed copy is complete, applies retention (first,
// so that no file is compressed only to be deleted), then compresses the
// rotated files not yet compressed, oldest first within a shard. When
// there are files to compress it logs why, with their number, and every
// ProgressEvery how many are done. A stop (Close) ends it early.
func (a *Archiver) recover(why string) {
	byShard, err := a.list()
	if err != nil {
		a.fail("list rotated files", a.opt.Dir, err)
		return
	}
	var todo []string
	for _, k := range slices.Sorted(maps.Keys(byShard)) {
		rs := byShard[k]
		done := map[string]bool{} // bases with a complete compressed copy
		for _, r := range rs {
			if r.tmp {
				a.remove(r.name, "compression cut short")
			} else if r.comp != CompressNone {
				done[r.base] = true
			}
		}
		var left []rotated
		for _, r := range rs {
			switch {
			case r.tmp:
			case r.comp == CompressNone && done[r.base]:
				a.remove(r.name, "compressed copy complete")
			default:
				left = append(left, r)
			}
		}
		for _, r := range a.retainFiles(left) {
			if r.comp == CompressNone && a.opt.Compress != CompressNone {
				todo = append(todo, filepath.Join(a.opt.Dir, r.name))
			}
		}
	}
	if len(todo) == 0 {
		return
	}
	a.opt.Log.Info(why, "files", len(todo), "compress", a.opt.Compress)
	logged := a.opt.Now()
	for i, path := range todo {
		if a.ctx.Err() != nil {
			return
		}
		a.compress(path)
		if now := a.opt.Now(); now.Sub(logged) >= a.opt.ProgressEvery && i+1 < len(todo) {
			logged = now
			a.opt.Log.Info("compressing rotated files", "done", i+1, "of", len(todo))
		}
	}
}

// archive compresses a rotated file, as configured, and applies its
// shard's retention.
func (a *Archiver) archive(path string) {
	if a.opt.Compress != CompressNone {
		a.compress(path)
	}
	if r, ok := a.parseRotated(filepath.Base(path)); ok {
		a.retain(r.shard)
	}
}

// compress writes path's compressed copy under a temporary name, syncs
// it, renames it to its final name, and only then removes path.
func (a *Archiver) compress(path string) {
	final := path + a.opt.Compress.suffix()
	tmp := final + tmpSuffix
	if !exists(path) {
		return // retention took it while it waited in the queue
	}
	if err := a.opt.Compressor(a.ctx, path, tmp, a.opt.Compress); err != nil {
		os.Remove(tmp)
		// A stop, or retention that took the file first, is no failure
		// (a child process's error says so only in words: look).
		if a.ctx.Err() == nil && !errors.Is(err, os.ErrNotExist) && exists(path) {
			a.fail("compress", path, err)
		}
		return
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		a.fail("compress", path, err)
		return
	}
	syncDir(filepath.Dir(path))
	if err := os.Remove(path); err != nil {
		a.fail("remove compressed original", path, err)
		return
	}
	a.stats.compressed.Add(1)
}

// exists reports whether path names a file; an error other than its
// absence counts as there, so that it is reported where it matters.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// CompressFile writes src compressed with c to dst (replaced if it
// exists), synced, stopping with ctx's error when ctx is done. dst gets
// src's permission bits and group, whatever the umask: a compressed copy
// is readable by whoever could read the file, and by no one else.
func CompressFile(ctx context.Context, src, dst string, c Compression) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &st); err != nil {
		return &os.PathError{Op: "stat", Path: src, Err: err}
	}
	if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Owner-only until it has src's group and bits.
	out, err := Perms{}.createFileMode(dst, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := copyPerms(out, &st); err != nil {
		return err
	}
	var zw io.WriteCloser
	switch c {
	case CompressGzip:
		zw = gzip.NewWriter(out)
	case CompressZstd:
		// The fastest level: compression competes with the write path
		// for CPU, and logs compress well at any level.
		if zw, err = zstd.NewWriter(out, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown compression %q", c)
	}
	if _, err := io.Copy(zw, ctxReader{ctx, in}); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

// retainAll applies retention to every shard with rotated files.
func (a *Archiver) retainAll() {
	byShard, err := a.list()
	if err != nil {
		a.fail("list rotated files", a.opt.Dir, err)
		return
	}
	for _, rs := range byShard {
		a.retainFiles(rs)
	}
}

// retain deletes shard k's rotated files beyond Keep, and those older
// than KeepFor, oldest first. Compressed copies being written are spared.
func (a *Archiver) retain(k int) {
	if a.opt.Keep <= 0 && a.opt.KeepFor <= 0 {
		return
	}
	byShard, err := a.list()
	if err != nil {
		a.fail("list rotated files", a.opt.Dir, err)
		return
	}
	a.retainFiles(byShard[k])
}

// retainFiles applies retention to one shard's rotated files, listed in
// the order written, and returns those kept.
func (a *Archiver) retainFiles(all []rotated) []rotated {
	var rs, kept []rotated
	for _, r := range all {
		if !r.tmp {
			rs = append(rs, r)
		}
	}
	now := a.opt.Now()
	for i, r := range rs {
		tooMany := a.opt.Keep > 0 && len(rs)-i > a.opt.Keep
		tooOld := a.opt.KeepFor > 0 && now.Sub(r.stamp) > a.opt.KeepFor
		if tooMany || tooOld {
			a.remove(r.name, "retention")
		} else {
			kept = append(kept, r)
		}
	}
	return kept
}

// remove deletes a file of the directory, logging why.
func (a *Archiver) remove(name, why string) {
	path := filepath.Join(a.opt.Dir, name)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.fail("remove", path, err)
		return
	}
	a.stats.removed.Add(1)
	a.opt.Log.Debug("removed rotated file", "path", path, "why", why)
}

func (a *Archiver) fail(op, path string, err error) {
	a.stats.errors.Add(1)
	a.opt.Log.Error("rotated files: "+op, "path", path, "err", err)
}

// ctxReader reads r until ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// renameNoReplace renames old to new unless new exists.
func renameNoReplace(old, new string) error {
	err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		// A filesystem without RENAME_NOREPLACE: check, then rename.
		if _, serr := os.Lstat(new); serr == nil {
			return os.ErrExist
		}
		return os.Rename(old, new)
	}
	if errors.Is(err, unix.EEXIST) {
		return os.ErrExist
	}
	return err
}
