// Package ingest holds shardlog's sources. Each turns its input into
// messages and feeds them to its own router; framing lives here.
package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shardlog/shardlog/shard"
)

// blocks is how many read buffers a Lines source cycles through: one being
// filled, one being routed, one spare so neither waits for the other.
const blocks = 3

// readBytes is the most one read takes into a buffer (a longer line takes
// several reads): a block then stays in the processor's cache while it is
// read, indexed and hashed, and copied into batches (measured 4% faster
// than reading up to the whole 1 MiB buffer).
const readBytes = 256 << 10

// Lines is a source of newline-framed messages, such as standard input.
//
// A message is the bytes of one line without its '\n'; every other byte,
// '\r' and NUL included, is part of it. A last line without '\n' is still a
// message. A line longer than MaxMessageBytes is split into messages of
// MaxMessageBytes (the last one shorter), each routed on its own, as
// journald does with its LineMax: nothing is dropped and memory stays
// bounded. Such splits are counted.
type Lines struct {
	r          io.Reader
	maxMessage int
	stopped    atomic.Bool // set at shutdown: read no more

	messages, splits atomic.Int64 // updated per block, read by metrics
}

// NewLines returns a source reading r, which accepts messages of up to
// maxMessage bytes. If r has a SetReadDeadline method, Run uses it to stop
// a blocked read at shutdown.
func NewLines(r io.Reader, maxMessage int) *Lines {
	return &Lines{r: r, maxMessage: maxMessage}
}

// Stats returns how many messages Run has routed and how many of them were
// pieces of a split over-long line; safe to call while Run runs.
func (s *Lines) Stats() (messages, splits int64) { return s.messages.Load(), s.splits.Load() }

// Run routes every message it reads until the input ends or ctx is done,
// then closes the router, which waits until every record is written. When
// ctx is done, Run stops reading but still routes what it has read,
// including a last partial line.
func (s *Lines) Run(ctx context.Context, r *shard.Router) error {
	full := make(chan *block, 1)
	free := make(chan *block, blocks)
	for range blocks {
		free <- &block{data: make([]byte, 0, s.maxMessage+1)}
	}
	readErr := make(chan error, 1)
	hasher := r.Hasher()
	go func() { readErr <- s.read(full, free, hasher) }()

	stop := ctx.Done()
loop:
	for {
		select {
		case b, ok := <-full:
			if !ok {
				break loop
			}
			s.route(r, b)
			free <- b
		case <-r.Linger():
			r.FlushIdle()
		case <-r.Due():
			r.FlushAll()
		case b := <-r.Back():
			r.Recycle(b)
		case <-stop:
			stop = nil
			s.interrupt()
		}
	}
	err := <-readErr
	return errors.Join(err, r.Close())
}

// block is a buffer of whole lines, each ending in '\n', with where each
// line ends and its shard, worked out by the reader goroutine so that the
// hashing runs beside the routing rather than before it.
type block struct {
	data   []byte
	ends   []int32 // offset of each line's '\n'
	shards []int32 // each line's shard; -1-k when its key was missing
}

// index finds the lines of b.data and their shards.
func (b *block) index(h shard.Hasher) {
	b.ends = b.ends[:0]
	for off := 0; off < len(b.data); {
		i := off + bytes.IndexByte(b.data[off:], '\n')
		b.ends = append(b.ends, int32(i))
		off = i + 1
	}
	b.shards = slices.Grow(b.shards[:0], len(b.ends))[:len(b.ends)]
	h.ShardLines(b.data, b.ends, b.shards)
}

// route routes each line of b.
func (s *Lines) route(r *shard.Router, b *block) {
	r.RouteLines(b.data, b.ends, b.shards)
	s.messages.Add(int64(len(b.ends)))
}

// interrupt stops reading: no read starts after it, and a blocked read
// returns where the input allows it (pipes and terminals; a regular file's
// reads do not block).
func (s *Lines) interrupt() {
	s.stopped.Store(true)
	if d, ok := s.r.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = d.SetReadDeadline(time.Now())
	}
}

// read fills buffers from free with whole lines and sends them on full,
// each line ending in '\n', until the input ends or a read fails; then it
// closes full. A buffer is sent as soon as it holds a whole line, so a slow
// trickle of lines is not held back. The partial line after the last '\n'
// is carried over into the next buffer; when the input ends, it is sent as
// a last message.
func (s *Lines) read(full chan<- *block, free <-chan *block, h shard.Hasher) error {
	defer close(full)
	carry := make([]byte, 0, s.maxMessage+1)
	send := func(b *block) {
		b.index(h)
		full <- b
	}
	for {
		b := <-free
		var err error
		b.data, err = s.fill(append(b.data[:0], carry...), &carry)
		if len(b.data) > 0 {
			send(b)
		}
		if err == nil {
			continue
		}
		if len(carry) > 0 {
			b := <-free
			b.data = append(append(b.data[:0], carry...), '\n')
			send(b)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		return fmt.Errorf("read input: %w", err)
	}
}

// fill reads into buf, which starts with a partial line, until buf holds a
// whole line, is full, or a read fails. It returns buf up to its last '\n'
// and puts the rest in *carry. A full buffer without '\n' is cut after
// maxMessage bytes, as a message of its own. When a read fails and buf has
// no '\n', buf's partial line is returned as a message.
func (s *Lines) fill(buf []byte, carry *[]byte) ([]byte, error) {
	*carry = (*carry)[:0]
	scanned := len(buf)
	for {
		if s.stopped.Load() {
			if len(buf) > 0 {
				buf = append(buf, '\n')
			}
			return buf, os.ErrDeadlineExceeded
		}
		n, err := s.r.Read(buf[len(buf):min(cap(buf), len(buf)+readBytes)])
		buf = buf[:len(buf)+n]
		if i := bytes.LastIndexByte(buf[scanned:], '\n'); i >= 0 {
			cut := scanned + i + 1
			*carry = append(*carry, buf[cut:]...)
			return buf[:cut], err
		}
		scanned = len(buf)
		if len(buf) == cap(buf) {
			*carry = append(*carry, buf[s.maxMessage:]...)
			buf[s.maxMessage] = '\n'
			s.splits.Add(1)
			return buf, err
		}
		if err != nil {
			if len(buf) > 0 {
				buf = append(buf, '\n')
			}
			return buf, err
		}
	}
}

// PrepareStdin readies standard input for Lines: it makes a pipe or
// terminal pollable, so that shutdown can interrupt a blocked read, and asks
// for a larger pipe buffer, so that a fast writer wakes us less often.
// The returned function restores the blocking mode, which the terminal or
// pipe may share with other processes.
func PrepareStdin() (*os.File, func()) {
	const fd = 0
	// A larger pipe buffer halves the wake-ups of a fast producer; failure
	// (not a pipe, or over the system's limit) is harmless.
	_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20)
	if err := unix.SetNonblock(fd, true); err != nil {
		return os.Stdin, func() {}
	}
	f := os.NewFile(fd, "/dev/stdin")
	return f, func() {
		RestoreStdin()
		runtime.KeepAlive(f) // f's finalizer would close fd 0
	}
}

// RestoreStdin puts standard input back in blocking mode, for a shell that
// shares the terminal. Exits that skip PrepareStdin's restore call it.
func RestoreStdin() { _ = unix.SetNonblock(0, false) }
