package config

// ValidateCluster checks what the cluster commands (shardlog cluster,
// which --cluster) use of c: cluster.name set, and a NATS server to
// reach with consistent credentials and TLS. The cluster's own values
// (name syntax, N, pattern, members) are package cluster's to check.
func (c Config) ValidateCluster() error {
	if c.Cluster.Name == "" {
		return errorf("cluster.name: not set: give --cluster NAME")
	}
	if c.NATS.URL == "" {
		return errorf("nats.url: not set: the cluster's layout is kept in NATS: give --nats-url")
	}
	// Only the connection settings matter here: the cluster's subjects
	// stand in for nats.subjects, and input settings are left out.
	n := c.NATS
	n.Subjects = []string{"cluster"}
	n.Queue, n.JetStream = "", JetStream{}
	n.Embedded, n.EmbeddedConfig = false, ""
	return n.validate(true)
}

// CheckFilePattern checks that the file pattern p formats each of n
// shard numbers into a distinct plain file name, as file_pattern must;
// the error, an *Error, names file_pattern and p.
func CheckFilePattern(p string, n int) error { return checkPattern(p, n) }

// MaxPendingLimit is the largest cluster.max_pending: with batches of
// batch.max_bytes (256KiB by default), 1GiB awaiting acknowledgement.
const MaxPendingLimit = 4096

// ValidateRoute checks what route uses of c beyond ValidateCluster and
// before the cluster's layout is read: its window (cluster.max_pending),
// no embedded server (route publishes to the NATS servers that hold the
// cluster's stream, which an embedded server would not), and some input.
// Route's NATS input is on when nats.subjects or nats.jetstream.stream is
// set (nats.url is always set: it names the cluster's servers).
func (c Config) ValidateRoute() error {
	switch {
	case c.Cluster.MaxPending < 1 || c.Cluster.MaxPending > MaxPendingLimit:
		return errorf("cluster.max_pending: %d: must be from 1 to %d", c.Cluster.MaxPending, MaxPendingLimit)
	case c.NATS.Embedded:
		return errorf("nats.embedded: true: route reads from and publishes to the NATS servers of nats.url, which hold the cluster's stream: leave nats.embedded out")
	case c.Stdin == StdinOff && !c.RouteNATSOn():
		return errorf("stdin: %s: no input is configured: give nats.subjects (--subject) to read NATS, or leave stdin auto", c.Stdin)
	case c.NATS.Queue != "" && len(c.NATS.Subjects) == 0:
		return errorf("nats.queue: %q: set, but nats.subjects is empty: give the subjects the queue group reads (--subject)", c.NATS.Queue)
	}
	return nil
}

// RouteNATSOn reports whether route reads NATS: nats.subjects or
// nats.jetstream.stream set.
func (c Config) RouteNATSOn() bool { return len(c.NATS.Subjects) > 0 || c.NATS.JetStream.Stream != "" }
