package test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// asyncErrors collects the asynchronous errors (permission violations)
// the server reports to a client connection.
type asyncErrors struct {
	mu   sync.Mutex
	errs []error
}

func (a *asyncErrors) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.errs = append(a.errs, err)
}

// has reports whether an error mentioning every one of subs was reported.
func (a *asyncErrors) has(subs ...string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, err := range a.errs {
		if contains(strings.ToLower(err.Error()), subs...) == nil {
			return true
		}
	}
	return false
}

func (a *asyncErrors) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return fmt.Sprint(a.errs)
}

// TestEmbeddedLeastPrivilege: a client of the embedded server without
// credentials (a separate nats.go connection) may publish to
// nats.subjects, and that lands; it may not subscribe to the subjects or
// to '>' (refused, and it receives no log line), nor delete the JetStream
// stream (refused, and the stream and shardlog go on).
func TestEmbeddedLeastPrivilege(t *testing.T) {
	const n = 4
	dir, store := t.TempDir(), t.TempDir()
	d := startNATS(t, "run", "-n", fmt.Sprint(n), "-d", dir, "--nats-embedded", "--nats-embedded-listen", "127.0.0.1:0",
		"--nats-embedded-store", store, "--js-stream", "LOGS", "--js-create", "--subject", "logs.>", "--batch-max-delay", "10ms")
	url := embeddedURL(t, d)

	var errs asyncErrors
	spy := client(t, url, nats.ErrorHandler(errs.handler))
	got := make(chan *nats.Msg, 1000)
	for _, subj := range []string{">", "logs.>", "logs.api", "_SHARDLOG_INBOX.>"} {
		if _, err := spy.ChanSubscribe(subj, got); err != nil {
			t.Fatalf("subscribe %s: %v", subj, err)
		}
		waitFor(t, "the subscription to "+subj+" to be refused", 30*time.Second, func() bool {
			return errs.has("permissions violation", "subscription to \""+strings.ToLower(subj)+"\"")
		})
	}
	// Replies may be received (a JetStream publisher's acks), but
	// shardlog's pulls are not delivered there.
	replies := make(chan *nats.Msg, 1000)
	if _, err := spy.ChanSubscribe("_INBOX.>", replies); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}

	// A stream delete is refused: the request gets no answer but the
	// server's permission error.
	js, err := jetstream.New(spy)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, "LOGS"); err == nil {
		t.Fatal("a client without credentials deleted stream LOGS")
	}
	waitFor(t, "the stream delete to be refused", 30*time.Second, func() bool {
		return errs.has("permissions violation", "publish to \"$js.api.stream.delete.logs\"")
	})

	// Publishing keeps working without credentials: plain, and with
	// JetStream's acknowledgement, which names the stream (so it still
	// exists).
	var pubErrs asyncErrors
	pub := client(t, url, nats.ErrorHandler(pubErrs.handler))
	want := numbered("least privilege", 200)
	publish(t, pub, "logs.api", want[:100])
	pjs, err := jetstream.New(pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range want[100:] {
		ack, err := pjs.Publish(context.Background(), "logs.api", []byte(m))
		if err != nil {
			t.Fatalf("JetStream publish: %v", err)
		}
		if ack.Stream != "LOGS" {
			t.Fatalf("published to stream %q, want LOGS", ack.Stream)
		}
	}
	// Publishing outside nats.subjects is refused.
	if err := pub.Publish("elsewhere", []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the publish outside nats.subjects to be refused", 30*time.Second, func() bool {
		return pubErrs.has("permissions violation", "publish to \"elsewhere\"")
	})
	waitRecords(t, dir, n, len(want))
	d.stop(t)
	checkShards(t, records(t, dir, n), want, func(m string) string { return m })
	if len(got) > 0 {
		m := <-got
		t.Errorf("a subscriber without credentials received %d messages, such as %q on %s", len(got)+1, m.Data, m.Subject)
	}
	for len(replies) > 0 {
		if m := <-replies; strings.Contains(string(m.Data), "least privilege") {
			t.Fatalf("a subscriber to _INBOX.> received a log line: %q on %s", m.Data, m.Subject)
		}
	}
	if strings.Contains(d.stderr.String(), "consumer deleted") {
		t.Errorf("shardlog's consumer was deleted: %s", d.stderr.String())
	}
	// shardlog's own secret is given to the server as a bcrypt hash: a
	// user must not be warned at every start of a password shardlog made.
	if strings.Contains(d.stderr.String(), "Plaintext passwords") {
		t.Errorf("the embedded server warns of a plaintext password: %s", d.stderr.String())
	}
}

// TestEmbeddedToken: with an embedded_config whose authorization is a
// token, only token holders are admitted: a client without it is refused,
// one with it publishes, and that lands. shardlog's own connection uses
// nats.token; the file's listen applies, as nats.embedded_listen is left
// at its default.
func TestEmbeddedToken(t *testing.T) {
	const n, token = 4, "s3cret-embedded-token"
	conf := writeFile(t, "nats.conf", []byte("listen: \"127.0.0.1:-1\"\nauthorization { token: \""+token+"\" }\n"))
	t.Setenv("SHARDLOG_NATS_TOKEN", token)
	dir := t.TempDir()
	d := startNATS(t, "run", "-n", fmt.Sprint(n), "-d", dir, "--nats-embedded", "--nats-embedded-config", conf,
		"--subject", "logs.>", "--batch-max-delay", "10ms")
	url := embeddedURL(t, d)
	if strings.HasSuffix(url, ":4222") {
		t.Errorf("listening on %s: the default of nats.embedded_listen overrode the file's listen", url)
	}
	if _, err := nats.Connect(url); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Errorf("a client without the token: connect error %v, want an authorization violation", err)
	}
	if _, err := nats.Connect(url, nats.Token("wrong")); err == nil {
		t.Error("a client with a wrong token was admitted")
	}
	want := numbered("token holder", 100)
	publish(t, client(t, url, nats.Token(token)), "logs.t", want)
	waitRecords(t, dir, n, len(want))
	d.stop(t)
	checkShards(t, records(t, dir, n), want, func(m string) string { return m })
	noSecrets(t, d.stderr.String(), []string{token})
}

// TestEmbeddedRefused: configurations that would expose the embedded
// server, contradict themselves or cannot work exit 2 naming the keys,
// before anything is created: no shard directory, no store directory.
func TestEmbeddedRefused(t *testing.T) {
	cases := []struct {
		name    string
		conf    string   // nats.embedded_config's content, if any
		env     []string // SHARDLOG_* variables, alternating names and values
		args    []string
		noStore bool // no --nats-embedded-store
		want    []string
	}{
		{name: "not loopback", args: []string{"--nats-embedded-listen", "0.0.0.0:0"},
			want: []string{"nats.embedded_listen", "0.0.0.0:0", "not a loopback address", "nats.embedded_config", "authorization"}},
		{name: "not loopback from the file", conf: "listen: \"0.0.0.0:-1\"\n",
			want: []string{"nats.embedded_listen", "0.0.0.0", "not a loopback address", "authorization"}},
		{name: "file without authorization", conf: "max_payload: 65536\n", args: []string{"--nats-embedded-listen", "[::]:0"},
			want: []string{"nats.embedded_listen", "[::]:0", "not a loopback address"}},
		{name: "listen conflict", conf: "listen: \"127.0.0.1:4333\"\n", args: []string{"--nats-embedded-listen", "127.0.0.1:0"},
			want: []string{"nats.embedded_listen", "127.0.0.1:0", "nats.embedded_config", "127.0.0.1:4333", "differ"}},
		{name: "listen conflict from the environment", conf: "port: 4333\n", env: []string{"SHARDLOG_NATS_EMBEDDED_LISTEN", "127.0.0.1:4334"},
			want: []string{"nats.embedded_listen", "127.0.0.1:4334", "4333", "differ"}},
		{name: "store conflict", conf: "jetstream { store_dir: \"/nonexistent/a\" }\n",
			args: []string{"--nats-embedded-listen", "127.0.0.1:0"},
			want: []string{"nats.embedded_store_dir", "nats.embedded_config", "/nonexistent/a", "differ"}},
		{name: "user ignored", env: []string{"SHARDLOG_NATS_USER", "alice", "SHARDLOG_NATS_PASSWORD", "pw"},
			args: []string{"--nats-embedded-listen", "127.0.0.1:0"},
			want: []string{"nats.user", "embedded", "authorization"}},
		{name: "token without file authorization", conf: "max_payload: 65536\n", env: []string{"SHARDLOG_NATS_TOKEN", "tok"},
			args: []string{"--nats-embedded-listen", "127.0.0.1:0"},
			want: []string{"nats.token", "authorization"}},
		{name: "authorization without credentials", conf: "authorization { token: \"x\" }\n",
			args: []string{"--nats-embedded-listen", "127.0.0.1:0"},
			want: []string{"nats.embedded_config", "authorization", "nats.user", "nats.token"}},
		{name: "jetstream without store", args: []string{"--nats-embedded-listen", "127.0.0.1:0", "--js-stream", "LOGS"}, noStore: true,
			want: []string{"nats.jetstream.stream", "LOGS", "no JetStream", "nats.embedded_store_dir"}},
		{name: "bad file", conf: "authorization { token: \n",
			args: []string{"--nats-embedded-listen", "127.0.0.1:0"},
			want: []string{"nats.embedded_config", "nats.conf"}},
		{name: "missing file", conf: "-", args: []string{"--nats-embedded-listen", "127.0.0.1:0"},
			want: []string{"nats.embedded_config", "no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i+1 < len(tc.env); i += 2 {
				t.Setenv(tc.env[i], tc.env[i+1])
			}
			base := t.TempDir()
			dir, store := filepath.Join(base, "logs"), filepath.Join(base, "state", "jetstream")
			args := []string{"run", "-n", "4", "-d", dir, "--nats-embedded", "--subject", "logs.>"}
			if !tc.noStore {
				args = append(args, "--nats-embedded-store", store)
			}
			if tc.conf == "-" {
				args = append(args, "--nats-embedded-config", filepath.Join(base, "nats.conf"))
			} else if tc.conf != "" {
				args = append(args, "--nats-embedded-config", writeFile(t, "nats.conf", []byte(tc.conf)))
			}
			res := shardlog(t, nil, nil, append(args, tc.args...)...)
			if res.code != 2 {
				t.Errorf("exit %d, want 2: %s", res.code, res.stderr)
			}
			if err := contains(res.stderr, tc.want...); err != nil {
				t.Error(err)
			}
			for _, p := range []string{dir, filepath.Dir(store)} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists after a refused start (%v)", p, err)
				}
			}
			// check-config says the same.
			args[0] = "check-config"
			res = shardlog(t, nil, nil, append(args, tc.args...)...)
			if res.code != 2 {
				t.Errorf("check-config: exit %d, want 2: %s", res.code, res.stderr)
			}
			if err := contains(res.stderr, tc.want...); err != nil {
				t.Errorf("check-config: %v", err)
			}
		})
	}
}

// TestEmbeddedFailedStartLeavesNothing: a start that fails once the
// embedded server is set up (its port in use; the stream missing) exits 1
// and leaves no store directory, nor shard directory, behind.
func TestEmbeddedFailedStartLeavesNothing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"port in use", []string{"--nats-embedded-listen", l.Addr().String()}, []string{"nats.embedded_listen", "address already in use"}},
		{"no such stream", []string{"--nats-embedded-listen", "127.0.0.1:0", "--js-stream", "LOGS"}, []string{"LOGS", "no such stream"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			dir, state := filepath.Join(base, "logs"), filepath.Join(base, "state")
			res := shardlog(t, nil, nil, append([]string{"run", "-d", dir, "--nats-embedded", "--subject", "logs.>",
				"--nats-embedded-store", filepath.Join(state, "jetstream")}, tc.args...)...)
			if res.code != 1 {
				t.Errorf("exit %d, want 1: %s", res.code, res.stderr)
			}
			if err := contains(res.stderr, tc.want...); err != nil {
				t.Error(err)
			}
			for _, p := range []string{dir, state} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists after a failed start (%v)", p, err)
				}
			}
		})
	}
	// A store directory that was there is kept, and what it held.
	t.Run("existing store kept", func(t *testing.T) {
		state := t.TempDir()
		keep := filepath.Join(state, "keep")
		if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		res := shardlog(t, nil, nil, "run", "-d", filepath.Join(t.TempDir(), "logs"), "--nats-embedded", "--subject", "logs.>",
			"--nats-embedded-store", state, "--nats-embedded-listen", l.Addr().String())
		if res.code != 1 {
			t.Errorf("exit %d, want 1: %s", res.code, res.stderr)
		}
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("a failed start removed what was there before: %v", err)
		}
	})
}

// TestJetStreamNotEnabled: a server without JetStream is named, with how
// to enable it, rather than "no responders": exit 1 for a server given by
// URL (the current nats-server in process, and the installed binary
// started without -js).
func TestJetStreamNotEnabled(t *testing.T) {
	check := func(t *testing.T, url string) {
		res := shardlog(t, nil, nil, "run", "-d", filepath.Join(t.TempDir(), "logs"), "--nats-url", url,
			"--subject", "logs.>", "--js-stream", "LOGS")
		if res.code != 1 {
			t.Errorf("exit %d, want 1: %s", res.code, res.stderr)
		}
		if err := contains(res.stderr, "JetStream is not enabled", url, "-js", "jetstream block", "nats.jetstream.stream"); err != nil {
			t.Error(err)
		}
	}
	t.Run("current", func(t *testing.T) { check(t, natsServer(t, nil, false).ClientURL()) })
	t.Run("binary", func(t *testing.T) {
		path := natsServerBinary(t)
		cmd := exec.Command(path, "-a", "127.0.0.1", "-p", "-1")
		var out syncBuffer
		cmd.Stderr = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		var port string
		waitFor(t, "nats-server to listen", 30*time.Second, func() bool {
			if m := listenRE.FindStringSubmatch(out.String()); m != nil && strings.Contains(out.String(), "Server is ready") {
				port = m[1]
				return true
			}
			return false
		})
		check(t, "nats://127.0.0.1:"+port)
	})
}

// TestEmbeddedUsersFile: the README's example of an embedded_config with
// users: shardlog's own connection uses nats.user and nats.password (the
// file reads the password from the environment too), a user allowed to
// publish does so with JetStream acknowledgements, an anonymous client is
// refused, and a publisher subscribed to _INBOX.> (which it may be, for
// its acknowledgements) receives no log line: shardlog's JetStream pulls
// are delivered under its own prefix.
func TestEmbeddedUsersFile(t *testing.T) {
	const n = 4
	conf := writeFile(t, "nats.conf", []byte(`listen: "127.0.0.1:-1"
authorization {
  users: [
    {user: shardlog, password: $SHARDLOG_NATS_PASSWORD, permissions: {publish: ["$JS.API.>", "$JS.ACK.>"], subscribe: ["logs.>", "_SHARDLOG_INBOX.>"]}}
    {user: app, password: $APP_PASS, permissions: {publish: ["logs.>"], subscribe: ["_INBOX.>"]}}
  ]
}
`))
	setenv(t, "SHARDLOG_NATS_USER", "shardlog", "SHARDLOG_NATS_PASSWORD", "shardlog-pw-1", "APP_PASS", "app-pw-2")
	dir := t.TempDir()
	d := startNATS(t, "run", "-n", fmt.Sprint(n), "-d", dir, "--nats-embedded", "--nats-embedded-config", conf,
		"--nats-embedded-store", t.TempDir(), "--js-stream", "LOGS", "--js-create", "--subject", "logs.>", "--batch-max-delay", "10ms")
	url := embeddedURL(t, d)
	if _, err := nats.Connect(url); err == nil {
		t.Error("a client without credentials was admitted")
	}
	app := client(t, url, nats.UserInfo("app", "app-pw-2"))
	replies := make(chan *nats.Msg, 1000)
	if _, err := app.ChanSubscribe("_INBOX.>", replies); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(app)
	if err != nil {
		t.Fatal(err)
	}
	want := numbered("users file", 100)
	for _, m := range want {
		if _, err := js.Publish(context.Background(), "logs.u", []byte(m)); err != nil {
			t.Fatalf("JetStream publish as app: %v", err)
		}
	}
	waitRecords(t, dir, n, len(want))
	d.stop(t)
	checkShards(t, records(t, dir, n), want, func(m string) string { return m })
	for len(replies) > 0 {
		if m := <-replies; strings.Contains(string(m.Data), "users file") {
			t.Fatalf("a publisher subscribed to _INBOX.> received a log line: %q on %s", m.Data, m.Subject)
		}
	}
	noSecrets(t, d.stderr.String(), []string{"shardlog-pw-1", "app-pw-2"})
}
