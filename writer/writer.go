// Package writer owns shard files: one goroutine per file appends the batches
// routers hand it, and hands each batch back once it is written.
//
// A Writer is the only code that touches its file, so no lock guards it.
// Its loop (Run) is one select whose cases are the file's events: a batch
// to append, a write to retry, a sync due, a reopen asked for, the periodic
// check that the path still names the open file.
package writer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batch is a run of whole records bound for one shard's file. A router fills
// it, a Writer appends it and then hands it back to the router through Done,
// which tells the router that the records are in the file (or why not) and
// returns the memory for reuse.
type Batch struct {
	// Bufs holds the records, each message followed by '\n', in order.
	// A record may span two buffers.
	Bufs [][]byte
	// Records is the number of records in Bufs.
	Records int
	// Bytes is the total length of Bufs.
	Bytes int
	// Err is nil once the batch is written; otherwise the write failed for good.
	Err error
	// Acks are what the batch's owner acknowledges once the batch comes
	// back written (and synced, where the writer syncs): JetStream
	// messages whose records are in Bufs. The writer does not touch them.
	Acks []Acker
	// Shard is the shard the batch is for, kept for its owner's
	// bookkeeping; the writer does not read it.
	Shard int

	home chan<- *Batch
}

// Acker is acknowledged once the record it came with is in its file.
type Acker = interface{ Ack() error }

// NewBatch returns an empty batch that Done hands back on home. home must
// never block: its capacity must cover every batch its owner has in flight.
func NewBatch(home chan<- *Batch) *Batch { return &Batch{home: home} }

// Done records the outcome of writing b and hands it back to its owner.
func (b *Batch) Done(err error) {
	b.Err = err
	b.home <- b
}

// Reset empties b for reuse, keeping its capacity.
func (b *Batch) Reset() {
	clear(b.Bufs)
	clear(b.Acks)
	b.Bufs, b.Acks, b.Records, b.Bytes, b.Err = b.Bufs[:0], b.Acks[:0], 0, 0, nil
}

// SyncPolicy says when a Writer flushes its file to stable storage.
type SyncPolicy int

// The sync policies.
const (
	// SyncNone leaves write-back to the kernel.
	SyncNone SyncPolicy = iota
	// SyncInterval fdatasyncs the file at every SyncInterval if it got
	// data; batches that carry acknowledgements are handed back only
	// after the sync that covers them.
	SyncInterval
	// SyncBatch fdatasyncs each batch before handing it back.
	SyncBatch
)

// Options tune a Writer. The zero value is usable.
type Options struct {
	// Queue is how many batches may wait for the writer before senders block.
	// Memory is bounded by the routers' budgets, not by this.
	Queue int
	// RetryFor is how long a failing write is retried before the writer
	// gives up on the file. Zero means 30 seconds. A full disk (ENOSPC,
	// EDQUOT) is not a failure: it is waited out for as long as it takes.
	RetryFor time.Duration
	// Fail is called once, with the error, when the writer gives up.
	// It lets the owner begin shutdown; it may be nil.
	Fail func(error)
	// Log receives the writer's warnings; nil means slog.Default().
	Log *slog.Logger
	// Sync is the fsync policy; SyncInterval is its period (zero: 1s).
	Sync         SyncPolicy
	SyncInterval time.Duration
	// MaxHeldBytes bounds the batches a SyncInterval writer holds for the
	// next sync: beyond it, it syncs at once. Zero means 1 MiB.
	MaxHeldBytes int
	// CheckEvery is how often the writer checks that its path still names
	// the file it has open (and reopens it if not). Zero means 1s.
	CheckEvery time.Duration
	// Abort, once closed, makes a writer that is waiting (for disk space,
	// or for its path to become usable) give up instead; shutdown closes
	// it when it has waited long enough. Nil never aborts.
	Abort <-chan struct{}
	// LogEvery is how often a writer that is still waiting says so.
	// Zero means 30s.
	LogEvery time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RotateBytes and RotateAge rotate the file (0: never): once it holds
	// RotateBytes, or has been open RotateAge, the writer renames it to
	// <path>.<UTC time>[.<n>], between batches, and opens a new one.
	// Rotated, if set, receives each rotated file's path (an Archiver's
	// Rotated, say).
	RotateBytes int64
	RotateAge   time.Duration
	Rotated     func(path string)
	// Observer, if set, is told of every batch written and every sync,
	// with how long each took (for metrics). It must not block.
	Observer Observer
	// Perms are the mode and group of the files and directories the
	// writer creates: its file, the directory if it vanished, what
	// TornDir keeps.
	Perms Perms
}

// Observer is told what a Writer does, as it does it.
type Observer interface {
	// BatchWritten reports a batch appended to shard's file: its records,
	// its bytes, and the time from its start to its last byte written.
	BatchWritten(shard, records, bytes int, took time.Duration)
	// Synced reports an fdatasync of shard's file and how long it took.
	Synced(shard int, took time.Duration)
}

// Stats counts what a Writer did.
type Stats struct {
	// Records, Bytes and Batches count what was appended.
	Records, Bytes, Batches int64
	// Reopens counts the times the file was reopened: asked for
	// (SIGHUP), or because its path no longer named it.
	Reopens int64
	// Vanished counts the reopens of the second kind.
	Vanished int64
	// DiskFull counts the times a write found the disk full; Blocked is
	// the time spent waiting for space (or for a usable path).
	DiskFull int64
	Blocked  time.Duration
	// Syncs counts the fdatasync calls; Rotations the files rotated.
	Syncs, Rotations int64
}

// Add adds o's counts to s, to sum over writers.
func (s *Stats) Add(o Stats) {
	s.Records += o.Records
	s.Bytes += o.Bytes
	s.Batches += o.Batches
	s.Reopens += o.Reopens
	s.Vanished += o.Vanished
	s.DiskFull += o.DiskFull
	s.Blocked += o.Blocked
	s.Syncs += o.Syncs
	s.Rotations += o.Rotations
}

// Writer appends batches to one file. Create it with Open, start Run in its
// own goroutine, send batches on In, and Close the input to stop it.
type Writer struct {
	shard  int
	path   string
	f      *os.File // nil while the path cannot be opened
	opt    Options
	in     chan *Batch
	reopen chan chan<- error // a reopen asked for, and where to answer
	ping   chan chan struct{}
	exited chan struct{} // closed when Run returns
	err    error         // set once the writer has given up; later batches fail with it

	// live is a copy of stats (Blocked including a wait in progress) and
	// whether the writer waits, published after each event of the loop for
	// others to read while Run runs (status, metrics). It is copied under
	// a lock, not allocated anew: a writer that allocates nothing per batch
	// never helps the garbage collector, whose work would double the stack
	// of each of thousands of writers.
	liveMu sync.Mutex
	live   liveStats

	// A write that failed and waits to be retried: the batch, what is
	// left of it, how much of it is in the file, since when it waits.
	cur       *Batch
	iovBuf    [][]byte       // backing array of iov, reused
	statBuf   [2]unix.Stat_t // check's
	check0    *time.Ticker   // Run's path check, made by Open (see there)
	cpath     []byte         // path with a NUL, for check's stat
	iov       [][]byte
	vecs      []unix.Iovec // writev's argument, reused
	curDone   int
	startedAt time.Time
	failedAt  time.Time // since when the writer waits (space, path, retries)
	// errorSince starts the RetryFor window of errors other than a full
	// disk, which are retried, then given up on.
	errorSince time.Time
	backoff    time.Duration
	loggedAt   time.Time
	retry      *time.Timer

	held      []*Batch // written, handed back after the next sync
	heldBytes int
	dirty     bool // written to since the last sync

	size      int64     // bytes in the file
	openedAt  time.Time // when the file was opened, for RotateAge
	lastStamp time.Time // of the last rotated name, which must grow

	stats Stats
}

// Open opens (creating if needed, with opt.Perms) the file at path for
// appending, as the writer of shard number shard. A last record torn by a
// crash is cut off first (see RepairTail).
func Open(shard int, path string, opt Options) (*Writer, error) {
	if opt.Queue <= 0 {
		opt.Queue = 16
	}
	if opt.RetryFor <= 0 {
		opt.RetryFor = 30 * time.Second
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.SyncInterval <= 0 {
		opt.SyncInterval = time.Second
	}
	if opt.MaxHeldBytes <= 0 {
		opt.MaxHeldBytes = 1 << 20
	}
	if opt.CheckEvery <= 0 {
		opt.CheckEvery = time.Second
	}
	if opt.LogEvery <= 0 {
		opt.LogEvery = 30 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	f, err := openFile(path, opt.Perms)
	if err != nil {
		return nil, fmt.Errorf("open shard %d: %w", shard, err)
	}
	if _, err := repairTail(f, path, opt.Now(), opt.Log, opt.Perms); err != nil {
		f.Close()
		return nil, fmt.Errorf("open shard %d: %w", shard, err)
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	w := &Writer{shard: shard, path: path, opt: opt, in: make(chan *Batch, opt.Queue),
		reopen: make(chan chan<- error, 1), ping: make(chan chan struct{}), exited: make(chan struct{}), retry: t,
		// Allocated here, not by the writer's first batch: growing a slice
		// on the writer's goroutine doubles its stack (2 to 4 KiB), which
		// at thousands of shards is a third of their memory. Batches of
		// more pages than this grow them once.
		iovBuf: make([][]byte, 0, 4), vecs: make([]unix.Iovec, 0, 4),
		check0: time.NewTicker(opt.CheckEvery), cpath: append([]byte(path), 0)}
	w.opened(f)
	w.publish()
	return w, nil
}

// opened makes f the writer's file.
func (w *Writer) opened(f *os.File) {
	w.f, w.size, w.openedAt = f, 0, w.opt.Now()
	if fi, err := f.Stat(); err == nil {
		w.size = fi.Size()
	}
}

// openFile opens path for appending (and for reading its tail), creating
// it, with opt.Perms's mode and group, if missing.
func openFile(path string, p Perms) (*os.File, error) {
	return p.openFile(path, unix.O_RDWR|unix.O_APPEND)
}

// In is where routers send batches for this file.
func (w *Writer) In() chan<- *Batch { return w.in }

// CloseInput tells the writer no more batches will come. Call it once every
// router that sends to w has stopped.
func (w *Writer) CloseInput() { close(w.in) }

// Reopen asks the writer to reopen its file by name between batches (after
// a rotation by logrotate, say). It does not wait: the writer sends the
// outcome on done, if not nil (nil once reopened; else why not, and the
// writer retries), and never waits to send it, so done must have room.
// A Reopen while an earlier one is still pending (a writer stuck in a
// system call) is answered at once, on done, with an error wrapping
// ErrReopenPending. Such reopens are logged at Debug level only: the one
// who asked reports them (at N=4096, a line per file would drown the log).
func (w *Writer) Reopen(done chan<- error) {
	select {
	case w.reopen <- done:
	default:
		if done != nil {
			done <- fmt.Errorf("reopen shard %d %s: %w", w.shard, w.path, ErrReopenPending)
		}
	}
}

// ErrReopenPending says that a writer has not yet done the reopen asked of
// it before.
var ErrReopenPending = errors.New("an earlier reopen is still pending")

// Path returns the file's path.
func (w *Writer) Path() string { return w.path }

// Shard returns the number of the shard whose file w writes.
func (w *Writer) Shard() int { return w.shard }

// Stats returns what the writer has done. Call it after Run returns.
func (w *Writer) Stats() Stats { return w.stats }

// Run appends each batch it receives and hands it back, until the input is
// closed; then it syncs and closes the file. It returns the error that made
// it give up on the file, if any, or the error of closing it.
func (w *Writer) Run() error {
	defer close(w.exited)
	check := w.check0
	defer check.Stop()
	var syncs <-chan time.Time
	if w.opt.Sync == SyncInterval {
		t := time.NewTicker(w.opt.SyncInterval)
		defer t.Stop()
		syncs = t.C
	}
	for {
		// While a write or an open waits to be retried, take no batch:
		// this writer's queue fills, the routers hold its batches in their
		// buffers, and the input stops once those are full (backpressure).
		in, retry, abort := w.in, (<-chan time.Time)(nil), (<-chan struct{})(nil)
		if w.waiting() {
			in, retry, abort = nil, w.retry.C, w.opt.Abort
		}
		select {
		case b, ok := <-in:
			if !ok {
				return w.close()
			}
			w.start(b)
		case <-retry:
			w.resume()
		case <-abort:
			w.abort()
		case <-syncs:
			w.sync()
		case <-check.C:
			w.check()
		case done := <-w.reopen:
			err := w.reopenFile(reopenAsked)
			if done != nil {
				done <- err
			}
		case reply := <-w.ping:
			reply <- struct{}{}
		}
		w.publish()
	}
}

// liveStats is what Live returns.
type liveStats struct {
	Stats
	waiting bool
}

// publish copies the writer's counters to live.
func (w *Writer) publish() {
	l := liveStats{Stats: w.stats, waiting: w.waiting()}
	if !w.failedAt.IsZero() {
		l.Blocked += w.opt.Now().Sub(w.failedAt)
	}
	w.liveMu.Lock()
	w.live = l
	w.liveMu.Unlock()
}

// Answers reports whether the writer's loop answers within timeout: it
// does unless it is stuck in a system call (a hung disk). A writer waiting
// for disk space answers, and so, at once, does one whose Run has returned.
func (w *Writer) Answers(timeout time.Duration) bool {
	reply := make(chan struct{}, 1)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case w.ping <- reply:
	case <-w.exited:
		return true
	case <-t.C:
		return false
	}
	select {
	case <-reply:
		return true
	case <-t.C:
		return false
	}
}

// Live returns the writer's counters as of its last event (Blocked
// includes a wait in progress), and whether it is waiting, for disk space
// or for its path; safe to call while Run runs.
func (w *Writer) Live() (Stats, bool) {
	w.liveMu.Lock()
	defer w.liveMu.Unlock()
	return w.live.Stats, w.live.waiting
}

// waiting reports whether the writer waits to retry a write or an open.
func (w *Writer) waiting() bool { return w.cur != nil || w.f == nil && w.err == nil }

// start begins appending b.
func (w *Writer) start(b *Batch) {
	if w.err != nil {
		b.Done(w.err)
		return
	}
	w.cur, w.curDone, w.startedAt = b, 0, w.opt.Now()
	w.iovBuf = append(w.iovBuf[:0], b.Bufs...)
	w.iov = advance(w.iovBuf, 0)
	w.backoff = 10 * time.Millisecond
	if w.f != nil {
		w.resume()
	} else {
		w.retry.Reset(0)
	}
}

// resume writes what is left of the current batch, or, while the file
// cannot be opened, tries to open it again.
func (w *Writer) resume() {
	if w.err != nil {
		return // given up meanwhile (a failed sync): cur was failed then
	}
	if w.f == nil {
		_ = w.reopenFile(reopenRetrying) // on failure it waits again
		if w.f == nil || w.cur == nil {
			return
		}
	}
	for len(w.iov) > 0 {
		n, err := writev(int(w.f.Fd()), w.iov, &w.vecs)
		w.iov = advance(w.iov, n)
		w.curDone += n
		w.size += int64(n)
		if err != nil {
			w.writeFailed(err)
			return
		}
	}
	b := w.cur
	w.cur = nil
	clear(w.iovBuf)
	if !w.failedAt.IsZero() {
		w.waited()
	}
	w.failedAt, w.loggedAt, w.errorSince = time.Time{}, time.Time{}, time.Time{}
	w.stats.Records += int64(b.Records)
	w.stats.Bytes += int64(b.Bytes)
	w.stats.Batches++
	if w.opt.Observer != nil {
		w.opt.Observer.BatchWritten(w.shard, b.Records, b.Bytes, w.opt.Now().Sub(w.startedAt))
	}
	w.dirty = w.opt.Sync != SyncNone
	w.written(b)
	if w.opt.RotateBytes > 0 && w.size >= w.opt.RotateBytes {
		w.rotate()
	}
}

// waited counts and logs the wait that a write has just ended. It is a
// function of its own, kept out of resume's frame, so that the write path
// fits the smallest goroutine stack (see Open).
//
//go:noinline
func (w *Writer) waited() {
	w.stats.Blocked += w.opt.Now().Sub(w.failedAt)
	w.opt.Log.Info("writing again", "shard", w.shard, "path", w.path, "waited", w.opt.Now().Sub(w.failedAt).Round(time.Millisecond))
}

// rotate renames the file to <path>.<UTC time>[.<n>] and opens a new one
// by the path, between batches. Names grow with every rotation, even if
// the clock steps back, so that they sort in the order written. If the
// rename fails the writer goes on with the same file.
func (w *Writer) rotate() {
	if w.err != nil || w.f == nil || w.cur != nil || !w.sync() {
		return
	}
	stamp := w.opt.Now().UTC()
	if !stamp.After(w.lastStamp) {
		stamp = w.lastStamp.Add(time.Nanosecond)
	}
	w.lastStamp = stamp
	base := w.path + "." + stamp.Format(stampLayout)
	name := base
	for i := 1; ; i++ {
		err := renameNoReplace(w.path, name)
		if errors.Is(err, os.ErrExist) {
			name = fmt.Sprintf("%s.%d", base, i)
			continue
		}
		if err != nil {
			w.opt.Log.Warn("rotate shard file: rename failed; going on with the same file", "shard", w.shard, "path", w.path, "err", err)
			return
		}
		break
	}
	if err := w.f.Close(); err != nil {
		w.opt.Log.Warn("closing rotated shard file", "shard", w.shard, "path", name, "err", err)
	}
	w.f = nil
	w.stats.Rotations++
	if w.opt.Rotated != nil {
		w.opt.Rotated(name)
	}
	f, err := openFile(w.path, w.opt.Perms)
	if err != nil {
		w.backoff = 10 * time.Millisecond
		w.waitRetry(nil)
		return
	}
	w.opened(f)
}

// written hands b back as the sync policy allows.
func (w *Writer) written(b *Batch) {
	switch {
	case w.opt.Sync == SyncBatch:
		if w.sync() {
			b.Done(nil)
		} else {
			b.Done(w.err)
		}
	case w.opt.Sync == SyncInterval && len(b.Acks) > 0:
		w.held = append(w.held, b)
		if w.heldBytes += b.Bytes; w.heldBytes >= w.opt.MaxHeldBytes {
			w.sync()
		}
	default:
		b.Done(nil)
	}
}

// sync flushes the file to stable storage if it got data since the last
// sync, and hands back the batches held for it. It reports success; a
// failed sync makes the writer give up.
func (w *Writer) sync() bool {
	if w.dirty && w.f != nil && w.err == nil {
		w.stats.Syncs++
		start := w.opt.Now()
		// A failed fsync may have dropped the dirty pages: retrying could
		// report success for data that is gone. Give up on the file.
		if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
			w.giveUp(fmt.Errorf("sync shard %d %s: %w: %w", w.shard, w.path, errSync, err))
		}
		if w.opt.Observer != nil {
			w.opt.Observer.Synced(w.shard, w.opt.Now().Sub(start))
		}
		w.dirty = false
	}
	for _, b := range w.held {
		b.Done(w.err)
	}
	clear(w.held)
	w.held, w.heldBytes = w.held[:0], 0
	return w.err == nil
}

// writeFailed handles a failed write of the current batch: a full disk is
// waited out, other errors are retried for RetryFor, then given up.
func (w *Writer) writeFailed(err error) {
	now := w.opt.Now()
	first := w.failedAt.IsZero()
	if first {
		w.failedAt = now
	}
	if diskFull(err) {
		if first {
			w.stats.DiskFull++
		}
		// Take back what part of the batch fit, so that the file ends
		// with a whole record while the writer waits; the batch is
		// written whole once there is space.
		_ = w.rewind()
		w.waitRetry(err)
		return
	}
	if w.errorSince.IsZero() {
		w.errorSince = now
	}
	if now.Sub(w.errorSince) >= w.opt.RetryFor {
		w.failCurrent(fmt.Errorf("write shard %d %s: %w (gave up after %s)", w.shard, w.path, err, w.opt.RetryFor))
		return
	}
	w.opt.Log.Warn("write failed, retrying", "shard", w.shard, "path", w.path, "err", err, "retry_in", w.backoff)
	w.retry.Reset(w.backoff)
	w.backoff = min(2*w.backoff, time.Second)
}

// waitRetry waits for space (err is the full disk's error) or for the path
// to become usable (err nil): it logs once, then every LogEvery, and
// retries with backoff capped at one second.
func (w *Writer) waitRetry(err error) {
	now := w.opt.Now()
	if w.failedAt.IsZero() {
		w.failedAt = now
	}
	if w.loggedAt.IsZero() || now.Sub(w.loggedAt) >= w.opt.LogEvery {
		w.loggedAt = now
		if err != nil {
			w.opt.Log.Warn("disk full: waiting for space; its records wait in memory, input pauses once the buffer is full", "shard", w.shard, "path", w.path,
				"err", err, "waiting", now.Sub(w.failedAt).Round(time.Second))
		} else {
			w.opt.Log.Warn("shard file cannot be opened: waiting; its records wait in memory, other shards go on", "shard", w.shard, "path", w.path,
				"waiting", now.Sub(w.failedAt).Round(time.Second))
		}
	}
	w.retry.Reset(w.backoff)
	w.backoff = min(2*w.backoff, time.Second)
}

// rewind takes the part of the current batch already written back out of
// the file, to write the batch again whole.
func (w *Writer) rewind() error {
	if w.cur == nil || w.curDone == 0 || w.f == nil {
		return nil
	}
	if err := unwrite(w.f, int64(w.curDone)); err != nil {
		return err
	}
	w.size -= int64(w.curDone)
	w.curDone = 0
	w.iovBuf = append(w.iovBuf[:0], w.cur.Bufs...)
	w.iov = advance(w.iovBuf, 0)
	return nil
}

// diskFull reports whether err says the disk or the quota is full.
func diskFull(err error) bool { return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) }

// abort gives up waiting: shutdown has waited long enough.
func (w *Writer) abort() {
	err := fmt.Errorf("shard %d %s: gave up waiting at shutdown after %s", w.shard, w.path,
		w.opt.Now().Sub(w.failedAt).Round(time.Millisecond))
	if w.cur != nil {
		w.failCurrent(err)
		return
	}
	w.giveUp(err)
}

// failCurrent gives up on the file with err, failing the current batch.
// What the batch had written is cut off the file (and kept aside), so that
// the file ends with a whole record and holds no record counted as failed.
func (w *Writer) failCurrent(err error) {
	b := w.cur
	w.cur = nil
	clear(w.iovBuf)
	if w.curDone > 0 && w.f != nil {
		if cerr := cutTail(w.f, w.path, int64(w.curDone), w.opt.Now(), w.opt.Log, w.opt.Perms); cerr != nil {
			err = errors.Join(err, cerr)
		}
		w.size -= int64(w.curDone)
		w.curDone = 0
	}
	w.giveUp(err)
	b.Done(w.err)
}

// giveUp records err as the reason the writer gives up on its file, and
// reports it. Held batches are synced and handed back first.
func (w *Writer) giveUp(err error) {
	if w.err != nil {
		return
	}
	if !w.failedAt.IsZero() {
		w.stats.Blocked += w.opt.Now().Sub(w.failedAt)
		w.failedAt = time.Time{}
	}
	// Batches held for the interval sync are in the file: sync them and
	// hand them back written, unless it is the sync that failed.
	var heldErr error = err
	if len(w.held) > 0 && w.f != nil && !errors.Is(err, errSync) {
		if serr := unix.Fdatasync(int(w.f.Fd())); serr == nil {
			heldErr = nil
		}
	}
	for _, b := range w.held {
		b.Done(heldErr)
	}
	clear(w.held)
	w.held, w.heldBytes = w.held[:0], 0
	w.err = err
	w.opt.Log.Error("giving up on shard file", "shard", w.shard, "path", w.path, "err", err)
	if w.opt.Fail != nil {
		w.opt.Fail(err)
	}
	if w.cur != nil {
		w.failCurrent(err)
	}
}

// errSync marks a failed fdatasync, after which nothing is synced again.
var errSync = errors.New("fdatasync failed")

// check reopens the file if its path no longer names it: renamed, deleted,
// replaced. Records written between such a change and the check went to
// the old file (the window is CheckEvery).
//
//go:noinline
func (w *Writer) check() {
	if w.f == nil || w.err != nil {
		return
	}
	if w.opt.RotateAge > 0 && w.size > 0 && w.cur == nil && w.opt.Now().Sub(w.openedAt) >= w.opt.RotateAge {
		w.rotate()
		return
	}
	// unix rather than os: no garbage, and with the results in the
	// writer rather than on its stack, the check fits the smallest stack
	// a goroutine has (at thousands of shards, doubling it costs more
	// memory than the rest of the writer).
	open, now := &w.statBuf[0], &w.statBuf[1]
	if unix.Fstat(int(w.f.Fd()), open) != nil {
		return
	}
	atCWD := unix.AT_FDCWD
	_, _, errno := unix.Syscall6(sysFstatat, uintptr(atCWD), uintptr(unsafe.Pointer(&w.cpath[0])),
		uintptr(unsafe.Pointer(now)), 0, 0, 0) // unix.Stat, without converting the path each time
	var err error
	if errno != 0 {
		err = errno
	}
	if err == nil && open.Dev == now.Dev && open.Ino == now.Ino {
		return
	}
	w.stats.Vanished++
	why := "the path names another file"
	if err != nil {
		why = "the file is gone"
	}
	w.opt.Log.Warn("shard file moved or deleted under shardlog: reopening by name", "shard", w.shard, "path", w.path, "why", why)
	_ = w.reopenFile(reopenVanished)
}

// Why a file is reopened, as reopenFile logs it.
const (
	reopenAsked    = "reopen requested" // Reopen: logged at Debug level
	reopenRetrying = "retrying"         // not logged
	reopenVanished = "the file vanished"
)

// reopenFile closes the file and opens its path again (creating the file,
// and its directory, if missing). Batches held for a sync are synced
// first. A batch waiting to be retried (on a full disk) is taken back out
// of the old file and written whole to the new one, so no record spans two
// files. If the path cannot be opened the writer waits, retrying, and
// takes no batch meanwhile. It returns why the file is not reopened, if
// it is not.
func (w *Writer) reopenFile(why string) error {
	if w.err != nil {
		return w.err
	}
	if err := w.rewind(); err != nil {
		w.opt.Log.Warn("reopen postponed: cannot take a partly written batch back", "shard", w.shard, "path", w.path, "err", err)
		return fmt.Errorf("reopen shard %d %s: postponed: %w", w.shard, w.path, err)
	}
	if w.f != nil {
		if !w.sync() {
			return w.err
		}
		if err := w.f.Close(); err != nil {
			w.opt.Log.Warn("closing shard file before reopening", "shard", w.shard, "path", w.path, "err", err)
		}
		w.f = nil
		w.stats.Reopens++
	}
	if err := w.opt.Perms.MkdirAll(filepath.Dir(w.path)); err != nil {
		w.opt.Log.Warn("reopen shard file", "shard", w.shard, "path", w.path, "err", err)
	}
	f, err := openFile(w.path, w.opt.Perms)
	if err != nil {
		if w.failedAt.IsZero() {
			w.backoff = 10 * time.Millisecond
		}
		w.opt.Log.Debug("reopen shard file", "shard", w.shard, "path", w.path, "err", err)
		w.waitRetry(nil)
		return fmt.Errorf("reopen shard %d: %w", w.shard, err)
	}
	w.opened(f)
	switch why {
	case reopenRetrying:
	case reopenAsked:
		w.opt.Log.Debug("reopened shard file", "shard", w.shard, "path", w.path, "why", why)
	default:
		w.opt.Log.Info("reopened shard file", "shard", w.shard, "path", w.path, "why", why)
	}
	if w.cur == nil && !w.failedAt.IsZero() {
		w.stats.Blocked += w.opt.Now().Sub(w.failedAt)
		w.failedAt, w.loggedAt = time.Time{}, time.Time{}
	}
	return nil
}

// close syncs (unless the policy is none) and closes the file at the end
// of the input.
func (w *Writer) close() error {
	w.sync()
	if w.f != nil {
		if err := w.f.Close(); err != nil && w.err == nil {
			w.err = fmt.Errorf("close shard %d %s: %w", w.shard, w.path, err)
		}
	}
	return w.err
}

// maxIOV is the most buffers one writev(2) accepts (IOV_MAX on Linux).
const maxIOV = 1024

// writev writes some prefix of iov to fd and reports how many bytes it wrote.
// It retries interrupted calls and never returns (0, nil) for a non-empty iov.
// vecs is the caller's iovec array, reused: unix.Writev allocates one per
// call (see Writer.live for why a writer should not allocate).
func writev(fd int, iov [][]byte, vecs *[]unix.Iovec) (int, error) {
	v := (*vecs)[:0]
	for _, b := range iov[:min(len(iov), maxIOV)] {
		if len(b) > 0 {
			e := unix.Iovec{Base: &b[0]}
			e.SetLen(len(b))
			v = append(v, e)
		}
	}
	*vecs = v
	if len(v) == 0 {
		return 0, fmt.Errorf("writev: %w", unix.EIO)
	}
	for {
		r, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&v[0])), uintptr(len(v)))
		runtime.KeepAlive(iov)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		if r == 0 {
			return 0, fmt.Errorf("writev: %w", unix.EIO)
		}
		return int(r), nil
	}
}

// advance drops the first n bytes from iov.
func advance(iov [][]byte, n int) [][]byte {
	for n > 0 && len(iov) > 0 {
		if n < len(iov[0]) {
			iov[0] = iov[0][n:]
			return iov
		}
		n -= len(iov[0])
		iov = iov[1:]
	}
	for len(iov) > 0 && len(iov[0]) == 0 {
		iov = iov[1:]
	}
	return iov
}
