package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/shardlog/shardlog/cluster"
	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/ingest"
	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

// memberConfig readies run as a member of a cluster (cluster.name and
// cluster.member set): it checks the member settings, reads the cluster's
// layout from NATS, and returns cfg with the layout's routing (shards,
// seed, key, file pattern, prefix) and the member's subjects, stream and
// durable, and the layout. A server older than 2.11 is a runtime error; a
// missing cluster or member, or a routing value given (flag, variable or
// file) that contradicts the layout, is a configuration error naming it.
func memberConfig(path string, fs *pflag.FlagSet, cfg config.Config, stderr io.Writer) (config.Config, *cluster.Layout, error) {
	if err := cfg.ValidateMember(); err != nil {
		return cfg, nil, err
	}
	if err := cluster.CheckName("cluster.name", cfg.Cluster.Name); err != nil {
		return cfg, nil, err
	}
	if err := cluster.CheckName("cluster.member", cfg.Cluster.Member); err != nil {
		return cfg, nil, err
	}
	// Before the layout: an old server that holds one is refused for
	// what it is.
	pinning := func(js jetstream.JetStream) error { return ingest.CheckPinning(js.Conn().ConnectedServerVersion()) }
	cfg, l, err := layoutConfig(path, fs, cfg, cfg, stderr, pinning)
	if err != nil {
		return cfg, nil, err
	}
	ks, ok := l.Shards(cfg.Cluster.Member)
	if !ok {
		return cfg, nil, &config.Error{Err: fmt.Errorf("cluster.member: %q: not a member of cluster %s (its members: %s)",
			cfg.Cluster.Member, l.Name, memberNames(l))}
	}
	cfg.NATS.Subjects = make([]string, len(ks))
	for i, k := range ks {
		cfg.NATS.Subjects[i] = l.Subject(k)
	}
	cfg.NATS.JetStream.Stream = l.Stream
	cfg.NATS.JetStream.Durable = ingest.MemberDurable(l.Name, cfg.Cluster.Member)
	return cfg, l, nil
}

// layoutConfig reads the layout of cfg's cluster through conn's NATS
// settings (after check, if not nil, passes on the connected server) and
// returns cfg with the layout's routing (shards, seed, key, file pattern,
// prefix), and the layout. A missing cluster, or a routing value given
// (flag, variable or file at path) that contradicts the layout, is a
// configuration error naming it.
func layoutConfig(path string, fs *pflag.FlagSet, cfg, conn config.Config, stderr io.Writer,
	check func(jetstream.JetStream) error) (config.Config, *cluster.Layout, error) {
	origins, err := config.Origins(path, fs)
	if err != nil {
		return cfg, nil, err
	}
	var l *cluster.Layout
	err = withJetStream(conn, stderr, func(ctx context.Context, js jetstream.JetStream) error {
		if check != nil {
			if err := check(js); err != nil {
				return err
			}
		}
		var rerr error
		l, rerr = readLayout(ctx, js, cfg.Cluster.Name)
		return rerr
	})
	if err != nil {
		return cfg, nil, err
	}
	if err := checkAgainstLayout(cfg, origins, l); err != nil {
		return cfg, nil, err
	}
	cfg.Shards, cfg.Routing.Seed, cfg.Routing.Key, cfg.FilePattern = l.N, l.Seed, l.Key, l.FilePattern
	cfg.Cluster.Prefix = l.Prefix
	return cfg, l, nil
}

// checkAgainstLayout returns a configuration error naming the first
// routing value given (by a flag, the environment or the file: origins
// says which) that differs from the layout's, and both values.
func checkAgainstLayout(cfg config.Config, origins map[string]string, l *cluster.Layout) error {
	key := cfg.Routing.Key
	if k, err := shard.ParseKey(key); err == nil {
		key = k.String()
	}
	for _, d := range []struct {
		key         string
		given, have any
	}{
		{"shards", cfg.Shards, l.N}, {"routing.seed", cfg.Routing.Seed, l.Seed},
		{"routing.key", key, l.Key}, {"file_pattern", cfg.FilePattern, l.FilePattern},
		{"cluster.prefix", cfg.Cluster.Prefix, l.Prefix},
	} {
		if o := origins[d.key]; o != "default" && fmt.Sprint(d.given) != fmt.Sprint(d.have) {
			return &config.Error{Err: fmt.Errorf("%s: %v (%s) contradicts cluster %s, whose layout has %v: leave it out",
				d.key, d.given, o, l.Name, d.have)}
		}
	}
	return nil
}

// memberNames lists l's members, comma-separated.
func memberNames(l *cluster.Layout) string {
	names := make([]string, len(l.Members))
	for i, m := range l.Members {
		names[i] = m.Name
	}
	return strings.Join(names, ", ")
}

// memberRouting adds to r, for a member (l not nil), its cluster, member
// and shards, which its directory records.
func memberRouting(r writer.Routing, cfg config.Config, l *cluster.Layout) writer.Routing {
	if l == nil {
		return r
	}
	r.Cluster, r.Member = l.Name, cfg.Cluster.Member
	for _, m := range l.Members {
		if m.Name == cfg.Cluster.Member {
			r.MemberShards = cluster.Ranges(m.Shards)
		}
	}
	return r
}

// ownShards returns the shards whose files run writes: all of them, or,
// for a member of a cluster (l not nil), the member's own, so that its
// directory holds no file of a shard another member writes.
func ownShards(cfg config.Config, l *cluster.Layout) []int {
	if l != nil {
		if ks, ok := l.Shards(cfg.Cluster.Member); ok {
			return ks
		}
	}
	ks := make([]int, cfg.Shards)
	for k := range ks {
		ks[k] = k
	}
	return ks
}

// startMember returns the member's source, connected: the cluster's
// stream, through the member's durable, in its pinned priority group,
// keeping the instance's entry for cluster show while it runs.
func startMember(cfg config.Config, l *cluster.Layout, log *slog.Logger) (source, error) {
	n, err := ingest.NewMember(cfg.NATS, l, cfg.Cluster.Member, cfg.Cluster.PinnedTTL, int(cfg.MaxMessageBytes), log)
	if err != nil {
		return nil, err
	}
	if err := n.Connect(nil); err != nil {
		return nil, runtimeError{err}
	}
	if js, err := jetstream.New(n.Conn()); err != nil {
		log.Warn("this instance will not be listed by cluster show", "err", err)
	} else {
		n.SetPresence(cluster.NewPresence(js, l, cfg.Cluster.Member, cfg.Cluster.PinnedTTL, buildVersion(), log))
	}
	log.Info("member of cluster", "cluster", l.Name, "member", cfg.Cluster.Member, "shards", cfg.NATS.Subjects,
		"durable", cfg.NATS.JetStream.Durable, "pinned_ttl", cfg.Cluster.PinnedTTL)
	return n, nil
}
