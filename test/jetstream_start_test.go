package test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// jsClient connects to srv and returns its JetStream API.
func jsClient(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(client(t, url))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// consumerFilters returns the subjects durable reads on stream, or nil and
// false when there is no such durable.
func consumerFilters(t *testing.T, js jetstream.JetStream, stream, durable string) ([]string, bool) {
	t.Helper()
	c, err := js.Consumer(context.Background(), stream, durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	if cfg.FilterSubject != "" {
		return []string{cfg.FilterSubject}, true
	}
	return cfg.FilterSubjects, true
}

// TestJetStreamStartRefusals: what a new user gets wrong about JetStream
// fails the start at once (exit 1), with a message naming what is wrong
// and what to do, before any file is created, and leaves no durable behind
// that the start created.
func TestJetStreamStartRefusals(t *testing.T) {
	eachJetStreamServer(t, func(t *testing.T, srv *jsServer) {
		ctx := context.Background()
		js := jsClient(t, srv.url)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LOGS", Subjects: []string{"logs.>", "audit.*"}}); err != nil {
			t.Fatal(err)
		}
		aFile := filepath.Join(t.TempDir(), "a-file")
		if err := os.WriteFile(aFile, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name    string
			args    []string
			code    int
			want    []string
			durable string // must not exist afterwards
		}{
			{"subject outside the stream", []string{"--subject", "metrics.>", "--js-stream", "LOGS", "--js-durable", "d1"},
				1, []string{`nats.subjects: "metrics.>"`, `stream "LOGS"`, "logs.>, audit.*"}, "d1"},
			{"subject with more tokens than the stream's", []string{"--subject", "audit.a.b", "--js-stream", "LOGS", "--js-durable", "d2"},
				1, []string{`"audit.a.b"`, `stream "LOGS"`}, "d2"},
			{"no such stream", []string{"--subject", "logs.>", "--js-stream", "NOPE"},
				1, []string{`nats.jetstream.stream: "NOPE"`, "--js-create"}, ""},
			{"files cannot be made", []string{"--subject", "logs.>", "--js-stream", "LOGS", "--js-durable", "d3", "-d", filepath.Join(aFile, "out")},
				2, []string{"dir"}, "d3"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "out")
				args := append([]string{"run", "-n", "4", "-d", dir, "--nats-url", srv.url}, tc.args...)
				res := shardlog(t, nil, nil, args...)
				if res.code != tc.code {
					t.Errorf("exit %d, want %d: %s", res.code, tc.code, res.stderr)
				}
				if err := contains(res.stderr, tc.want...); err != nil {
					t.Error(err)
				}
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Errorf("%s exists after a failed start (%v)", dir, err)
				}
				if tc.durable != "" {
					if f, ok := consumerFilters(t, js, "LOGS", tc.durable); ok {
						t.Errorf("durable %q (reading %v) left behind by a failed start", tc.durable, f)
					}
				}
			})
		}

		t.Run("durable reads other subjects", func(t *testing.T) {
			if _, err := js.CreateOrUpdateConsumer(ctx, "LOGS", jetstream.ConsumerConfig{
				Durable: "mine", FilterSubject: "logs.a", AckPolicy: jetstream.AckExplicitPolicy,
			}); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			args := []string{"run", "-n", "4", "-d", dir, "--nats-url", srv.url, "--subject", "logs.b",
				"--js-stream", "LOGS", "--js-durable", "mine"}
			res := shardlog(t, nil, nil, args...)
			if res.code != 1 {
				t.Errorf("exit %d, want 1: %s", res.code, res.stderr)
			}
			if err := contains(res.stderr, `"mine"`, "[logs.a]", "[logs.b]", "update_filter"); err != nil {
				t.Error(err)
			}
			if f, _ := consumerFilters(t, js, "LOGS", "mine"); !slices.Equal(f, []string{"logs.a"}) {
				t.Errorf("durable changed to %v without being asked", f)
			}
			d := startNATS(t, append(args, "--js-update-filter", "--batch-max-delay", "10ms")...)
			if _, err := js.Publish(ctx, "logs.b", []byte("on b")); err != nil {
				t.Fatal(err)
			}
			waitRecords(t, dir, 4, 1)
			d.stop(t)
			if f, _ := consumerFilters(t, js, "LOGS", "mine"); !slices.Equal(f, []string{"logs.b"}) {
				t.Errorf("durable reads %v after --js-update-filter, want [logs.b]", f)
			}
			if err := contains(d.stderr.String(), "changing the subjects an existing durable reads"); err != nil {
				t.Error(err)
			}
		})

		t.Run("several subjects", func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			args := []string{"run", "-n", "4", "-d", dir, "--nats-url", srv.url, "--subject", "logs.a", "--subject", "audit.x",
				"--js-stream", "LOGS", "--js-durable", "several", "--batch-max-delay", "10ms"}
			if olderThan(srv, 2, 10) {
				res := shardlog(t, nil, nil, args...)
				if res.code != 1 {
					t.Errorf("exit %d, want 1: %s", res.code, res.stderr)
				}
				if err := contains(res.stderr, "nats.subjects", srv.version, "2.10", "wildcard", "upgrade"); err != nil {
					t.Error(err)
				}
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Errorf("%s exists after a failed start (%v)", dir, err)
				}
				if f, ok := consumerFilters(t, js, "LOGS", "several"); ok {
					t.Errorf("durable reading %v left behind", f)
				}
				return
			}
			d := startNATS(t, args...)
			for _, subj := range []string{"logs.a", "logs.b", "audit.x"} {
				if _, err := js.Publish(ctx, subj, []byte("on "+subj)); err != nil {
					t.Fatal(err)
				}
			}
			waitRecords(t, dir, 4, 2)
			d.stop(t)
			got := strings.Split(strings.TrimSpace(string(readAll(t, dir, 4))), "\n")
			slices.Sort(got)
			if want := []string{"on audit.x", "on logs.a"}; !slices.Equal(got, want) {
				t.Errorf("records %q, want %q", got, want)
			}
		})
	})
}

// TestJetStreamCreateLimits: a stream made by --js-create has limits (a
// maximum age and size, oldest discarded first), the defaults or those
// configured, and 0 means no limit.
func TestJetStreamCreateLimits(t *testing.T) {
	eachJetStreamServer(t, func(t *testing.T, srv *jsServer) {
		js := jsClient(t, srv.url)
		cases := []struct {
			stream   string
			env      []string
			maxAge   time.Duration
			maxBytes int64
		}{
			{"DEFAULTS", nil, 7 * 24 * time.Hour, 1 << 30},
			{"SET", []string{"SHARDLOG_NATS_JETSTREAM_STREAM_MAX_AGE", "90m", "SHARDLOG_NATS_JETSTREAM_STREAM_MAX_BYTES", "64MiB"}, 90 * time.Minute, 64 << 20},
			{"UNLIMITED", []string{"SHARDLOG_NATS_JETSTREAM_STREAM_MAX_AGE", "0s", "SHARDLOG_NATS_JETSTREAM_STREAM_MAX_BYTES", "0"}, 0, -1},
		}
		for _, tc := range cases {
			t.Run(tc.stream, func(t *testing.T) {
				setenv(t, tc.env...)
				subject := strings.ToLower(tc.stream) + ".>"
				d := startNATS(t, "run", "-n", "2", "-d", t.TempDir(), "--nats-url", srv.url, "--subject", subject,
					"--js-stream", tc.stream, "--js-create")
				d.stop(t)
				st, err := js.Stream(context.Background(), tc.stream)
				if err != nil {
					t.Fatal(err)
				}
				cfg := st.CachedInfo().Config
				if cfg.MaxAge != tc.maxAge || cfg.MaxBytes != tc.maxBytes || cfg.Discard != jetstream.DiscardOld ||
					!slices.Equal(cfg.Subjects, []string{subject}) {
					t.Errorf("stream made with max_age %s, max_bytes %d, discard %s, subjects %v; want %s, %d, old, [%s]",
						cfg.MaxAge, cfg.MaxBytes, cfg.Discard, cfg.Subjects, tc.maxAge, tc.maxBytes, subject)
				}
			})
		}
	})
}

// TestEmbeddedPortInUse: an embedded server that cannot listen fails the
// start at once with the reason, and creates nothing.
func TestEmbeddedPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := filepath.Join(t.TempDir(), "out")
	res := shardlog(t, nil, nil, "run", "-d", dir, "--nats-embedded", "--nats-embedded-listen", l.Addr().String(), "--subject", "a")
	if res.code != 1 {
		t.Errorf("exit %d, want 1: %s", res.code, res.stderr)
	}
	if err := contains(res.stderr, "nats.embedded_listen", l.Addr().String(), "address already in use"); err != nil {
		t.Error(err)
	}
	// The reason, not the 10 s wait for readiness that once hid it.
	if strings.Contains(res.stderr, "not ready") {
		t.Errorf("the bind error was not reported: %s", res.stderr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s exists after a failed start (%v)", dir, err)
	}
}
