package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardlog/shardlog/cluster"
	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/shard"
)

// member is what a NATS source reads as a member of a cluster: the
// batches of its own shards, from the cluster's stream, through a durable
// consumer whose pinned priority group makes one of the member's
// instances the active one and the others hot standbys.
type member struct {
	cluster, name string
	// shards maps the subject of each of the member's shards to the shard.
	shards    map[string]int
	pinnedTTL time.Duration
	// pin is the Nats-Pin-Id of the last message, which changes when the
	// server pins this instance (again); only the source loop uses it.
	pin string
	// foreign counts messages on a subject that is not one of the
	// member's shards; unterminated the payloads that did not end in '\n'.
	// (Redelivered messages are counted for every JetStream source.)
	foreign, unterminated atomic.Int64
	// presence, if set, keeps the instance's entry for cluster show while
	// Run runs (SetPresence).
	presence *cluster.Presence
}

// SetPresence makes the member source keep p, its instance's entry for
// cluster show, while it runs: Run writes it once it pulls, refreshes it
// every heartbeat and at every new pin, and removes it when it returns.
// Call it before Run, on a source that NewMember made.
func (s *NATS) SetPresence(p *cluster.Presence) { s.member.presence = p }

// runPresence writes the member's entry once and keeps it up in a
// goroutine of its own; stop stops that goroutine, waits for it (it
// removes the entry) and returns. Without a presence it does nothing.
func (m *member) runPresence() (stop func()) {
	if m.presence == nil {
		return func() {}
	}
	m.presence.Register(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.presence.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// IsMember reports whether s reads as a member of a cluster (NewMember),
// whose Stats then count foreign, unterminated and redelivered messages.
func (s *NATS) IsMember() bool { return s.member != nil }

// pinHeader is the header in which the server names the pin of a pinned
// priority group's messages.
const pinHeader = "Nats-Pin-Id"

// MemberDurable returns the name of the durable consumer through which the
// instances of member read cluster's stream.
func MemberDurable(clusterName, memberName string) string { return clusterName + "_" + memberName }

// CheckPinning returns an error unless the server version v can pin a
// consumer's priority group to one client (nats-server 2.11 or later),
// which hot standbys need.
func CheckPinning(v string) error {
	if !versionAtLeast(v, 2, 11) {
		return fmt.Errorf("run --cluster: the NATS server is nats-server %s, but a member needs nats-server 2.11 or later "+
			"(pinned priority groups, which make one instance active and the others standbys): upgrade the server", v)
	}
	return nil
}

// NewMember returns a source that reads, as member name of the cluster
// whose layout is l, the batches of the member's shards from the
// cluster's stream, and writes each message's records to the file of the
// shard its subject names, without hashing them again (route did). The
// connection settings are cfg's; its subjects and its JetStream stream and
// durable are the member's. Connect connects it. A name that is not one of
// l's members is an error (a *config.Error).
func NewMember(cfg config.NATS, l *cluster.Layout, name string, pinnedTTL time.Duration, maxMessage int, log *slog.Logger) (*NATS, error) {
	ks, ok := l.Shards(name)
	if !ok {
		names := make([]string, len(l.Members))
		for i, m := range l.Members {
			names[i] = m.Name
		}
		return nil, &config.Error{Err: fmt.Errorf("cluster.member: %q: not a member of cluster %s (its members: %s)",
			name, l.Name, strings.Join(names, ", "))}
	}
	m := &member{cluster: l.Name, name: name, shards: make(map[string]int, len(ks)), pinnedTTL: pinnedTTL}
	cfg.Subjects = make([]string, len(ks))
	for i, k := range ks {
		cfg.Subjects[i] = l.Subject(k)
		m.shards[cfg.Subjects[i]] = k
	}
	cfg.Queue = ""
	cfg.JetStream.Stream = l.Stream
	cfg.JetStream.Durable = MemberDurable(l.Name, name)
	cfg.JetStream.Create, cfg.JetStream.UpdateFilter = false, false
	s := NewNATS(cfg, maxMessage, log)
	s.member = m
	return s, nil
}

// prepareMember checks that the server can pin (2.11 or later), and
// readies the cluster's stream and the member's durable consumer.
func (s *NATS) prepareMember(ctx context.Context, js jetstream.JetStream) error {
	if err := CheckPinning(s.nc.ConnectedServerVersion()); err != nil {
		return err
	}
	var err error
	if s.stream, err = js.Stream(ctx, s.cfg.JetStream.Stream); err != nil {
		return fmt.Errorf("cluster %s: stream %s: %w", s.member.cluster, s.cfg.JetStream.Stream, err)
	}
	s.cons, s.created, err = s.memberDurable(ctx)
	if err != nil {
		s.deleteCreated()
	}
	return err
}

// memberConsumer returns the configuration of the member's durable: pull,
// explicit acks, filtered on exactly the member's shards, and one pinned
// priority group named after the member, so that the server delivers to
// one instance at a time and hands the pin to another when the pinned one
// has not pulled for PinnedTTL.
func (s *NATS) memberConsumer() jetstream.ConsumerConfig {
	jcfg := s.cfg.JetStream
	return jetstream.ConsumerConfig{
		Durable:        jcfg.Durable,
		Description:    "shardlog cluster " + s.member.cluster + ", member " + s.member.name,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        jcfg.AckWait,
		MaxAckPending:  jcfg.MaxAckPending,
		FilterSubjects: s.cfg.Subjects,
		PriorityGroups: []string{s.member.name},
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PinnedTTL:      s.member.pinnedTTL,
	}
}

// memberDurable returns the member's durable, creating it if it is
// missing (created then reports so). An existing one must read exactly
// the member's shards with the same priority group and policy, which the
// server cannot change; its ack wait, max ack pending and pinned TTL are
// updated to the configuration.
func (s *NATS) memberDurable(ctx context.Context) (_ jetstream.Consumer, created bool, err error) {
	want := s.memberConsumer()
	name, stream := want.Durable, s.cfg.JetStream.Stream
	old, err := s.stream.Consumer(ctx, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err := s.stream.CreateConsumer(ctx, want)
		if err == nil {
			return c, true, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerExists) {
			return nil, true, fmt.Errorf("create durable %q on stream %q: %w", name, stream, err)
		}
		old, err = s.stream.Consumer(ctx, name) // another instance made it meanwhile
	}
	if err != nil {
		return nil, false, fmt.Errorf("durable %q on stream %q: %w", name, stream, err)
	}
	oc := old.CachedInfo().Config
	switch {
	case oc.DeliverSubject != "" || oc.AckPolicy != jetstream.AckExplicitPolicy:
		return nil, false, fmt.Errorf("durable %q on stream %q is not a pull consumer with explicit acks: it is not shardlog's; delete it", name, stream)
	case !sameSet(filters(oc), want.FilterSubjects):
		return nil, false, fmt.Errorf("durable %q on stream %q reads %v, but member %s's shards are %v: it is not this cluster's; delete it",
			name, stream, filters(oc), s.member.name, want.FilterSubjects)
	case oc.PriorityPolicy != jetstream.PriorityPolicyPinned || !slices.Equal(oc.PriorityGroups, want.PriorityGroups):
		return nil, false, fmt.Errorf("durable %q on stream %q has priority groups %v with policy %v, not %v pinned: it is not shardlog's; delete it",
			name, stream, oc.PriorityGroups, oc.PriorityPolicy, want.PriorityGroups)
	}
	c, err := s.stream.UpdateConsumer(ctx, want)
	if err != nil {
		return nil, false, fmt.Errorf("update durable %q on stream %q: %w", name, stream, err)
	}
	return c, false, nil
}

// pullOptions returns the member's options for Consume: pulls for its
// priority group, each lasting half the pinned TTL (at least 1s), so that
// an idle active instance still pulls, and keeps its pin, well within it.
func (m *member) pullOptions() []jetstream.PullConsumeOpt {
	return []jetstream.PullConsumeOpt{
		jetstream.PullPriorityGroup(m.name),
		jetstream.PullExpiry(max(m.pinnedTTL/2, time.Second)),
	}
}

// routeMember routes a message of the member's stream: its records go to
// the shard its subject names. A message on any other subject (which the
// durable's filter should never deliver) is refused: logged, counted, and
// given back to the server with a delay instead of acknowledged, so that
// it stays in the stream (work-queue retention would delete it on an
// acknowledgement or a termination) for an operator to look at, coming
// back to this member about every nats.jetstream.ack_wait.
func (s *NATS) routeMember(r *shard.Router, m *natsMsg) {
	if pin := m.header.Get(pinHeader); pin != "" && pin != s.member.pin {
		s.member.pin = pin
		if s.member.presence != nil {
			s.member.presence.SawPin(pin)
		}
		s.log.Info("this instance is the member's active one: the server pinned it", "cluster", s.member.cluster,
			"member", s.member.name, "pin_id", pin)
	}
	k, ok := s.member.shards[m.subject]
	if !ok {
		s.member.foreign.Add(1)
		s.log.Error("refused a message for a shard that is not this member's: not written, not acknowledged",
			"cluster", s.member.cluster, "member", s.member.name, "subject", m.subject)
		if n, ok := m.ack.(interface{ NakWithDelay(time.Duration) error }); ok {
			if err := n.NakWithDelay(s.cfg.JetStream.AckWait); err != nil {
				s.log.Warn("could not give a refused message back", "subject", m.subject, "err", err)
			}
		}
		return
	}
	s.countRedelivered(m)
	if n := len(m.data); n == 0 || m.data[n-1] != '\n' {
		s.member.unterminated.Add(1)
	}
	s.routePayload(r, m, k)
}
