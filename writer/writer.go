// Package writer owns shard files: one goroutine per file appends the batches
// routers hand it, and hands each batch back once it is written.
//
// A Writer is the only code that touches its file, so no lock guards it.
// Later policies (fsync, rotation, reopen on SIGHUP) become cases of its loop.
package writer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

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

// Options tune a Writer. The zero value is usable.
type Options struct {
	// Queue is how many batches may wait for the writer before senders block.
	// Memory is bounded by the routers' budgets, not by this.
	Queue int
	// RetryFor is how long a failing write is retried before the writer
	// gives up on the file. Zero means 30 seconds.
	RetryFor time.Duration
	// Fail is called once, with the error, when the writer gives up.
	// It lets the owner begin shutdown; it may be nil.
	Fail func(error)
	// Log receives warnings about retried writes; nil means slog.Default().
	Log *slog.Logger
	// Sync makes the writer flush each batch to stable storage
	// (fdatasync) before handing it back, so that what is acknowledged
	// survives a crash of the machine, not only of shardlog.
	Sync bool
}

// Writer appends batches to one file. Create it with Open, start Run in its
// own goroutine, send batches on In, and Close the input to stop it.
type Writer struct {
	shard int
	path  string
	f     *os.File
	in    chan *Batch
	opt   Options
	iov   [][]byte
	err   error // set once the writer has given up; later batches fail with it

	records, bytes, batches int64
}

// Open opens (creating if needed) the file at path for appending, as the
// writer of shard number shard.
func Open(shard int, path string, opt Options) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open shard %d: %w", shard, err)
	}
	if opt.Queue <= 0 {
		opt.Queue = 16
	}
	if opt.RetryFor <= 0 {
		opt.RetryFor = 30 * time.Second
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &Writer{shard: shard, path: path, f: f, in: make(chan *Batch, opt.Queue), opt: opt}, nil
}

// In is where routers send batches for this file.
func (w *Writer) In() chan<- *Batch { return w.in }

// CloseInput tells the writer no more batches will come. Call it once every
// router that sends to w has stopped.
func (w *Writer) CloseInput() { close(w.in) }

// Path returns the file's path.
func (w *Writer) Path() string { return w.path }

// Stats returns what the writer has appended so far. Call it after Run returns.
func (w *Writer) Stats() (records, bytes, batches int64) { return w.records, w.bytes, w.batches }

// Run appends each batch it receives and hands it back, until the input is
// closed; then it closes the file. It returns the error that made it give up
// on the file, if any, or the error of closing it.
func (w *Writer) Run() error {
	for b := range w.in {
		b.Done(w.write(b))
	}
	if err := w.f.Close(); err != nil && w.err == nil {
		w.err = fmt.Errorf("close shard %d %s: %w", w.shard, w.path, err)
	}
	return w.err
}

// write appends b whole, retrying failures with backoff for opt.RetryFor.
// A retry resumes after the bytes already written, so nothing is doubled.
func (w *Writer) write(b *Batch) error {
	if w.err != nil {
		return w.err
	}
	w.iov = append(w.iov[:0], b.Bufs...)
	iov := advance(w.iov, 0)
	deadline := time.Time{}
	backoff := 10 * time.Millisecond
	for len(iov) > 0 {
		n, err := writev(int(w.f.Fd()), iov)
		iov = advance(iov, n)
		if err == nil {
			continue
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(w.opt.RetryFor)
		}
		if time.Now().After(deadline) {
			return w.giveUp(fmt.Errorf("write shard %d %s: %w (gave up after %s)", w.shard, w.path, err, w.opt.RetryFor))
		}
		w.opt.Log.Warn("write failed, retrying", "shard", w.shard, "path", w.path, "err", err, "retry_in", backoff)
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
	clear(w.iov)
	if w.opt.Sync {
		// A failed fsync may have dropped the dirty pages: retrying could
		// report success for data that is gone. Give up on the file.
		if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
			return w.giveUp(fmt.Errorf("sync shard %d %s: %w", w.shard, w.path, err))
		}
	}
	w.records += int64(b.Records)
	w.bytes += int64(b.Bytes)
	w.batches++
	return nil
}

// giveUp records err as the reason the writer gives up on its file, and
// reports it.
func (w *Writer) giveUp(err error) error {
	w.err = err
	if w.opt.Fail != nil {
		w.opt.Fail(err)
	}
	return err
}

// maxIOV is the most buffers one writev(2) accepts (IOV_MAX on Linux).
const maxIOV = 1024

// writev writes some prefix of iov to fd and reports how many bytes it wrote.
// It retries interrupted calls and never returns (0, nil) for a non-empty iov.
func writev(fd int, iov [][]byte) (int, error) {
	for {
		n, err := unix.Writev(fd, iov[:min(len(iov), maxIOV)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n < 0 {
			n = 0
		}
		if err == nil && n == 0 {
			err = fmt.Errorf("writev: %w", unix.EIO)
		}
		return n, err
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
