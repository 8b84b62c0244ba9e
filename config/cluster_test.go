package config

import (
	"errors"
	"strings"
	"testing"
)

// TestValidateCluster checks what the cluster commands require of the
// configuration: a cluster name and a NATS URL, with consistent
// connection settings, whatever run's input settings say; and the
// defaults of the cluster keys.
func TestValidateCluster(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Name != "" || c.Cluster.Prefix != "shardlog" {
		t.Fatalf("cluster defaults: %+v", c.Cluster)
	}
	cases := []struct {
		name   string
		change func(c *Config)
		want   string // "" for valid
	}{
		{"valid", func(c *Config) {}, ""},
		{"run's input settings do not matter", func(c *Config) {
			c.NATS.Subjects, c.NATS.Queue, c.NATS.JetStream.Stream, c.Dir = nil, "q", "s", ""
		}, ""},
		{"no name", func(c *Config) { c.Cluster.Name = "" }, "cluster.name: not set"},
		{"no url", func(c *Config) { c.NATS.URL = "" }, "nats.url: not set"},
		{"bad url", func(c *Config) { c.NATS.URL = "http://x:1" }, `nats.url: URL 1 of the list, "http://x:1"`},
		{"two kinds of auth", func(c *Config) { c.NATS.Token, c.NATS.CredsFile = "t", "f" }, "set only one of"},
		{"cert without key", func(c *Config) { c.NATS.TLS.CertFile = "c.pem" }, "cert_file and key_file go together"},
	}
	for _, tc := range cases {
		cfg := c
		cfg.Cluster.Name, cfg.NATS.URL = "logs", "nats://127.0.0.1:4222"
		tc.change(&cfg)
		err := cfg.ValidateCluster()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, new(*Error)) {
			t.Errorf("%s: %v, want a config error with %q", tc.name, err, tc.want)
		}
	}
}

// TestValidateRoute checks what route requires beyond the cluster
// settings: cluster.max_pending from 1 to MaxPendingLimit (default 64,
// publish.DefaultWindow), no embedded server, some input, and no queue
// group without subjects.
func TestValidateRoute(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.MaxPending != 64 {
		t.Fatalf("cluster.max_pending default: %d, want 64", c.Cluster.MaxPending)
	}
	cases := []struct {
		name   string
		change func(c *Config)
		want   string // "" for valid
	}{
		{"valid: stdin", func(c *Config) {}, ""},
		{"valid: subjects", func(c *Config) { c.NATS.Subjects, c.NATS.Queue, c.Stdin = []string{"in.>"}, "q", StdinOff }, ""},
		{"valid: stream", func(c *Config) { c.NATS.JetStream.Stream, c.Stdin = "in", StdinOff }, ""},
		{"window 1", func(c *Config) { c.Cluster.MaxPending = 1 }, ""},
		{"window 4096", func(c *Config) { c.Cluster.MaxPending = 4096 }, ""},
		{"window 0", func(c *Config) { c.Cluster.MaxPending = 0 }, "cluster.max_pending: 0: must be from 1 to 4096"},
		{"window -1", func(c *Config) { c.Cluster.MaxPending = -1 }, "cluster.max_pending: -1: must be from 1 to 4096"},
		{"window 100000", func(c *Config) { c.Cluster.MaxPending = 100000 }, "cluster.max_pending: 100000: must be from 1 to 4096"},
		{"embedded", func(c *Config) { c.NATS.Embedded = true }, "nats.embedded: true: route"},
		{"no input", func(c *Config) { c.Stdin = StdinOff }, "stdin: false: no input is configured"},
		{"queue without subjects", func(c *Config) { c.NATS.Queue = "q" }, `nats.queue: "q": set, but nats.subjects is empty`},
	}
	for _, tc := range cases {
		cfg := c
		cfg.Cluster.Name, cfg.NATS.URL = "logs", "nats://127.0.0.1:4222"
		tc.change(&cfg)
		err := cfg.ValidateRoute()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, new(*Error)) {
			t.Errorf("%s: %v, want a config error with %q", tc.name, err, tc.want)
		}
	}
}
