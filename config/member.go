package config

import "time"

// MinPinnedTTL is the shortest cluster.pinned_ttl: a member's instance
// pulls again every half of it, and a pull lasts at least 1s; shorter
// would hand the pin to a standby whenever the active one is idle.
const MinPinnedTTL = 2 * time.Second

// MaxPinnedTTL is the longest cluster.pinned_ttl: the time a member's
// shards may go unwritten after its active instance dies.
const MaxPinnedTTL = 10 * time.Minute

// MemberOn reports whether run is a member of a cluster: cluster.name or
// cluster.member set (ValidateMember wants both).
func (c Config) MemberOn() bool { return c.Cluster.Member != "" || c.Cluster.Name != "" }

// ValidateMember checks what run as a member (cluster.name and
// cluster.member) uses of c before the cluster's layout is read: both
// names, a NATS server to read the layout and the stream from, and no
// other input, since a member writes only the batches of its own shards.
// The routing values (shards, seed, key, file pattern) and the subjects
// come from the layout; run checks that those given agree with it.
func (c Config) ValidateMember() error {
	switch {
	case c.Cluster.Name == "":
		return errorf("cluster.name: not set, but cluster.member is %q: give --cluster NAME too", c.Cluster.Member)
	case c.Cluster.Member == "":
		return errorf("cluster.member: not set: run --cluster %s needs --member M, the member it runs as", c.Cluster.Name)
	case c.NATS.Embedded:
		return errorf("nats.embedded: true: a member reads the cluster's stream on the NATS servers route publishes to: give --nats-url instead")
	case c.Stdin == StdinOn:
		return errorf("stdin: %s: a member writes only the batches of its shards, from the cluster's stream: leave stdin auto or false", c.Stdin)
	case len(c.NATS.Subjects) > 0:
		return errorf("nats.subjects: %v: a member reads the subjects of its shards from cluster %s's layout: leave nats.subjects out", c.NATS.Subjects, c.Cluster.Name)
	case c.NATS.JetStream.Stream != "":
		return errorf("nats.jetstream.stream: %q: a member reads cluster %s's stream: leave nats.jetstream.stream out", c.NATS.JetStream.Stream, c.Cluster.Name)
	case c.Cluster.PinnedTTL < MinPinnedTTL || c.Cluster.PinnedTTL > MaxPinnedTTL:
		return errorf("cluster.pinned_ttl: %s: must be from %s to %s", c.Cluster.PinnedTTL, MinPinnedTTL, MaxPinnedTTL)
	}
	return c.ValidateCluster()
}
