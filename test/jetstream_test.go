package test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// distinct returns the set of records in files and how many records
// stand more than once.
func distinct(files [][]string) (map[string]bool, int) {
	seen := map[string]bool{}
	dups := 0
	for _, f := range files {
		for _, r := range f {
			if seen[r] {
				dups++
			}
			seen[r] = true
		}
	}
	return seen, dups
}

// TestJetStreamCrashAndRestart kills shardlog with SIGKILL while messages
// stream in, starts it again, and checks that every message published is
// in its file at least once: JetStream messages are acknowledged only
// once written, so what the killed process had not written is redelivered.
// Then it stops a run cleanly in mid-stream and checks the accounting.
func TestJetStreamCrashAndRestart(t *testing.T) {
	eachJetStreamServer(t, testJetStreamCrashAndRestart)
}

func testJetStreamCrashAndRestart(t *testing.T, srv *jsServer) {
	// What the killed process received but did not acknowledge comes back
	// after the ack wait.
	t.Setenv("SHARDLOG_NATS_JETSTREAM_ACK_WAIT", "2s")
	dir := t.TempDir()
	args := []string{"run", "-n", "8", "-d", dir, "--nats-url", srv.url, "--subject", "logs.>",
		"--js-stream", "LOGS", "--js-create", "--sync", "batch", "--batch-max-delay", "10ms"}
	first := startNATS(t, args...)

	nc := client(t, srv.url)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const total = 20000
	var want []string
	for i := range total {
		want = append(want, fmt.Sprintf("js message %05d", i))
	}
	pubs := publishJS(t, js, want)
	waitRecords(t, dir, 8, 3000)
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	pubs.wait(t)
	killedAt := count(records(t, dir, 8))

	second := startNATS(t, args...)
	waitFor(t, "every message after the restart", 60*time.Second, func() bool {
		seen, _ := distinct(records(t, dir, 8))
		return len(seen) >= total
	})
	// What the killed process wrote but had not acknowledged comes back
	// once its ack wait ends; the second process writes it again and
	// acknowledges it.
	cons, err := js.Consumer(context.Background(), "LOGS", "shardlog")
	if err != nil {
		t.Fatal(err)
	}
	info := func() *jetstream.ConsumerInfo {
		i, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	settled := func() bool { i := info(); return i.NumAckPending == 0 && i.NumPending == 0 }
	waitFor(t, "every message acknowledged", 60*time.Second, settled)

	files := records(t, dir, 8)
	seen, dups := distinct(files)
	for _, m := range want {
		if !seen[m] {
			t.Fatalf("%q lost", m)
		}
	}
	if len(seen) != total {
		t.Errorf("%d distinct records, want %d", len(seen), total)
	}
	checkShards(t, dedupe(files), want, func(m string) string { return m })
	t.Logf("killed after %d records; %d duplicates after the restart", killedAt, dups)

	// A clean stop in mid-stream acknowledges everything it wrote. A few
	// messages the server sent as the subscription closed may not have
	// reached it (NATS marks them delivered all the same): they come back
	// after the ack wait, to the next run.
	var more []string
	for i := range total {
		more = append(more, fmt.Sprintf("js message %05d after the restart", i))
	}
	pubs = publishJS(t, js, more)
	waitFor(t, "messages after the restart", 60*time.Second, func() bool {
		seen, _ := distinct(records(t, dir, 8))
		return len(seen) >= total+1000
	})
	second.stop(t)
	pubs.wait(t)
	// Duplicates so far include redeliveries during the second run (its
	// acks can miss the 2 s ack wait on a loaded machine): only those the
	// third run adds are the clean stop's.
	seen, dupsAtStop := distinct(records(t, dir, 8))
	written := len(seen) - total
	// The server applies acknowledgements after it has received them: poll.
	// A message whose ack wait (2 s here) ran out while it waited in
	// shardlog is redelivered; older servers then ignore the ack of its
	// first delivery, so it counts as written and as unacknowledged, and
	// comes back once more. The server counts such messages: allow for
	// them, and for nothing else.
	var last *jetstream.ConsumerInfo
	waitFor(t, "written + unacknowledged + undelivered to equal what was published", 10*time.Second, func() bool {
		last = info()
		sum := written + last.NumAckPending + int(last.NumPending)
		return sum >= total && sum <= total+last.NumRedelivered
	})
	t.Logf("stopped after writing %d of %d messages; %d in flight (%d of them redelivered), %d undelivered",
		written, total, last.NumAckPending, last.NumRedelivered, last.NumPending)

	third := startNATS(t, args...)
	waitFor(t, "every message acknowledged after the clean stop", 60*time.Second, settled)
	third.stop(t)
	files = records(t, dir, 8)
	seen, dups2 := distinct(files)
	if len(seen) != 2*total {
		t.Errorf("%d distinct records, want %d", len(seen), 2*total)
	}
	if again := dups2 - dupsAtStop; again > last.NumRedelivered {
		t.Errorf("%d messages written again after the clean stop, want at most the %d redelivered before it", again, last.NumRedelivered)
	}
	checkShards(t, dedupe(files), append(want, more...), func(m string) string { return m })
}

// publishing is a publisher running in the background.
type publishing struct {
	wg  sync.WaitGroup
	err error
}

// publishJS publishes msgs to logs.s0, logs.s1 and logs.s2 in turn, in
// the background, waiting for the stream's acknowledgements.
func publishJS(t *testing.T, js jetstream.JetStream, msgs []string) *publishing {
	t.Helper()
	p := &publishing{}
	p.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i, m := range msgs {
			if _, err := js.PublishAsync(fmt.Sprintf("logs.s%d", i%3), []byte(m)); err != nil {
				p.err = err
				return
			}
			if i%1000 == 999 || i == len(msgs)-1 {
				select {
				case <-js.PublishAsyncComplete():
				case <-ctx.Done():
					p.err = ctx.Err()
					return
				}
			}
		}
	})
	return p
}

// wait waits until every message is published.
func (p *publishing) wait(t *testing.T) {
	t.Helper()
	p.wg.Wait()
	if p.err != nil {
		t.Fatal(p.err)
	}
}

// dedupe drops repeated records, keeping the first.
func dedupe(files [][]string) [][]string {
	out := make([][]string, len(files))
	seen := map[string]bool{}
	for k, f := range files {
		for _, r := range f {
			if !seen[r] {
				seen[r] = true
				out[k] = append(out[k], r)
			}
		}
	}
	return out
}

var urlRE = regexp.MustCompile(`embedded NATS server listening"? url=(nats://\S+)`)

// embeddedURL waits for d to log its embedded server's address.
func embeddedURL(t *testing.T, d *daemon) string {
	t.Helper()
	var url string
	waitFor(t, "the embedded server's address", 30*time.Second, func() bool {
		m := urlRE.FindStringSubmatch(d.stderr.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	})
	return url
}

func TestEmbeddedServer(t *testing.T) {
	cases := []struct {
		name      string
		jetstream bool
	}{
		{"core", false},
		{"jetstream", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"run", "-n", "4", "-d", dir, "--nats-embedded", "--nats-embedded-listen", "127.0.0.1:0",
				"--subject", "logs.>", "--batch-max-delay", "10ms"}
			if tc.jetstream {
				args = append(args, "--nats-embedded-store", t.TempDir(), "--js-stream", "LOGS", "--js-create")
			}
			d := startNATS(t, args...)
			url := embeddedURL(t, d)
			// The address publishers use, not the client's default.
			if !regexp.MustCompile(`receiving from NATS"? url=` + regexp.QuoteMeta(url) + ` `).MatchString(d.stderr.String()) {
				t.Errorf("\"receiving from NATS\" does not name %s: %s", url, d.stderr.String())
			}
			nc := client(t, url)
			want := numbered("embedded "+tc.name+" message", 500)
			if tc.jetstream {
				js, err := jetstream.New(nc)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range want {
					if _, err := js.Publish(context.Background(), "logs.e", []byte(m)); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				publish(t, nc, "logs.e", want)
			}
			waitRecords(t, dir, 4, len(want))
			d.stop(t)
			checkShards(t, records(t, dir, 4), want, func(m string) string { return m })
		})
	}
}

// TestStdinAndNATSTogether reads both inputs: the end of stdin does not
// stop the NATS input; a signal stops both.
func TestStdinAndNATSTogether(t *testing.T) {
	srv := natsServer(t, nil, false)
	dir := t.TempDir()
	d := startNATS(t, "run", "-n", "4", "-d", dir, "--nats-url", srv.ClientURL(), "--subject", "logs.>",
		"--stdin", "true", "--batch-max-delay", "10ms")
	want := []string{"from stdin 1", "from stdin 2"}
	if _, err := d.stdin.Write([]byte("from stdin 1\nfrom stdin 2\n")); err != nil {
		t.Fatal(err)
	}
	if err := d.stdin.Close(); err != nil {
		t.Fatal(err)
	}
	waitRecords(t, dir, 4, 2)
	fromNATS := numbered("from nats", 10)
	publish(t, client(t, srv.ClientURL()), "logs.x", fromNATS)
	want = append(want, fromNATS...)
	waitRecords(t, dir, 4, len(want))
	d.stop(t)
	checkShards(t, records(t, dir, 4), want, func(m string) string { return m })
}

// TestJetStreamConsumerDeleted: if the durable consumer is deleted under
// it, shardlog must not carry on idle or exit 0: it writes what it has and
// exits 1, so that a supervisor restarts it (which recreates the consumer).
func TestJetStreamConsumerDeleted(t *testing.T) {
	srv := natsServer(t, nil, true)
	dir := t.TempDir()
	d := startNATS(t, "run", "-n", "4", "-d", dir, "--nats-url", srv.ClientURL(), "--subject", "logs.>",
		"--js-stream", "LOGS", "--js-create", "--batch-max-delay", "10ms")
	nc := client(t, srv.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), "logs.a", []byte("before")); err != nil {
		t.Fatal(err)
	}
	waitRecords(t, dir, 4, 1)
	if err := js.DeleteConsumer(context.Background(), "LOGS", "shardlog"); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("exit %d after the consumer was deleted, want 1: %s", code, d.stderr.String())
	}
	if err := contains(d.stderr.String(), "NATS input stopped by itself"); err != nil {
		t.Error(err)
	}
}

// TestJetStreamServerRestart restarts the server (same port, same store)
// under a running shardlog: it must keep running, resume consuming, and
// write every message published before and after, at least once.
func TestJetStreamServerRestart(t *testing.T) {
	eachJetStreamServer(t, testJetStreamServerRestart)
}

func testJetStreamServerRestart(t *testing.T, srv *jsServer) {
	url := srv.url
	dir := t.TempDir()
	d := startNATS(t, "run", "-n", "4", "-d", dir, "--nats-url", url, "--subject", "logs.>",
		"--js-stream", "LOGS", "--js-create", "--batch-max-delay", "10ms")
	jsPublish := func(msgs []string) {
		nc := client(t, url)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if _, err := js.Publish(context.Background(), "logs.r", []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		nc.Close()
	}
	want := numbered("js restart message", 1000)
	jsPublish(want[:500])
	waitRecords(t, dir, 4, 500)
	srv.restart(t)
	waitFor(t, "shardlog to notice the disconnect", 30*time.Second, func() bool {
		return d.stderr.Contains("disconnected from NATS")
	})
	jsPublish(want[500:])
	waitFor(t, "every message after the restart", 90*time.Second, func() bool {
		seen, _ := distinct(records(t, dir, 4))
		return len(seen) >= len(want)
	})
	d.stop(t)
	seen, dups := distinct(records(t, dir, 4))
	for _, m := range want {
		if !seen[m] {
			t.Fatalf("%q lost", m)
		}
	}
	t.Logf("%d duplicates", dups)
}

// TestJetStreamLargeMessages: a JetStream message as large as the server
// allows is delivered even with the smallest nats.pending_bytes (a pull
// whose byte limit is below one message, with its subject and headers,
// would wait for it forever), and one larger than max_message_bytes is
// split into pieces like a stdin line.
func TestJetStreamLargeMessages(t *testing.T) {
	srv := natsServer(t, nil, true) // max_payload 1 MiB, the server's default
	setenv(t, "SHARDLOG_NATS_PENDING_BYTES", "1MiB", "SHARDLOG_MAX_MESSAGE_BYTES", "100KiB")
	dir := t.TempDir()
	d := startNATS(t, "run", "-n", "4", "-d", dir, "--nats-url", srv.ClientURL(), "--subject", "big.>",
		"--js-stream", "BIG", "--js-create", "--batch-max-delay", "10ms")
	nc := client(t, srv.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var in []byte
	for i, size := range []int{64 << 10, 100 << 10, 250 << 10, 10, 1<<20 - 8} {
		m := bytes.Repeat([]byte{'a' + byte(i)}, size)
		if _, err := js.Publish(context.Background(), "big.in", m); err != nil {
			t.Fatal(err)
		}
		in = append(append(in, m...), '\n')
	}
	want := expect(split(in, 100<<10), 4, 0)
	pieces := len(split(in, 100<<10))
	waitFor(t, "every message", 30*time.Second, func() bool { return len(readAll(t, dir, 4)) == len(in)+pieces-5 })
	d.stop(t)
	checkFiles(t, dir, "shard-%03d.log", want)
}

// TestJetStreamSyncInterval: with sync: interval, messages are acked after
// the interval sync that covers their records; every message is written
// and acknowledged, and the files were synced.
func TestJetStreamSyncInterval(t *testing.T) {
	srv := natsServer(t, nil, true)
	dir := t.TempDir()
	d := startNATS(t, "run", "-n", "4", "-d", dir, "--nats-url", srv.ClientURL(), "--subject", "logs.>",
		"--js-stream", "LOGS", "--js-create", "--sync", "interval", "--sync-interval", "50ms", "--batch-max-delay", "10ms")
	js := jsClient(t, srv.ClientURL())
	want := numbered("interval message", 2000)
	pubs := publishJS(t, js, want)
	pubs.wait(t)
	waitAcked(t, js, "LOGS", "shardlog")
	d.stop(t)
	checkShards(t, records(t, dir, 4), want, func(m string) string { return m })
	m := regexp.MustCompile(`syncs=(\d+)`).FindStringSubmatch(d.stderr.String())
	if m == nil || m[1] == "0" {
		t.Errorf("no syncs reported: %s", d.stderr.String())
	}
}

// waitAcked waits until durable has delivered and seen acknowledged every
// message stream held when it was called. A consumer's pending count alone
// does not say so: the server tells consumers of a stored message
// asynchronously, so right after a publish is acknowledged the consumer may
// still report nothing pending (CI saw that). It is settled once its
// acknowledgement floor reaches the stream's last message or, for a
// consumer filtered to some subjects, once the stream holds none of them
// (work-queue streams remove what was acknowledged; a filtered consumer
// of a limits stream whose last message is outside its filter would wait
// in vain: no test has one).
func waitAcked(t *testing.T, js jetstream.JetStream, stream, durable string) {
	t.Helper()
	ctx := context.Background()
	str, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	last := str.CachedInfo().State.LastSeq
	filters := cons.CachedInfo().Config.FilterSubjects
	if f := cons.CachedInfo().Config.FilterSubject; f != "" {
		filters = append(filters, f)
	}
	left := func() uint64 {
		var n uint64
		for _, f := range filters {
			i, err := str.Info(ctx, jetstream.WithSubjectFilter(f))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range i.State.Subjects {
				n += c
			}
		}
		return n
	}
	waitFor(t, "every message acknowledged", 60*time.Second, func() bool {
		i, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i.NumAckPending != 0 || i.NumPending != 0 {
			return false
		}
		return i.AckFloor.Stream >= last || len(filters) > 0 && left() == 0
	})
}
