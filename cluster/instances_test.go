package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		pinnedTTL, every, ttl time.Duration
	}{
		{time.Second, time.Second, 3 * time.Second},
		{2 * time.Second, time.Second, 3 * time.Second},
		{3 * time.Second, 1500 * time.Millisecond, 5 * time.Second}, // 4.5s rounded up
		{5 * time.Second, 2500 * time.Millisecond, 8 * time.Second},
		{20 * time.Second, 10 * time.Second, 30 * time.Second},
		{10 * time.Minute, 10 * time.Second, 30 * time.Second},
	} {
		every, ttl := Heartbeat(tc.pinnedTTL)
		if every != tc.every || ttl != tc.ttl {
			t.Errorf("Heartbeat(%s) = %s, %s; want %s, %s", tc.pinnedTTL, every, ttl, tc.every, tc.ttl)
		}
	}
}

func TestPresenceBackoff(t *testing.T) {
	for _, tc := range []struct {
		every    time.Duration
		failures int
		want     time.Duration
	}{
		{time.Second, 0, time.Second},
		{time.Second, 1, 2 * time.Second},
		{time.Second, 5, 32 * time.Second},
		{time.Second, 6, time.Minute},
		{time.Second, 1000, time.Minute},
		{2500 * time.Millisecond, 2, 10 * time.Second},
		{10 * time.Second, 0, 10 * time.Second},
		{10 * time.Second, 3, time.Minute},
	} {
		p := &Presence{every: tc.every, failures: tc.failures}
		if got := p.next(); got != tc.want {
			t.Errorf("every %s, %d failures: next write in %s, want %s", tc.every, tc.failures, got, tc.want)
		}
	}
}

func TestDecodeInstance(t *testing.T) {
	seen := time.Date(2026, 12, 3, 13, 0, 0, 0, time.UTC)
	in := Instance{Cluster: "logs", Member: "a", ID: "00ff", Host: "h1", PID: 42, Started: seen.Add(-time.Hour),
		Version: "v1", Pin: "PIN1", PinSeen: seen, Heartbeat: "1s", TTL: "3s"}
	good, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"pin_id":"PIN1"`, `"pin_seen":"2026-12-03T13:00:00Z"`, `"host":"h1"`, `"pid":42`} {
		if !strings.Contains(string(good), field) {
			t.Errorf("encoded entry lacks %s: %s", field, good)
		}
	}
	unpinned, err := json.Marshal(Instance{Cluster: "logs", Member: "a", ID: "00ff"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(unpinned), "pin") {
		t.Errorf("an entry without a pin has pin fields: %s", unpinned)
	}
	for _, tc := range []struct {
		name, key, value string
		want             string // error text; empty: decodes to in
	}{
		{"good", "logs.a.00ff", string(good), ""},
		{"other key", "logs.b.00ff", string(good), `instance logs.b.00ff in bucket shardlog_instances: entry names cluster "logs", member "a", id "00ff"`},
		{"not json", "logs.a.00ff", "{", "instance logs.a.00ff in bucket shardlog_instances: unexpected end of JSON input"},
		{"wrong type", "logs.a.00ff", `{"pid":"x"}`, "instance logs.a.00ff in bucket shardlog_instances: json: cannot unmarshal"},
	} {
		got, err := DecodeInstance(tc.key, []byte(tc.value))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want == "" && got != in:
			t.Errorf("%s: decoded %+v, want %+v", tc.name, got, in)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestSelect(t *testing.T) {
	ins := func(pins ...string) []Instance {
		var out []Instance
		for i, p := range pins {
			out = append(out, Instance{ID: string(rune('0' + i)), Pin: p})
		}
		return out
	}
	ids := func(in []Instance) string {
		var s []string
		for _, i := range in {
			s = append(s, i.ID)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name      string
		instances []Instance
		pin       string
		active    string // ID, or "" for none
		standbys  string
	}{
		{"none running", nil, "P", "", ""},
		{"none pinned yet", ins("", ""), "", "", "0,1"},
		{"an empty pin is no match", ins("", "P"), "", "", "0,1"},
		{"second holds the pin", ins("", "P"), "P", "1", "0"},
		{"an old pin is a standby's", ins("OLD", "P"), "P", "1", "0"},
		{"pinned to none listed", ins("OLD", ""), "P", "", "0,1"},
		{"first of two with the pin", ins("P", "P", ""), "P", "0", "1,2"},
	} {
		active, standbys := Select(tc.instances, Pin{ID: tc.pin})
		got := ""
		if active != nil {
			got = active.ID
		}
		if got != tc.active || ids(standbys) != tc.standbys {
			t.Errorf("%s: active %q, standbys %q; want %q, %q", tc.name, got, ids(standbys), tc.active, tc.standbys)
		}
	}
}

// listed returns the instances of cluster name, failing on any error or
// skipped entry.
func listed(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) []Instance {
	t.Helper()
	ins, skipped, err := Instances(ctx, js, name)
	if err != nil || len(skipped) > 0 {
		t.Fatalf("Instances(%s): %v, skipped %v", name, err, skipped)
	}
	return ins
}

// TestPresence checks, against a real server, that Register writes the
// entry (making the bucket), that a new pin is written at once rather
// than at the next heartbeat, that stopping Run removes the entry, that
// an entry nobody refreshes expires after its time to live, and that
// deleteInstances removes one cluster's entries only.
func TestPresence(t *testing.T) {
	js := jetStream(t)
	ctx := testContext(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if ins := listed(t, ctx, js, "logs"); len(ins) != 0 {
		t.Fatalf("instances without a bucket: %v", ins)
	}
	l := &Layout{Name: "logs", Replicas: 1}
	// Heartbeats every 10s: a pin written before that came from SawPin.
	p := NewPresence(js, l, "a", 10*time.Minute, "v1", log)
	p.Register(ctx)
	host, _ := os.Hostname()
	ins := listed(t, ctx, js, "logs")
	if len(ins) != 1 || ins[0] != p.Entry() || ins[0].Host != host || ins[0].PID != os.Getpid() || ins[0].TTL != "30s" {
		t.Fatalf("after Register: %+v, want %+v", ins, p.Entry())
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.Run(runCtx) }()
	saw := time.Now()
	p.SawPin("PIN1")
	for ins = listed(t, ctx, js, "logs"); ins[0].Pin != "PIN1"; ins = listed(t, ctx, js, "logs") {
		if time.Since(saw) > 9*time.Second {
			t.Fatal("the new pin was not written before the next heartbeat")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
	if ins := listed(t, ctx, js, "logs"); len(ins) != 0 {
		t.Errorf("after Run stopped: %v", ins)
	}

	// Registered and never refreshed, as an instance killed: it expires.
	dead := NewPresence(js, l, "a", 2*time.Second, "v1", log) // a time to live of 3s
	dead.Register(ctx)
	if ins := listed(t, ctx, js, "logs"); len(ins) != 1 || ins[0].ID != dead.Entry().ID {
		t.Fatalf("after Register: %v", ins)
	}
	for deadline := time.Now().Add(20 * time.Second); len(listed(t, ctx, js, "logs")) > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("an entry not refreshed is still there after 20s (time to live 3s)")
		}
	}

	for _, name := range []string{"logs", "logs", "other"} {
		NewPresence(js, &Layout{Name: name, Replicas: 1}, "a", time.Minute, "", log).Register(ctx)
	}
	if err := deleteInstances(ctx, js, "logs"); err != nil {
		t.Fatal(err)
	}
	if ins := listed(t, ctx, js, "logs"); len(ins) != 0 {
		t.Errorf("logs after deleteInstances: %v", ins)
	}
	if ins := listed(t, ctx, js, "other"); len(ins) != 1 {
		t.Errorf("other after deleteInstances of logs: %v", ins)
	}
}

// TestPinned checks that Pinned reports no pin for a missing durable and
// for one that has delivered nothing yet, and the id the server puts in
// the Nats-Pin-Id header once it delivers.
func TestPinned(t *testing.T) {
	js := jetStream(t)
	ctx := testContext(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.*"}}); err != nil {
		t.Fatal(err)
	}
	if pin, err := Pinned(ctx, js, "S", "D", "a"); err != nil || pin != (Pin{}) {
		t.Fatalf("missing durable: %v, %v", pin, err)
	}
	c, err := js.CreateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: "D", AckPolicy: jetstream.AckExplicitPolicy,
		PriorityGroups: []string{"a"}, PriorityPolicy: jetstream.PriorityPolicyPinned, PinnedTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if pin, err := Pinned(ctx, js, "S", "D", "a"); err != nil || pin != (Pin{}) {
		t.Fatalf("nothing delivered: %v, %v", pin, err)
	}
	if _, err := js.Publish(ctx, "s.1", []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(1, jetstream.FetchPriorityGroup("a"), jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var header string
	for m := range batch.Messages() {
		header = m.Headers().Get("Nats-Pin-Id")
	}
	pin, err := Pinned(ctx, js, "S", "D", "a")
	if err != nil || header == "" || pin.ID != header || pin.Since.IsZero() {
		t.Errorf("after a delivery: %+v, %v; header %q", pin, err, header)
	}
	if other, err := Pinned(ctx, js, "S", "D", "b"); err != nil || other != (Pin{}) {
		t.Errorf("another group: %v, %v", other, err)
	}
}
