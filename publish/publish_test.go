package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

const (
	testStream = "LOGS"
	testPrefix = "logs"
)

// natsServer starts a real NATS server with JetStream in this process on
// a loopback port (random unless port is set), storing in dir.
func natsServer(t testing.TB, port int, dir string, maxPayload int32) *server.Server {
	t.Helper()
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: dir, MaxPayload: maxPayload}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// connect connects to srv, reconnecting for ever, and returns its
// JetStream context.
func connect(t testing.TB, srv *server.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// createStream creates the stream of subjects "logs.*", with a duplicate
// window, changed by edit if not nil.
func createStream(t testing.TB, js jetstream.JetStream, edit func(*jetstream.StreamConfig)) jetstream.Stream {
	t.Helper()
	cfg := jetstream.StreamConfig{Name: testStream, Subjects: []string{testPrefix + ".*"}, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Minute}
	if edit != nil {
		edit(&cfg)
	}
	s, err := js.CreateStream(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newPublisher returns a publisher of n shards to "logs.<k>", with its
// Run started, and a function that closes its input and returns Run's
// error.
func newPublisher(t testing.TB, js jetstream.JetStream, opt Options) (*Publisher, func() error) {
	t.Helper()
	opt.Prefix = testPrefix
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// A test that fails while batches are being retried must not hang in
	// its cleanup: unless the test aborts itself, cleanup aborts.
	var abort chan struct{}
	if opt.Abort == nil {
		abort = make(chan struct{})
		opt.Abort = abort
	}
	p, err := New(js, opt)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run() }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			p.CloseInput()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() {
		if abort != nil {
			close(abort)
		}
		_ = stop()
	})
	return p, stop
}

// batch returns a batch for shard k holding recs, each with a newline,
// cut into pages of 7 bytes (a record may span two, as in a router's).
func batch(home chan<- *writer.Batch, k int, recs ...string) *writer.Batch {
	var data []byte
	for _, r := range recs {
		data = append(append(data, r...), '\n')
	}
	b := writer.NewBatch(home)
	b.Shard, b.Records, b.Bytes = k, len(recs), len(data)
	for len(data) > 0 {
		n := min(7, len(data))
		b.Bufs = append(b.Bufs, data[:n:n])
		data = data[n:]
	}
	return b
}

// payload is what b holds.
func payload(b *writer.Batch) []byte { return bytes.Join(b.Bufs, nil) }

// stored returns every message of the stream, in stream order.
func stored(t testing.TB, s jetstream.Stream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// count returns how many messages the stream holds.
func count(t testing.TB, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// eventually polls cond until it holds, failing the test after 20s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// home receives n batches from home, failing the test after 20s.
func receive(t testing.TB, home <-chan *writer.Batch, n int) []*writer.Batch {
	t.Helper()
	var got []*writer.Batch
	timeout := time.After(20 * time.Second)
	for range n {
		select {
		case b := <-home:
			got = append(got, b)
		case <-timeout:
			t.Fatalf("%d of %d batches handed back", len(got), n)
		}
	}
	return got
}

// checkStored checks that the stream holds exactly want's payloads, each
// once, on shard k's subject and in the order of want[k], with distinct
// message ids.
func checkStored(t testing.TB, s jetstream.Stream, want map[int][][]byte) {
	t.Helper()
	msgs := stored(t, s)
	got := map[int][][]byte{}
	ids := map[string]bool{}
	for _, m := range msgs {
		k, err := strconv.Atoi(strings.TrimPrefix(m.Subject, testPrefix+"."))
		if err != nil {
			t.Fatalf("message on subject %q", m.Subject)
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		if id == "" || ids[id] {
			t.Errorf("message %d: id %q empty or seen before", m.Sequence, id)
		}
		ids[id] = true
		got[k] = append(got[k], m.Data)
	}
	n := 0
	for k, w := range want {
		n += len(w)
		if len(got[k]) != len(w) {
			t.Errorf("shard %d: %d messages stored, want %d", k, len(got[k]), len(w))
			continue
		}
		for i := range w {
			if !bytes.Equal(got[k][i], w[i]) {
				t.Errorf("shard %d message %d: %q, want %q", k, i, got[k][i], w[i])
			}
		}
	}
	if len(msgs) != n {
		t.Errorf("%d messages stored, want %d", len(msgs), n)
	}
}

// TestPublishBatches checks that each batch arrives as one message on its
// shard's subject, byte for byte, in order per shard, with distinct ids,
// and is handed back only once the stream holds it.
func TestPublishBatches(t *testing.T) {
	for _, tc := range []struct {
		name           string
		shards, window int
	}{
		{"one shard", 1, 1},
		{"shards share a window of one", 4, 1},
		{"shards publish at once", 4, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := natsServer(t, 0, t.TempDir(), 0)
			js := connect(t, srv)
			s := createStream(t, js, nil)
			p, stop := newPublisher(t, js, Options{Shards: tc.shards, Window: tc.window})
			const perShard = 5
			home := make(chan *writer.Batch, tc.shards*perShard)
			want := map[int][][]byte{}
			for i := range perShard {
				for k := range tc.shards {
					b := batch(home, k, fmt.Sprintf("s%d b%d first", k, i), fmt.Sprintf("s%d b%d second, longer", k, i))
					want[k] = append(want[k], payload(b))
					p.In(k) <- b
				}
			}
			for i := range tc.shards * perShard {
				b := receive(t, home, 1)[0]
				if b.Err != nil {
					t.Fatalf("batch %d: %v", i, b.Err)
				}
				// Handed back only once stored: the stream holds at
				// least as many messages as batches handed back.
				if n := count(t, s); n < uint64(i+1) {
					t.Fatalf("%d batches handed back, stream holds %d", i+1, n)
				}
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			checkStored(t, s, want)
			st := p.Stats()
			if st.Batches != int64(tc.shards*perShard) || st.Records != 2*st.Batches || st.Failed != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestPublishMsgID checks the message ids: shard k's seq-th batch has id
// "<instance>-<k>-<seq>", and a batch published again with the id it had
// (what a retry sends) is stored once.
func TestPublishMsgID(t *testing.T) {
	srv := natsServer(t, 0, t.TempDir(), 0)
	js := connect(t, srv)
	s := createStream(t, js, nil)
	home := make(chan *writer.Batch, 4)
	p, stop := newPublisher(t, js, Options{Shards: 2, ID: "inst"})
	p.In(1) <- batch(home, 1, "a")
	p.In(1) <- batch(home, 1, "b")
	for _, b := range receive(t, home, 2) {
		if b.Err != nil {
			t.Fatal(b.Err)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	msgs := stored(t, s)
	if len(msgs) != 2 {
		t.Fatalf("%d messages stored, want 2", len(msgs))
	}
	for i, want := range []string{"inst-1-1", "inst-1-2"} {
		if id := msgs[i].Header.Get(jetstream.MsgIDHeader); id != want || p.MsgID(1, uint64(i+1)) != want {
			t.Errorf("message %d: id %q, MsgID %q, want %q", i, id, p.MsgID(1, uint64(i+1)), want)
		}
	}

	// A second publisher with the same instance id sends the same ids for
	// the same batches, as a retry does: the stream keeps the first.
	again, stop2 := newPublisher(t, js, Options{Shards: 2, ID: "inst"})
	again.In(1) <- batch(home, 1, "a")
	if b := receive(t, home, 1)[0]; b.Err != nil {
		t.Fatal(b.Err)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s); n != 2 {
		t.Errorf("stream holds %d messages after a batch was sent again, want 2", n)
	}
	if st := again.Stats(); st.Duplicates != 1 || st.Batches != 1 {
		t.Errorf("stats %+v, want one batch acknowledged as a duplicate", st)
	}
}

// TestPublishBackpressure checks that batches the stream refuses (full,
// discard new) are retried and not handed back, and are stored, each
// once and in order, once the stream has room.
func TestPublishBackpressure(t *testing.T) {
	srv := natsServer(t, 0, t.TempDir(), 0)
	js := connect(t, srv)
	s := createStream(t, js, func(c *jetstream.StreamConfig) { c.MaxMsgs, c.Discard = 2, jetstream.DiscardNew })
	var logged lockedBuffer
	p, stop := newPublisher(t, js, Options{Shards: 2, Window: 4, LogEvery: time.Hour,
		Log: slog.New(slog.NewTextHandler(&logged, nil))})
	home := make(chan *writer.Batch, 10)
	want := map[int][][]byte{}
	for i := range 5 {
		b := batch(home, 0, fmt.Sprintf("record %d", i))
		want[0] = append(want[0], payload(b))
		p.In(0) <- b
	}
	for _, b := range receive(t, home, 2) {
		if b.Err != nil {
			t.Fatal(b.Err)
		}
	}
	// Refused several times over: nothing more comes back meanwhile.
	eventually(t, "refusals", func() bool { st := p.Stats(); return st.Retries >= 3 && st.Waiting == 1 })
	select {
	case b := <-home:
		t.Fatalf("a batch came back (err %v) while the stream refused it", b.Err)
	default:
	}
	if n := count(t, s); n != 2 {
		t.Fatalf("full stream holds %d messages, want 2", n)
	}
	// Room again: the rest is stored and handed back.
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	cfg.MaxMsgs = -1
	if _, err := js.UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	for _, b := range receive(t, home, 3) {
		if b.Err != nil {
			t.Fatal(b.Err)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkStored(t, s, want)
	if st := p.Stats(); st.Waiting != 0 || st.Batches != 5 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
	// The first refusal is logged, the next ones not within LogEvery, and
	// the end of the wait once.
	log := logged.String()
	if n := strings.Count(log, "publish refused"); n != 1 || !strings.Contains(log, "maximum messages") {
		t.Errorf("%d lines about the refusals, want 1 naming the error:\n%s", n, log)
	}
	if n := strings.Count(log, "publishing again"); n != 1 {
		t.Errorf("%d lines about publishing again, want 1:\n%s", n, log)
	}
}

// lockedBuffer is a bytes.Buffer that a logger on another goroutine may
// write while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPublishServerRestart stops the server mid-run and starts it again on
// the same port and store: every batch ends up stored, once, in order.
func TestPublishServerRestart(t *testing.T) {
	dir := t.TempDir()
	srv := natsServer(t, 0, dir, 0)
	port := srv.Addr().(*net.TCPAddr).Port
	js := connect(t, srv)
	s := createStream(t, js, nil)
	const shards, perShard = 3, 200
	p, stop := newPublisher(t, js, Options{Shards: shards, Window: 2, AckTimeout: time.Second})
	home := make(chan *writer.Batch, shards*perShard)
	want := map[int][][]byte{}
	all := make([]*writer.Batch, 0, shards*perShard)
	for i := range perShard {
		for k := range shards {
			b := batch(home, k, fmt.Sprintf("shard %d batch %d", k, i), strings.Repeat("x", i))
			want[k] = append(want[k], payload(b))
			all = append(all, b)
		}
	}
	feed := make(chan struct{})
	go func() {
		defer close(feed)
		for _, b := range all {
			p.In(b.Shard) <- b
		}
	}()
	for _, b := range receive(t, home, 50) {
		if b.Err != nil {
			t.Fatal(b.Err)
		}
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	natsServer(t, port, dir, 0)
	for _, b := range receive(t, home, len(all)-50) {
		if b.Err != nil {
			t.Fatal(b.Err)
		}
	}
	<-feed
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkStored(t, s, want)
	t.Logf("stats %+v", p.Stats())
}

// TestPublishAbort checks that closing Abort hands back the batch being
// retried and every later one, failed.
func TestPublishAbort(t *testing.T) {
	srv := natsServer(t, 0, t.TempDir(), 0)
	js := connect(t, srv)
	createStream(t, js, func(c *jetstream.StreamConfig) { c.MaxMsgs, c.Discard = 1, jetstream.DiscardNew })
	abort := make(chan struct{})
	p, stop := newPublisher(t, js, Options{Shards: 1, Abort: abort})
	home := make(chan *writer.Batch, 3)
	for i := range 3 {
		p.In(0) <- batch(home, 0, fmt.Sprint(i))
	}
	if b := receive(t, home, 1)[0]; b.Err != nil {
		t.Fatal(b.Err)
	}
	eventually(t, "a refusal", func() bool { return p.Stats().Waiting == 1 })
	close(abort)
	for _, b := range receive(t, home, 2) {
		if !errors.Is(b.Err, ErrAborted) {
			t.Errorf("batch handed back with %v, want %v", b.Err, ErrAborted)
		}
	}
	if err := stop(); !errors.Is(err, ErrAborted) {
		t.Errorf("Run returned %v, want %v", err, ErrAborted)
	}
	if st := p.Stats(); st.Failed != 2 || st.Batches != 1 {
		t.Errorf("stats %+v, want 1 stored and 2 failed", st)
	}
}

// TestPublishTooLarge checks that a batch the server can never take fails
// at once, with a clear error, and that the shard goes on.
func TestPublishTooLarge(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxPayload int32
		edit       func(*jetstream.StreamConfig)
	}{
		{"server max_payload", 32 << 10, nil},
		{"stream max_msg_size", 0, func(c *jetstream.StreamConfig) { c.MaxMsgSize = 32 << 10 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := natsServer(t, 0, t.TempDir(), tc.maxPayload)
			js := connect(t, srv)
			s := createStream(t, js, tc.edit)
			failed := make(chan error, 1)
			p, stop := newPublisher(t, js, Options{Shards: 1, Fail: func(err error) { failed <- err }})
			home := make(chan *writer.Batch, 2)
			p.In(0) <- batch(home, 0, strings.Repeat("x", 40<<10))
			small := batch(home, 0, "small")
			p.In(0) <- small
			got := receive(t, home, 2)
			if !errors.Is(got[0].Err, ErrTooLarge) || !strings.Contains(got[0].Err.Error(), "batch.max_bytes") {
				t.Errorf("large batch handed back with %v, want %v", got[0].Err, ErrTooLarge)
			}
			if got[1].Err != nil {
				t.Errorf("small batch after it: %v", got[1].Err)
			}
			select {
			case err := <-failed:
				if !errors.Is(err, ErrTooLarge) {
					t.Errorf("Fail called with %v", err)
				}
			default:
				t.Error("Fail not called")
			}
			if err := stop(); !errors.Is(err, ErrTooLarge) {
				t.Errorf("Run returned %v", err)
			}
			checkStored(t, s, map[int][][]byte{0: {payload(small)}})
		})
	}
}

// TestPublishRouter wires a shard.Router to a Publisher as `route` will:
// every record ends up in its shard's messages, in input order per shard.
func TestPublishRouter(t *testing.T) {
	srv := natsServer(t, 0, t.TempDir(), 0)
	js := connect(t, srv)
	s := createStream(t, js, nil)
	const n, lines = 4, 20000
	p, stop := newPublisher(t, js, Options{Shards: n, Window: 2})
	outs := make([]chan<- *writer.Batch, n)
	for k := range outs {
		outs[k] = p.In(k)
	}
	r, err := shard.New(shard.Config{Shards: n, Seed: 7, MaxBatchBytes: 4 << 10, MaxDelay: time.Second,
		BufferBytes: 64 << 10, MaxMessageBytes: 1 << 10, PageSize: 1 << 10}, outs)
	if err != nil {
		t.Fatal(err)
	}
	want := make([][]byte, n)
	h := r.Hasher()
	for i := range lines {
		line := fmt.Appendf(nil, "key-%d line %d", i%97, i)
		k, _ := h.Shard(line, nil)
		want[k] = append(append(want[k], line...), '\n')
		r.Route(line, nil)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Written != lines || st.Failed != 0 {
		t.Errorf("router stats %+v", st)
	}
	got := make([][]byte, n)
	for _, m := range stored(t, s) {
		k, err := strconv.Atoi(strings.TrimPrefix(m.Subject, testPrefix+"."))
		if err != nil || k < 0 || k >= n {
			t.Fatalf("message on subject %q", m.Subject)
		}
		if !bytes.HasSuffix(m.Data, []byte("\n")) {
			t.Errorf("message %d does not end with a newline", m.Sequence)
		}
		got[k] = append(got[k], m.Data...)
	}
	for k := range n {
		if !bytes.Equal(got[k], want[k]) {
			t.Errorf("shard %d: %d bytes stored, want %d (or they differ)", k, len(got[k]), len(want[k]))
		}
	}
}

// TestPublishRetryStoredOnce loses the acknowledgement of a stored batch:
// a loopback proxy between publisher and server holds back what the
// server sends, then cuts the connection. The publisher retries the batch
// with the same id and the stream keeps one copy.
func TestPublishRetryStoredOnce(t *testing.T) {
	srv := natsServer(t, 0, t.TempDir(), 0)
	direct := connect(t, srv)
	s := createStream(t, direct, nil)
	px := newProxy(t, srv.Addr().String())
	nc, err := nats.Connect("nats://"+px.addr(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	p, stop := newPublisher(t, js, Options{Shards: 1, AckTimeout: 200 * time.Millisecond})
	home := make(chan *writer.Batch, 2)
	first := batch(home, 0, "stored, its ack lost")
	px.hold(true)
	p.In(0) <- first
	eventually(t, "the batch stored", func() bool { return count(t, s) == 1 })
	px.cut()
	if b := receive(t, home, 1)[0]; b.Err != nil {
		t.Fatal(b.Err)
	}
	second := batch(home, 0, "after it")
	p.In(0) <- second
	if b := receive(t, home, 1)[0]; b.Err != nil {
		t.Fatal(b.Err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkStored(t, s, map[int][][]byte{0: {payload(first), payload(second)}})
	if st := p.Stats(); st.Duplicates < 1 || st.Retries < 1 {
		t.Errorf("stats %+v: want the batch retried and acknowledged as a duplicate", st)
	}
}

// proxy forwards loopback TCP connections to a server. While held, what
// the server sends is kept back from the client; cut closes every
// connection (what was kept back is lost) and lets the next ones through.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu      sync.Mutex
	held    bool
	conns   []net.Conn
	release *sync.Cond
}

// newProxy starts a proxy to target; the test's cleanup stops it and
// waits for its goroutines.
func newProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &proxy{ln: ln, target: target}
	px.release = sync.NewCond(&px.mu)
	px.wg.Go(px.accept)
	t.Cleanup(func() {
		ln.Close()
		px.cut()
		px.wg.Wait()
	})
	return px
}

func (px *proxy) addr() string { return px.ln.Addr().String() }

// hold sets whether the server's bytes are kept back.
func (px *proxy) hold(on bool) {
	px.mu.Lock()
	px.held = on
	px.mu.Unlock()
	px.release.Broadcast()
}

// cut closes every connection and stops holding.
func (px *proxy) cut() {
	px.mu.Lock()
	for _, c := range px.conns {
		c.Close()
	}
	px.conns, px.held = nil, false
	px.mu.Unlock()
	px.release.Broadcast()
}

func (px *proxy) accept() {
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", px.target)
		if err != nil {
			c.Close()
			continue
		}
		px.mu.Lock()
		px.conns = append(px.conns, c, s)
		px.mu.Unlock()
		px.wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
		px.wg.Go(func() { px.back(c, s); c.Close() })
	}
}

// back copies from the server s to the client c, keeping bytes back (and
// dropping them if the connection is cut) while held.
func (px *proxy) back(c, s net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			px.mu.Lock()
			for px.held {
				px.release.Wait()
			}
			px.mu.Unlock()
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestPublishAbortInFlight checks that Abort ends an attempt still
// awaiting its acknowledgement (the proxy holds it back), and the batches
// waiting behind it, without waiting for AckTimeout.
func TestPublishAbortInFlight(t *testing.T) {
	srv := natsServer(t, 0, t.TempDir(), 0)
	s := createStream(t, connect(t, srv), nil)
	px := newProxy(t, srv.Addr().String())
	nc, err := nats.Connect("nats://"+px.addr(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	abort := make(chan struct{})
	p, stop := newPublisher(t, js, Options{Shards: 1, AckTimeout: time.Hour, Abort: abort})
	// Cleanups run last first: closing the connection ends an attempt
	// that a failing test left waiting, before the publisher is stopped.
	t.Cleanup(nc.Close)
	home := make(chan *writer.Batch, 2)
	px.hold(true)
	p.In(0) <- batch(home, 0, "in flight")
	p.In(0) <- batch(home, 0, "behind it")
	eventually(t, "the batch stored", func() bool { return count(t, s) == 1 })
	close(abort)
	for _, b := range receive(t, home, 2) {
		if !errors.Is(b.Err, ErrAborted) {
			t.Errorf("batch handed back with %v, want %v", b.Err, ErrAborted)
		}
	}
	if err := stop(); !errors.Is(err, ErrAborted) {
		t.Errorf("Run returned %v, want %v", err, ErrAborted)
	}
}

// TestPublishAgainLoggedOnce refuses a batch of each of 16 shards at once
// and then makes room, in several rounds: however the shards' successes
// interleave, each round logs the end of the wait exactly once (the last
// shard through logs it; before, shards stored at once could each see the
// others still waiting, and none logged).
func TestPublishAgainLoggedOnce(t *testing.T) {
	const shards, rounds = 16, 20
	srv := natsServer(t, 0, t.TempDir(), 0)
	js := connect(t, srv)
	s := createStream(t, js, func(c *jetstream.StreamConfig) { c.MaxMsgs, c.Discard = 1, jetstream.DiscardNew })
	var logged lockedBuffer
	p, stop := newPublisher(t, js, Options{Shards: shards, Window: shards, LogEvery: time.Hour, MaxBackoff: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logged, nil))})
	ctx := context.Background()
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	full, open := info.Config, info.Config
	open.MaxMsgs = -1
	home := make(chan *writer.Batch, shards)
	for round := range rounds {
		// Fill the stream to its one message, then refuse a batch of each shard.
		if _, err := js.UpdateStream(ctx, full); err != nil {
			t.Fatal(err)
		}
		if err := s.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, testPrefix+".0", []byte("filler\n")); err != nil {
			t.Fatal(err)
		}
		for k := range shards {
			p.In(k) <- batch(home, k, fmt.Sprintf("round %d shard %d", round, k))
		}
		eventually(t, "every shard refused", func() bool { return p.Stats().Waiting == shards })
		if _, err := js.UpdateStream(ctx, open); err != nil {
			t.Fatal(err)
		}
		for _, b := range receive(t, home, shards) {
			if b.Err != nil {
				t.Fatal(b.Err)
			}
		}
		if n := strings.Count(logged.String(), "publishing again"); n != round+1 {
			t.Fatalf("round %d: %d lines about publishing again in all, want %d:\n%s", round, n, round+1, logged.String())
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestPayloadReusesLastFreed checks that a batch's payload is its records
// in one buffer, that the buffer freed last is the one taken next (its
// memory still in the cache), and that a buffer too small for a batch is
// replaced rather than grown page by page.
func TestPayloadReusesLastFreed(t *testing.T) {
	p := &Publisher{}
	batch := func(pages ...string) *writer.Batch {
		b := &writer.Batch{}
		for _, pg := range pages {
			b.Bufs = append(b.Bufs, []byte(pg))
			b.Bytes += len(pg)
		}
		return b
	}
	first := p.payload(batch("a\nb", "c\n"))
	if string(first) != "a\nbc\n" {
		t.Fatalf("payload %q, want %q", first, "a\nbc\n")
	}
	if cap(first) < len(first)+len(first)/8 {
		t.Errorf("payload of %d bytes has capacity %d: no room for a slightly larger batch", len(first), cap(first))
	}
	second := p.payload(batch("x\n"))
	p.free = append(p.free, first, second)

	// The last freed (second) comes back first, and is large enough.
	if got := p.payload(batch("y\n")); &got[0] != &second[0] || string(got) != "y\n" {
		t.Errorf("payload %q at %p, want %q in the buffer freed last (%p)", got, &got[0], "y\n", &second[0])
	}
	// first is free now; a batch larger than it gets a new buffer.
	big := strings.Repeat("z", 2*cap(first)) + "\n"
	got := p.payload(batch(big[:cap(first)], big[cap(first):]))
	if string(got) != big {
		t.Errorf("large payload: %d bytes, want %d", len(got), len(big))
	}
	if len(p.free) != 0 {
		t.Errorf("%d buffers left free, want 0 (the too small one is dropped)", len(p.free))
	}
}
