package ingest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/shardlog/shardlog/config"
)

func TestPlanEmbedded(t *testing.T) {
	base := func() config.NATS {
		return config.NATS{Embedded: true, EmbeddedListen: "127.0.0.1:4222", Subjects: []string{"logs.>"}}
	}
	cases := []struct {
		name string
		conf string // nats.embedded_config's content; none if empty
		set  func(*config.NATS)
		// On success: the address, JetStream, and whose authorization.
		host      string
		port      int
		jetstream bool
		ownAuth   bool
		// On failure: what the *config.Error says.
		err []string
	}{
		{name: "defaults", host: "127.0.0.1", port: 4222, ownAuth: true},
		{name: "random port", set: func(n *config.NATS) { n.EmbeddedListen, n.EmbeddedListenSet = "127.0.0.1:0", true },
			host: "127.0.0.1", port: server.RANDOM_PORT, ownAuth: true},
		{name: "localhost", set: func(n *config.NATS) { n.EmbeddedListen, n.EmbeddedListenSet = "localhost:4222", true },
			host: "localhost", port: 4222, ownAuth: true},
		{name: "ipv6 loopback", set: func(n *config.NATS) { n.EmbeddedListen, n.EmbeddedListenSet = "[::1]:4222", true },
			host: "::1", port: 4222, ownAuth: true},
		{name: "store dir", set: func(n *config.NATS) { n.EmbeddedStoreDir = "/s" }, host: "127.0.0.1", port: 4222, jetstream: true, ownAuth: true},
		{name: "everywhere, no auth", set: func(n *config.NATS) { n.EmbeddedListen, n.EmbeddedListenSet = "0.0.0.0:4222", true },
			err: []string{"nats.embedded_listen", "0.0.0.0:4222", "not a loopback", "authorization"}},
		{name: "a name, no auth", set: func(n *config.NATS) { n.EmbeddedListen, n.EmbeddedListenSet = "example.org:4222", true },
			err: []string{"nats.embedded_listen", "example.org:4222"}},
		{name: "everywhere, token", conf: `listen: "0.0.0.0:4333"` + "\nauthorization { token: t }\n",
			set:  func(n *config.NATS) { n.Token = "t" },
			host: "0.0.0.0", port: 4333},
		{name: "everywhere, users", conf: "authorization { users: [{user: a, password: b}] }\n",
			set: func(n *config.NATS) {
				n.EmbeddedListen, n.EmbeddedListenSet, n.User, n.Password = "0.0.0.0:4222", true, "a", "b"
			},
			host: "0.0.0.0", port: 4222},
		{name: "accounts' users", conf: "accounts { A { users: [{user: a, password: b}] } }\nno_auth_user: a\n",
			host: "127.0.0.1", port: 4222},
		{name: "file port, key default", conf: "port: 4333\n", host: "127.0.0.1", port: 4333, ownAuth: true},
		{name: "file host, key default", conf: "host: 0.0.0.0\n", err: []string{"nats.embedded_listen", "nats.embedded_config", "0.0.0.0:4222"}},
		{name: "same listen in both", conf: `listen: "127.0.0.1:4333"`,
			set:  func(n *config.NATS) { n.EmbeddedListen, n.EmbeddedListenSet = "127.0.0.1:4333", true },
			host: "127.0.0.1", port: 4333, ownAuth: true},
		{name: "port conflict", conf: "port: 4333\n", set: func(n *config.NATS) { n.EmbeddedListen, n.EmbeddedListenSet = "127.0.0.1:4334", true },
			err: []string{"nats.embedded_listen", "127.0.0.1:4334", "4333", "differ"}},
		{name: "host conflict", conf: "host: 127.0.0.2\n", set: func(n *config.NATS) { n.EmbeddedListenSet = true },
			err: []string{"nats.embedded_listen", "127.0.0.1:4222", "127.0.0.2", "differ"}},
		{name: "file jetstream", conf: "jetstream { store_dir: /s }\n", host: "127.0.0.1", port: 4222, jetstream: true, ownAuth: true},
		{name: "same store dir", conf: "jetstream { store_dir: /s/ }\n", set: func(n *config.NATS) { n.EmbeddedStoreDir = "/s" },
			host: "127.0.0.1", port: 4222, jetstream: true, ownAuth: true},
		{name: "store dir conflict", conf: "jetstream { store_dir: /t }\n", set: func(n *config.NATS) { n.EmbeddedStoreDir = "/s" },
			err: []string{"nats.embedded_store_dir", `"/s"`, `"/t"`, "differ"}},
		{name: "stream without jetstream", set: func(n *config.NATS) { n.JetStream.Stream = "LOGS" },
			err: []string{"nats.jetstream.stream", "LOGS", "nats.embedded_store_dir", "jetstream block"}},
		{name: "stream, file jetstream", conf: "jetstream: enabled\n", set: func(n *config.NATS) { n.JetStream.Stream = "LOGS" },
			host: "127.0.0.1", port: 4222, jetstream: true, ownAuth: true},
		{name: "stream on a server by URL", set: func(n *config.NATS) { n.JetStream.Stream, n.URL = "LOGS", "nats://h:4222" },
			host: "127.0.0.1", port: 4222, ownAuth: true},
		{name: "user without file auth", set: func(n *config.NATS) { n.User, n.Password = "a", "b" }, err: []string{"nats.user", "authorization"}},
		{name: "creds without file auth", set: func(n *config.NATS) { n.CredsFile = "/c" }, err: []string{"nats.creds_file"}},
		{name: "user for a server by URL", set: func(n *config.NATS) { n.User, n.URL = "a", "nats://h:4222" },
			host: "127.0.0.1", port: 4222, ownAuth: true},
		{name: "file auth, no credentials", conf: "authorization { token: t }\n",
			err: []string{"nats.embedded_config", "authorization", "nats.token"}},
		{name: "cluster without auth", conf: "cluster { listen: \"127.0.0.1:6222\" }\n", err: []string{"nats.embedded_config", "cluster", "authorization"}},
		{name: "leaf nodes without auth", conf: "leafnodes { port: 7422 }\n", err: []string{"nats.embedded_config", "leafnodes"}},
		{name: "leaf nodes with auth", conf: "leafnodes { port: 7422 }\nauthorization { token: t }\n", set: func(n *config.NATS) { n.Token = "t" },
			host: "127.0.0.1", port: 4222},
		{name: "syntax error", conf: "authorization {\n", err: []string{"nats.embedded_config", "nats.conf"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			if tc.conf != "" {
				cfg.EmbeddedConfig = filepath.Join(t.TempDir(), "nats.conf")
				if err := os.WriteFile(cfg.EmbeddedConfig, []byte(tc.conf), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tc.set != nil {
				tc.set(&cfg)
			}
			p, err := planEmbedded(cfg)
			if tc.err != nil {
				if !errors.As(err, new(*config.Error)) {
					t.Fatalf("error %v, want a *config.Error", err)
				}
				for _, w := range tc.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := p.opts
			if o.Host != tc.host || o.Port != tc.port || o.JetStream != tc.jetstream || p.ownAuth != tc.ownAuth || !o.NoSigs {
				t.Errorf("host %q port %d jetstream %v own auth %v nosigs %v; want %q %d %v %v true",
					o.Host, o.Port, o.JetStream, p.ownAuth, o.NoSigs, tc.host, tc.port, tc.jetstream, tc.ownAuth)
			}
		})
	}
}

func TestLeastPrivilege(t *testing.T) {
	opts := &server.Options{}
	leastPrivilege(opts, []string{"logs.>"}, "own-hash")
	if opts.NoAuthUser != publisherUser {
		t.Fatalf("no_auth_user %q, want %q", opts.NoAuthUser, publisherUser)
	}
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	own, pub := users[ownUser], users[publisherUser]
	if own == nil || own.Password != "own-hash" || pub == nil || pub.Password != "" {
		t.Fatalf("users %+v", opts.Users)
	}
	// What a client without credentials may do: publish to the subjects
	// (but never JetStream's API or acks, even under a wide subject),
	// and read nothing but replies in _INBOX.
	if got := pub.Permissions.Publish.Allow; len(got) != 1 || got[0] != "logs.>" {
		t.Errorf("publisher may publish to %v", got)
	}
	for _, deny := range []string{"$JS.>", ownInboxPrefix + ".>"} {
		if !slices.Contains(pub.Permissions.Publish.Deny, deny) {
			t.Errorf("publisher's publish deny %v lacks %s", pub.Permissions.Publish.Deny, deny)
		}
	}
	if got := pub.Permissions.Subscribe.Allow; len(got) != 1 || got[0] != "_INBOX.>" {
		t.Errorf("publisher may subscribe to %v", got)
	}
	if got := own.Permissions.Subscribe.Allow; !slices.Contains(got, "logs.>") || !slices.Contains(got, ownInboxPrefix+".>") || slices.Contains(got, "_INBOX.>") {
		t.Errorf("shardlog may subscribe to %v", got)
	}
}

func TestPublishURL(t *testing.T) {
	cases := []struct {
		url, host string
		same      bool // the URL is used as it is
	}{
		{"nats://127.0.0.1:4222", "127.0.0.1", true},
		{"nats://example.org:4222", "example.org", true},
		{"nats://0.0.0.0:4222", "0.0.0.0", false},
		{"nats://0.0.0.0:4222", "", false},
		{"nats://[::]:4222", "::", false},
	}
	for _, tc := range cases {
		got := publishURL(tc.url, tc.host)
		if tc.same && got != tc.url {
			t.Errorf("publishURL(%q, %q) = %q, want it unchanged", tc.url, tc.host, got)
		}
		if !tc.same && (strings.Contains(got, "0.0.0.0") || strings.Contains(got, "[::]") || !strings.HasSuffix(got, ":4222")) {
			t.Errorf("publishURL(%q, %q) = %q: want an address publishers can use, port 4222", tc.url, tc.host, got)
		}
	}
}

func TestFirstMissing(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ path, want string }{
		{dir, ""},
		{filepath.Join(dir, "a"), filepath.Join(dir, "a")},
		{filepath.Join(dir, "a", "b", "c"), filepath.Join(dir, "a")},
	}
	for _, tc := range cases {
		if got, err := firstMissing(tc.path); err != nil || got != tc.want {
			t.Errorf("firstMissing(%q) = %q, %v; want %q", tc.path, got, err, tc.want)
		}
	}
}
