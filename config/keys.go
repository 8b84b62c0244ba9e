package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// KeyDoc documents one configuration key, for the man page.
type KeyDoc struct {
	// Key is the key's name, with '.' between sections: batch.max_delay.
	Key string
	// Flags are the command-line flags of run that set it, such as
	// "--shards"; none for keys set only in the file or the environment.
	Flags []string
	// Env is the environment variable that sets it.
	Env string
	// Default is its default value, as it would be written in the file.
	Default string
	// Meaning says what it does; empty for a key not documented yet
	// (a test refuses that).
	Meaning string
}

// keyMeanings documents the keys, in the order the man page lists them;
// Default, when set, is shown instead of the default value. Keys that
// Load does not know (yet) are left out of the man page.
var keyMeanings = []struct{ key, def, meaning string }{
	{"shards", "", "Number of files, N (1 to 65536)."},
	{"dir", "(none: run needs one)", "Directory of the files; created if missing."},
	{"file_pattern", "", "Name of shard k's file in dir: a pattern with one integer verb, formatted with k."},
	{"stdin", "", "Whether standard input is read: auto (when no NATS input is configured), true or false."},
	{"max_message_bytes", "", "Longest message; a longer line is split into messages of this size, each routed on its own."},
	{"allow_routing_change", "", "Proceed on a directory written with another routing (shards, seed, key, pattern), and record the new one."},
	{"routing.key", "", "What is hashed: message (the whole message), subject (the NATS subject), header:<name> (a NATS header), json:<field> (a top-level JSON field). A message without its key is routed by the whole message."},
	{"routing.seed", "", "The murmur3 seed."},
	{"batch.max_bytes", "", "A shard's batch is written once it holds this much..."},
	{"batch.max_delay", "", "...or once its oldest record has waited this long."},
	{"batch.buffer_bytes", "", "Memory for pending and in-flight batches, per input; when it is spent, input waits."},
	{"sync", "", "The fsync policy: none; interval (fdatasync every file that got data every sync_interval; JetStream messages are acknowledged after that sync); batch (fdatasync each batch before it counts as written)."},
	{"sync_interval", "", "Period of sync: interval."},
	{"shutdown_timeout", "", "How long a stop waits for a writer blocked on a full disk before giving up on what it holds."},
	{"file_mode", "0640", "Mode of the shard files, rotated and compressed files, the routing record and the lock, whatever the umask."},
	{"dir_mode", "0750", "Mode of the directories shardlog creates (dir, .shardlog-torn/), whatever the umask."},
	{"file_group", "(none)", "Group of the files and directories shardlog creates (such as adm), so that its members can read the logs; empty: the process's own."},
	{"metrics.listen", "(off)", "HOST:PORT to serve Prometheus metrics at /metrics, and /healthz and /readyz."},
	{"metrics.per_shard", "", "Add series per shard (N of each)."},
	{"log.format", "", "Format of shardlog's own log on standard error: text (logfmt) or json."},
	{"log.level", "", "Least severe level logged: debug, info, warn or error."},
	{"rotate.max_bytes", "0 (off)", "Rotate a shard file once it holds this much."},
	{"rotate.max_age", "0s (off)", "Rotate a shard file once it has been open this long."},
	{"rotate.compress", "", "Compress rotated files: none, gzip or zstd."},
	{"rotate.keep", "0 (all)", "Rotated files kept per shard."},
	{"rotate.keep_for", "0s (forever)", "Delete rotated files older than this."},
	{"nats.url", "(none)", "NATS server URL(s), comma-separated: nats://, tls://, ws://, wss:// or HOST:PORT. Setting it turns NATS input on."},
	{"nats.subjects", "(none)", "Subjects to read; wildcards allowed."},
	{"nats.queue", "(none)", "Queue group shared by instances (core NATS)."},
	{"nats.name", "", "Connection name the server shows."},
	{"nats.user", "(none)", "User name; with nats.password. Authentication: at most one kind."},
	{"nats.password", "(none)", "Password of nats.user."},
	{"nats.token", "(none)", "Token to authenticate with."},
	{"nats.nkey_file", "(none)", "NKey seed file to authenticate with."},
	{"nats.creds_file", "(none)", "JWT credentials file to authenticate with."},
	{"nats.tls.ca_file", "(none)", "Certificates that verify the server."},
	{"nats.tls.cert_file", "(none)", "Client certificate; with nats.tls.key_file."},
	{"nats.tls.key_file", "(none)", "Client key."},
	{"nats.pending_msgs", "", "Messages the client buffers per subscription; beyond, the server's messages are dropped (and counted)."},
	{"nats.pending_bytes", "", "Bytes the client buffers per subscription."},
	{"nats.reconnect_wait", "", "Longest backoff between reconnects; shardlog reconnects forever."},
	{"nats.connect_timeout", "", "Limit for the first connection, at startup."},
	{"nats.jetstream.stream", "(none)", "JetStream stream to read with a durable pull consumer; setting it turns JetStream on."},
	{"nats.jetstream.durable", "", "Durable consumer name; instances with the same one share the stream."},
	{"nats.jetstream.create", "", "Create the stream over nats.subjects if it does not exist."},
	{"nats.jetstream.ack_wait", "", "How long the server waits for an acknowledgement before it redelivers."},
	{"nats.jetstream.max_ack_pending", "", "Most messages delivered but not yet acknowledged."},
	{"nats.jetstream.update_filter", "", "Let an existing durable be changed to read nats.subjects (otherwise a difference is an error)."},
	{"nats.jetstream.stream_max_age", "", "With create: the stream's maximum message age (0: no limit)."},
	{"nats.jetstream.stream_max_bytes", "", "With create: the stream's maximum size (0: no limit)."},
	{"nats.embedded", "", "Run a NATS server inside shardlog."},
	{"nats.embedded_listen", "", "Address of the embedded server."},
	{"nats.embedded_store_dir", "(none)", "JetStream storage directory of the embedded server (turns its JetStream on)."},
	{"nats.embedded_config", "(none)", "A nats-server configuration file for the embedded server (authorization, accounts, TLS, limits), read by nats-server's own parser; nats.embedded_listen and nats.embedded_store_dir apply on top."},
	{"cluster.name", "(none)", "Name of the cluster (shardlog cluster, which --cluster): its layout is read from the NATS key-value bucket shardlog_clusters."},
	{"cluster.prefix", "", "With cluster create: the subject prefix of the cluster's stream; shard k's batches go to <prefix>.k."},
	{"cluster.member", "(none)", "With cluster.name: run as this member of the cluster, reading the batches of its shards from the cluster's stream (instances with the same member name are one active and hot standbys)."},
	{"cluster.pinned_ttl", "", "As a member: how long the server keeps the active instance pinned without a pull from it before a standby takes over."},
	{"cluster.max_pending", "", "With route: the most batches awaiting the server's acknowledgement at once, over all shards (1 to 4096); it bounds the bytes in flight to it times batch.max_bytes."},
}

// Keys documents every configuration key Load knows, in the order of the
// man page (keys without documentation last, by name).
func Keys() []KeyDoc {
	flags := map[string][]string{}
	for flag, key := range Flags {
		flags[key] = append(flags[key], "--"+flag)
	}
	order := map[string]int{}
	docs := make([]KeyDoc, 0, len(defaults))
	for i, m := range keyMeanings {
		if _, ok := defaults[m.key]; ok {
			order[m.key] = i
			docs = append(docs, KeyDoc{Key: m.key, Default: cmp.Or(m.def, showDefault(defaults[m.key])), Meaning: m.meaning})
		}
	}
	var undocumented []KeyDoc
	for key, d := range defaults {
		if _, ok := order[key]; !ok {
			undocumented = append(undocumented, KeyDoc{Key: key, Default: showDefault(d)})
		}
	}
	slices.SortFunc(undocumented, func(a, b KeyDoc) int { return strings.Compare(a.Key, b.Key) })
	docs = append(docs, undocumented...)
	for i := range docs {
		docs[i].Env = envName(docs[i].Key)
		docs[i].Flags = flags[docs[i].Key]
		slices.Sort(docs[i].Flags)
	}
	return docs
}

// showDefault writes a default value as it would be written in the file.
func showDefault(v any) string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return "(none)"
		}
		return v
	case []string:
		if len(v) == 0 {
			return "(none)"
		}
		return strings.Join(v, ",")
	}
	return fmt.Sprint(v)
}
