package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardlog/shardlog/config"
)

// prepareJetStream readies the stream (creating it if configured to) and
// the durable pull consumer that Run reads. It refuses, before anything is
// read, what would silently read nothing or something else than asked: a
// subject the stream holds no messages on, a durable that reads other
// subjects, several subjects on a server too old to filter on them. A
// durable it created for a start that then fails is deleted again.
func (s *NATS) prepareJetStream() error {
	js, err := jetstream.New(s.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ConnectTimeout+5*time.Second)
	defer cancel()
	if s.member != nil {
		return s.prepareMember(ctx, js)
	}
	if err := s.checkServer(); err != nil {
		return err
	}
	if s.stream, err = s.openStream(ctx, js); err != nil {
		return err
	}
	if err := checkCovered(s.cfg.JetStream.Stream, s.stream.CachedInfo().Config.Subjects, s.cfg.Subjects); err != nil {
		return err
	}
	s.cons, s.created, err = s.durable(ctx, s.stream)
	if err != nil {
		s.deleteCreated()
	}
	return err
}

// deleteCreated deletes the durable this start created, for a start that
// failed, unless another instance uses it already: the next start creates
// it afresh rather than finding it half made.
func (s *NATS) deleteCreated() {
	if !s.created {
		return
	}
	s.created = false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Another instance may have found it and begun to share it meanwhile:
	// leave a durable that has delivered anything, or has pulls waiting.
	if c, err := s.stream.Consumer(ctx, s.cfg.JetStream.Durable); err == nil {
		if i := c.CachedInfo(); i.Delivered.Consumer > 0 || i.NumWaiting > 0 || i.NumAckPending > 0 {
			return
		}
	}
	if err := s.stream.DeleteConsumer(ctx, s.cfg.JetStream.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.log.Warn("could not delete the durable this failed start created", "durable", s.cfg.JetStream.Durable, "err", err)
	}
}

// checkServer refuses several subjects on a server that cannot filter a
// consumer on more than one (before 2.10): it would read the whole stream.
func (s *NATS) checkServer() error {
	if len(s.cfg.Subjects) < 2 {
		return nil
	}
	v := s.nc.ConnectedServerVersion()
	if !versionAtLeast(v, 2, 10) {
		return fmt.Errorf("nats.subjects: %d subjects %v: one JetStream consumer filters on several subjects only from nats-server 2.10; "+
			"this server is %s: use one wildcard subject (such as logs.>) or upgrade the server", len(s.cfg.Subjects), s.cfg.Subjects, v)
	}
	return nil
}

// versionAtLeast reports whether the server version v ("2.9.10",
// "2.11.0-beta.1") is at least major.minor.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(strings.SplitN(parts[1], "-", 2)[0])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && mnr >= minor
}

// openStream returns the configured stream, creating it (with its limits) when
// it is missing and nats.jetstream.create is set.
func (s *NATS) openStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	jcfg := s.cfg.JetStream
	st, err := js.Stream(ctx, jcfg.Stream)
	switch {
	case err == nil:
		return st, nil
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrNoResponders):
		return nil, s.noJetStream(err)
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("stream %q: %w", jcfg.Stream, err)
	case !jcfg.Create:
		return nil, fmt.Errorf("nats.jetstream.stream: %q: no such stream on the server; create it, or set nats.jetstream.create (--js-create)", jcfg.Stream)
	}
	st, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     jcfg.Stream,
		Subjects: s.cfg.Subjects,
		Storage:  jetstream.FileStorage,
		MaxAge:   jcfg.StreamMaxAge,
		MaxBytes: maxOrUnlimited(int64(jcfg.StreamMaxBytes)),
		Discard:  jetstream.DiscardOld,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Another instance made it meanwhile.
		st, err = js.Stream(ctx, jcfg.Stream)
	}
	if err != nil {
		return nil, fmt.Errorf("create stream %q: %w", jcfg.Stream, err)
	}
	s.log.Info("created JetStream stream", "stream", jcfg.Stream, "subjects", s.cfg.Subjects,
		"max_age", jcfg.StreamMaxAge, "max_bytes", int64(jcfg.StreamMaxBytes))
	return st, nil
}

// noJetStream explains err, the answer of a server (or account) without
// JetStream to nats.jetstream.stream ("no responders", which says nothing
// to a reader), and says how to enable it.
func (s *NATS) noJetStream(err error) error {
	where, fix := "the NATS server "+config.RedactURL(s.nc.ConnectedUrl()), "start nats-server with -js, or give its configuration a jetstream block"
	if s.cfg.URL == "" {
		where, fix = "the embedded NATS server", "set nats.embedded_store_dir (--nats-embedded-store DIR), or give nats.embedded_config a jetstream block"
	}
	what := "JetStream is not enabled on " + where
	if errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		what = "JetStream is not enabled for this account on " + where
		fix = "enable it for the account (a jetstream block in the account's configuration)"
	}
	return fmt.Errorf("nats.jetstream.stream: %q: %s (nothing answers its JetStream API): %s, or leave nats.jetstream.stream empty to read with core NATS",
		s.cfg.JetStream.Stream, what, fix)
}

// maxOrUnlimited maps 0 (no limit, in configuration) to JetStream's -1.
func maxOrUnlimited(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// checkCovered refuses a subject on which the stream can hold no message:
// its consumer would wait forever. A stream without subjects of its own (a
// mirror, or one that sources others) is not checked.
func checkCovered(stream string, streamSubjects, subjects []string) error {
	if len(streamSubjects) == 0 {
		return nil
	}
	for _, subj := range subjects {
		if !slices.ContainsFunc(streamSubjects, func(ss string) bool { return subjectsIntersect(subj, ss) }) {
			return fmt.Errorf("nats.subjects: %q: stream %q holds no message on it (its subjects: %s); "+
				"add the subject to the stream or read one of its subjects", subj, stream, strings.Join(streamSubjects, ", "))
		}
	}
	return nil
}

// subjectsIntersect reports whether some subject matches both patterns a
// and b, which may hold the wildcards '*' (one token) and '>' (one or more
// final tokens).
func subjectsIntersect(a, b string) bool {
	ta, tb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(ta) || i == len(tb):
			return len(ta) == len(tb)
		case ta[i] == ">" || tb[i] == ">":
			return true
		case ta[i] != "*" && tb[i] != "*" && ta[i] != tb[i]:
			return false
		}
	}
}

// durable returns the durable pull consumer, creating it if it is missing
// (created then reports so). An existing durable that reads other subjects
// is an error unless nats.jetstream.update_filter is set; its other
// settings (ack wait, max ack pending) are updated to the configuration.
func (s *NATS) durable(ctx context.Context, stream jetstream.Stream) (_ jetstream.Consumer, created bool, err error) {
	jcfg := s.cfg.JetStream
	want := jetstream.ConsumerConfig{
		Durable:       jcfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       jcfg.AckWait,
		MaxAckPending: jcfg.MaxAckPending,
	}
	// One subject goes in FilterSubject, which every JetStream server
	// knows; FilterSubjects needs 2.10 (see checkServer).
	if len(s.cfg.Subjects) == 1 {
		want.FilterSubject = s.cfg.Subjects[0]
	} else {
		want.FilterSubjects = s.cfg.Subjects
	}
	old, err := stream.Consumer(ctx, jcfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err := stream.CreateConsumer(ctx, want)
		if err == nil {
			return c, true, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerExists) {
			// The server may have made it before the client saw a
			// problem: report it created, so that it is deleted.
			return nil, true, fmt.Errorf("create durable %q on stream %q: %w", jcfg.Durable, jcfg.Stream, err)
		}
		// Another instance created it meanwhile: check it as any other.
		old, err = stream.Consumer(ctx, jcfg.Durable)
	}
	if err != nil {
		return nil, false, fmt.Errorf("durable %q on stream %q: %w", jcfg.Durable, jcfg.Stream, err)
	}
	oc := old.CachedInfo().Config
	if oc.DeliverSubject != "" || oc.AckPolicy != jetstream.AckExplicitPolicy {
		return nil, false, fmt.Errorf("nats.jetstream.durable: %q on stream %q is not a pull consumer with explicit acks; "+
			"give shardlog a durable name of its own", jcfg.Durable, jcfg.Stream)
	}
	if has := filters(oc); !sameSet(has, s.cfg.Subjects) {
		if !jcfg.UpdateFilter {
			return nil, false, fmt.Errorf("nats.jetstream.durable: %q on stream %q reads %v, but nats.subjects is %v; "+
				"set nats.jetstream.update_filter (--js-update-filter) to change what it reads, or use another durable name",
				jcfg.Durable, jcfg.Stream, has, s.cfg.Subjects)
		}
		s.log.Warn("changing the subjects an existing durable reads", "durable", jcfg.Durable, "from", has, "to", s.cfg.Subjects)
	}
	c, err := stream.UpdateConsumer(ctx, want)
	if err != nil {
		return nil, false, fmt.Errorf("update durable %q on stream %q: %w", jcfg.Durable, jcfg.Stream, err)
	}
	return c, false, nil
}

// filters returns the subjects a consumer reads; none means every subject.
func filters(c jetstream.ConsumerConfig) []string {
	if c.FilterSubject != "" {
		return []string{c.FilterSubject}
	}
	return c.FilterSubjects
}

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// pull starts consuming from cons: each message goes to the inbox, and is
// acknowledged once written.
func (s *NATS) pull(cons jetstream.Consumer) (stop func(), drained <-chan struct{}, err error) {
	jcfg := s.cfg.JetStream
	opts := []jetstream.PullConsumeOpt{
		// A pull whose byte limit is below one message would never deliver it.
		jetstream.PullMaxMessagesWithBytesLimit(min(jcfg.MaxAckPending, 4*inboxMax),
			max(int(s.cfg.PendingBytes), 2*int(s.nc.MaxPayload())+4096)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			s.lastErr.Store(s.cfg.Scrub(err.Error()))
			s.log.Warn("JetStream consumer", "err", s.cfg.Scrub(err.Error()))
		}),
	}
	if s.member != nil {
		opts = append(opts, s.member.pullOptions()...)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		s.in.put(natsMsg{data: m.Data(), subject: m.Subject(), header: m.Headers(), ack: m})
	}, opts...)
	if err != nil {
		s.deleteCreated()
		return nil, nil, fmt.Errorf("consume %q on stream %q: %w", jcfg.Durable, jcfg.Stream, err)
	}
	s.created = false // in use: no longer this start's to delete
	return cc.Drain, cc.Closed(), nil
}

// SubjectsIntersect reports whether some subject matches both patterns a
// and b, which may hold the wildcards '*' and '>': route uses it to refuse
// input subjects that overlap the subjects it publishes to.
func SubjectsIntersect(a, b string) bool { return subjectsIntersect(a, b) }
