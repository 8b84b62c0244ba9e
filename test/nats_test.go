package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/shardlog/shardlog/internal/murmur3ref"
)

// natsServer starts a real NATS server in this process on a random
// loopback port (or opts.Port), with JetStream when jetstream is set.
func natsServer(t *testing.T, opts *server.Options, jetstream bool) *server.Server {
	t.Helper()
	if opts == nil {
		opts = &server.Options{}
	}
	opts.Host = "127.0.0.1"
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	opts.NoSigs, opts.NoLog = true, true
	if jetstream {
		opts.JetStream = true
		if opts.StoreDir == "" {
			opts.StoreDir = t.TempDir()
		}
	}
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

// client connects a publishing client to url.
func client(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// numbered returns n messages "prefix 0", "prefix 1", ...
func numbered(prefix string, n int) []string {
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("%s %d", prefix, i)
	}
	return msgs
}

// publish publishes msgs on subject with core NATS and waits until the
// server has them.
func publish(t *testing.T, nc *nats.Conn, subject string, msgs []string) {
	t.Helper()
	for _, m := range msgs {
		if err := nc.Publish(subject, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// startNATS starts shardlog with args and waits until it receives from NATS.
func startNATS(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := start(t, args...)
	waitFor(t, "shardlog to subscribe", 30*time.Second, func() bool {
		select {
		case <-d.done:
			t.Fatalf("shardlog exited: %s", d.stderr.String())
		default:
		}
		return d.stderr.Contains("receiving from NATS")
	})
	return d
}

// stop sends SIGTERM and checks that shardlog exits 0.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, d.stderr.String())
	}
}

// records returns the records of each of dir's n shard files.
func records(t *testing.T, dir string, n int) [][]string {
	t.Helper()
	files := make([][]string, n)
	for k := range n {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k)))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if len(data) > 0 {
			files[k] = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		}
	}
	return files
}

func count(files [][]string) int {
	n := 0
	for _, f := range files {
		n += len(f)
	}
	return n
}

// waitRecords waits until dir's files hold at least want records.
func waitRecords(t *testing.T, dir string, n, want int) [][]string {
	t.Helper()
	var files [][]string
	waitFor(t, fmt.Sprintf("%d records", want), 60*time.Second, func() bool {
		files = records(t, dir, n)
		return count(files) >= want
	})
	return files
}

// checkShards checks that files hold exactly the messages in want (in any
// order), each in the shard of key(message).
func checkShards(t *testing.T, files [][]string, want []string, key func(string) string) {
	t.Helper()
	n := uint32(len(files))
	expect := make([][]string, n)
	for _, m := range want {
		k := murmur3ref.Sum32([]byte(key(m)), 0) % n
		expect[k] = append(expect[k], m)
	}
	for k := range files {
		got := slices.Clone(files[k])
		slices.Sort(got)
		slices.Sort(expect[k])
		if !slices.Equal(got, expect[k]) {
			t.Errorf("shard %d: %d records, want %d", k, len(got), len(expect[k]))
		}
	}
}

func TestNATSCoreSubjectsAndWildcards(t *testing.T) {
	srv := natsServer(t, nil, false)
	dir := t.TempDir()
	d := startNATS(t, "run", "-n", "8", "-d", dir, "--nats-url", srv.ClientURL(),
		"--subject", "logs.>", "--subject", "audit.*", "--batch-max-delay", "10ms")
	nc := client(t, srv.ClientURL())
	var want []string
	subjects := []string{"logs.api", "logs.api.v2", "audit.login", "audit.login.extra", "other"}
	for i := range 3000 {
		subj := subjects[i%len(subjects)]
		msg := fmt.Sprintf("%s message %d \xff\x00 end", subj, i)
		payload := msg
		if i%2 == 0 {
			payload += "\n" // one trailing newline is not part of the message
		}
		if err := nc.Publish(subj, []byte(payload)); err != nil {
			t.Fatal(err)
		}
		// audit.* does not match audit.login.extra; nothing matches other.
		if subj != "audit.login.extra" && subj != "other" {
			want = append(want, msg)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	files := waitRecords(t, dir, 8, len(want))
	d.stop(t)
	files = records(t, dir, 8)
	checkShards(t, files, want, func(m string) string { return m })
	// Records from one subscription keep their order within a file.
	for k, f := range files {
		var api []string
		for _, r := range f {
			if strings.HasPrefix(r, "logs.api message") {
				api = append(api, r)
			}
		}
		if !slices.IsSortedFunc(api, func(a, b string) int { return msgNum(a) - msgNum(b) }) {
			t.Errorf("shard %d: logs.api records out of order", k)
		}
	}
}

var numRE = regexp.MustCompile(`message (\d+)`)

func msgNum(s string) int {
	var n int
	fmt.Sscan(numRE.FindStringSubmatch(s)[1], &n)
	return n
}

func TestNATSRoutingKeys(t *testing.T) {
	srv := natsServer(t, nil, false)
	type msg struct {
		subject, tenant, payload string
	}
	var msgs []msg
	for i := range 400 {
		m := msg{subject: fmt.Sprintf("logs.svc%d", i%7), payload: fmt.Sprintf(`{"user":"u%d","n":%d}`, i%13, i)}
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
		keyOf func(msg) (string, bool)
	}{
		{"message", func(m msg) (string, bool) { return m.payload, true }},
		{"subject", func(m msg) (string, bool) { return m.subject, true }},
		{"header:X-Tenant", func(m msg) (string, bool) { return m.tenant, m.tenant != "" }},
		{"json:user", func(m msg) (string, bool) {
			var v struct{ User *string }
			if json.Unmarshal([]byte(m.payload), &v) != nil || v.User == nil {
				return "", false
			}
			return *v.User, true
		}},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			dir := t.TempDir()
			d := startNATS(t, "run", "-n", "5", "-d", dir, "--nats-url", srv.ClientURL(),
				"--subject", "logs.*", "--key", tc.key, "--batch-max-delay", "10ms")
			nc := client(t, srv.ClientURL())
			keys := map[string]string{}
			fallbacks := 0
			for _, m := range msgs {
				nm := nats.NewMsg(m.subject)
				nm.Data = []byte(m.payload)
				if m.tenant != "" {
					nm.Header.Set("X-Tenant", m.tenant)
				}
				if err := nc.PublishMsg(nm); err != nil {
					t.Fatal(err)
				}
				k, ok := tc.keyOf(m)
				if !ok {
					k = m.payload // the documented fallback: the whole message
					fallbacks++
				}
				keys[m.payload] = k
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			waitRecords(t, dir, 5, len(msgs))
			d.stop(t)
			var want []string
			for _, m := range msgs {
				want = append(want, m.payload)
			}
			checkShards(t, records(t, dir, 5), want, func(p string) string { return keys[p] })
			if err := contains(d.stderr.String(), fmt.Sprintf("key_fallbacks=%d", fallbacks)); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestNATSQueueGroupSharesWork(t *testing.T) {
	srv := natsServer(t, nil, false)
	dirs := []string{t.TempDir(), t.TempDir()}
	var ds []*daemon
	for _, dir := range dirs {
		ds = append(ds, startNATS(t, "run", "-n", "4", "-d", dir, "--nats-url", srv.ClientURL(),
			"--subject", "logs.>", "--queue", "writers", "--batch-max-delay", "10ms"))
	}
	want := numbered("queued message", 4000)
	publish(t, client(t, srv.ClientURL()), "logs.q", want)
	waitFor(t, "all messages across both instances", 60*time.Second, func() bool {
		return count(records(t, dirs[0], 4))+count(records(t, dirs[1], 4)) >= len(want)
	})
	for _, d := range ds {
		d.stop(t)
	}
	a, b := records(t, dirs[0], 4), records(t, dirs[1], 4)
	if count(a) == 0 || count(b) == 0 {
		t.Errorf("one instance did all the work: %d and %d records", count(a), count(b))
	}
	union := make([][]string, 4)
	for k := range union {
		union[k] = append(slices.Clone(a[k]), b[k]...)
	}
	checkShards(t, union, want, func(m string) string { return m })
}

// TestNATSServerRestart stops the server under a running shardlog and
// starts it again on the same port: shardlog must keep running, reconnect
// and go on writing.
func TestNATSServerRestart(t *testing.T) {
	srv := natsServer(t, nil, false)
	port := srv.Addr().(interface{ String() string }).String()
	url := srv.ClientURL()
	dir := t.TempDir()
	d := startNATS(t, "run", "-n", "4", "-d", dir, "--nats-url", url, "--subject", "logs.>", "--batch-max-delay", "10ms")
	msgs := numbered("restart message", 1000)
	pub := func(from, to int) {
		nc := client(t, url)
		publish(t, nc, "logs.r", msgs[from:to])
		nc.Close()
	}
	pub(0, 500)
	waitRecords(t, dir, 4, 500)
	srv.Shutdown()
	srv.WaitForShutdown()
	waitFor(t, "shardlog to notice the disconnect", 30*time.Second, func() bool {
		return d.stderr.Contains("disconnected from NATS")
	})
	select {
	case <-d.done:
		t.Fatalf("shardlog exited while NATS was down: %s", d.stderr.String())
	case <-time.After(500 * time.Millisecond):
	}
	var p int
	fmt.Sscanf(port[strings.LastIndex(port, ":")+1:], "%d", &p)
	natsServer(t, &server.Options{Port: p}, false)
	waitFor(t, "shardlog to reconnect", 60*time.Second, func() bool { return d.stderr.Contains("reconnected to NATS") })
	// Core NATS keeps nothing for absent subscribers: wait until the
	// resubscription is in place by publishing probes until one lands.
	nc := client(t, url)
	waitFor(t, "the subscription to come back", 30*time.Second, func() bool {
		if err := nc.Publish("logs.r", []byte("probe")); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		return bytes.Contains(readAll(t, dir, 4), []byte("probe\n"))
	})
	pub(500, 1000)
	waitRecords(t, dir, 4, 1001)
	d.stop(t)
	all := string(readAll(t, dir, 4))
	for i := range 1000 {
		if !strings.Contains(all, fmt.Sprintf("restart message %d\n", i)) {
			t.Fatalf("message %d missing after the restart", i)
		}
	}
}

// TestNATSUnreachableAtStartup: with no server at the address, run exits 1
// at once, naming the address, and creates nothing.
func TestNATSUnreachableAtStartup(t *testing.T) {
	srv := natsServer(t, nil, false)
	url := srv.ClientURL()
	srv.Shutdown()
	srv.WaitForShutdown()
	dir := filepath.Join(t.TempDir(), "out")
	res := shardlog(t, nil, nil, "run", "-n", "4", "-d", dir, "--nats-url", url, "--subject", "logs.>")
	if res.code != 1 {
		t.Errorf("exit %d, want 1: %s", res.code, res.stderr)
	}
	if err := contains(res.stderr, "connect to NATS", url); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s exists after a failed start (%v)", dir, err)
	}
}

// TestNATSSlowConsumerIsCounted makes the client's buffer one message deep
// and floods it: the drops must be logged and counted, and every message
// published must be either written or counted as dropped.
func TestNATSSlowConsumerIsCounted(t *testing.T) {
	srv := natsServer(t, nil, false)
	dir := t.TempDir()
	t.Setenv("SHARDLOG_NATS_PENDING_MSGS", "1")
	d := startNATS(t, "run", "-n", "4", "-d", dir, "--nats-url", srv.ClientURL(), "--subject", "logs.>")
	const total = 50000
	publish(t, client(t, srv.ClientURL()), "logs.flood", numbered("flood", total))
	waitFor(t, "the slow consumer to be logged", 30*time.Second, func() bool { return d.stderr.Contains("slow consumer") })
	// Stopping drains: everything the client took is written, and what it
	// dropped is counted.
	d.stop(t)
	m := regexp.MustCompile(`written=(\d+) .*slow_consumer=(\d+) dropped=(\d+)`).FindStringSubmatch(d.stderr.String())
	if m == nil {
		t.Fatalf("no summary: %s", d.stderr.String())
	}
	var written, slow, dropped int
	fmt.Sscan(m[1], &written)
	fmt.Sscan(m[2], &slow)
	fmt.Sscan(m[3], &dropped)
	if slow == 0 || dropped == 0 {
		t.Errorf("slow_consumer=%d dropped=%d, want both counted", slow, dropped)
	}
	if written+dropped != total || written != count(records(t, dir, 4)) {
		t.Errorf("written %d + dropped %d != %d published (files hold %d)", written, dropped, total, count(records(t, dir, 4)))
	}
}

// TestNATSPayloadLines: a payload is framed like standard input, so a
// publisher cannot put lines of one shard into another's file: each line
// is a message of its own, routed by its own hash; with the subject as the
// key every line goes to the subject's shard; a JetStream message is
// acknowledged once all its lines (and the pieces of a long one) are
// written. Payloads of several lines are counted.
func TestNATSPayloadLines(t *testing.T) {
	payloads := []string{
		"first\nsecond",
		"one line\n",
		"a\n\nb\n",                    // an empty line between
		"\n",                          // one empty message
		"",                            // one empty message
		"x\r\ny\r\n",                  // \r belongs to the line
		"trailing\n\n",                // a line, then an empty one
		"\xff\x00\nend",               // odd bytes pass through
		"0123456789abcdefghij\nshort", // cut at max_message_bytes 8
	}
	var stream []byte // the payloads as a stdin stream frames them
	for _, p := range payloads {
		p = strings.TrimSuffix(p, "\n")
		stream = append(append(stream, p...), '\n')
	}
	msgs := split(stream, 8)
	multiline := 0
	for _, p := range payloads {
		if strings.Contains(strings.TrimSuffix(p, "\n"), "\n") {
			multiline++
		}
	}
	setenv(t, "SHARDLOG_MAX_MESSAGE_BYTES", "8")

	// core publishes the payloads with core NATS to a shardlog started
	// with extra arguments, and stops it once every line is written.
	core := func(t *testing.T, extra ...string) (dir string, d *daemon) {
		srv := natsServer(t, nil, false)
		dir = t.TempDir()
		d = startNATS(t, append([]string{"run", "-n", "4", "-d", dir, "--nats-url", srv.ClientURL(), "--subject", "logs.>",
			"--batch-max-delay", "10ms"}, extra...)...)
		publish(t, client(t, srv.ClientURL()), "logs.lines", payloads)
		waitFor(t, "every line", 30*time.Second, func() bool { return bytes.Count(readAll(t, dir, 4), []byte{'\n'}) >= len(msgs) })
		d.stop(t)
		return dir, d
	}

	t.Run("core by message", func(t *testing.T) {
		dir, d := core(t)
		checkFiles(t, dir, "shard-%03d.log", expect(msgs, 4, 0))
		if err := contains(d.stderr.String(), fmt.Sprintf("messages=%d multiline=%d written=%d", len(payloads), multiline, len(msgs))); err != nil {
			t.Error(err)
		}
	})

	t.Run("core by subject", func(t *testing.T) {
		dir, _ := core(t, "--key", "subject")
		want := make([][]byte, 4)
		k := murmur3ref.Sum32([]byte("logs.lines"), 0) % 4
		for _, m := range msgs {
			want[k] = append(append(want[k], m...), '\n')
		}
		checkFiles(t, dir, "shard-%03d.log", want)
	})

	t.Run("jetstream", func(t *testing.T) {
		eachJetStreamServer(t, func(t *testing.T, srv *jsServer) {
			dir := t.TempDir()
			d := startNATS(t, "run", "-n", "4", "-d", dir, "--nats-url", srv.url, "--subject", "logs.>",
				"--js-stream", "LOGS", "--js-create", "--batch-max-delay", "10ms")
			js := jsClient(t, srv.url)
			for _, p := range payloads {
				if _, err := js.Publish(context.Background(), "logs.lines", []byte(p)); err != nil {
					t.Fatal(err)
				}
			}
			waitAcked(t, js, "LOGS", "shardlog")
			// Acknowledged means written: the files are complete already.
			checkFiles(t, dir, "shard-%03d.log", expect(msgs, 4, 0))
			d.stop(t)
			checkFiles(t, dir, "shard-%03d.log", expect(msgs, 4, 0))
		})
	})
}
