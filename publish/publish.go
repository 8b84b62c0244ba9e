// Package publish is the sink of `shardlog route`: where `run` appends a
// shard's batch to its file, a Publisher publishes it as one JetStream
// message to the shard's subject, and hands the batch back once the server
// has stored it.
//
// A Publisher is wired like the file writers: the router sends shard k's
// batches on In(k), Run publishes them until CloseInput, and each batch
// comes back to the router through Done, written (nil) or failed for good.
//
// # Order and the window
//
// Each shard has a goroutine of its own (as each file has a writer) that
// publishes its batches one at a time: a batch is published only once the
// server has acknowledged the one before it, so the stream stores a
// shard's batches in the order the router handed them, retries included.
// Shards publish concurrently, at most Window batches at once in all,
// which bounds the unacknowledged bytes to Window times the largest batch
// and the memory of the payload buffers alike. A single shard's speed is
// thus one batch per round trip; with many shards it is the server's.
//
// Why a goroutine per shard and a synchronous publish, rather than one
// loop over PublishMsgAsync: one loop would select over N input channels
// (reflect.Select, costly at thousands of shards), and several batches of
// a shard in flight at once lose their order when one is refused and the
// next is stored; a retry then lands after it. A shard's goroutine that
// waits for each acknowledgement keeps the order without the server's
// help, and costs nothing measurable once shards are many (see
// docs/BENCHMARKS.md).
//
// # Retries
//
// Every batch has a message id, "<instance id>-<shard>-<sequence>", sent
// as the Nats-Msg-Id header and kept for every retry of the batch, so that
// the stream's duplicate window stores a batch published twice (its ack
// lost, then retried) once. A refused or unanswered publish (no stream
// responds, a timeout, the stream full, no quorum, the connection down) is
// retried with backoff capped at a second, forever: the batch is not
// handed back, the shard's input waits, and the router's buffer fills
// (backpressure). Nothing is dropped. Only a batch the server can never
// take (larger than its max_payload or the stream's max_msg_size) fails at
// once, and closing Abort makes the publisher give up on what is left.
package publish

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardlog/shardlog/writer"
)

// DefaultWindow is how many batches may await the server's acknowledgement
// at once when Options.Window is zero: with batches of 256 KiB, 16 MiB.
const DefaultWindow = 64

// ErrAborted marks the batches a publisher gave up on because Abort was
// closed.
var ErrAborted = errors.New("gave up publishing at shutdown")

// ErrTooLarge marks a batch the server can never store: larger than its
// max_payload or the stream's max_msg_size.
var ErrTooLarge = errors.New("batch larger than the server accepts (batch.max_bytes must be below the server's max_payload and the stream's max_msg_size)")

// Options say where and how a Publisher publishes.
type Options struct {
	// Shards is N; In takes shard numbers 0 to N-1.
	Shards int
	// Prefix names the subjects: shard k's batches go to "<Prefix>.<k>".
	// Subject, if set, is used instead.
	Prefix  string
	Subject func(k int) string
	// ID is the instance id, unique per process start, that begins every
	// message id. Empty means a random one (see NewID).
	ID string
	// Window is the most batches awaiting the server's acknowledgement at
	// once, over all shards; zero means DefaultWindow.
	Window int
	// Queue is how many batches may wait for each shard before senders
	// block (the router then holds them); zero means 16, as for writers.
	Queue int
	// AckTimeout is how long one attempt waits for the server's
	// acknowledgement before it is retried; zero means 5 seconds.
	AckTimeout time.Duration
	// MaxBackoff caps the wait between retries; zero means a second.
	MaxBackoff time.Duration
	// LogEvery is how often the publisher says it is still retrying; zero
	// means 30 seconds. The first failure is logged at once.
	LogEvery time.Duration
	// Abort, once closed, makes the publisher give up: the batch being
	// retried and every batch still to come are handed back failed (with
	// ErrAborted), so that a stop after shutdown_timeout counts exactly
	// what was not stored. Nil never aborts.
	Abort <-chan struct{}
	// Fail is called once, with the error, when a batch fails for good
	// (not for an abort); it lets the owner begin shutdown. It may be nil.
	Fail func(error)
	// Log receives the publisher's warnings; nil means slog.Default().
	Log *slog.Logger
}

// Stats counts what a Publisher did.
type Stats struct {
	// Batches, Records and Bytes count what the server acknowledged.
	Batches, Records, Bytes int64
	// Duplicates counts acknowledgements that said the stream already had
	// the message (a retry of a batch that was stored the first time).
	Duplicates int64
	// Retries counts failed attempts that were retried.
	Retries int64
	// Failed counts batches handed back failed (too large, or aborted).
	Failed int64
	// Waiting is the number of shards retrying a refused batch now.
	Waiting int64
}

// Publisher publishes the batches of N shards to a JetStream stream. Create
// it with New, start Run in its own goroutine, send batches on In, and
// CloseInput to stop it.
type Publisher struct {
	js     jetstream.JetStream
	opt    Options
	ins    []chan *writer.Batch
	window chan struct{} // a token per batch in flight

	mu       sync.Mutex // guards loggedAt, failed and free
	loggedAt time.Time
	failed   bool
	// free holds the payload buffers of batches no longer in flight, the
	// one returned last at the end: it is taken first, while its memory
	// is still in the cache, and buffers seldom needed stay untouched.
	free [][]byte

	batches, records, bytes, dups, retries, nfailed, waiting atomic.Int64
}

// New returns a Publisher that publishes through js.
func New(js jetstream.JetStream, opt Options) (*Publisher, error) {
	if js == nil {
		return nil, errors.New("publish: no JetStream context")
	}
	if opt.Shards <= 0 {
		return nil, fmt.Errorf("publish: shards %d: must be positive", opt.Shards)
	}
	if opt.Subject == nil {
		if opt.Prefix == "" {
			return nil, errors.New("publish: neither a subject prefix nor a subject function")
		}
		prefix := opt.Prefix + "."
		opt.Subject = func(k int) string { return prefix + strconv.Itoa(k) }
	}
	if opt.Window < 0 {
		return nil, fmt.Errorf("publish: window %d: must not be negative", opt.Window)
	}
	if opt.Window == 0 {
		opt.Window = DefaultWindow
	}
	if opt.ID == "" {
		opt.ID = NewID()
	}
	if opt.Queue <= 0 {
		opt.Queue = 16
	}
	if opt.AckTimeout <= 0 {
		opt.AckTimeout = 5 * time.Second
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = time.Second
	}
	if opt.LogEvery <= 0 {
		opt.LogEvery = 30 * time.Second
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	p := &Publisher{js: js, opt: opt, ins: make([]chan *writer.Batch, opt.Shards), window: make(chan struct{}, opt.Window)}
	for k := range p.ins {
		p.ins[k] = make(chan *writer.Batch, opt.Queue)
	}
	return p, nil
}

// NewID returns a random instance id: 16 hex digits, unique per process
// start for all practical purposes.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// ID returns the publisher's instance id.
func (p *Publisher) ID() string { return p.opt.ID }

// MsgID returns the Nats-Msg-Id of shard k's seq-th batch (from 1).
func (p *Publisher) MsgID(k int, seq uint64) string {
	return p.opt.ID + "-" + strconv.Itoa(k) + "-" + strconv.FormatUint(seq, 10)
}

// In is where the router sends shard k's batches.
func (p *Publisher) In(k int) chan<- *writer.Batch { return p.ins[k] }

// CloseInput tells the publisher no more batches will come, for any
// shard. Call it once every router that sends to it has stopped.
func (p *Publisher) CloseInput() {
	for _, in := range p.ins {
		close(in)
	}
}

// Stats returns what the publisher has done so far; safe to call while
// Run runs.
func (p *Publisher) Stats() Stats {
	return Stats{Batches: p.batches.Load(), Records: p.records.Load(), Bytes: p.bytes.Load(),
		Duplicates: p.dups.Load(), Retries: p.retries.Load(), Failed: p.nfailed.Load(), Waiting: p.waiting.Load()}
}

// Run publishes every batch it receives, one goroutine per shard, until
// the input is closed and every batch has been handed back. It returns
// an error a batch failed with (the first of the lowest-numbered shard
// that had one), if any; Stats counts them all.
func (p *Publisher) Run() error {
	// ctx ends the attempts in flight once Abort is closed.
	ctx, cancel := context.WithCancelCause(context.Background())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	if p.opt.Abort != nil {
		wg.Go(func() {
			select {
			case <-p.opt.Abort:
				cancel(ErrAborted)
			case <-stop:
			}
		})
	}
	errs := make([]error, len(p.ins))
	var shards sync.WaitGroup
	for k := range p.ins {
		shards.Go(func() { errs[k] = p.runShard(ctx, k) })
	}
	shards.Wait()
	close(stop)
	wg.Wait()
	cancel(nil)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// runShard publishes shard k's batches in order until its input closes,
// and returns the first error a batch failed with.
func (p *Publisher) runShard(ctx context.Context, k int) error {
	s := &shardPub{p: p, k: k, subject: p.opt.Subject(k), msg: &nats.Msg{Header: nats.Header{}}}
	var first error
	for b := range p.ins[k] {
		var err error
		if ctx.Err() != nil {
			err = fmt.Errorf("publish shard %d to %s: %w", k, s.subject, ErrAborted)
		} else {
			err = s.publish(ctx, b)
		}
		if err != nil {
			p.nfailed.Add(1)
			if first == nil {
				first = err
			}
		}
		b.Done(err)
	}
	return first
}

// shardPub is the state of one shard's goroutine.
type shardPub struct {
	p       *Publisher
	k       int
	subject string
	seq     uint64
	msg     *nats.Msg // reused: its header map and, via the window, its payload
}

// publish publishes b as one message and returns once the server has
// stored it (nil), or why it never will.
func (s *shardPub) publish(ctx context.Context, b *writer.Batch) error {
	p := s.p
	s.seq++
	id := p.MsgID(s.k, s.seq)
	select {
	case p.window <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("publish shard %d to %s: %w", s.k, s.subject, ErrAborted)
	}
	buf := p.payload(b)
	s.msg.Subject, s.msg.Data = s.subject, buf
	s.msg.Header[jetstream.MsgIDHeader] = []string{id}
	err := s.attempts(ctx, id, b)
	s.msg.Data = nil
	p.mu.Lock()
	p.free = append(p.free, buf)
	p.mu.Unlock()
	<-p.window
	return err
}

// payload returns b's records in one buffer, the message's payload: the
// buffer freed last if one is free, made large enough once rather than
// grown, since fresh memory costs a page fault per page it touches.
func (p *Publisher) payload(b *writer.Batch) []byte {
	p.mu.Lock()
	var buf []byte
	if n := len(p.free); n > 0 {
		buf = p.free[n-1]
		p.free = p.free[:n-1]
	}
	p.mu.Unlock()
	if cap(buf) < b.Bytes {
		// An eighth more, so that the next slightly larger batch fits.
		buf = make([]byte, 0, b.Bytes+b.Bytes/8)
	}
	buf = buf[:0]
	for _, page := range b.Bufs {
		buf = append(buf, page...)
	}
	return buf
}

// attempts publishes s.msg until the server acknowledges it, a permanent
// error, or an abort.
func (s *shardPub) attempts(ctx context.Context, id string, b *writer.Batch) error {
	p := s.p
	backoff := 10 * time.Millisecond
	var failedAt time.Time
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
		if !failedAt.IsZero() {
			p.waiting.Add(-1)
		}
	}()
	for {
		actx, cancel := context.WithTimeout(ctx, p.opt.AckTimeout)
		// The client's own retries (on no responders) are off: this loop
		// retries, with its backoff and logging.
		ack, err := p.js.PublishMsg(actx, s.msg, jetstream.WithRetryAttempts(0))
		cancel()
		if err == nil {
			p.batches.Add(1)
			p.records.Add(int64(b.Records))
			p.bytes.Add(int64(b.Bytes))
			if ack.Duplicate {
				p.dups.Add(1)
			}
			if !failedAt.IsZero() {
				// The shard stops waiting here, not in the deferred
				// call: of shards stored at once, the last to
				// leave (and only it) sees none left and logs.
				waited := time.Since(failedAt)
				failedAt = time.Time{}
				if p.waiting.Add(-1) == 0 {
					p.stored(s.k, waited)
				}
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("publish shard %d to %s (msg id %s): %w: last error: %w", s.k, s.subject, id, ErrAborted, err)
		}
		if tooLarge(err) {
			err = fmt.Errorf("publish shard %d to %s: %d bytes: %w: %w", s.k, s.subject, len(s.msg.Data), ErrTooLarge, err)
			p.fail(err)
			return err
		}
		if failedAt.IsZero() {
			failedAt = time.Now()
			p.waiting.Add(1)
		}
		p.retries.Add(1)
		p.refused(s.k, s.subject, err, time.Since(failedAt))
		if retry == nil {
			retry = time.NewTimer(backoff)
		} else {
			retry.Reset(backoff)
		}
		backoff = min(2*backoff, p.opt.MaxBackoff)
		select {
		case <-retry.C:
		case <-ctx.Done():
			return fmt.Errorf("publish shard %d to %s (msg id %s): %w: last error: %w", s.k, s.subject, id, ErrAborted, err)
		}
	}
}

// tooLarge reports whether err says the message can never be stored for
// its size.
func tooLarge(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, nats.ErrMaxPayload) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

// refused logs a refused publish: the first at once, then one line every
// LogEvery for all shards together, so that N shards refused at once
// (a full stream) do not write N lines.
func (p *Publisher) refused(k int, subject string, err error, waited time.Duration) {
	p.mu.Lock()
	now := time.Now()
	log := p.loggedAt.IsZero() || now.Sub(p.loggedAt) >= p.opt.LogEvery
	if log {
		p.loggedAt = now
	}
	p.mu.Unlock()
	if log {
		p.opt.Log.Warn("publish refused: retrying; the shard's records wait in memory, input pauses once the buffer is full",
			"shard", k, "subject", subject, "err", err, "waiting", waited.Round(time.Millisecond), "shards_waiting", p.waiting.Load())
	}
}

// stored logs that the last waiting shard's refused batch is stored at
// last, and lets the next failure log at once.
func (p *Publisher) stored(k int, waited time.Duration) {
	p.mu.Lock()
	p.loggedAt = time.Time{}
	p.mu.Unlock()
	p.opt.Log.Info("publishing again", "shard", k, "waited", waited.Round(time.Millisecond))
}

// fail reports the first permanent failure to Options.Fail.
func (p *Publisher) fail(err error) {
	p.opt.Log.Error("batch cannot be published", "err", err)
	p.mu.Lock()
	first := !p.failed
	p.failed = true
	p.mu.Unlock()
	if first && p.opt.Fail != nil {
		p.opt.Fail(err)
	}
}
