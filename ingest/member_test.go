package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardlog/shardlog/cluster"
	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

// jetStreamServer starts a real JetStream server in this process on a
// random loopback port and returns a client of it.
func jetStreamServer(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// TestMemberRoutesBySubject checks how a member routes what the stream
// delivers: each record of a message on one of its shards' subjects goes
// to that shard, whatever its key hashes to, a payload without a final
// '\n' still gives whole records (and is counted), and a message on a
// subject that is not one of its shards (a malformed one, or another
// member's) is refused: counted, nothing routed, not acknowledged, so
// that the work-queue stream keeps it, and a message delivered again is
// counted. The messages are real JetStream messages, read from a stream
// without a filter.
func TestMemberRoutesBySubject(t *testing.T) {
	nc, js := jetStreamServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := &cluster.Layout{Version: cluster.Version, Name: "logs", Stream: "logs", Prefix: "shardlog", N: 4, Key: "message",
		FilePattern: "shard-%03d.log", Replicas: 1,
		Members: []cluster.Member{{Name: "a", Shards: []cluster.Range{{First: 0, Last: 1}}}, {Name: "b", Shards: []cluster.Range{{First: 2, Last: 3}}}}}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(ctx, l.StreamConfig())
	if err != nil {
		t.Fatal(err)
	}
	published := []struct{ subject, payload string }{
		{"shardlog.1", "r1\nr2\n"},
		{"shardlog.0", "r3\nr4"}, // no final '\n'
		{"shardlog.2", "b's\n"},  // another member's shard
		{"shardlog.01", "odd\n"}, // not a shard's subject
	}
	for _, p := range published {
		if _, err := js.Publish(ctx, p.subject, []byte(p.payload)); err != nil {
			t.Fatal(err)
		}
	}
	// A consumer without a filter delivers all of them.
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "all", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(len(published), jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []natsMsg
	for m := range batch.Messages() {
		msgs = append(msgs, natsMsg{data: m.Data(), subject: m.Subject(), header: m.Headers(), ack: m})
	}
	if len(msgs) != len(published) {
		t.Fatalf("fetched %d messages, want %d (%v)", len(msgs), len(published), batch.Error())
	}
	// The first is given back and delivered again: a redelivery.
	if err := msgs[0].ack.(jetstream.Msg).Nak(); err != nil {
		t.Fatal(err)
	}
	again, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range again.Messages() {
		msgs[0] = natsMsg{data: m.Data(), subject: m.Subject(), header: m.Headers(), ack: m}
	}
	if md, err := msgs[0].ack.(jetstream.Msg).Metadata(); err != nil || md.NumDelivered != 2 {
		t.Fatalf("not redelivered: %+v, %v", md, err)
	}

	cfg := config.NATS{JetStream: config.JetStream{AckWait: time.Minute, MaxAckPending: 100}}
	s, err := NewMember(cfg, l, "a", 5*time.Second, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := shard.ParseKey("message")
	outs := make([]chan *writer.Batch, l.N)
	sendOn := make([]chan<- *writer.Batch, l.N)
	for k := range outs {
		outs[k] = make(chan *writer.Batch, 16)
		sendOn[k] = outs[k]
	}
	r, err := shard.New(shard.Config{Shards: l.N, Key: key, MaxBatchBytes: 64 << 10, MaxDelay: time.Hour,
		BufferBytes: 4 << 20, MaxMessageBytes: 1 << 20}, sendOn)
	if err != nil {
		t.Fatal(err)
	}
	s.route(r, msgs)
	r.FlushAll()

	want := map[int]string{0: "r3\nr4\n", 1: "r1\nr2\n"}
	for k, out := range outs {
		var got []byte
		for len(out) > 0 {
			b := <-out
			for _, buf := range b.Bufs {
				got = append(got, buf...)
			}
		}
		if string(got) != want[k] {
			t.Errorf("shard %d got %q, want %q", k, got, want[k])
		}
	}
	if st := s.Stats(); st.Foreign != 2 || st.Unterminated != 1 || st.Redelivered != 1 {
		t.Errorf("foreign %d, unterminated %d, redelivered %d; want 2, 1 and 1", st.Foreign, st.Unterminated, st.Redelivered)
	}
	// The refused messages were given back, not acknowledged or
	// terminated (either would delete them from the work-queue stream).
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"shardlog.2", "shardlog.01"} {
		if _, err := st.GetLastMsgForSubject(ctx, subject); err != nil {
			t.Errorf("refused message on %s: no longer in the stream: %v", subject, err)
		}
	}
}

// TestCheckPinning checks that members refuse servers before 2.11, which
// cannot pin a priority group, naming the version and what is needed.
func TestCheckPinning(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{{"2.9.25", false}, {"2.10.29", false}, {"2.11.0", true}, {"2.15.2", true}, {"v2.11.0-beta.1", true}, {"", false}} {
		err := CheckPinning(tc.v)
		if (err == nil) != tc.ok {
			t.Errorf("CheckPinning(%q) = %v, want ok=%v", tc.v, err, tc.ok)
		}
		if err != nil && !bytes.Contains([]byte(err.Error()), []byte("needs nats-server 2.11 or later")) {
			t.Errorf("CheckPinning(%q) = %v: does not say what it needs", tc.v, err)
		}
	}
}

// TestNewMemberUnknown checks that a member the layout does not name is
// a configuration error naming it and the cluster's members.
func TestNewMemberUnknown(t *testing.T) {
	l := &cluster.Layout{Name: "logs", Stream: "logs", Prefix: "p", N: 2,
		Members: []cluster.Member{{Name: "a", Shards: []cluster.Range{{First: 0, Last: 1}}}}}
	_, err := NewMember(config.NATS{}, l, "c", 5*time.Second, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var cerr *config.Error
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(`cluster.member: "c": not a member of cluster logs (its members: a)`)) || !errors.As(err, &cerr) {
		t.Errorf("NewMember(c) = %v", err)
	}
}

// TestMemberDurable checks the member's durable consumer: made with the
// member's filter, priority group and pinned policy; an existing one that
// reads other subjects, or has no pinned group (not shardlog's), refused
// naming it; the pinned TTL of an existing one updated.
func TestMemberDurable(t *testing.T) {
	nc, js := jetStreamServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := &cluster.Layout{Version: cluster.Version, Name: "logs", Stream: "logs", Prefix: "shardlog", N: 4, Key: "message",
		FilePattern: "shard-%03d.log", Replicas: 1,
		Members: []cluster.Member{{Name: "a", Shards: []cluster.Range{{First: 0, Last: 1}}}, {Name: "b", Shards: []cluster.Range{{First: 2, Last: 3}}}}}
	st, err := js.CreateStream(ctx, l.StreamConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.NATS{URL: nc.ConnectedUrl(), ConnectTimeout: 5 * time.Second, ReconnectWait: time.Second,
		JetStream: config.JetStream{AckWait: time.Minute, MaxAckPending: 100}}
	connect := func(name string, ttl time.Duration) error {
		s, err := NewMember(cfg, l, name, ttl, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Connect(nil); err != nil {
			return err
		}
		s.nc.Close()
		return nil
	}
	if err := connect("a", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c, err := st.Consumer(ctx, "logs_a")
	if err != nil {
		t.Fatal(err)
	}
	got := c.CachedInfo().Config
	if !sameSet(got.FilterSubjects, []string{"shardlog.0", "shardlog.1"}) || got.AckPolicy != jetstream.AckExplicitPolicy ||
		got.PriorityPolicy != jetstream.PriorityPolicyPinned || len(got.PriorityGroups) != 1 || got.PriorityGroups[0] != "a" ||
		got.PinnedTTL != 5*time.Second || got.AckWait != time.Minute {
		t.Errorf("durable logs_a: %+v", got)
	}
	if err := connect("a", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if c, err := st.Consumer(ctx, "logs_a"); err != nil || c.CachedInfo().Config.PinnedTTL != 3*time.Second {
		t.Errorf("pinned TTL not updated: %v", err)
	}

	// Durables of b made by hand, not as shardlog makes them.
	for _, tc := range []struct {
		name string
		cfg  jetstream.ConsumerConfig
		want string
	}{
		{"other subjects", jetstream.ConsumerConfig{FilterSubjects: []string{"shardlog.2"}},
			`durable "logs_b" on stream "logs" reads [shardlog.2], but member b's shards are [shardlog.2 shardlog.3]`},
		{"no pinned group", jetstream.ConsumerConfig{FilterSubjects: []string{"shardlog.2", "shardlog.3"}},
			`durable "logs_b" on stream "logs" has priority groups [] with policy`},
	} {
		tc.cfg.Durable, tc.cfg.AckPolicy = "logs_b", jetstream.AckExplicitPolicy
		if _, err := st.CreateOrUpdateConsumer(ctx, tc.cfg); err != nil {
			t.Fatal(err)
		}
		if err := connect("b", 5*time.Second); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Connect = %v, want %q", tc.name, err, tc.want)
		}
		if err := st.DeleteConsumer(ctx, "logs_b"); err != nil {
			t.Fatal(err)
		}
	}
}
