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
