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
