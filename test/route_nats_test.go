package test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardlog/shardlog/internal/murmur3ref"
)

// startRoute starts shardlog route into cluster logs on url with args,
// and waits until it receives from NATS.
func startRoute(t *testing.T, url string, args ...string) *daemon {
	t.Helper()
	return startNATS(t, append([]string{"route", "--cluster", "logs", "--nats-url", url}, args...)...)
}

// batch is one message of a cluster's stream: a routed batch.
type batch struct {
	shard    int
	instance string // the route instance that published it: its message id's first part
	records  []string
}

// streamBatches returns the batches the cluster stream holds, in stream
// order, failing the test as streamShards does on a bad subject or a
// missing or repeated Nats-Msg-Id.
func streamBatches(t *testing.T, ctx context.Context, js jetstream.JetStream, stream string, n int) []batch {
	t.Helper()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []batch
	ids := map[string]bool{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		k, err := strconv.Atoi(strings.TrimPrefix(m.Subject, "shardlog."))
		if err != nil || k < 0 || k >= n || !strings.HasPrefix(m.Subject, "shardlog.") {
			t.Fatalf("message %d on subject %q, not shardlog.<shard>", seq, m.Subject)
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		instance, _, _ := strings.Cut(id, "-")
		if id == "" || ids[id] || instance == "" {
			t.Fatalf("message %d on %s: Nats-Msg-Id %q: want one, distinct, <instance>-<shard>-<seq>", seq, m.Subject, id)
		}
		ids[id] = true
		if len(m.Data) == 0 || m.Data[len(m.Data)-1] != '\n' {
			t.Fatalf("message %d on %s: %d bytes not ending in a newline: not a batch of records", seq, m.Subject, len(m.Data))
		}
		out = append(out, batch{shard: k, instance: instance, records: strings.Split(string(m.Data[:len(m.Data)-1]), "\n")})
	}
	return out
}

// inputStream creates a JetStream stream named in over in.> and
// publishes msgs to in.x, in order, waiting for every acknowledgement.
func inputStream(t *testing.T, ctx context.Context, js jetstream.JetStream, msgs []string) {
	t.Helper()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "in", Subjects: []string{"in.>"}}); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if _, err := js.PublishAsync("in.x", []byte(m)); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 || i == len(msgs)-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
	}
}

// jsInput returns n input payloads and the records they hold, in order:
// every tenth payload holds two lines, others one, some with a trailing
// newline, all with bytes that are not text.
func jsInput(n int) (payloads, records []string) {
	for i := range n {
		r := fmt.Sprintf("js message %d \xff\x00\r end", i)
		switch {
		case i%10 == 0:
			r2 := fmt.Sprintf("js message %d second line", i)
			payloads = append(payloads, r+"\n"+r2)
			records = append(records, r, r2)
			continue
		case i%3 == 0:
			payloads = append(payloads, r+"\n")
		default:
			payloads = append(payloads, r)
		}
		records = append(records, r)
	}
	return payloads, records
}

// shardsOf returns, for each of n shards (seed 0, the whole record as
// key), the records of want that hash to it, in order.
func shardsOf(want []string, n int) [][]string {
	out := make([][]string, n)
	for _, r := range want {
		k := murmur3ref.Sum32([]byte(r), 0) % uint32(n)
		out[k] = append(out[k], r)
	}
	return out
}

// byShard concatenates the records of batches per shard, in stream order.
func byShard(batches []batch, n int) [][]string {
	out := make([][]string, n)
	for _, b := range batches {
		out[b.shard] = append(out[b.shard], b.records...)
	}
	return out
}

// consumerInfo returns the current state of durable on stream.
func consumerInfo(t *testing.T, ctx context.Context, js jetstream.JetStream, stream, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	i, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestRouteCoreNATSQueue runs two route instances in one queue group on
// core NATS subjects, publishes 20000 messages (some with a trailing
// newline, all with NUL, 0xff and CR bytes) on two subjects, and stops both
// with SIGTERM: the cluster's stream then holds every message exactly
// once, in the shard its key (the message) hashes to, both instances
// having published some, and the records each instance published to a
// shard in the order they were published.
func TestRouteCoreNATSQueue(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "8", "--members", "a,b")
	args := []string{"--subject", "in.>", "--queue", "routers", "--batch-max-bytes", "4KiB"}
	r1 := startRoute(t, url, args...)
	r2 := startRoute(t, url, args...)
	nc := client(t, url)
	const k = 20000
	var want []string
	for i := range k {
		msg := fmt.Sprintf("core message %d \xff\x00\r\t end", i)
		payload := msg
		if i%2 == 0 {
			payload += "\n" // one trailing newline is not part of the message
		}
		if err := nc.Publish([]string{"in.a", "in.b.c"}[i%2], []byte(payload)); err != nil {
			t.Fatal(err)
		}
		want = append(want, msg)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	r1.stop(t)
	r2.stop(t)

	batches := streamBatches(t, ctx, js, "logs", 8)
	got := byShard(batches, 8)
	for k, w := range shardsOf(want, 8) {
		g := slices.Clone(got[k])
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Errorf("stream, shard %d: %d records, want each of its %d messages once", k, len(g), len(w))
		}
	}
	perInstance := map[string][][]string{}
	for _, b := range batches {
		if perInstance[b.instance] == nil {
			perInstance[b.instance] = make([][]string, 8)
		}
		perInstance[b.instance][b.shard] = append(perInstance[b.instance][b.shard], b.records...)
	}
	if len(perInstance) != 2 {
		t.Errorf("batches from %d route instances, want 2 sharing the queue group", len(perInstance))
	}
	for inst, shards := range perInstance {
		for k, recs := range shards {
			if !slices.IsSortedFunc(recs, func(a, b string) int { return msgNum(a) - msgNum(b) }) {
				t.Errorf("instance %s, shard %d: records not in the order published", inst, k)
			}
		}
	}
}

// natsReceived returns the number of NATS messages route's summary says
// it received.
func natsReceived(t *testing.T, stderr string) int {
	t.Helper()
	m := regexp.MustCompile(`input=nats messages=(\d+) `).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no summary of the NATS input in route's log: %s", stderr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestRouteJetStreamInput reads a JetStream stream with route through a
// durable, stops it with SIGTERM mid-stream, and checks the drain: exit
// 0, every message route received acknowledged, and the cluster's stream
// holding exactly the records of those messages, each once, in input
// order. (Messages the server sent as the subscription closed may never
// reach route, as for run: the server counts them delivered and
// unacknowledged, and delivers them again after ack_wait; the test counts
// them.) A second instance on the same durable then routes the rest:
// every record is in the stream once.
func TestRouteJetStreamInput(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a,b")
	payloads, records := jsInput(20000)
	inputStream(t, ctx, js, payloads)
	args := []string{"--subject", "in.>", "--js-stream", "in", "--js-durable", "r", "--batch-max-bytes", "2KiB"}
	cluster, err := js.Stream(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}

	r1 := startRoute(t, url, args...)
	waitFor(t, "route to publish", 60*time.Second, func() bool {
		info, err := cluster.Info(ctx)
		return err == nil && info.State.Msgs > 0
	})
	r1.stop(t)
	received := natsReceived(t, r1.stderr.String())
	// The server applies acknowledgements after it has received them
	// (route flushed them before it exited): poll. No instance reads
	// the durable meanwhile, so nothing is redelivered.
	var ci *jetstream.ConsumerInfo
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ci = consumerInfo(t, ctx, js, "in", "r")
		if int(ci.AckFloor.Stream) == received && ci.NumAckPending == int(ci.Delivered.Stream)-received {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGTERM: route received %d messages; ack floor %d, %d unacknowledged, %d delivered: want the %d received acknowledged",
				received, ci.AckFloor.Stream, ci.NumAckPending, ci.Delivered.Stream, received)
		}
	}
	t.Logf("SIGTERM after %d of %d messages; %d more sent by the server as the subscription closed, not received",
		received, len(payloads), ci.NumAckPending)
	if received == len(payloads) {
		t.Logf("route read every message before SIGTERM: the stop did not fall mid-stream")
	}
	n := 0
	for _, p := range payloads[:received] {
		n += len(strings.Split(strings.TrimSuffix(p, "\n"), "\n"))
	}
	got := byShard(streamBatches(t, ctx, js, "logs", 4), 4)
	for k, w := range shardsOf(records[:n], 4) {
		if !slices.Equal(got[k], w) {
			t.Errorf("after SIGTERM, shard %d: %d records, want the %d of the %d messages received, once, in order",
				k, len(got[k]), len(w), received)
		}
	}

	// The second instance sets the durable's ack wait to 2s, so that what
	// the first never received comes back soon. (The first keeps the
	// default, 30s: no message of its is redelivered to it while it runs.)
	t.Setenv("SHARDLOG_NATS_JETSTREAM_ACK_WAIT", "2s")
	r2 := startRoute(t, url, args...)
	waitAcked(t, js, "in", "r")
	r2.stop(t)
	got = byShard(streamBatches(t, ctx, js, "logs", 4), 4)
	for k, w := range shardsOf(records, 4) {
		g := slices.Clone(got[k])
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Errorf("shard %d: %d records, want %d, once", k, len(g), len(w))
		}
	}
}

// attempts counts the publishes to a cluster's subjects, stored or not,
// per Nats-Msg-Id, through a core subscription.
type attempts struct {
	mu  sync.Mutex
	ids map[string]int
}

func watchAttempts(t *testing.T, url string) *attempts {
	t.Helper()
	a := &attempts{ids: map[string]int{}}
	nc := client(t, url)
	if _, err := nc.Subscribe("shardlog.*", func(m *nats.Msg) {
		a.mu.Lock()
		a.ids[m.Header.Get(jetstream.MsgIDHeader)]++
		a.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return a
}

// state returns how many batches were attempted, and the fewest attempts
// any of them had.
func (a *attempts) state() (batches, fewest int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fewest = -1
	for _, n := range a.ids {
		if fewest < 0 || n < fewest {
			fewest = n
		}
	}
	return len(a.ids), fewest
}

// TestRouteRefusedStream fills the cluster's stream (max_msgs 1, discard
// new) and routes a JetStream input into it with --max-pending 2 over 8
// shards. While the stream refuses, route retries each batch with its
// message id, at most 2 batches are attempted at once (so the window
// is cluster.max_pending, not the default of 64), and no input message is
// acknowledged, though route holds some; once the stream takes
// messages again, every record is stored once and every input message
// acknowledged.
func TestRouteRefusedStream(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "8", "--members", "a,b")
	cluster, err := js.Stream(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}
	cfg := cluster.CachedInfo().Config
	full := cfg
	full.MaxMsgs, full.Discard = 1, jetstream.DiscardNew
	if _, err := js.UpdateStream(ctx, full); err != nil {
		t.Fatal(err)
	}
	filler, err := js.Publish(ctx, "shardlog.0", []byte("filler\n"))
	if err != nil {
		t.Fatal(err)
	}
	payloads, records := jsInput(3000)
	inputStream(t, ctx, js, payloads)
	watch := watchAttempts(t, url)

	d := startRoute(t, url, "--subject", "in.>", "--js-stream", "in", "--js-durable", "r", "--max-pending", "2", "--batch-max-bytes", "1KiB")
	waitFor(t, "route to retry refused batches", 60*time.Second, func() bool {
		n, fewest := watch.state()
		return n >= 2 && fewest >= 5 && d.stderr.Contains("publish refused: retrying")
	})
	for round := range 2 {
		if n, _ := watch.state(); n != 2 {
			t.Errorf("round %d: %d batches attempted while the stream refuses, want 2 (--max-pending 2)", round, n)
		}
		ci := consumerInfo(t, ctx, js, "in", "r")
		if ci.NumAckPending == 0 || ci.AckFloor.Consumer != 0 {
			t.Errorf("round %d: while nothing is stored: %d input messages awaiting acknowledgement, ack floor %d: want some held and none acknowledged",
				round, ci.NumAckPending, ci.AckFloor.Consumer)
		}
		_, before := watch.state()
		waitFor(t, "more retries", 60*time.Second, func() bool { _, fewest := watch.state(); return fewest >= before+2 })
	}

	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := cluster.DeleteMsg(ctx, filler.Sequence); err != nil {
		t.Fatal(err)
	}
	waitAcked(t, js, "in", "r")
	d.stop(t)
	got := byShard(streamBatches(t, ctx, js, "logs", 8), 8)
	for k, w := range shardsOf(records, 8) {
		if !slices.Equal(got[k], w) {
			t.Errorf("shard %d: %d records, want %d, once, in order", k, len(got[k]), len(w))
		}
	}
	if !d.stderr.Contains("publishing again") {
		t.Errorf("route did not log that it publishes again: %s", d.stderr.String())
	}
}

// TestRouteKilled kills a route reading a JetStream input with SIGKILL
// mid-stream and starts a second instance on the same durable: every
// record of the input is then in the cluster's stream, in its shard, at
// least once. Records the first instance stored but had not acknowledged
// are stored again by the second (its message ids are its own): the test
// logs how many.
func TestRouteKilled(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a,b")
	payloads, records := jsInput(20000)
	inputStream(t, ctx, js, payloads)
	cluster, err := js.Stream(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--subject", "in.>", "--js-stream", "in", "--js-durable", "r", "--batch-max-bytes", "2KiB"}
	t.Setenv("SHARDLOG_NATS_JETSTREAM_ACK_WAIT", "2s")
	r1 := startRoute(t, url, args...)
	waitFor(t, "route to publish", 60*time.Second, func() bool {
		info, err := cluster.Info(ctx)
		return err == nil && info.State.Msgs >= 20
	})
	if err := r1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	r1.wait(t, 30*time.Second)
	ci := consumerInfo(t, ctx, js, "in", "r")
	t.Logf("at the kill: %d of %d input messages delivered, %d acknowledged", ci.Delivered.Stream, len(payloads), ci.AckFloor.Stream)

	r2 := startRoute(t, url, args...)
	waitAcked(t, js, "in", "r")
	r2.stop(t)
	got := byShard(streamBatches(t, ctx, js, "logs", 4), 4)
	dups := 0
	for k, w := range shardsOf(records, 4) {
		seen := map[string]int{}
		for _, r := range got[k] {
			seen[r]++
		}
		for _, r := range w {
			if seen[r] == 0 {
				t.Errorf("shard %d: record %q lost", k, r)
				break
			}
		}
		if len(seen) != len(w) {
			t.Errorf("shard %d: %d distinct records, want %d", k, len(seen), len(w))
		}
		dups += len(got[k]) - len(w)
	}
	redelivered := statsCount(r2.stderr.String(), "redelivered")
	t.Logf("kill -9 of a route mid-stream: %d records of %d stored twice; the second instance got %d input messages again", dups, len(records), redelivered)
	if dups < 0 {
		t.Errorf("fewer records stored than read: %d", dups)
	}
	// Records stored twice came in input messages delivered again, which
	// the second instance counts. (Not each of them: under load the first
	// may have had some delivered again to itself before the kill.)
	if redelivered < 0 {
		t.Errorf("no redelivered= in the second instance's final log line: %s", logTail(r2.stderr.String(), 2000))
	} else if dups > 0 && redelivered == 0 {
		t.Errorf("%d records stored twice, but the second instance counts no input message delivered again", dups)
	}
}

// TestRouteInputRefusals checks that route refuses, with exit 2 and a
// message naming the key and the value, an input that is its own output
// (a subject that overlaps the cluster's, naming its prefix; the
// cluster's stream), a bad cluster.max_pending from a flag or the
// environment, and an embedded NATS server; and that nothing is published.
func TestRouteInputRefusals(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a,b")
	memberCluster(t, url, "--cluster", "app", "-n", "4", "--members", "a", "--prefix", "app.out")
	overlap := `overlaps shardlog.*, the subjects of cluster logs (prefix "shardlog")`
	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"all of the prefix", nil, []string{"--subject", "shardlog.>"}, []string{`nats.subjects: "shardlog.>": ` + overlap}},
		{"one shard", nil, []string{"--subject", "in.x", "--subject", "shardlog.3"}, []string{`nats.subjects: "shardlog.3": ` + overlap}},
		{"everything", nil, []string{"--subject", ">"}, []string{`nats.subjects: ">": ` + overlap}},
		{"wildcard first", nil, []string{"--subject", "*.3"}, []string{`nats.subjects: "*.3": ` + overlap}},
		{"queue group too", nil, []string{"--subject", "shardlog.*", "--queue", "q"}, []string{`nats.subjects: "shardlog.*": ` + overlap}},
		{"another prefix", nil, []string{"--cluster", "app", "--subject", "app.>"},
			[]string{`nats.subjects: "app.>": overlaps app.out.*, the subjects of cluster app (prefix "app.out")`}},
		{"own stream", nil, []string{"--subject", "in.x", "--js-stream", "logs"},
			[]string{`nats.jetstream.stream: "logs": the stream of cluster logs, which route publishes to`}},
		{"window 0", nil, []string{"--max-pending", "0"}, []string{"cluster.max_pending: 0: must be from 1 to 4096"}},
		{"window -1", nil, []string{"--max-pending", "-1"}, []string{"cluster.max_pending: -1: must be from 1 to 4096"}},
		{"window 100000", nil, []string{"--max-pending", "100000"}, []string{"cluster.max_pending: 100000: must be from 1 to 4096"}},
		{"window x", nil, []string{"--max-pending", "x"}, []string{`"x"`, "--max-pending"}},
		{"window x (environment)", []string{"SHARDLOG_CLUSTER_MAX_PENDING=x"}, nil, []string{"SHARDLOG_CLUSTER_MAX_PENDING", "cluster.max_pending", `"x"`}},
		{"window 0 (environment)", []string{"SHARDLOG_CLUSTER_MAX_PENDING=0"}, nil, []string{"cluster.max_pending: 0: must be from 1 to 4096"}},
		{"embedded", []string{"SHARDLOG_NATS_EMBEDDED=true"}, nil, []string{"nats.embedded: true: route"}},
		{"no input", nil, []string{"--stdin", "false"}, []string{"stdin: false: no input is configured"}},
	}
	for _, tc := range cases {
		args := append([]string{"route", "--nats-url", url, "--cluster", "logs"}, tc.args...)
		res := shardlog(t, []byte("x\ny\n"), tc.env, args...)
		if err := contains(res.stderr, tc.want...); res.code != 2 || err != nil {
			t.Errorf("%s: exit %d, want 2 and %q: %s", tc.name, res.code, tc.want, res.stderr)
		}
	}
	for _, stream := range []string{"logs", "app"} {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		if info, err := s.Info(ctx); err != nil || info.State.Msgs != 0 {
			t.Errorf("stream %s after refusals: %+v, %v; want it empty", stream, info.State, err)
		}
	}
}

// TestRouteNATSKeys routes NATS input by each key that reads it (the
// subject, a header, a JSON field, the layout's key in each case) and
// checks that every message is in the shard of its key, or of the whole
// message where it has none.
func TestRouteNATSKeys(t *testing.T) {
	url, js, ctx := clusterJS(t)
	type msg struct{ subject, tenant, payload string }
	var msgs []msg
	for i := range 300 {
		m := msg{subject: fmt.Sprintf("in.svc%d", i%7), payload: fmt.Sprintf(`{"user":"u%d","n":%d}`, i%13, i)}
		if i%5 != 0 {
			m.tenant = fmt.Sprintf("tenant-%d", i%11)
		}
		if i%9 == 0 {
			m.payload = fmt.Sprintf("not json %d", i)
		}
		msgs = append(msgs, m)
	}
	cases := []struct {
		key   string
		keyOf func(msg) string
	}{
		{"subject", func(m msg) string { return m.subject }},
		{"header:X-Tenant", func(m msg) string { return cmp.Or(m.tenant, m.payload) }},
		{"json:user", func(m msg) string {
			if strings.HasPrefix(m.payload, "{") {
				return m.payload[len(`{"user":"`):strings.Index(m.payload, `",`)]
			}
			return m.payload
		}},
	}
	for i, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			name := fmt.Sprintf("k%d", i)
			memberCluster(t, url, "--cluster", name, "-n", "5", "--members", "a", "--key", tc.key, "--prefix", name)
			d := startNATS(t, "route", "--cluster", name, "--nats-url", url, "--subject", "in.*")
			nc := client(t, url)
			for _, m := range msgs {
				nm := nats.NewMsg(m.subject)
				nm.Data = []byte(m.payload)
				if m.tenant != "" {
					nm.Header.Set("X-Tenant", m.tenant)
				}
				if err := nc.PublishMsg(nm); err != nil {
					t.Fatal(err)
				}
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			d.stop(t)
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			got := make([][]string, 5)
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
				m, err := s.GetMsg(ctx, seq)
				if err != nil {
					t.Fatal(err)
				}
				k, err := strconv.Atoi(strings.TrimPrefix(m.Subject, name+"."))
				if err != nil {
					t.Fatalf("subject %q", m.Subject)
				}
				got[k] = append(got[k], strings.Split(strings.TrimSuffix(string(m.Data), "\n"), "\n")...)
			}
			want := make([][]string, 5)
			for _, m := range msgs {
				k := murmur3ref.Sum32([]byte(tc.keyOf(m)), 0) % 5
				want[k] = append(want[k], m.payload)
			}
			for k := range 5 {
				if !slices.Equal(got[k], want[k]) {
					t.Errorf("shard %d: %d records, want %d in order", k, len(got[k]), len(want[k]))
				}
			}
		})
	}
}

// TestRouteMetrics scrapes a route reading core NATS: the published
// counters equal what the stream stored, /readyz answers 200; while the
// stream refuses, /readyz answers 503 naming the refused shards and the
// counters show the retries and the shards waiting; once it takes
// batches again, route is ready again and has published every record.
func TestRouteMetrics(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a,b")
	addr := freeAddr(t)
	d := startRoute(t, url, "--subject", "in.x", "--metrics-listen", addr, "--batch-max-delay", "10ms")
	base := "http://" + addr
	nc := client(t, url)
	publish(t, nc, "in.x", numbered("metrics message", 500))
	var body string
	waitFor(t, "500 records published", 30*time.Second, func() bool {
		_, body = scrape(t, base+"/metrics")
		return metric(body, "shardlog_published_records_total") == 500
	})
	if code, _ := scrape(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d, want 200", code)
	}
	for series, want := range map[string]float64{
		`shardlog_messages_received_total{input="nats"}`: 500, `shardlog_records_routed_total{input="nats"}`: 500,
		"shardlog_publish_shards_waiting": 0, "shardlog_publish_failed_batches_total": 0,
	} {
		if got := metric(body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	cluster, err := js.Stream(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cluster.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := metric(body, "shardlog_published_batches_total"); got != float64(info.State.Msgs) || got == 0 {
		t.Errorf("shardlog_published_batches_total = %v, the stream holds %d", got, info.State.Msgs)
	}

	cfg := info.Config
	full := cfg
	full.MaxMsgs, full.Discard = int64(info.State.Msgs), jetstream.DiscardNew
	if _, err := js.UpdateStream(ctx, full); err != nil {
		t.Fatal(err)
	}
	publish(t, nc, "in.x", numbered("refused message", 200))
	var why string
	waitFor(t, "/readyz to say the stream refuses", 30*time.Second, func() bool {
		var code int
		code, why = scrape(t, base+"/readyz")
		return code == 503 && strings.Contains(why, "retrying a batch the cluster's stream refused")
	})
	_, body = scrape(t, base+"/metrics")
	if metric(body, "shardlog_publish_shards_waiting") < 1 || metric(body, "shardlog_publish_retries_total") < 1 {
		t.Errorf("while refused: shards waiting %v, retries %v: want both at least 1",
			metric(body, "shardlog_publish_shards_waiting"), metric(body, "shardlog_publish_retries_total"))
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready again, with every record published", 30*time.Second, func() bool {
		code, _ := scrape(t, base+"/readyz")
		_, body = scrape(t, base+"/metrics")
		return code == 200 && metric(body, "shardlog_published_records_total") == 700
	})
	d.stop(t)
}

// TestRouteJetStreamCreateAndLongLines starts route on a JetStream stream
// that does not exist yet, with --js-create, and max_message_bytes 10:
// route creates the stream over its subjects, and a payload line longer
// than 10 bytes becomes pieces of 10 bytes (the last shorter), each
// routed by its own hash, as run does.
func TestRouteJetStreamCreateAndLongLines(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a,b")
	d := startRoute(t, url, "--subject", "big.>", "--js-stream", "big", "--js-create", "--js-durable", "r",
		"--max-message-bytes", "10", "--batch-max-delay", "10ms")
	if s, err := js.Stream(ctx, "big"); err != nil || !slices.Equal(s.CachedInfo().Config.Subjects, []string{"big.>"}) {
		t.Fatalf("stream big after route --js-create: %v", err)
	}
	var input []byte
	for i := range 200 {
		line := fmt.Sprintf("line %d: %s", i, strings.Repeat("x", i%30))
		input = append(input, line...)
		input = append(input, '\n')
		if _, err := js.Publish(ctx, "big.in", []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	waitAcked(t, js, "big", "r")
	d.stop(t)
	var want []string
	for _, m := range split(input, 10) {
		want = append(want, string(m))
	}
	got := byShard(streamBatches(t, ctx, js, "logs", 4), 4)
	for k, w := range shardsOf(want, 4) {
		if !slices.Equal(got[k], w) {
			t.Errorf("shard %d: %d records %.60q, want the %d pieces in order %.60q", k, len(got[k]), got[k], len(w), w)
		}
	}
	if !d.stderr.Contains("messages longer than max_message_bytes were split") {
		t.Errorf("route did not warn of split lines: %s", d.stderr.String())
	}
}
