// Package shard routes messages to shards: it takes each message's key,
// hashes it with murmur3, and appends the record to that shard's pending
// batch, which it hands to the shard's writer when the batch is full or has
// waited long enough.
package shard

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shardlog/shardlog/writer"
)

// DefaultPageSize is the unit in which a Router holds memory for records.
// Small pages keep a quiet shard cheap when there are thousands of shards.
const DefaultPageSize = 8 << 10

// idleHandoffsPerSecond bounds the hand-offs FlushIdle makes per second,
// whatever the number of shards: each wakes a writer and costs a system
// call, about 20µs of CPU on a virtual machine.
const idleHandoffsPerSecond = 2000

// DefaultLinger returns the Linger for n shards: short enough that a
// record reaches an idle writer within a few milliseconds when shards are
// few, long enough that FlushIdle hands off no more than about 2000
// batches a second when they are many (from 200 shards on, with the
// default MaxDelay of 100ms, records wait for MaxDelay as without it).
func DefaultLinger(n int) time.Duration {
	return max(time.Millisecond, time.Duration(n)*time.Second/idleHandoffsPerSecond)
}

// Config says how a Router routes and batches.
type Config struct {
	// Shards is N: a message goes to shard murmur3(key, Seed) mod N.
	Shards int
	// Seed is the murmur3 seed.
	Seed uint32
	// Key says which part of a message is hashed.
	Key Key
	// MaxBatchBytes is the size at which a shard's batch is handed off.
	MaxBatchBytes int
	// MaxDelay is the longest a record waits in the router before its
	// batch is handed off.
	MaxDelay time.Duration
	// Linger is how long a record waits before its batch is handed to an
	// idle writer (see FlushIdle); zero means DefaultLinger, and Linger at
	// or above MaxDelay turns the early hand-off off.
	Linger time.Duration
	// BufferBytes bounds the memory of the router's pending and in-flight
	// batches, whatever the number of shards.
	BufferBytes int
	// MaxMessageBytes is the longest message the router must accept.
	MaxMessageBytes int
	// PageSize is the unit of memory; zero means DefaultPageSize.
	PageSize int
}

// Stats counts what a Router has done.
type Stats struct {
	// Records and Bytes count what was routed (Bytes includes the newlines).
	Records, Bytes int64
	// Batches counts the batches handed to writers.
	Batches int64
	// Written and Failed count the records writers reported back as
	// written, or as failed for good.
	Written, Failed int64
	// KeyFallbacks counts messages routed by the whole message because
	// the configured key was missing.
	KeyFallbacks int64
	// Acked counts acknowledgements sent for written records;
	// AckErrors those that could not be sent (the message will be
	// redelivered, and written again).
	Acked, AckErrors int64
}

// Router batches the records of one source for the writers of all shards.
// It belongs to a single goroutine: the source's loop, which calls Route
// (or RouteTo, or RouteLines for a block of lines) for each message,
// FlushIdle when Linger fires, FlushAll when Due fires, and Recycle for each
// batch that comes back on Back. No other goroutine may touch it, but Live.
//
// Memory is a fixed budget of pages. A page is pending (in a shard's batch),
// held (in a full batch that its writer's queue had no room for), in flight
// (sent to a writer), or free. When no page is free the router waits for
// writers to hand pages back, which is how a slow disk slows the source
// down.
//
// The router never waits for one writer while it has pages to spare: a
// batch that its writer's queue has no room for is held, in order, and
// offered again when a batch of its shard comes back, at FlushIdle and at
// FlushAll. A stuck shard (a full disk, a path that cannot be opened) thus
// does not stop the others until its records have taken the whole budget.
type Router struct {
	cfg      Config
	n        uint32
	outs     []chan<- *writer.Batch
	pending  []*writer.Batch // per shard; nil when the shard has nothing pending
	npending int
	flying   []int32         // per shard: batches handed to its writer and not yet back
	queue    []int32         // shards that had a batch pending at FlushIdle's last look, or since
	queued   []bool          // per shard: in queue
	free     [][]byte        // pages ready for reuse, each of length 0
	spare    []*writer.Batch // batch structs ready for reuse
	pages    int             // pages allocated so far
	slab     []byte          // memory pages are cut from; its length is what is cut
	maxPages int
	inFlight int // pages handed to writers and not yet back
	back     chan *writer.Batch
	timer    *time.Timer // MaxDelay after the oldest pending record, and every MaxDelay while batches are held
	linger   *time.Timer // every Linger while records are pending
	stats    Stats
	err      error

	// Batches sealed while their writer's queue was full (see handoff).
	held  [][]*writer.Batch // per shard: oldest first
	stuck []int32           // shards with batches held, each once
	// await's reflect.Select cases and the pages of each batch offered,
	// reused.
	cases     []reflect.SelectCase
	casePages []int

	// live is a copy of stats and the buffer bytes in use, published per
	// batch (never per message) for readers on other goroutines (metrics),
	// copied under a lock so that publishing allocates nothing (at
	// thousands of shards a value per batch was most of the garbage).
	liveMu sync.Mutex
	live   liveStats
}

// New returns a Router that sends shard k's batches on outs[k].
func New(cfg Config, outs []chan<- *writer.Batch) (*Router, error) {
	if cfg.Shards <= 0 || len(outs) != cfg.Shards {
		return nil, fmt.Errorf("router: %d shards but %d writers", cfg.Shards, len(outs))
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultLinger(cfg.Shards)
	}
	if cfg.MaxBatchBytes <= 0 || cfg.MaxDelay <= 0 {
		return nil, fmt.Errorf("router: batch size %d and delay %s must be positive", cfg.MaxBatchBytes, cfg.MaxDelay)
	}
	maxPages := cfg.BufferBytes / cfg.PageSize
	if need := 2 * pagesFor(cfg.MaxMessageBytes+1, cfg.PageSize); maxPages < need {
		return nil, fmt.Errorf("router: buffer of %d bytes cannot hold two messages of %d bytes", cfg.BufferBytes, cfg.MaxMessageBytes)
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	l := time.NewTimer(time.Hour)
	l.Stop()
	r := &Router{
		cfg:      cfg,
		n:        uint32(cfg.Shards),
		outs:     outs,
		pending:  make([]*writer.Batch, cfg.Shards),
		flying:   make([]int32, cfg.Shards),
		held:     make([][]*writer.Batch, cfg.Shards),
		queued:   make([]bool, cfg.Shards),
		maxPages: maxPages,
		// Every batch in flight holds at least one page, so writers
		// handing batches back never block.
		back:   make(chan *writer.Batch, maxPages),
		timer:  t,
		linger: l,
	}
	r.publish()
	return r, nil
}

// Hasher chooses a message's shard. It is the stateless part of a Router,
// so a source may run it on another goroutine, ahead of the router.
type Hasher struct {
	key  Key
	seed uint32
	n    uint32
}

// NewHasher returns the Hasher of a router routing by key with seed into
// n shards, for a program that chooses shards as shardlog does without
// routing (bench/floor). It panics unless n is at least 1 and fits a uint32.
func NewHasher(key Key, seed uint32, n int) Hasher {
	if n < 1 || uint64(n) > math.MaxUint32 {
		panic(fmt.Sprintf("shard.NewHasher: %d shards", n))
	}
	return Hasher{key: key, seed: seed, n: uint32(n)}
}

// Shard returns msg's shard, and false when its key was missing and the
// whole message was hashed instead.
func (h Hasher) Shard(msg []byte, meta *Meta) (int, bool) {
	key, ok := h.key.extract(msg, meta)
	return int(Sum32(key, h.seed) % h.n), ok
}

// ShardLines sets shards[i] to the shard of line i of data, as Shard
// would, or to -1-shard where the line's key was missing. Line i ends at
// ends[i] (its '\n', not part of it) and starts after the line before.
// When the key is the whole message it hashes eight lines at a time with
// AVX2 (see sum32x8) where the processor has it, else two (see Sum32x2):
// the hash is most of the work of reading standard input.
func (h Hasher) ShardLines(data []byte, ends, shards []int32) {
	h.shardLines(data, ends, shards, useAVX2)
}

// shardLines is ShardLines, with sum32x8 only if avx2 is set, so that tests
// compare the two ways on one processor.
func (h Hasher) shardLines(data []byte, ends, shards []int32, avx2 bool) {
	shards = shards[:len(ends)]
	i, start := 0, 0
	if h.key.kind == kindMessage {
		if avx2 {
			var starts, lens [8]int32
			var sums [8]uint32
			for ; i+8 <= len(ends); i += 8 {
				group := ends[i : i+8]
				for j, end := range group {
					starts[j], lens[j] = int32(start), end-int32(start)
					start = int(end) + 1
				}
				sum32x8(data, &starts, &lens, h.seed, &sums)
				out := shards[i : i+8]
				for j, sum := range sums {
					out[j] = int32(sum % h.n)
				}
			}
		}
		for ; i+2 <= len(ends); i += 2 {
			e0, e1 := int(ends[i]), int(ends[i+1])
			h0, h1 := Sum32x2(data[start:e0], data[e0+1:e1], h.seed)
			shards[i], shards[i+1] = int32(h0%h.n), int32(h1%h.n)
			start = e1 + 1
		}
	}
	for ; i < len(ends); i++ {
		k, ok := h.Shard(data[start:ends[i]], nil)
		if !ok {
			k = -1 - k
		}
		shards[i] = int32(k)
		start = int(ends[i]) + 1
	}
}

// Hasher returns the router's Hasher.
func (r *Router) Hasher() Hasher { return Hasher{key: r.cfg.Key, seed: r.cfg.Seed, n: r.n} }

// Route appends msg, as a record, to the pending batch of its shard.
// meta carries what a key other than the message may come from; it may be nil.
func (r *Router) Route(msg []byte, meta *Meta) {
	k, ok := r.Hasher().Shard(msg, meta)
	r.RouteTo(k, ok, msg, meta)
}

// RouteTo appends msg to shard k's pending batch, for a source that ran
// Hasher.Shard itself; keyFound is what Shard reported.
func (r *Router) RouteTo(k int, keyFound bool, msg []byte, meta *Meta) {
	if !keyFound {
		r.stats.KeyFallbacks++
	}
	r.add(k, msg, meta)
}

// RouteLines routes every line of data, as RouteTo would: line i ends at
// ends[i], on a '\n' that is part of data, starts after the line before,
// and goes to shard shards[i], or to shard -1-shards[i] when its key was
// missing (what Hasher.ShardLines gives). A source of newline-framed
// messages, such as standard input, routes whole blocks of lines this way:
// most lines fit the last page of their shard's batch and are copied there
// with their newline in one step.
func (r *Router) RouteLines(data []byte, ends, shards []int32) {
	shards = shards[:len(ends)]
	pending, maxBytes := r.pending, r.cfg.MaxBatchBytes
	// r.stats counts the first counted lines, which end before from: the
	// fast path counts nothing, the slow one brings r.stats up to date.
	counted, from, start := 0, 0, 0
	for i, end := range ends {
		e := int(end) + 1 // past the '\n'
		if k := int(shards[i]); uint(k) < uint(len(pending)) {
			if b := pending[k]; b != nil && len(b.Bufs) > 0 {
				last := &b.Bufs[len(b.Bufs)-1]
				p, n := *last, e-start
				if cap(p)-len(p) >= n && b.Bytes+n < maxBytes {
					*last = p[:len(p)+n]
					copy(p[len(p):len(p)+n], data[start:e])
					b.Records++
					b.Bytes += n
					start = e
					continue
				}
			}
		}
		// add may hand batches off and publish the counters: bring them
		// up to date first, so that Records never lags what is written.
		r.stats.Records += int64(i - counted)
		r.stats.Bytes += int64(start - from)
		k := int(shards[i])
		if k < 0 {
			k = -1 - k
			r.stats.KeyFallbacks++
		}
		r.add(k, data[start:e-1], nil)
		counted, from, start = i+1, e, e
	}
	r.stats.Records += int64(len(ends) - counted)
	r.stats.Bytes += int64(start - from)
}

// add appends msg and a newline to shard k's pending batch.
func (r *Router) add(k int, msg []byte, meta *Meta) {
	need := len(msg) + 1
	if b := r.pending[k]; b != nil && b.Bytes+need > r.cfg.MaxBatchBytes {
		r.handoff(k)
	}
	// Reserve the pages the record needs before touching the batch: getting
	// them may hand off every pending batch, this one included.
	for {
		short := need - r.room(r.pending[k])
		if short <= 0 || !r.reserve(pagesFor(short, r.cfg.PageSize)) {
			break
		}
	}
	b := r.pending[k]
	if b == nil {
		b = r.open(k)
	}
	r.copyIn(b, msg)
	if meta != nil && meta.Ack != nil {
		b.Acks = append(b.Acks, meta.Ack)
	}
	r.stats.Records++
	r.stats.Bytes += int64(need)
	if b.Bytes >= r.cfg.MaxBatchBytes {
		r.handoff(k)
	}
}

// room reports how many bytes b's last page can still take.
func (r *Router) room(b *writer.Batch) int {
	if b == nil || len(b.Bufs) == 0 {
		return 0
	}
	p := b.Bufs[len(b.Bufs)-1]
	return cap(p) - len(p)
}

// copyIn appends msg and '\n' to b, spilling into free pages as needed.
// The caller has reserved enough pages.
func (r *Router) copyIn(b *writer.Batch, msg []byte) {
	b.Records++
	b.Bytes += len(msg) + 1
	if last := len(b.Bufs) - 1; last >= 0 && cap(b.Bufs[last])-len(b.Bufs[last]) > len(msg) {
		b.Bufs[last] = append(append(b.Bufs[last], msg...), '\n')
		return
	}
	for len(msg) > 0 {
		p := r.tail(b)
		n := min(cap(p)-len(p), len(msg))
		b.Bufs[len(b.Bufs)-1] = append(p, msg[:n]...)
		msg = msg[n:]
	}
	p := r.tail(b)
	b.Bufs[len(b.Bufs)-1] = append(p, '\n')
}

// tail returns b's last page, first adding a free page if it is full.
func (r *Router) tail(b *writer.Batch) []byte {
	if last := len(b.Bufs) - 1; last >= 0 && len(b.Bufs[last]) < cap(b.Bufs[last]) {
		return b.Bufs[last]
	}
	p := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	b.Bufs = append(b.Bufs, p)
	return p
}

// open starts a pending batch for shard k.
func (r *Router) open(k int) *writer.Batch {
	var b *writer.Batch
	if n := len(r.spare); n > 0 {
		b, r.spare = r.spare[n-1], r.spare[:n-1]
	} else {
		b = writer.NewBatch(r.back)
	}
	b.Shard = k
	r.pending[k] = b
	if !r.queued[k] {
		r.queued[k] = true
		r.queue = append(r.queue, int32(k))
	}
	if r.npending++; r.npending == 1 {
		r.timer.Reset(r.cfg.MaxDelay)
		if r.cfg.Linger < r.cfg.MaxDelay {
			r.linger.Reset(r.cfg.Linger)
		}
	}
	return b
}

// reserve makes np pages free, allocating within the budget or waiting for
// writers to hand pages back. It reports whether it had to hand off every
// pending batch to get them (when the budget is spent on pending batches).
func (r *Router) reserve(np int) (flushed bool) {
	r.reclaim()
	for len(r.free) < np && r.pages < r.maxPages {
		r.free = append(r.free, r.newPage())
		r.pages++
	}
	if len(r.free) >= np {
		return false
	}
	for len(r.free) < np {
		// Pages in flight come back by themselves; pending and held
		// ones only once handed off. A shard's pending batch stays
		// behind its held ones, so FlushAll is tried again as they go.
		if len(r.free)+r.inFlight < np {
			r.FlushAll()
			flushed = true
		}
		r.await()
	}
	return flushed
}

// await waits until a writer hands a batch back, and recycles it, or, while
// batches are held, until a writer's queue takes the oldest held batch of
// its shard. Held pages come back only once they are sent, and all of the
// budget may be held with nothing in flight: waiting for returns alone
// could then wait for ever.
//
// One shard held, the common case (one stuck writer), takes a plain select;
// more take reflect.Select, whose cost grows with them: a slow path, for a
// router whose budget is spent.
func (r *Router) await() {
	r.publish() // the buffer is spent: show it while waiting; and see send
	switch len(r.stuck) {
	case 0:
		r.Recycle(<-r.back)
	case 1:
		k := int(r.stuck[0])
		b := r.held[k][0]
		np := len(b.Bufs) // b is the writer's once sent
		select {
		case back := <-r.back:
			r.Recycle(back)
		case r.outs[k] <- b:
			r.sentHeld(k, np)
		}
	default:
		cases := append(r.cases[:0], reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(r.back)})
		pages := r.casePages[:0]
		for _, k := range r.stuck {
			b := r.held[k][0]
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectSend, Chan: reflect.ValueOf(r.outs[k]), Send: reflect.ValueOf(b)})
			pages = append(pages, len(b.Bufs))
		}
		i, v, _ := reflect.Select(cases)
		if i == 0 {
			r.Recycle(v.Interface().(*writer.Batch))
		} else {
			r.sentHeld(int(r.stuck[i-1]), pages[i-1])
		}
		clear(cases)
		r.cases, r.casePages = cases[:0], pages[:0]
		r.retryHeld() // whatever else has room now, before waiting again
	}
}

// sentHeld counts the oldest of shard k's held batches, of np pages, as
// sent, and offers its writer the next ones.
func (r *Router) sentHeld(k, np int) {
	r.inFlight += np
	r.flying[k]++
	r.stats.Batches++
	r.publish()
	r.unhold(k, 1)
	r.retry(k)
}

// slabBytes is how much memory the router takes from the runtime at a
// time, to cut into pages.
const slabBytes = 4 << 20

// newPage returns a new empty page, cut from the current slab or from a
// new one. Slabs are asked to be backed by transparent huge pages where
// the system allows it: with thousands of shards the router writes all
// over its buffer, and 2 MiB pages spare it a page fault per 4 KiB on
// first touch and most of the TLB misses after (at N=1024 the faults
// alone cost about a tenth of the run).
func (r *Router) newPage() []byte {
	ps := r.cfg.PageSize
	if len(r.slab)+ps > cap(r.slab) {
		n := max(1, min(slabBytes/ps, r.maxPages-r.pages)) * ps
		r.slab = make([]byte, 0, n)
		if n >= 2<<20 {
			_ = unix.Madvise(r.slab[:n], unix.MADV_HUGEPAGE) // advice only
		}
	}
	off := len(r.slab)
	r.slab = r.slab[:off+ps]
	return r.slab[off : off : off+ps] // capped: appends never reach the next page
}

// handoff seals shard k's pending batch and offers it to its writer. It
// never waits: a batch that the writer's queue has no room for, or that
// would overtake a batch held before it, is held (see retry).
func (r *Router) handoff(k int) {
	b := r.pending[k]
	r.pending[k] = nil
	r.npending--
	if len(r.held[k]) > 0 || !r.send(k, b) {
		r.hold(k, b)
	}
	if r.npending == 0 {
		r.linger.Stop()
		if len(r.stuck) == 0 {
			r.timer.Stop()
		}
	}
}

// send offers b to shard k's writer without waiting, and reports whether
// the writer's queue took it. The counters are published before the send,
// so that what Live reports as routed covers every batch a writer has.
func (r *Router) send(k int, b *writer.Batch) bool {
	if c := cap(r.outs[k]); c > 0 && len(r.outs[k]) == c {
		return false // full: spare the publishing (a writer that takes one now is tried again later)
	}
	np := len(b.Bufs) // b is the writer's once sent
	r.inFlight += np
	r.flying[k]++
	r.stats.Batches++
	r.publish()
	select {
	case r.outs[k] <- b:
		return true
	default:
		r.inFlight -= np
		r.flying[k]--
		r.stats.Batches--
		return false
	}
}

// hold keeps b, a sealed batch of shard k, to offer it to its writer later.
func (r *Router) hold(k int, b *writer.Batch) {
	if len(r.held[k]) == 0 {
		r.stuck = append(r.stuck, int32(k))
	}
	r.held[k] = append(r.held[k], b)
}

// retry offers shard k's held batches to its writer, oldest first, as many
// as its queue takes.
func (r *Router) retry(k int) {
	n := 0
	for n < len(r.held[k]) && r.send(k, r.held[k][n]) {
		n++
	}
	r.unhold(k, n)
}

// unhold drops the n oldest of shard k's held batches, which were sent.
func (r *Router) unhold(k, n int) {
	if n == 0 {
		return
	}
	h := r.held[k]
	left := copy(h, h[n:])
	clear(h[left:])
	r.held[k] = h[:left]
	if left == 0 {
		i := slices.Index(r.stuck, int32(k))
		r.stuck = slices.Delete(r.stuck, i, i+1)
	}
}

// retryHeld offers every held batch to its writer, as retry does.
func (r *Router) retryHeld() {
	for i := 0; i < len(r.stuck); {
		k := int(r.stuck[i])
		if r.retry(k); len(r.held[k]) > 0 {
			i++ // else unhold took it out of stuck, and the next is at i
		}
	}
}

// liveStats is what Live returns.
type liveStats struct {
	Stats
	bufferBytes int64
}

// publish copies the router's counters to live.
func (r *Router) publish() {
	r.liveMu.Lock()
	r.live = liveStats{Stats: r.stats, bufferBytes: int64((r.pages - len(r.free)) * r.cfg.PageSize)}
	r.liveMu.Unlock()
}

// Live returns the router's counters as of its last batch handed off or
// back, and the bytes of its buffer in use (records pending or being
// written); safe to call from any goroutine.
func (r *Router) Live() (Stats, int64) {
	r.liveMu.Lock()
	defer r.liveMu.Unlock()
	return r.live.Stats, r.live.bufferBytes
}

// BufferCapacity returns the bytes of the router's whole buffer.
func (r *Router) BufferCapacity() int64 { return int64(r.maxPages * r.cfg.PageSize) }

// FlushAll offers held batches to their writers again and hands off every
// pending batch, but for shards with batches held: theirs keeps growing
// until it is full (sealing it now would spend a page on a few records,
// every MaxDelay, for as long as the writer is stuck). While anything is
// pending or held, Due fires again after MaxDelay.
func (r *Router) FlushAll() {
	r.retryHeld()
	for k := 0; r.npending > 0 && k < len(r.pending); k++ {
		if r.pending[k] != nil && len(r.held[k]) == 0 {
			r.handoff(k)
		}
	}
	if r.npending > 0 || len(r.stuck) > 0 {
		r.timer.Reset(r.cfg.MaxDelay)
	}
}

// FlushIdle hands off the pending batch of every shard whose writer has
// nothing in flight from this router. The owner calls it when Linger
// fires: a record then reaches an idle writer within about Linger, while
// the batch of a busy writer keeps growing until the writer is free again
// or MaxDelay has passed (group commit: batches are large exactly when
// writes are slow, and a trickle is written at once).
func (r *Router) FlushIdle() {
	r.reclaim() // writers that are done are idle
	r.retryHeld()
	keep := r.queue[:0]
	for _, k := range r.queue {
		switch {
		case r.pending[k] == nil:
			r.queued[k] = false
		case r.flying[k] == 0 && len(r.held[k]) == 0:
			r.handoff(int(k))
			r.queued[k] = false
		default:
			keep = append(keep, k)
		}
	}
	r.queue = keep
	if r.npending > 0 {
		r.linger.Reset(r.cfg.Linger)
	}
}

// Linger fires every Linger while records are pending; the owner then
// calls FlushIdle.
func (r *Router) Linger() <-chan time.Time { return r.linger.C }

// Due fires when the oldest pending record has waited MaxDelay, and every
// MaxDelay while batches are held; the owner then calls FlushAll.
func (r *Router) Due() <-chan time.Time { return r.timer.C }

// Back delivers batches that writers have finished with; the owner passes
// each to Recycle.
func (r *Router) Back() <-chan *writer.Batch { return r.back }

// Recycle takes back a batch a writer has finished with: it acknowledges
// what the batch carried if it was written, counts the outcome, and
// reuses the memory. Records of a failed batch are not acknowledged, so a
// redelivering source sends them again.
func (r *Router) Recycle(b *writer.Batch) {
	if b.Err != nil {
		r.stats.Failed += int64(b.Records)
		if r.err == nil {
			r.err = b.Err
		}
	} else {
		r.stats.Written += int64(b.Records)
		for _, a := range b.Acks {
			if err := a.Ack(); err != nil {
				r.stats.AckErrors++
			} else {
				r.stats.Acked++
			}
		}
	}
	r.inFlight -= len(b.Bufs)
	k := b.Shard
	r.flying[k]--
	for _, p := range b.Bufs {
		r.free = append(r.free, p[:0])
	}
	b.Reset()
	r.spare = append(r.spare, b)
	r.publish()
	if len(r.held[k]) > 0 {
		r.retry(k) // its writer took a batch from its queue: there may be room
	}
}

// reclaim recycles every batch already handed back.
func (r *Router) reclaim() {
	for {
		select {
		case b := <-r.back:
			r.Recycle(b)
		default:
			return
		}
	}
}

// Err returns the first write failure a writer reported back, if any.
func (r *Router) Err() error { return r.err }

// Stats returns the router's counters.
func (r *Router) Stats() Stats { return r.stats }

// Close hands off every pending and held batch, waiting for room in
// writers' queues as needed, and waits until writers have handed all of
// them back. It returns the first write failure, if any.
func (r *Router) Close() error {
	r.FlushAll()
	for k, b := range r.pending {
		if b != nil {
			r.handoff(k) // held, behind its shard's held batches
		}
	}
	for len(r.stuck) > 0 {
		r.await()
	}
	for r.inFlight > 0 {
		r.Recycle(<-r.back)
	}
	r.timer.Stop()
	r.linger.Stop()
	return r.err
}

// pagesFor is how many pages of size ps hold n bytes.
func pagesFor(n, ps int) int { return (n + ps - 1) / ps }
