package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
// A message is the payload less one trailing '\n'. A payload longer than
// max_message_bytes is cut into messages of that size, as stdin lines are;
// a JetStream message is acknowledged once all its pieces are written.
type NATS struct {
	nc         *nats.Conn
	cfg        config.NATS
	maxMessage int
	log        *slog.Logger
	in         inbox

	messages, splits int64
	slow             atomic.Int64 // slow-consumer events reported by the client
	dropped          int64        // messages the client dropped, summed at exit

	closed    chan struct{} // closed when the connection is closed for good
	closeOnce sync.Once
	lastErr   atomic.Value // the last asynchronous error, a string
}

// NATSStats counts what a NATS source did.
type NATSStats struct {
	// Messages counts the messages routed, Splits those cut off a longer
	// payload.
	Messages, Splits int64
	// SlowConsumer counts the times the client reported that it fell
	// behind; Dropped the messages it dropped then (core NATS only).
	SlowConsumer, Dropped int64
}

// NewNATS returns a source for the subjects of cfg; Connect connects it.
func NewNATS(cfg config.NATS, maxMessage int, log *slog.Logger) *NATS {
	s := &NATS{cfg: cfg, maxMessage: maxMessage, log: log, closed: make(chan struct{})}
	s.in.init(inboxMax, inboxMaxBytes)
	return s
}

// Connect connects to NATS as the configuration says. With srv set (the
// embedded server) and no URL, it connects in-process. The connection
// reconnects forever, backing off up to nats.reconnect_wait; the first
// connection does not retry, so that a wrong address or wrong credentials
// fail at startup. Errors never show secrets.
func (s *NATS) Connect(srv nats.InProcessConnProvider) error {
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
		opts = append(opts, nats.InProcessServer(srv))
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
	return nil
}

// Close closes the connection of a source that will not be run.
func (s *NATS) Close() { s.nc.Close() }

// Stats returns the source's counters. Call it after Run returns.
func (s *NATS) Stats() NATSStats {
	return NATSStats{Messages: s.messages, Splits: s.splits, SlowConsumer: s.slow.Load(), Dropped: s.dropped}
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
	if s.cfg.JetStream.Stream != "" {
		stop, drained, err = s.consume(ctx)
	} else {
		stop, drained, err = s.subscribe()
	}
	if err != nil {
		return errors.Join(err, r.Close())
	}
	s.log.Info("receiving from NATS", "url", config.RedactURL(s.nc.ConnectedUrl()), "subjects", s.cfg.Subjects,
		"queue", s.cfg.Queue, "jetstream_stream", s.cfg.JetStream.Stream)

	var spare []natsMsg
	var lost error // set when the input ended without being asked to
	done := ctx.Done()
loop:
	for {
		select {
		case <-s.in.ready:
			spare = s.route(r, s.in.take(spare))
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
					s.dropped += int64(n)
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

// consume starts the durable JetStream pull consumer, creating the stream
// first if configured to.
func (s *NATS) consume(ctx context.Context) (stop func(), drained <-chan struct{}, err error) {
	jcfg := s.cfg.JetStream
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout+5*time.Second)
	defer cancel()
	if jcfg.Create {
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: jcfg.Stream, Subjects: s.cfg.Subjects, Storage: jetstream.FileStorage})
		if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, nil, fmt.Errorf("create stream %q: %w", jcfg.Stream, err)
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, jcfg.Stream, jetstream.ConsumerConfig{
		Durable:        jcfg.Durable,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        jcfg.AckWait,
		MaxAckPending:  jcfg.MaxAckPending,
		FilterSubjects: s.cfg.Subjects,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("consumer %q on stream %q: %w", jcfg.Durable, jcfg.Stream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		s.in.put(natsMsg{data: m.Data(), subject: m.Subject(), header: m.Headers(), ack: m})
	},
		// A pull whose byte limit is below one message would never deliver it.
		jetstream.PullMaxMessagesWithBytesLimit(min(jcfg.MaxAckPending, 4*inboxMax),
			max(int(s.cfg.PendingBytes), 2*int(s.nc.MaxPayload())+4096)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			s.lastErr.Store(s.cfg.Scrub(err.Error()))
			s.log.Warn("JetStream consumer", "err", s.cfg.Scrub(err.Error()))
		}))
	if err != nil {
		return nil, nil, fmt.Errorf("consume %q on stream %q: %w", jcfg.Durable, jcfg.Stream, err)
	}
	return cc.Drain, cc.Closed(), nil
}

// route routes msgs and returns the slice for reuse.
func (s *NATS) route(r *shard.Router, msgs []natsMsg) []natsMsg {
	var meta shard.Meta
	for i := range msgs {
		m := &msgs[i]
		data := m.data
		if n := len(data); n > 0 && data[n-1] == '\n' {
			data = data[:n-1]
		}
		meta = shard.Meta{Subject: m.subject, Header: m.header, Ack: m.ack}
		if len(data) <= s.maxMessage {
			r.Route(data, &meta)
		} else {
			pieces := (len(data) + s.maxMessage - 1) / s.maxMessage
			if meta.Ack != nil {
				meta.Ack = shard.SplitAck(meta.Ack, pieces)
			}
			for len(data) > 0 {
				n := min(len(data), s.maxMessage)
				r.Route(data[:n], &meta)
				data = data[n:]
			}
			s.splits += int64(pieces - 1)
		}
		s.messages++
	}
	clear(msgs)
	return msgs[:0]
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
