package shard

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shardlog/shardlog/internal/murmur3ref"
	"github.com/shardlog/shardlog/writer"
)

// sink stands in for the writers: it collects, per shard, the bytes of the
// batches it receives and hands each batch back, as a writer does.
type sink struct {
	outs  []chan<- *writer.Batch
	mu    sync.Mutex
	files [][]byte
	sizes []int // size of every batch received
	wg    sync.WaitGroup
	chans []chan *writer.Batch
}

func newSink(n, queue int) *sink {
	s := &sink{files: make([][]byte, n)}
	for k := range n {
		ch := make(chan *writer.Batch, queue)
		s.chans = append(s.chans, ch)
		s.outs = append(s.outs, ch)
		s.wg.Go(func() {
			for b := range ch {
				s.mu.Lock()
				for _, p := range b.Bufs {
					s.files[k] = append(s.files[k], p...)
				}
				s.sizes = append(s.sizes, b.Bytes)
				s.mu.Unlock()
				b.Done(nil)
			}
		})
	}
	return s
}

func (s *sink) close() {
	for _, ch := range s.chans {
		close(ch)
	}
	s.wg.Wait()
}

func testConfig(n int) Config {
	return Config{Shards: n, MaxBatchBytes: 64 << 10, MaxDelay: time.Hour, BufferBytes: 1 << 20, MaxMessageBytes: 4 << 10}
}

func TestRouteMatchesHash(t *testing.T) {
	cases := []struct {
		name string
		cfg  func(*Config)
	}{
		{"defaults", func(*Config) {}},
		{"seed", func(c *Config) { c.Seed = 0x9747B28C }},
		{"tiny pages", func(c *Config) { c.PageSize = 16; c.BufferBytes = 64 << 10 }},
		{"tiny batches", func(c *Config) { c.MaxBatchBytes = 100 }},
		{"tight budget", func(c *Config) { c.BufferBytes = 3 * DefaultPageSize }},
		// No message has the field: each is routed by the whole message.
		{"missing key", func(c *Config) { c.Key = Key{kind: kindJSON, name: "user"} }},
	}
	msgs := [][]byte{{}, []byte("a"), []byte("b\r"), []byte("\x00\xff\xfe"), bytes.Repeat([]byte("x"), 4<<10)}
	for i := range 3000 {
		msgs = append(msgs, fmt.Appendf(nil, "2026-11-24T00:00:00Z INFO api req=%d", i))
	}
	// The same messages as one block of lines, for RouteLines.
	var block []byte
	var ends []int32
	for _, m := range msgs {
		block = append(block, m...)
		ends = append(ends, int32(len(block)))
		block = append(block, '\n')
	}
	for _, tc := range cases {
		for _, lines := range []bool{false, true} {
			name := tc.name + "/Route"
			if lines {
				name = tc.name + "/RouteLines"
			}
			t.Run(name, func(t *testing.T) {
				cfg := testConfig(7)
				tc.cfg(&cfg)
				s := newSink(cfg.Shards, 4)
				r, err := New(cfg, s.outs)
				if err != nil {
					t.Fatal(err)
				}
				want := make([][]byte, cfg.Shards)
				for _, m := range msgs {
					if !lines {
						r.Route(m, nil)
					}
					k := murmur3ref.Sum32(m, cfg.Seed) % uint32(cfg.Shards)
					want[k] = append(append(want[k], m...), '\n')
					if r.pages > r.maxPages {
						t.Fatalf("router holds %d pages, budget %d", r.pages, r.maxPages)
					}
				}
				if lines {
					shards := make([]int32, len(ends))
					r.Hasher().ShardLines(block, ends, shards)
					r.RouteLines(block, ends, shards)
					if r.pages > r.maxPages {
						t.Fatalf("router holds %d pages, budget %d", r.pages, r.maxPages)
					}
				}
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				s.close()
				for k := range want {
					if !bytes.Equal(s.files[k], want[k]) {
						t.Errorf("shard %d: got %d bytes, want %d", k, len(s.files[k]), len(want[k]))
					}
				}
				st := r.Stats()
				if st.Records != int64(len(msgs)) || st.Written != st.Records || st.Failed != 0 {
					t.Errorf("stats %+v, want %d records all written", st, len(msgs))
				}
				var routed int64
				for _, w := range want {
					routed += int64(len(w))
				}
				if st.Bytes != routed {
					t.Errorf("stats count %d bytes routed, want %d", st.Bytes, routed)
				}
				if want := map[bool]int64{false: 0, true: int64(len(msgs))}[cfg.Key.kind == kindJSON]; st.KeyFallbacks != want {
					t.Errorf("%d key fallbacks, want %d", st.KeyFallbacks, want)
				}
				for _, n := range s.sizes {
					if n > cfg.MaxBatchBytes && n > cfg.MaxMessageBytes+1 {
						t.Errorf("batch of %d bytes exceeds max %d", n, cfg.MaxBatchBytes)
					}
				}
			})
		}
	}
}

func TestMemoryBoundedAtManyShards(t *testing.T) {
	cfg := testConfig(4096)
	cfg.BufferBytes = 4 << 20
	s := newSink(cfg.Shards, 64)
	r, err := New(cfg, s.outs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200_000 {
		r.Route(fmt.Appendf(nil, "message number %d with some padding to look like a log line", i), nil)
	}
	if r.pages > r.maxPages || r.maxPages != cfg.BufferBytes/DefaultPageSize {
		t.Errorf("allocated %d pages, budget %d", r.pages, cfg.BufferBytes/DefaultPageSize)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	s.close()
	if st := r.Stats(); st.Written != 200_000 {
		t.Errorf("written %d, want 200000", st.Written)
	}
}

func TestDueFlushesAfterMaxDelay(t *testing.T) {
	cfg := testConfig(4)
	cfg.MaxDelay = 10 * time.Millisecond
	out := make(chan *writer.Batch, 4)
	outs := []chan<- *writer.Batch{out, out, out, out}
	r, err := New(cfg, outs)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Due():
		t.Fatal("Due fired with nothing pending")
	case <-time.After(3 * cfg.MaxDelay):
	}
	start := time.Now()
	r.Route([]byte("one"), nil)
	r.Route([]byte("two"), nil)
	<-r.Due()
	if waited := time.Since(start); waited < cfg.MaxDelay {
		t.Errorf("Due fired after %s, before max delay %s", waited, cfg.MaxDelay)
	}
	r.FlushAll()
	var got []string
	for len(out) > 0 {
		b := <-out
		for _, p := range b.Bufs {
			got = append(got, string(p))
		}
		b.Done(nil)
	}
	if len(got) == 0 || len(got) > 2 {
		t.Fatalf("flushed %q, want the two records", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Written != 2 {
		t.Errorf("written %d, want 2", st.Written)
	}
}

func TestWriteFailureIsReported(t *testing.T) {
	cfg := testConfig(1)
	out := make(chan *writer.Batch, 1)
	r, err := New(cfg, []chan<- *writer.Batch{out})
	if err != nil {
		t.Fatal(err)
	}
	r.Route([]byte("lost"), nil)
	r.FlushAll()
	fail := fmt.Errorf("disk on fire")
	(<-out).Done(fail)
	if err := r.Close(); err != fail {
		t.Errorf("Close = %v, want %v", err, fail)
	}
	if st := r.Stats(); st.Failed != 1 || st.Written != 0 {
		t.Errorf("stats %+v, want 1 failed", st)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  func(*Config)
	}{
		{"budget below two messages", func(c *Config) { c.BufferBytes = c.MaxMessageBytes }},
		{"zero delay", func(c *Config) { c.MaxDelay = 0 }},
		{"zero batch", func(c *Config) { c.MaxBatchBytes = 0 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(2)
			tc.cfg(&cfg)
			if _, err := New(cfg, make([]chan<- *writer.Batch, 2)); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

// TestFlushIdle: Linger fires while records are pending, and FlushIdle
// hands the pending batch to an idle writer but lets a busy writer's batch
// grow until its batch in flight is back.
func TestFlushIdle(t *testing.T) {
	cfg := testConfig(2)
	cfg.Linger = 5 * time.Millisecond
	out0, out1 := make(chan *writer.Batch, 4), make(chan *writer.Batch, 4)
	r, err := New(cfg, []chan<- *writer.Batch{out0, out1})
	if err != nil {
		t.Fatal(err)
	}
	// Two messages, one for each shard.
	var msgs [2][]byte
	for i := 0; msgs[0] == nil || msgs[1] == nil; i++ {
		m := fmt.Appendf(nil, "message %d", i)
		if k, _ := r.Hasher().Shard(m, nil); msgs[k] == nil {
			msgs[k] = m
		}
	}
	select {
	case <-r.Linger():
		t.Fatal("Linger fired with nothing pending")
	case <-time.After(3 * cfg.Linger):
	}
	r.Route(msgs[0], nil)
	<-r.Linger()
	r.FlushIdle()
	busy := <-out0 // shard 0's writer now holds a batch
	if got := string(busy.Bufs[0]); got != string(msgs[0])+"\n" {
		t.Fatalf("flushed %q", got)
	}
	r.Route(msgs[0], nil)
	r.Route(msgs[1], nil)
	<-r.Linger()
	r.FlushIdle()
	if len(out0) != 0 {
		t.Error("FlushIdle handed a batch to a busy writer")
	}
	select {
	case b := <-out1:
		b.Done(nil)
	case <-time.After(10 * time.Second):
		t.Fatal("FlushIdle did not hand shard 1's batch to its idle writer")
	}
	busy.Done(nil)
	r.Recycle(<-r.Back()) // shard 1's batch
	r.Recycle(<-r.Back()) // shard 0's: its writer is idle again
	<-r.Linger()
	r.FlushIdle()
	select {
	case b := <-out0:
		b.Done(nil)
	case <-time.After(10 * time.Second):
		t.Fatal("FlushIdle did not hand shard 0's batch over once its writer was idle")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Written != 3 || st.Batches != 3 {
		t.Errorf("stats %+v, want 3 records written in 3 batches", st)
	}
}

// TestRouteLinesCountsBeforeHandoff: what Live reports as routed always
// covers what was handed to writers, also when RouteLines hands batches
// off (and waits for pages) in the middle of a block.
func TestRouteLinesCountsBeforeHandoff(t *testing.T) {
	cfg := Config{Shards: 1, MaxBatchBytes: 16, PageSize: 16, BufferBytes: 32, MaxMessageBytes: 8, MaxDelay: time.Hour}
	ch := make(chan *writer.Batch, 4)
	r, err := New(cfg, []chan<- *writer.Batch{ch})
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range ch {
			if st, _ := r.Live(); st.Records < st.Written+int64(b.Records) {
				bad = append(bad, fmt.Sprintf("routed %d, written %d, this batch %d", st.Records, st.Written, b.Records))
			}
			b.Done(nil)
		}
	}()
	block := bytes.Repeat([]byte("a\n"), 40)
	var ends []int32
	for i := 1; i < len(block); i += 2 {
		ends = append(ends, int32(i))
	}
	r.RouteLines(block, ends, make([]int32, len(ends)))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	close(ch)
	<-done
	if len(bad) > 0 {
		t.Errorf("Live lagged the hand-offs: %v", bad)
	}
	if st := r.Stats(); st.Records != 40 || st.Written != 40 {
		t.Errorf("stats %+v, want 40 routed and written", st)
	}
}

// TestPagesLargerThanASlab: a page size above the slab size still works
// (each slab then holds one page).
func TestPagesLargerThanASlab(t *testing.T) {
	cfg := Config{Shards: 2, MaxBatchBytes: 16 << 20, PageSize: 8 << 20, BufferBytes: 64 << 20, MaxMessageBytes: 1 << 20, MaxDelay: time.Hour}
	s := newSink(cfg.Shards, 4)
	r, err := New(cfg, s.outs)
	if err != nil {
		t.Fatal(err)
	}
	r.Route([]byte("x"), nil)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	s.close()
	if st := r.Stats(); st.Written != 1 {
		t.Errorf("written %d, want 1", st.Written)
	}
}

// TestStuckShardDoesNotStopOthers: with shard 2's writer (or shard 2's and
// 3's) taking nothing, its queue full (of this router's batches or of
// another's), the other shards get every record while the budget lasts;
// input waits only once the stuck shards' records hold the whole budget,
// and goes on when their writers read again, every record then delivered
// once, in order.
func TestStuckShardDoesNotStopOthers(t *testing.T) {
	cases := []struct {
		name    string
		stuck   []int
		foreign bool // another router's batches fill the stuck queues: nothing of this router is in flight there
		lines   bool // route with RouteLines rather than Route
	}{
		{"own batches fill the queue/Route", []int{2}, false, false},
		{"own batches fill the queue/RouteLines", []int{2}, false, true},
		{"another router's batches fill the queue/Route", []int{2}, true, false},
		{"another router's batches fill the queue/RouteLines", []int{2}, true, true},
		{"two shards stuck/own batches", []int{2, 3}, false, false},
		{"two shards stuck/another router's batches", []int{2, 3}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Shards: 4, MaxBatchBytes: 2 << 10, PageSize: 1 << 10, BufferBytes: 64 << 10,
				MaxMessageBytes: 100, MaxDelay: 5 * time.Millisecond, Linger: time.Millisecond}
			gate := make(chan struct{})
			gates := map[int]chan struct{}{}
			for _, k := range tc.stuck {
				gates[k] = gate
			}
			s := newGatedSink(cfg.Shards, 2, gates)
			if tc.foreign {
				other := make(chan *writer.Batch, 2*len(tc.stuck))
				for _, k := range tc.stuck {
					for range cap(s.chans[k]) {
						b := writer.NewBatch(other)
						b.Shard = -1 // not this router's: the sink skips it
						s.chans[k] <- b
					}
				}
			}
			r, err := New(cfg, s.outs)
			if err != nil {
				t.Fatal(err)
			}
			o := own(r)
			want := make([][]byte, cfg.Shards)
			var msgsTo [4][][]byte // messages by shard
			for i := 0; slices.ContainsFunc(msgsTo[:], func(m [][]byte) bool { return len(m) < 4000 }); i++ {
				m := fmt.Appendf(nil, "record %06d of the stuck-shard test", i)
				k := murmur3ref.Sum32(m, 0) % 4
				msgsTo[k] = append(msgsTo[k], m)
			}
			// Phase 1: 2000 records, a quarter of them (about 20 KiB) for
			// each shard, well within the budget of 64 KiB.
			var first [][]byte
			for i := range 500 {
				for k := range 4 {
					m := msgsTo[k][i]
					first = append(first, m)
					want[k] = append(append(want[k], m...), '\n')
				}
			}
			waitClosed(t, o.do(func(r *Router) { routeAll(r, first, tc.lines) }),
				"routing 2000 records with a shard stuck and the budget not spent")
			for k := range 4 {
				if slices.Contains(tc.stuck, k) {
					continue
				}
				waitUntil(t, fmt.Sprintf("shard %d's records while %v are stuck", k, tc.stuck), func() bool {
					return bytes.Equal(s.file(k), want[k])
				})
			}
			waitUntil(t, "the other shards' batches back", func() bool {
				st, _ := r.Live()
				return st.Written == int64(500*(4-len(tc.stuck)))
			})
			// Phase 2: the stuck shards alone, more than the budget holds:
			// input waits once their records hold the whole budget.
			var rest [][]byte
			for i := 500; i < 4000; i++ {
				for _, k := range tc.stuck {
					m := msgsTo[k][i]
					rest = append(rest, m)
					want[k] = append(append(want[k], m...), '\n')
				}
			}
			done := o.do(func(r *Router) { routeAll(r, rest, tc.lines) })
			var routed int64
			waitUntil(t, "the budget to be spent", func() bool {
				st, used := r.Live()
				routed = st.Records
				return used == r.BufferCapacity()
			})
			held := 0 // bytes of the stuck shards' records in the router or their queues
			for _, k := range tc.stuck {
				for _, m := range msgsTo[k][:500] {
					held += len(m) + 1
				}
			}
			for _, m := range rest[:routed-2000] {
				held += len(m) + 1
			}
			if slack := 4 * cfg.PageSize; held < cfg.BufferBytes-slack {
				t.Errorf("input waited with %d bytes of the stuck shards routed; want the budget, %d", held, cfg.BufferBytes)
			}
			select {
			case <-done:
				t.Fatal("routed more than the budget holds while shards were stuck")
			default:
			}
			for _, k := range tc.stuck {
				if got := s.file(k); len(got) != 0 {
					t.Fatalf("stuck shard %d wrote %d bytes", k, len(got))
				}
			}
			close(gate)
			waitClosed(t, done, "routing to go on once the stuck writers read")
			var cerr error
			waitClosed(t, o.do(func(r *Router) { cerr = r.Close() }), "Close")
			o.stop()
			if cerr != nil {
				t.Fatal(cerr)
			}
			s.close()
			for k := range want {
				if got := s.file(k); !bytes.Equal(got, want[k]) {
					t.Errorf("shard %d: got %d bytes, want %d; first difference at byte %d", k, len(got), len(want[k]), firstDiff(got, want[k]))
				}
			}
			for _, n := range s.sizes {
				if n > cfg.MaxBatchBytes {
					t.Errorf("batch of %d bytes exceeds max %d", n, cfg.MaxBatchBytes)
				}
			}
			if st := r.Stats(); st.Written != st.Records || st.Records != int64(2000+len(rest)) {
				t.Errorf("stats %+v, want %d records, all written", st, 2000+len(rest))
			}
		})
	}
}

// TestStuckShardFreedWithPagesPending: a shard whose writer was stuck has
// a held batch and a pending batch holding most of the budget, nothing in
// flight, when a record needs more pages than sending the held batch
// gives back: once its writer reads again, the router must hand off the
// pending batch too, rather than wait for pages that nothing will return.
func TestStuckShardFreedWithPagesPending(t *testing.T) {
	const stuck = 2
	cfg := Config{Shards: 4, MaxBatchBytes: 64 << 10, PageSize: 1 << 10, BufferBytes: 8 << 10,
		MaxMessageBytes: 3000, MaxDelay: time.Hour, Linger: time.Hour}
	gate := make(chan struct{})
	s := newGatedSink(cfg.Shards, 1, map[int]chan struct{}{stuck: gate})
	foreign := writer.NewBatch(make(chan *writer.Batch, 1))
	foreign.Shard = -1 // another router's batch fills shard 2's queue
	s.chans[stuck] <- foreign
	r, err := New(cfg, s.outs)
	if err != nil {
		t.Fatal(err)
	}
	// Messages for shard 2 of about 1000 bytes, and one of 2900.
	var msgs [][]byte
	for i := 0; len(msgs) < 9; i++ {
		n := 1000
		if len(msgs) == 8 {
			n = 2900
		}
		m := fmt.Appendf(nil, "%06d %s", i, bytes.Repeat([]byte("x"), n))
		if k, _ := r.Hasher().Shard(m, nil); k == stuck {
			msgs = append(msgs, m)
		}
	}
	var want []byte
	route := func(m []byte) {
		r.Route(m, nil)
		want = append(append(want, m...), '\n')
	}
	route(msgs[0])
	r.FlushAll() // shard 2's queue is full: its batch is held
	for _, m := range msgs[1:7] {
		route(m) // pending, behind the held batch: 7 of the 8 pages in use, nothing in flight
	}
	done := make(chan struct{})
	go func() { // the router's goroutine from here to done
		defer close(done)
		route(msgs[8]) // needs 3 pages: waits for shard 2's writer
	}()
	// Waiting, its budget spent (7 pages in use, 1 free), the held batch
	// offered in vain: only now may shard 2's writer read.
	waitUntil(t, "the router to wait", func() bool {
		_, used := r.Live()
		return used == 7*int64(cfg.PageSize)
	})
	close(gate)
	waitClosed(t, done, "routing once shard 2's writer reads again")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	s.close()
	if got := s.file(stuck); !bytes.Equal(got, want) {
		t.Errorf("shard 2: got %d bytes, want %d; first difference at byte %d", len(got), len(want), firstDiff(got, want))
	}
}

// TestStuckShardsRandomized routes random messages through random small
// budgets, page and batch sizes, with random shards' writers taking
// nothing (their queues full of this router's batches or of another's)
// until the router has either routed everything or spent its budget: it
// must then go on, and deliver every record once, in order, whatever the
// sizes.
func TestStuckShardsRandomized(t *testing.T) {
	for seed := range uint64(60) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 16))
			n := 2 + rnd.IntN(6)
			ps := 16 << rnd.IntN(7) // 16 B to 1 KiB
			maxMsg := 1 + rnd.IntN(4*ps)
			cfg := Config{Shards: n, PageSize: ps, MaxMessageBytes: maxMsg,
				BufferBytes:   (2*pagesFor(maxMsg+1, ps) + rnd.IntN(64)) * ps,
				MaxBatchBytes: 1 + rnd.IntN(8*ps), MaxDelay: time.Duration(1+rnd.IntN(5)) * time.Millisecond,
				Linger: time.Duration(1+rnd.IntN(5)) * time.Millisecond}
			gate := make(chan struct{})
			gates := map[int]chan struct{}{}
			for k := range n {
				if rnd.IntN(3) == 0 {
					gates[k] = gate
				}
			}
			s := newGatedSink(n, 1+rnd.IntN(4), gates)
			foreign := make(chan *writer.Batch, 4*n)
			for k := range gates {
				for range rnd.IntN(cap(s.chans[k]) + 1) {
					b := writer.NewBatch(foreign)
					b.Shard = -1
					s.chans[k] <- b
				}
			}
			r, err := New(cfg, s.outs)
			if err != nil {
				t.Fatal(err)
			}
			want := make([][]byte, n)
			msgs := make([][]byte, 500+rnd.IntN(2000))
			for i := range msgs {
				m := fmt.Appendf(nil, "%d:", i)
				m = append(m, bytes.Repeat([]byte{'a' + byte(i%26)}, rnd.IntN(maxMsg+1))...)
				msgs[i] = m[:min(len(m), maxMsg)]
				k := murmur3ref.Sum32(msgs[i], 0) % uint32(n)
				want[k] = append(append(want[k], msgs[i]...), '\n')
			}
			o := own(r)
			done := o.do(func(r *Router) { routeAll(r, msgs, rnd.IntN(2) == 0) })
			waitUntil(t, "routing done or the budget spent", func() bool {
				select {
				case <-done:
					return true
				default:
					// Waiting for pages: fewer free than a record needs.
					_, used := r.Live()
					return used > r.BufferCapacity()-int64(pagesFor(maxMsg+1, ps)*ps)
				}
			})
			close(gate)
			waitClosed(t, done, fmt.Sprintf("routing once the stuck writers read (config %+v, %d stuck)", cfg, len(gates)))
			var cerr error
			waitClosed(t, o.do(func(r *Router) { cerr = r.Close() }), "Close")
			o.stop()
			if cerr != nil {
				t.Fatal(cerr)
			}
			s.close()
			for k := range want {
				if got := s.file(k); !bytes.Equal(got, want[k]) {
					t.Errorf("shard %d: got %d bytes, want %d; first difference at byte %d", k, len(got), len(want[k]), firstDiff(got, want[k]))
				}
			}
			if st := r.Stats(); st.Written != int64(len(msgs)) || st.Records != int64(len(msgs)) {
				t.Errorf("stats %+v, want %d records, all written", st, len(msgs))
			}
		})
	}
}

// TestDueFiresWhileHeld: a batch whose writer's queue is full is held,
// and Due keeps firing while it is, so that the owner's FlushAll offers
// it again even when nothing else happens (no new record, no batch of its
// shard coming back).
func TestDueFiresWhileHeld(t *testing.T) {
	cfg := testConfig(1)
	cfg.MaxDelay, cfg.Linger = 10*time.Millisecond, time.Hour
	out := make(chan *writer.Batch, 1)
	out <- writer.NewBatch(make(chan *writer.Batch, 1)) // another router's: the queue is full
	r, err := New(cfg, []chan<- *writer.Batch{out})
	if err != nil {
		t.Fatal(err)
	}
	r.Route([]byte("held"), nil)
	<-r.Due()
	r.FlushAll()
	if len(r.held[0]) != 1 {
		t.Fatalf("%d batches held, want 1", len(r.held[0]))
	}
	for range 2 {
		select {
		case <-r.Due():
			r.FlushAll()
		case <-time.After(10 * time.Second):
			t.Fatal("Due did not fire again while a batch was held")
		}
	}
	(<-out).Done(nil) // the writer takes the other router's batch
	select {
	case <-r.Due():
		r.FlushAll()
	case <-time.After(10 * time.Second):
		t.Fatal("Due did not fire again while a batch was held")
	}
	select {
	case b := <-out:
		if got := string(b.Bufs[0]); got != "held\n" {
			t.Fatalf("handed off %q", got)
		}
		b.Done(nil)
	default:
		t.Fatal("FlushAll did not offer the held batch again")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Written != 1 {
		t.Errorf("written %d, want 1", st.Written)
	}
}

// owner runs a router's loop as a source does (FlushIdle on Linger,
// FlushAll on Due, Recycle on Back), and between events runs the work it
// is given on the router: it is the router's one goroutine.
type owner struct {
	r       *Router
	work    chan func()
	stopped chan struct{}
}

// own starts r's owner.
func own(r *Router) *owner {
	o := &owner{r: r, work: make(chan func()), stopped: make(chan struct{})}
	go func() {
		defer close(o.stopped)
		for {
			select {
			case f, ok := <-o.work:
				if !ok {
					return
				}
				f()
			case <-r.Linger():
				r.FlushIdle()
			case <-r.Due():
				r.FlushAll()
			case b := <-r.Back():
				r.Recycle(b)
			}
		}
	}()
	return o
}

// do has the owner run f on the router, and returns a channel closed once
// f has returned.
func (o *owner) do(f func(*Router)) <-chan struct{} {
	done := make(chan struct{})
	o.work <- func() { defer close(done); f(o.r) }
	return done
}

// stop stops the owner and waits for it.
func (o *owner) stop() {
	close(o.work)
	<-o.stopped
}

// newGatedSink is newSink whose shards in gates take nothing until their
// gate is closed. It skips batches whose Shard is -1 (another router's).
func newGatedSink(n, queue int, gates map[int]chan struct{}) *sink {
	s := &sink{files: make([][]byte, n)}
	for k := range n {
		ch := make(chan *writer.Batch, queue)
		s.chans = append(s.chans, ch)
		s.outs = append(s.outs, ch)
		s.wg.Go(func() {
			if gate := gates[k]; gate != nil {
				<-gate
			}
			for b := range ch {
				if b.Shard >= 0 {
					s.mu.Lock()
					for _, p := range b.Bufs {
						s.files[k] = append(s.files[k], p...)
					}
					s.sizes = append(s.sizes, b.Bytes)
					s.mu.Unlock()
				}
				b.Done(nil)
			}
		})
	}
	return s
}

// file returns a copy of what shard k's writer has received so far.
func (s *sink) file(k int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.files[k])
}

// routeAll routes msgs with Route, or as one block with RouteLines.
func routeAll(r *Router, msgs [][]byte, lines bool) {
	if !lines {
		for _, m := range msgs {
			r.Route(m, nil)
		}
		return
	}
	var block []byte
	var ends []int32
	for _, m := range msgs {
		block = append(block, m...)
		ends = append(ends, int32(len(block)))
		block = append(block, '\n')
	}
	shards := make([]int32, len(ends))
	r.Hasher().ShardLines(block, ends, shards)
	r.RouteLines(block, ends, shards)
}

// waitClosed waits for done to be closed, failing the test if it is not
// within a time no working router needs.
func waitClosed(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: not done within 30s (the router waits)", what)
	}
}

// waitUntil polls cond until it holds, failing the test after 30s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
