package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/shard"
)

// inboxMax and inboxMaxBytes bound what subscription handlers may leave
// for the source loop before they wait. Beyond them, messages queue in the
// NATS client (up to nats.pending_*), and for JetStream in the server.
const (
	inboxMax      = 8192
	inboxMaxBytes = 16 << 20
)

// NATS is a source of messages from NATS subjects: core NATS (optionally
// in a queue group) or, when nats.jetstream.stream is set, a durable
// JetStream pull consumer whose messages are acknowledged once written.
//
// A payload is framed like standard input: each of its lines is a message
// (a trailing '\n' ends the last line), and a line longer than
// max_message_bytes is cut into messages of that size. A JetStream message
// is acknowledged once all of them are written.
type NATS struct {
	nc         *nats.Conn
	clientURL  string // where publishers reach the server, when not nc's URL
	cons       jetstream.Consumer
	stream     jetstream.Stream
	created    bool // the durable was created by this start
	cfg        config.NATS
	maxMessage int
	log        *slog.Logger
	in         inbox

	// Counters, updated per batch (or per rare event) and safe to read
	// while Run runs.
	messages, splits atomic.Int64
	multiline        atomic.Int64 // payloads of more than one line
	slow             atomic.Int64 // slow-consumer events reported by the client
	dropped          atomic.Int64 // messages the client dropped, summed at exit
	// redelivered counts JetStream messages delivered before (to this
	// process or another, after a crash or ack_wait): their records may
	// have been written, or stored, already, and are again.
	redelivered atomic.Int64

	receiving chan struct{} // closed once the subscriptions are in place
	closed    chan struct{} // closed when the connection is closed for good
	closeOnce sync.Once
	lastErr   atomic.Value // the last asynchronous error, a string

	// member is set for a member of a cluster (NewMember).
	member *member
}

// NATSStats counts what a NATS source did.
type NATSStats struct {
	// Messages counts the NATS messages received; Multiline those whose
	// payload held several lines (each line is routed as a message of its
	// own); Splits the pieces cut off lines longer than max_message_bytes.
	Messages, Multiline, Splits int64
	// SlowConsumer counts the times the client reported that it fell
	// behind; Dropped the messages it dropped then (core NATS only).
	SlowConsumer, Dropped int64
	// Redelivered counts the JetStream messages delivered before, whose
	// records may be written (or, by route, stored) twice.
	Redelivered int64
	// Foreign counts, for a member of a cluster, the messages refused
	// because their subject is not one of its shards; Unterminated the
	// payloads that did not end in '\n' (written as if they did).
	Foreign, Unterminated int64
}

// NewNATS returns a source for the subjects of cfg; Connect connects it.
func NewNATS(cfg config.NATS, maxMessage int, log *slog.Logger) *NATS {
	s := &NATS{cfg: cfg, maxMessage: maxMessage, log: log, closed: make(chan struct{}), receiving: make(chan struct{})}
	s.in.init(inboxMax, inboxMaxBytes)
	return s
}

// Connect connects to NATS as the configuration says. With srv set (the
// embedded server) and no URL, it connects in-process (as shardlog's own
// user when the server's authorization is shardlog's), and logs the
// address publishers use. With JetStream it also readies the stream and
// the durable, so that a mistake there fails the start before any file
// is created. The connection
// reconnects forever, backing off up to nats.reconnect_wait; the first
// connection does not retry, so that a wrong address or wrong credentials
// fail at startup. Errors never show secrets.
func (s *NATS) Connect(srv *Embedded) error {
	cfg, log := s.cfg, s.log
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.Timeout(cfg.ConnectTimeout),
		nats.MaxReconnects(-1),
		// Credentials refused on a reconnect (say, during a rotation) are
		// retried like any other failure rather than ending the connection.
		nats.IgnoreAuthErrorAbort(),
		nats.ClosedHandler(func(*nats.Conn) { s.closeOnce.Do(func() { close(s.closed) }) }),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			d := min(100*time.Millisecond<<min(attempts, 10), cfg.ReconnectWait)
			return d/2 + rand.N(d/2+1)
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS; reconnecting", "err", cfg.Scrub(err.Error()))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "url", config.RedactURL(nc.ConnectedUrl()))
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				s.slow.Add(1)
				var subject string
				if sub != nil {
					subject = sub.Subject
				}
				log.Error("slow consumer: the NATS client is dropping messages; raise nats.pending_* or add instances",
					"subject", subject)
				return
			}
			s.lastErr.Store(cfg.Scrub(err.Error()))
			log.Warn("NATS error", "err", cfg.Scrub(err.Error()))
		}),
	}
	if cfg.User != "" || cfg.Password != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.NKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return fmt.Errorf("nats.nkey_file %s: %w", cfg.NKeyFile, err)
		}
		opts = append(opts, o)
	}
	if cfg.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.TLS.CAFile))
	}
	if cfg.TLS.CertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.TLS.CertFile, cfg.TLS.KeyFile))
	}
	url := cfg.URL
	if url == "" && srv != nil {
		opts = append(opts, nats.InProcessServer(srv.Server))
		// On a server whose authorization is shardlog's, its own user.
		// Replies (JetStream pulls) under a prefix that only shardlog's
		// user may read.
		if srv.user != "" {
			opts = append(opts, nats.UserInfo(srv.user, srv.password))
		}
		opts = append(opts, nats.CustomInboxPrefix(srv.inboxPrefix))
		s.clientURL = srv.publishURL
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		if url == "" {
			url = "(embedded)"
		}
		// The client's errors may quote the URL: scrub what it holds.
		return errors.New(cfg.Scrub(fmt.Sprintf("connect to NATS %s: %v", config.RedactURL(url), err)))
	}
	s.nc = nc
	if s.cfg.JetStream.Stream != "" {
		if err := s.prepareJetStream(); err != nil {
			nc.Close()
			return err
		}
	}
	return nil
}

// Receiving is closed once Run's subscriptions are in place: what is
// published from then on is received.
func (s *NATS) Receiving() <-chan struct{} { return s.receiving }

// Conn returns the source's connection, for its state and statistics
// (safe to read from any goroutine).
func (s *NATS) Conn() *nats.Conn { return s.nc }

// Close closes the connection of a source that will not be run, deleting
// the durable that Connect created for it.
func (s *NATS) Close() {
	s.deleteCreated()
	s.nc.Close()
}

// Stats returns the source's counters; safe to call while Run runs (the
// dropped messages are summed when it stops).
func (s *NATS) Stats() NATSStats {
	st := NATSStats{Messages: s.messages.Load(), Multiline: s.multiline.Load(), Splits: s.splits.Load(),
		SlowConsumer: s.slow.Load(), Dropped: s.dropped.Load(), Redelivered: s.redelivered.Load()}
	if s.member != nil {
		st.Foreign, st.Unterminated = s.member.foreign.Load(), s.member.unterminated.Load()
	}
	return st
}

// Run subscribes on the connected source (see Connect) and routes every
// message until ctx is done; then it drains: it stops taking new messages,
// routes those already received, closes the router (which waits until they
// are written and acknowledges JetStream messages), flushes the
// acknowledgements and closes the connection. If the input ends by itself
// (the connection closed for good, the JetStream consumer deleted), Run
// does the same and returns an error.
func (s *NATS) Run(ctx context.Context, r *shard.Router) error {
	defer s.nc.Close()
	var (
		stop    func()          // begins draining the subscriptions
		drained <-chan struct{} // closed once they are drained
		err     error
	)
	if s.cons != nil {
		stop, drained, err = s.pull(s.cons)
	} else {
		stop, drained, err = s.subscribe()
	}
	if err != nil {
		return errors.Join(err, r.Close())
	}
	if s.member != nil {
		defer s.member.runPresence()() // before the connection closes
	}
	url := s.clientURL
	if url == "" {
		url = s.nc.ConnectedUrl()
	}
	s.log.Info("receiving from NATS", "url", config.RedactURL(url), "server_version", s.nc.ConnectedServerVersion(), "subjects", s.cfg.Subjects,
		"queue", s.cfg.Queue, "jetstream_stream", s.cfg.JetStream.Stream)
	close(s.receiving)

	var spare []natsMsg
	var lost error // set when the input ended without being asked to
	done := ctx.Done()
loop:
	for {
		select {
		case <-s.in.ready:
			spare = s.route(r, s.in.take(spare))
		case <-r.Linger():
			r.FlushIdle()
		case <-r.Due():
			r.FlushAll()
		case b := <-r.Back():
			r.Recycle(b)
		case <-done:
			done = nil
			stop()
		case <-drained:
			if done != nil {
				lost = fmt.Errorf("NATS input stopped by itself: %v", s.lastErr.Load())
			}
			break loop
		case <-s.closed:
			lost = fmt.Errorf("NATS connection closed: %v", s.lastErr.Load())
			break loop
		}
	}
	s.route(r, s.in.take(spare))
	err = errors.Join(lost, r.Close())
	if ferr := s.nc.FlushTimeout(5 * time.Second); ferr != nil && s.cfg.JetStream.Stream != "" {
		s.log.Warn("could not flush acknowledgements; those messages will be redelivered", "err", ferr)
	}
	return err
}

// subscribe subscribes to every subject with core NATS.
func (s *NATS) subscribe() (stop func(), drained <-chan struct{}, err error) {
	var subs []*nats.Subscription
	var closed []<-chan nats.SubStatus
	handler := func(m *nats.Msg) {
		s.in.put(natsMsg{data: m.Data, subject: m.Subject, header: m.Header})
	}
	for _, subj := range s.cfg.Subjects {
		sub, err := s.nc.QueueSubscribe(subj, s.cfg.Queue, handler)
		if err != nil {
			return nil, nil, fmt.Errorf("subscribe to %q: %w", subj, err)
		}
		if err := sub.SetPendingLimits(s.cfg.PendingMsgs, int(s.cfg.PendingBytes)); err != nil {
			return nil, nil, fmt.Errorf("subscribe to %q: pending limits: %w", subj, err)
		}
		subs = append(subs, sub)
		closed = append(closed, sub.StatusChanged(nats.SubscriptionClosed))
	}
	// The server has our interest once this returns, so nothing published
	// after Run logs "receiving" is missed.
	if err := s.nc.Flush(); err != nil {
		return nil, nil, fmt.Errorf("subscribe: %w", err)
	}
	done := make(chan struct{})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			// A round trip first: every message the server sent before
			// it is then in the subscription's buffer, or counted dropped.
			_ = s.nc.FlushTimeout(5 * time.Second)
			for _, sub := range subs {
				if n, err := sub.Dropped(); err == nil {
					s.dropped.Add(int64(n))
				}
				_ = sub.Drain()
			}
			// Drain ends each subscription once its handler has taken
			// every message already received.
			go func() {
				defer close(done)
				for _, c := range closed {
					select {
					case <-c:
					case <-time.After(30 * time.Second):
						s.log.Warn("NATS subscription did not drain in 30s")
					}
				}
			}()
		})
	}
	return stop, done, nil
}

// route routes msgs and returns the slice for reuse.
func (s *NATS) route(r *shard.Router, msgs []natsMsg) []natsMsg {
	s.messages.Add(int64(len(msgs)))
	for i := range msgs {
		if s.member != nil {
			s.routeMember(r, &msgs[i])
			continue
		}
		s.countRedelivered(&msgs[i])
		s.routePayload(r, &msgs[i], -1)
	}
	clear(msgs)
	return msgs[:0]
}

// countRedelivered counts m if it is a JetStream message delivered
// before: its records are about to be written (or stored) again.
func (s *NATS) countRedelivered(m *natsMsg) {
	if jm, ok := m.ack.(jetstream.Msg); ok && delivered(jm.Reply()) > 1 {
		s.redelivered.Add(1)
	}
}

// delivered returns how many times the server has delivered the
// JetStream message whose reply subject is reply, as the client's
// Metadata does, or 0 when reply is not a JetStream acknowledgement
// subject. Metadata parses every field and allocates the result: on the
// JetStream path, once per message, that cost 8% of the throughput
// (docs/BENCHMARKS.md); this reads the one field, without allocating.
//
// The subject is "$JS.ACK.<stream>.<consumer>.<delivered>.<stream
// seq>.<consumer seq>.<time>.<pending>" (9 tokens) or, from servers that
// add the domain and account, "$JS.ACK.<domain>.<account>.<stream>.
// <consumer>.<delivered>...", 11 tokens or more.
func delivered(reply string) uint64 {
	if !strings.HasPrefix(reply, "$JS.ACK.") {
		return 0
	}
	tokens := strings.Count(reply, ".") + 1
	pos := 4
	switch {
	case tokens == 9:
	case tokens >= 11:
		pos = 6
	default:
		return 0
	}
	for range pos {
		_, reply, _ = strings.Cut(reply, ".")
	}
	field, _, _ := strings.Cut(reply, ".")
	n, err := strconv.ParseUint(field, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// routePayload frames a payload like standard input and routes each of
// its messages: one per line (a trailing '\n' ends the last line), lines
// longer than max_message_bytes cut into pieces. A JetStream message is
// acknowledged once every one of them is written. With k >= 0 every
// record goes to shard k instead of the shard of its key.
func (s *NATS) routePayload(r *shard.Router, m *natsMsg, k int) {
	meta := shard.Meta{Subject: m.subject, Header: m.header, Ack: m.ack}
	data := m.data
	if n := len(data); n > 0 && data[n-1] == '\n' {
		data = data[:n-1]
	}
	if len(data) <= s.maxMessage && bytes.IndexByte(data, '\n') < 0 {
		routeTo(r, k, data, &meta) // the common case: one line
		return
	}
	lines, pieces := 0, 0
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		lines++
		pieces += max(1, (len(line)+s.maxMessage-1)/s.maxMessage)
	}
	if lines > 1 {
		s.multiline.Add(1)
	}
	if pieces > lines {
		s.splits.Add(int64(pieces - lines))
	}
	if meta.Ack != nil {
		meta.Ack = shard.SplitAck(meta.Ack, pieces)
	}
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		for len(line) > s.maxMessage {
			routeTo(r, k, line[:s.maxMessage], &meta)
			line = line[s.maxMessage:]
		}
		routeTo(r, k, line, &meta)
	}
}

// routeTo routes msg to shard k, or with k < 0 to the shard of its key.
func routeTo(r *shard.Router, k int, msg []byte, meta *shard.Meta) {
	if k < 0 {
		r.Route(msg, meta)
		return
	}
	r.RouteTo(k, true, msg, meta)
}

// natsMsg is a message as the source loop needs it, core or JetStream.
type natsMsg struct {
	data    []byte
	subject string
	header  nats.Header
	ack     shard.Acker
}

// inbox is where subscription handlers, which run on the NATS client's
// goroutines, leave messages for the source loop: a slice under a mutex,
// taken whole by the loop, so the hand-off costs one lock per message and
// one wake-up per batch rather than a channel send per message.
type inbox struct {
	mu       sync.Mutex
	notFull  sync.Cond
	msgs     []natsMsg
	size     int // bytes of data in msgs
	max      int
	maxBytes int
	ready    chan struct{} // holds a token while msgs may be non-empty
}

func (in *inbox) init(max, maxBytes int) {
	in.notFull.L = &in.mu
	in.max, in.maxBytes = max, maxBytes
	in.ready = make(chan struct{}, 1)
}

// put adds m, waiting while the inbox is full.
func (in *inbox) put(m natsMsg) {
	in.mu.Lock()
	for len(in.msgs) >= in.max || len(in.msgs) > 0 && in.size+len(m.data) > in.maxBytes {
		in.notFull.Wait()
	}
	in.msgs = append(in.msgs, m)
	in.size += len(m.data)
	first := len(in.msgs) == 1
	in.mu.Unlock()
	if first {
		select {
		case in.ready <- struct{}{}:
		default:
		}
	}
}

// take returns every message in the inbox, leaving spare in its place.
func (in *inbox) take(spare []natsMsg) []natsMsg {
	in.mu.Lock()
	msgs := in.msgs
	in.msgs, in.size = spare[:0], 0
	in.notFull.Broadcast()
	in.mu.Unlock()
	return msgs
}
