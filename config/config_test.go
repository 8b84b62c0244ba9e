package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func writeYAML(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shardlog.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaults(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Shards != 16 || c.FilePattern != "shard-%03d.log" || c.Stdin != StdinAuto ||
		c.MaxMessageBytes != 1<<20 || c.Batch.MaxBytes != 256<<10 || c.Batch.MaxDelay != 100*time.Millisecond ||
		c.Batch.BufferBytes != 32<<20 || c.Routing.Key != "message" || c.Routing.Seed != 0 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestLayers(t *testing.T) {
	path := writeYAML(t, "shards: 8\ndir: /from/file\nrouting:\n  seed: 5\nbatch:\n  max_delay: 50ms\n  max_bytes: 64KiB\nstdin: true\n")
	t.Setenv("SHARDLOG_DIR", "/from/env")
	t.Setenv("SHARDLOG_ROUTING_SEED", "6")
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.IntP("shards", "n", 16, "")
	fs.String("dir", "", "")
	fs.Uint32("seed", 0, "")
	if err := fs.Parse([]string{"--seed", "7"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, fs)
	if err != nil {
		t.Fatal(err)
	}
	// File over defaults (shards, delay), env over file (dir), flag over env (seed).
	if c.Shards != 8 || c.Dir != "/from/env" || c.Routing.Seed != 7 || c.Batch.MaxDelay != 50*time.Millisecond ||
		c.Batch.MaxBytes != 64<<10 || c.Stdin != StdinOn {
		t.Errorf("got %+v", c)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "shards: 4\nshard: 5\n", []string{"unknown key", "shard"}},
		{"unknown nested key", "batch:\n  max_dealy: 1s\n", []string{"unknown key", "max_dealy"}},
		{"string for int", "shards: many\n", []string{"shards", "many"}},
		{"fraction for int", "shards: 1.5\n", []string{"shards", "1.5"}},
		{"bool for int", "shards: true\n", []string{"shards", "true"}},
		{"bad duration", "batch:\n  max_delay: soon\n", []string{"max_delay", "soon"}},
		{"bad size", "batch:\n  max_bytes: 3 parsecs\n", []string{"max_bytes", "3 parsecs"}},
		{"bad stdin", "stdin: sometimes\n", []string{"stdin", "sometimes"}},
		{"bad sync", "sync: always\n", []string{"sync", "always"}},
		{"bad compression", "rotate:\n  compress: lz4\n", []string{"rotate.compress", "lz4", "zstd"}},
		{"fraction for size", "batch:\n  max_bytes: 1.7\n", []string{"max_bytes", "1.7"}},
		{"bool for size", "max_message_bytes: true\n", []string{"max_message_bytes", "true"}},
		{"unknown nats key", "nats:\n  ulr: nats://x\n", []string{"unknown key", "ulr"}},
		{"subjects not a list", "nats:\n  subjects: {a: 1}\n", []string{"subjects"}},
		{"negative seed", "routing:\n  seed: -1\n", []string{"seed", "-1"}},
		{"not yaml", "shards: [1,\n", []string{"shardlog.yaml"}},
		{"empty value", "dir: /x\nshards:\n", []string{"shards: no value", "16"}},
		{"empty nested value", "batch:\n  max_delay:\n", []string{"batch.max_delay: no value"}},
		{"unknown key without value", "shardz:\n", []string{"unknown key", "shardz"}},
		{"unknown nested key without value", "batch:\n  max_delayy:\n", []string{"unknown key", "batch.max_delayy"}},
		{"yes for a bool", "allow_routing_change: yes\n", []string{"allow_routing_change", `"yes"`, "true or false"}},
		{"MB size", "batch:\n  max_bytes: 1MB\n", []string{"batch.max_bytes", "1MB", "MiB"}},
		{"too large", "# " + strings.Repeat("x", MaxConfigBytes) + "\n", []string{"larger than 256 KiB"}},
		{"deeply nested", strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n", []string{"depth"}},
		{"deeply nested keys", func() string {
			var b strings.Builder
			for i := range 500 {
				b.WriteString(strings.Repeat(" ", i) + "a:\n")
			}
			return b.String()
		}(), []string{"unknown key: a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeYAML(t, tc.yaml), nil)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.As(err, new(*Error)) {
				t.Errorf("%v is not a *config.Error", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; empty means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"zero shards", func(c *Config) { c.Shards = 0 }, "shards: 0"},
		{"negative shards", func(c *Config) { c.Shards = -3 }, "shards: -3"},
		{"too many shards", func(c *Config) { c.Shards = MaxShards + 1 }, "shards: 65537"},
		{"no dir", func(c *Config) { c.Dir = "" }, "dir: not set"},
		{"pattern without verb", func(c *Config) { c.FilePattern = "shard.log" }, `file_pattern: "shard.log"`},
		{"pattern with two verbs", func(c *Config) { c.FilePattern = "%d-%d.log" }, `file_pattern: "%d-%d.log"`},
		{"pattern with a slash", func(c *Config) { c.FilePattern = "a/%d.log" }, `file_pattern: "a/%d.log"`},
		{"pattern with string verb", func(c *Config) { c.FilePattern = "%s.log" }, `file_pattern: "%s.log"`},
		{"escaped percent", func(c *Config) { c.FilePattern = "100%%-%03d.log" }, ""},
		{"subject key without NATS", func(c *Config) { c.Routing.Key = "subject" }, `routing.key: "subject": needs NATS`},
		{"json key on stdin", func(c *Config) { c.Routing.Key = "json:user" }, ""},
		{"nats without subjects", func(c *Config) { c.NATS.URL = "nats://127.0.0.1:4222" }, "nats.subjects: empty"},
		{"nats ok", func(c *Config) { c.NATS.URL = "nats://x:4222"; c.NATS.Subjects = []string{"logs.>"} }, ""},
		{"subjects without nats", func(c *Config) { c.NATS.Subjects = []string{"logs.>"} }, "neither nats.url nor nats.embedded"},
		{"two kinds of auth", func(c *Config) {
			c.NATS.URL, c.NATS.Subjects, c.NATS.Token, c.NATS.CredsFile = "nats://x", []string{"a"}, "t", "/c"
		}, "only one of"},
		{"cert without key", func(c *Config) {
			c.NATS.URL, c.NATS.Subjects, c.NATS.TLS.CertFile = "nats://x", []string{"a"}, "/c.pem"
		}, "cert_file and key_file"},
		{"queue with jetstream", func(c *Config) {
			c.NATS.URL, c.NATS.Subjects, c.NATS.Queue, c.NATS.JetStream.Stream = "nats://x", []string{"a"}, "q", "LOGS"
		}, `nats.queue: "q"`},
		{"negative rotate size", func(c *Config) { c.Rotate.MaxBytes = -1 }, "rotate.max_bytes: -1"},
		{"rotate size of 100 bytes", func(c *Config) { c.Rotate.MaxBytes = 100 }, "rotate.max_bytes: 100: must be 0 (off) or at least 32KiB (32768)"},
		{"rotate size under the floor", func(c *Config) { c.Rotate.MaxBytes = MinRotateBytes - 1 }, "rotate.max_bytes: 32767: must be 0 (off) or at least 32KiB"},
		{"rotate size at the floor", func(c *Config) { c.Rotate.MaxBytes = MinRotateBytes }, ""},
		{"rotate size off", func(c *Config) { c.Rotate.MaxBytes = 0 }, ""},
		{"rotate age under a second", func(c *Config) { c.Rotate.MaxAge = time.Millisecond }, "rotate.max_age: 1ms"},
		{"negative keep", func(c *Config) { c.Rotate.Keep = -2 }, "rotate.keep: -2"},
		{"negative keep_for", func(c *Config) { c.Rotate.KeepFor = -time.Hour }, "rotate.keep_for: -1h0m0s"},
		{"rotation on", func(c *Config) { c.Rotate.MaxBytes, c.Rotate.MaxAge, c.Rotate.Keep = 8<<20, time.Hour, 3 }, ""},
		{"zero sync interval", func(c *Config) { c.SyncInterval = 0 }, "sync_interval: 0s"},
		{"zero shutdown timeout", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown_timeout: 0s"},
		{"pattern gives an empty name", func(c *Config) { c.FilePattern = "%.0d" }, `file_pattern: "%.0d": shard 0's name is 0 bytes`},
		{"pattern too wide", func(c *Config) { c.FilePattern = "%99999d"; c.Shards = 4096 }, `file_pattern: "%99999d": shard 0's name is 99999 bytes`},
		{"http URL", func(c *Config) { c.NATS.URL, c.NATS.Subjects = "http://x:4222", []string{"a"} }, `nats.url: URL 1 of the list, "http://x:4222": scheme "http"`},
		{"second URL bad scheme", func(c *Config) {
			c.NATS.URL, c.NATS.Subjects = "nats://a:4222,https://b:4222", []string{"a"}
		}, `URL 2 of the list, "https://b:4222"`},
		{"every good scheme", func(c *Config) {
			c.NATS.URL, c.NATS.Subjects = "nats://a:1,tls://b:2,ws://c:3,wss://d:4,e:5,NATS://f:6", []string{"a"}
		}, ""},
		{"negative stream age", func(c *Config) {
			c.NATS.URL, c.NATS.Subjects, c.NATS.JetStream.StreamMaxAge = "nats://x", []string{"a"}, -time.Second
		}, "nats.jetstream.stream_max_age: -1s"},
		{"stream age under a second", func(c *Config) {
			c.NATS.URL, c.NATS.Subjects, c.NATS.JetStream.StreamMaxAge = "nats://x", []string{"a"}, time.Millisecond
		}, "nats.jetstream.stream_max_age: 1ms"},
		{"negative stream bytes", func(c *Config) {
			c.NATS.URL, c.NATS.Subjects, c.NATS.JetStream.StreamMaxBytes = "nats://x", []string{"a"}, -1
		}, "nats.jetstream.stream_max_bytes: -1"},
		{"unlimited stream", func(c *Config) {
			c.NATS.URL, c.NATS.Subjects = "nats://x", []string{"a"}
			c.NATS.JetStream.StreamMaxAge, c.NATS.JetStream.StreamMaxBytes = 0, 0
		}, ""},
		{"bad subject", func(c *Config) { c.NATS.URL, c.NATS.Subjects = "nats://x", []string{"logs api"} }, `nats.subjects: "logs api"`},
		{"huge message", func(c *Config) { c.MaxMessageBytes = 4 << 50 }, "max_message_bytes: 4503599627370496"},
		{"char verb gives a slash", func(c *Config) { c.FilePattern = "s%c.log"; c.Shards = 64 }, `file_pattern: "s%c.log": shard 0's name`},
		{"names collide", func(c *Config) { c.FilePattern = "s%x.log"; c.Shards = 3 }, ""},
		{"bad embedded listen", func(c *Config) {
			c.NATS.Embedded, c.NATS.Subjects, c.NATS.EmbeddedListen = true, []string{"a"}, "foo"
		}, `nats.embedded_listen: "foo"`},
		{"stdin off with nats", func(c *Config) {
			c.NATS.Embedded, c.NATS.Subjects, c.Stdin = true, []string{"a"}, StdinOff
		}, ""},
		{"bad key", func(c *Config) { c.Routing.Key = "body" }, `routing.key "body"`},
		{"zero delay", func(c *Config) { c.Batch.MaxDelay = 0 }, "batch.max_delay: 0s"},
		{"small buffer", func(c *Config) { c.Batch.BufferBytes = 1 << 20 }, "batch.buffer_bytes: 1048576"},
		{"stdin off", func(c *Config) { c.Stdin = StdinOff }, "stdin: false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load("", nil)
			if err != nil {
				t.Fatal(err)
			}
			c.Dir = "/tmp/x"
			tc.edit(&c)
			err = c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestUnknownEnvironmentVariable(t *testing.T) {
	t.Setenv("SHARDLOG_BATCH_MAXDELAY", "5s")
	if _, err := Load("", nil); err == nil || !strings.Contains(err.Error(), "SHARDLOG_BATCH_MAXDELAY") {
		t.Errorf("Load = %v, want an error naming SHARDLOG_BATCH_MAXDELAY", err)
	}
}

func TestSubjectsFromEnvironment(t *testing.T) {
	t.Setenv("SHARDLOG_NATS_SUBJECTS", "logs.api,logs.>")
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.NATS.Subjects) != 2 || c.NATS.Subjects[0] != "logs.api" || c.NATS.Subjects[1] != "logs.>" {
		t.Errorf("subjects %q", c.NATS.Subjects)
	}
}

func TestDescribeHidesSecrets(t *testing.T) {
	c, err := Load(writeYAML(t, "nats:\n  url: nats://bob:hunter2@host:4222\n  password: s3cret\n  token: t0ken\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := c.Describe(nil)
	for _, secret := range []string{"hunter2", "s3cret", "t0ken"} {
		if strings.Contains(d, secret) {
			t.Errorf("Describe shows %q:\n%s", secret, d)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	cases := []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"0", 0, true}, {"65536", 65536, true}, {"64KiB", 64 << 10, true}, {"1 MiB", 1 << 20, true},
		{"1MiB", 1 << 20, true}, {"2GiB", 2 << 30, true}, {"12B", 12, true}, {"1TiB", 1 << 40, true},
		{"", 0, false}, {"MiB", 0, false}, {"1.5MiB", 0, false}, {"99999999999GiB", 0, false},
		// Units that might mean powers of 1000, or are misspelt, are refused.
		{"64k", 0, false}, {"1 MB", 0, false}, {"1KB", 0, false}, {"10k", 0, false}, {"1mib", 0, false},
		{"1M", 0, false}, {"1G", 0, false}, {"1gb", 0, false},
	}
	for _, tc := range cases {
		got, err := ParseByteSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestRedactURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://bob:pw@host:4222", "nats://REDACTED@host:4222"},
		{"nats://tok@host:4222", "nats://REDACTED@host:4222"},
		{"bob:pw@host:4222", "REDACTED@host:4222"},
		{"nats://a:b%zz@host", "nats://REDACTED@host"},
		{"nats://h1:4222,nats://u:p@h2:4222", "nats://h1:4222,nats://REDACTED@h2:4222"},
		{"tls://u:p@w@h", "tls://REDACTED@h"},
	}
	for _, tc := range cases {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	n := NATS{URL: "nats://bob:p%40ss@h", Token: "tok"}
	if got := n.Scrub(`parse "nats://bob:p%40ss@h": tok p%40ss`); strings.Contains(got, "p%40ss") || strings.Contains(got, "tok") {
		t.Errorf("Scrub left a secret: %q", got)
	}
}

// TestEnvironmentErrors checks that a SHARDLOG_* variable set to nothing
// is refused, as an empty value in the file is, and that an unknown one
// is refused suggesting the nearest known one.
func TestEnvironmentErrors(t *testing.T) {
	cases := []struct {
		name, value string
		want        []string
		wantNot     string
	}{
		{"SHARDLOG_SHARDS", "", []string{"SHARDLOG_SHARDS: empty", "default (16)"}, ""},
		{"SHARDLOG_DIR", "", []string{"SHARDLOG_DIR: empty"}, ""},
		{"SHARDLOG_NATS_SUBJECTS", "", []string{"SHARDLOG_NATS_SUBJECTS: empty"}, ""},
		{"SHARDLOG_NATS_SUBJECT", "logs.>", []string{"SHARDLOG_NATS_SUBJECT: names no configuration key", "did you mean SHARDLOG_NATS_SUBJECTS?"}, ""},
		{"SHARDLOG_BATCH_MAXDELAY", "5s", []string{"SHARDLOG_BATCH_MAXDELAY", "did you mean SHARDLOG_BATCH_MAX_DELAY?"}, ""},
		{"SHARDLOG_SHRADS", "4", []string{"SHARDLOG_SHRADS", "did you mean SHARDLOG_SHARDS?"}, ""},
		{"SHARDLOG_SUBJECTS", "a", []string{"SHARDLOG_SUBJECTS", "did you mean SHARDLOG_NATS_SUBJECTS?"}, ""},
		{"SHARDLOG_MAX_DELAY", "1s", []string{"did you mean SHARDLOG_BATCH_MAX_DELAY?"}, ""},
		{"SHARDLOG_VERBOSITY", "1", []string{"SHARDLOG_VERBOSITY: names no configuration key"}, "did you mean"},
	}
	for _, tc := range cases {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			t.Setenv(tc.name, tc.value)
			_, err := Load("", nil)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.As(err, new(*Error)) {
				t.Errorf("%v is not a *config.Error", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if tc.wantNot != "" && strings.Contains(err.Error(), tc.wantNot) {
				t.Errorf("error %q has %q", err, tc.wantNot)
			}
		})
	}
}

// TestUnknownKeySuggestions checks that an unknown key in the file is
// refused suggesting the nearest known key or section.
func TestUnknownKeySuggestions(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"nats:\n  url: nats://x\n  subject: [a]\n", "unknown key: nats.subject (did you mean nats.subjects?)"},
		{"shrads: 4\n", "unknown key: shrads (did you mean shards?)"},
		{"batch:\n  max_dealy: 1s\n", "unknown key: batch.max_dealy (did you mean batch.max_delay?)"},
		{"nats:\n  jetstream:\n    ack_wiat: 1s\n", "unknown key: nats.jetstream.ack_wiat (did you mean nats.jetstream.ack_wait?)"},
		{"max_delay: 1s\n", "unknown key: max_delay (did you mean batch.max_delay?)"},
		{"max_bytes: 1\n", "unknown key: max_bytes (did you mean batch.max_bytes or rotate.max_bytes?)"},
		{"natss:\n  url: x\n", "unknown key: natss (did you mean nats?)"},
		{"rotate:\n  compres:\n", "unknown key: rotate.compres (did you mean rotate.compress?)"},
		{"Shards: 4\n", "unknown key: Shards (did you mean shards?)"},
		{"nats: nats://x\n", "nats: a section, not a key: give keys under it (such as nats.url)"},
		{"nats:\n  jetstream: LOGS\n", "nats.jetstream: a section, not a key: give keys under it (such as nats.jetstream.stream)"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			_, err := Load(writeYAML(t, tc.yaml), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load = %v, want an error with %q", err, tc.want)
			}
		})
	}
	// A key like no other gets no guess.
	if _, err := Load(writeYAML(t, "colour: blue\n"), nil); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("Load = %v, want an unknown key error without a suggestion", err)
	}
}

// TestYAMLSyntaxErrorLine checks that a file that is not YAML, or not a
// mapping of keys, is refused naming the file and the line of the problem,
// on one line, whatever line it is on and whatever the problem.
func TestYAMLSyntaxErrorLine(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"colon in a plain value, first line", "dir: a: b\nshards: 4\n", "line 1: mapping values are not allowed"},
		{"unclosed quote, first line", "dir: \"/var/log\nshards: 4\n", "line 1: found unexpected end of stream"},
		{"unclosed quote, third line", "shards: 4\nsync: none\ndir: '/var/log\nstdin: auto\n", "line 3: found unexpected end of stream"},
		{"unclosed flow mapping", "shards: 4\nrouting: {seed: 1\nsync: none\n", "line 2: did not find expected ',' or '}'"},
		{"unclosed flow list", "shards: 4\nnats:\n  subjects: [a,\n    b\n  url: x\n", "line 4: did not find expected ',' or ']'"},
		{"control character", "shards: 4\ndir: /x\x01\n", "line 2: control characters are not allowed"},
		{"invalid UTF-8", "shards: 4\nsync: none\ndir: /\xff\n", "line 3: invalid leading UTF-8 octet"},
		{"a list, not keys", "- shards: 4\n", "line 1: a list where keys belong"},
		{"a word, not keys", "shards 4\n", "line 1: shards 4: not a key with a value"},
		{"key twice", "shards: 4\nsync: none\nshards: 8\n", `line 3: mapping key "shards" already defined at line 1`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeYAML(t, tc.yaml)
			_, err := Load(path, nil)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.As(err, new(*Error)) {
				t.Errorf("%v is not a *config.Error", err)
			}
			if want := "config file " + path + ": " + tc.want; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q, want it to begin %q", err, want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q takes several lines", err)
			}
		})
	}
}

// TestEmbeddedListenSet: nats.embedded_listen counts as given when the
// file, the environment or the flag sets it, even to its default value,
// and not when it is left at its default.
func TestEmbeddedListenSet(t *testing.T) {
	cases := []struct {
		name, yaml, env string
		flags           []string
		want            bool
	}{
		{name: "default", want: false},
		{name: "other keys in the file", yaml: "nats:\n  embedded: true\n", want: false},
		{name: "file", yaml: "nats:\n  embedded_listen: 127.0.0.1:4222\n", want: true},
		{name: "environment", env: "127.0.0.1:4333", want: true},
		{name: "flag", flags: []string{"--nats-embedded-listen", "127.0.0.1:4222"}, want: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = writeYAML(t, tc.yaml)
			}
			if tc.env != "" {
				t.Setenv("SHARDLOG_NATS_EMBEDDED_LISTEN", tc.env)
			}
			fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
			fs.String("nats-embedded-listen", "127.0.0.1:4222", "")
			if err := fs.Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path, fs)
			if err != nil {
				t.Fatal(err)
			}
			if c.NATS.EmbeddedListenSet != tc.want {
				t.Errorf("EmbeddedListenSet = %v, want %v", c.NATS.EmbeddedListenSet, tc.want)
			}
		})
	}
}

// TestEmbeddedConfigNeedsEmbedded: nats.embedded_config without the
// embedded server would be silently ignored: it is an error naming it.
func TestEmbeddedConfigNeedsEmbedded(t *testing.T) {
	for _, url := range []string{"", "nats://x:4222"} {
		c, err := Load("", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Dir, c.NATS.URL, c.NATS.Subjects, c.NATS.EmbeddedConfig = "/d", url, []string{"a"}, "/etc/nats.conf"
		if url == "" {
			c.Stdin, c.NATS.Subjects = StdinOn, nil
		}
		err = c.Validate()
		if !errors.As(err, new(*Error)) || !strings.Contains(err.Error(), `nats.embedded_config: "/etc/nats.conf"`) {
			t.Errorf("url %q: error %v, want one naming nats.embedded_config", url, err)
		}
		c.NATS.Embedded = true
		c.NATS.Subjects = []string{"a"}
		if err := c.Validate(); err != nil {
			t.Errorf("url %q, embedded: %v", url, err)
		}
	}
}

// TestPermsKeys: file_mode and dir_mode are octal strings (0640 and 0750 by
// default), file_group a group name or ID; a bad value is an *Error naming
// the key and the value.
func TestPermsKeys(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		file, dir  Mode
		gid        int
		group      bool
		want       []string // in the error; none: valid
	}{
		{"defaults", "", 0o640, 0o750, 0, false, nil},
		{"set", "file_mode: \"0600\"\ndir_mode: \"0700\"\nfile_group: \"4242\"\n", 0o600, 0o700, 4242, true, nil},
		{"group by name", "file_group: root\n", 0o640, 0o750, 0, true, nil},
		{"unquoted", "file_mode: 0640\n", 0, 0, 0, false, []string{"file_mode", "416", "quoted"}},
		{"not octal", "dir_mode: \"0789\"\n", 0, 0, 0, false, []string{"dir_mode", `"0789"`}},
		{"special bits", "file_mode: \"4755\"\n", 0, 0, 0, false, []string{"file_mode", `"4755"`}},
		{"owner cannot write", "file_mode: \"0444\"\n", 0, 0, 0, false, []string{"file_mode", `"0444"`, "0600"}},
		{"owner cannot enter", "dir_mode: \"0600\"\n", 0, 0, 0, false, []string{"dir_mode", `"0600"`, "0700"}},
		{"unknown group", "file_group: no-such-group-here\n", 0, 0, 0, false, []string{"file_group", `"no-such-group-here"`}},
		{"negative group", "file_group: \"-1\"\n", 0, 0, 0, false, []string{"file_group", `"-1"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(writeYAML(t, "dir: /tmp/x\n"+tc.yaml), nil)
			if err == nil {
				err = c.Validate()
			}
			if tc.want != nil {
				var ce *Error
				if !errors.As(err, &ce) {
					t.Fatalf("got %v, want a configuration error", err)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gid, ok, err := c.GroupID()
			if c.FileMode != tc.file || c.DirMode != tc.dir || gid != tc.gid || ok != tc.group || err != nil {
				t.Errorf("file_mode %s dir_mode %s group %d %v %v, want %s %s %d %v", c.FileMode, c.DirMode, gid, ok, err,
					tc.file, tc.dir, tc.gid, tc.group)
			}
		})
	}
}
