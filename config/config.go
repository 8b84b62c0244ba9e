// Package config loads shardlog's configuration from defaults, a YAML file,
// SHARDLOG_* environment variables and command-line flags (each overriding
// the one before), and validates it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/shardlog/shardlog/shard"
)

// Config is the whole configuration of shardlog run.
type Config struct {
	// Shards is N, the number of files.
	Shards int `mapstructure:"shards"`
	// Dir is the directory the files are written in.
	Dir string `mapstructure:"dir"`
	// FilePattern names shard k's file: fmt.Sprintf(FilePattern, k).
	FilePattern string `mapstructure:"file_pattern"`
	// Stdin says whether standard input is read: auto, true or false.
	Stdin StdinMode `mapstructure:"stdin"`
	// MaxMessageBytes is the longest message; longer lines are split.
	MaxMessageBytes ByteSize `mapstructure:"max_message_bytes"`
	// AllowRoutingChange lets run proceed on a directory written with a
	// different routing (and records the new one).
	AllowRoutingChange bool `mapstructure:"allow_routing_change"`
	// Sync is the fsync policy: none, interval (fdatasync every file that
	// got data every SyncInterval; JetStream messages are acked after the
	// sync that covers them), or batch (fdatasync each batch before it
	// counts as written).
	Sync         SyncMode      `mapstructure:"sync"`
	SyncInterval time.Duration `mapstructure:"sync_interval"`
	// ShutdownTimeout bounds how long a stop waits for writers that are
	// blocked (a full disk); then shardlog exits 1, naming what it could
	// not write.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	Rotate          Rotate        `mapstructure:"rotate"`
	Log             Log           `mapstructure:"log"`
	Metrics         Metrics       `mapstructure:"metrics"`
	Routing         Routing       `mapstructure:"routing"`
	Batch           Batch         `mapstructure:"batch"`
	NATS            NATS          `mapstructure:"nats"`
	Cluster         Cluster       `mapstructure:"cluster"`
	// FileMode and DirMode are the permission bits of the files and
	// directories shardlog creates in Dir (and Dir itself, if it makes
	// it), whatever the umask; existing ones are left as they are.
	FileMode Mode `mapstructure:"file_mode"`
	DirMode  Mode `mapstructure:"dir_mode"`
	// FileGroup, if set, is the group (a name such as adm, or a numeric
	// ID) of the files and directories shardlog creates, so that its
	// members may read the logs.
	FileGroup string `mapstructure:"file_group"`
}

// Mode is a file's permission bits, written as an octal string ("0640").
type Mode uint32

// String returns m in octal, as it is written ("0640").
func (m Mode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// modeHook decodes a Mode from an octal string such as "0640". A number is
// refused: YAML reads 0640 unquoted as 416 but 640 as 640, so which was
// meant cannot be told.
func modeHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[Mode]() {
		return data, nil
	}
	s, ok := data.(string)
	if !ok {
		return nil, fmt.Errorf("%v: want an octal mode as a quoted string, such as \"0640\" (unquoted, YAML reads it as a number)", data)
	}
	m, err := strconv.ParseUint(strings.TrimSpace(s), 8, 32)
	if err != nil || m > 0o777 {
		return nil, fmt.Errorf("%q: want an octal mode from \"0000\" to \"0777\", such as \"0640\"", s)
	}
	return Mode(m), nil
}

// GroupID returns the ID of FileGroup (a group name, or a numeric ID), and
// false if FileGroup is not set.
func (c Config) GroupID() (int, bool, error) {
	g := strings.TrimSpace(c.FileGroup)
	if g == "" {
		return 0, false, nil
	}
	if id, err := strconv.Atoi(g); err == nil {
		if id < 0 {
			return 0, false, errorf("file_group: %q: not a group name or ID", c.FileGroup)
		}
		return id, true, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, false, errorf("file_group: %q: no such group on this system (%v)", c.FileGroup, err)
	}
	id, err := strconv.Atoi(grp.Gid)
	if err != nil {
		return 0, false, errorf("file_group: %q: group ID %q is not a number", c.FileGroup, grp.Gid)
	}
	return id, true, nil
}

// NATS configures NATS input. It is on when URL is set or Embedded is true.
type NATS struct {
	// URL is the server to connect to (several, comma-separated, for a
	// cluster). With Embedded and no URL, the embedded server is used.
	URL string `mapstructure:"url"`
	// Subjects are subscribed to; wildcards allowed.
	Subjects []string `mapstructure:"subjects"`
	// Queue is the queue group: instances in the same group share the
	// messages of a subject (core NATS only).
	Queue string `mapstructure:"queue"`
	// Name is the connection name the server shows.
	Name string `mapstructure:"name"`
	// User and Password, Token, NKeyFile (an NKey seed file) and
	// CredsFile (a JWT credentials file) authenticate; at most one kind.
	// Against the embedded server (Embedded, no URL) they are for an
	// EmbeddedConfig with authorization; without one, shardlog uses a
	// user of its own and refuses them.
	User      string `mapstructure:"user"`
	Password  string `mapstructure:"password"`
	Token     string `mapstructure:"token"`
	NKeyFile  string `mapstructure:"nkey_file"`
	CredsFile string `mapstructure:"creds_file"`
	TLS       TLS    `mapstructure:"tls"`
	// PendingMsgs and PendingBytes limit what the client buffers per
	// subscription before the server's messages are dropped (a slow
	// consumer, which is logged and counted).
	PendingMsgs  int      `mapstructure:"pending_msgs"`
	PendingBytes ByteSize `mapstructure:"pending_bytes"`
	// ReconnectWait is the longest wait between reconnect attempts;
	// attempts back off up to it, forever.
	ReconnectWait time.Duration `mapstructure:"reconnect_wait"`
	// ConnectTimeout bounds the first connection at startup.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	JetStream      JetStream     `mapstructure:"jetstream"`
	// Embedded runs a NATS server inside shardlog, listening on
	// EmbeddedListen, with JetStream storage in EmbeddedStoreDir if set.
	Embedded         bool   `mapstructure:"embedded"`
	EmbeddedListen   string `mapstructure:"embedded_listen"`
	EmbeddedStoreDir string `mapstructure:"embedded_store_dir"`
	// EmbeddedConfig is a nats-server configuration file for the embedded
	// server (authorization, accounts, TLS, limits); EmbeddedListen and
	// EmbeddedStoreDir apply on top of it.
	EmbeddedConfig string `mapstructure:"embedded_config"`
	// EmbeddedListenSet reports whether EmbeddedListen was given (by the
	// file, the environment or a flag) rather than left at its default:
	// only a given address may conflict with embedded_config's.
	EmbeddedListenSet bool `mapstructure:"-"`
}

// TLS configures the NATS connection's TLS.
type TLS struct {
	// CAFile holds the certificates that verify the server.
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are the client certificate and key.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// JetStream configures JetStream input: on when Stream is set.
type JetStream struct {
	// Stream is the stream to consume.
	Stream string `mapstructure:"stream"`
	// Durable is the durable pull consumer's name.
	Durable string `mapstructure:"durable"`
	// Create creates the stream over nats.subjects if it does not exist.
	Create bool `mapstructure:"create"`
	// AckWait is how long the server waits for an ack before redelivering.
	AckWait time.Duration `mapstructure:"ack_wait"`
	// MaxAckPending bounds the messages delivered but not yet acked.
	MaxAckPending int `mapstructure:"max_ack_pending"`
	// UpdateFilter lets shardlog change the subjects an existing durable
	// reads to nats.subjects; without it a difference is an error.
	UpdateFilter bool `mapstructure:"update_filter"`
	// StreamMaxAge and StreamMaxBytes limit the stream that Create makes
	// (the oldest messages are discarded first); zero means no limit.
	StreamMaxAge   time.Duration `mapstructure:"stream_max_age"`
	StreamMaxBytes ByteSize      `mapstructure:"stream_max_bytes"`
}

// Cluster names a shardlog cluster (see package cluster): its layout is
// read from NATS.
type Cluster struct {
	// Name is the cluster's name; empty: no cluster.
	Name string `mapstructure:"name"`
	// Prefix is the subject prefix of the cluster's stream, given when
	// the cluster is created.
	Prefix string `mapstructure:"prefix"`
	// Member, with Name, makes run a member of the cluster: it reads the
	// batches of the member's shards from the cluster's stream.
	Member string `mapstructure:"member"`
	// PinnedTTL is how long the server keeps a member's instance pinned
	// without hearing a pull from it before a standby may take over.
	PinnedTTL time.Duration `mapstructure:"pinned_ttl"`
	// MaxPending is route's window: the most batches awaiting the
	// server's acknowledgement at once, over all shards.
	MaxPending int `mapstructure:"max_pending"`
}

// NATSOn reports whether NATS input is configured.
func (c Config) NATSOn() bool { return c.NATS.URL != "" || c.NATS.Embedded }

// StdinOn reports whether standard input is read.
func (c Config) StdinOn() bool {
	return c.Stdin == StdinOn || c.Stdin == StdinAuto && !c.NATSOn()
}

// Routing says how a message's shard is chosen.
type Routing struct {
	// Key is the part of a message that is hashed ("message").
	Key string `mapstructure:"key"`
	// Seed is the murmur3 seed.
	Seed uint32 `mapstructure:"seed"`
}

// Rotate says when shard files are rotated, and what becomes of the
// rotated files. Rotation is off while MaxBytes and MaxAge are both zero.
type Rotate struct {
	// MaxBytes rotates a file once it holds this much; MaxAge once it
	// has been open this long.
	MaxBytes ByteSize      `mapstructure:"max_bytes"`
	MaxAge   time.Duration `mapstructure:"max_age"`
	// Compress is none, gzip or zstd.
	Compress Compression `mapstructure:"compress"`
	// Keep is how many rotated files are kept per shard (0: all); KeepFor
	// how long (0: forever).
	Keep    int           `mapstructure:"keep"`
	KeepFor time.Duration `mapstructure:"keep_for"`
}

// On reports whether rotation is configured.
func (r Rotate) On() bool { return r.MaxBytes > 0 || r.MaxAge > 0 }

// MinRotateBytes is the least rotate.max_bytes (other than 0, off): four
// of the router's pages, so that batches, at most a quarter of max_bytes
// with size rotation, are still at least a page, and a file outgrows
// max_bytes by at most a quarter.
const MinRotateBytes = 4 * shard.DefaultPageSize

// Compression names how rotated files are compressed.
type Compression string

// The compressions.
const (
	CompressNone Compression = "none"
	CompressGzip Compression = "gzip"
	CompressZstd Compression = "zstd"
)

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Listen is HOST:PORT for /metrics, /healthz and /readyz; empty is off.
	Listen string `mapstructure:"listen"`
	// PerShard adds series per shard (N of each): off by default, so
	// that N=4096 does not make thousands of series.
	PerShard bool `mapstructure:"per_shard"`
}

// Log configures shardlog's own log, on standard error.
type Log struct {
	// Format is text (logfmt) or json.
	Format LogFormat `mapstructure:"format"`
	// Level is the least severe level logged: debug, info, warn or error.
	Level LogLevel `mapstructure:"level"`
}

// LogFormat is the format of shardlog's own log.
type LogFormat string

// The log formats.
const (
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// LogLevel is the least severe level of shardlog's own log.
type LogLevel string

// Level returns l as a slog.Level.
func (l LogLevel) Level() slog.Level {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(l))
	return lv
}

// Batch says how records are batched on their way to the files.
type Batch struct {
	// MaxBytes is the size at which a shard's batch is written.
	MaxBytes ByteSize `mapstructure:"max_bytes"`
	// MaxDelay is the longest a record waits before its batch is written.
	MaxDelay time.Duration `mapstructure:"max_delay"`
	// BufferBytes bounds the memory of pending and in-flight batches, per input.
	BufferBytes ByteSize `mapstructure:"buffer_bytes"`
}

// defaults holds every key with its default value. Viper only maps
// environment variables to keys it knows, so every key is here.
var defaults = map[string]any{
	"shards":               16,
	"dir":                  "",
	"file_pattern":         "shard-%03d.log",
	"stdin":                "auto",
	"max_message_bytes":    "1MiB",
	"allow_routing_change": false,
	"routing.key":          shard.KeyMessage,
	"routing.seed":         0,
	"batch.max_bytes":      "256KiB",
	"batch.max_delay":      "100ms",
	"batch.buffer_bytes":   "32MiB",
	"sync":                 "none",
	"sync_interval":        "1s",
	"metrics.listen":       "",
	"metrics.per_shard":    false,
	"log.format":           "text",
	"log.level":            "info",
	"rotate.max_bytes":     "0",
	"rotate.max_age":       "0s",
	"rotate.compress":      "none",
	"rotate.keep":          0,
	"rotate.keep_for":      "0s",
	"shutdown_timeout":     "30s",
	"file_mode":            "0640",
	"dir_mode":             "0750",
	"file_group":           "",

	"nats.url":                        "",
	"nats.subjects":                   []string{},
	"nats.queue":                      "",
	"nats.name":                       "shardlog",
	"nats.user":                       "",
	"nats.password":                   "",
	"nats.token":                      "",
	"nats.nkey_file":                  "",
	"nats.creds_file":                 "",
	"nats.tls.ca_file":                "",
	"nats.tls.cert_file":              "",
	"nats.tls.key_file":               "",
	"nats.pending_msgs":               1 << 20,
	"nats.pending_bytes":              "64MiB",
	"nats.reconnect_wait":             "5s",
	"nats.connect_timeout":            "5s",
	"nats.jetstream.stream":           "",
	"nats.jetstream.durable":          "shardlog",
	"nats.jetstream.create":           false,
	"nats.jetstream.ack_wait":         "30s",
	"nats.jetstream.max_ack_pending":  65536,
	"nats.jetstream.update_filter":    false,
	"nats.jetstream.stream_max_age":   "168h",
	"nats.jetstream.stream_max_bytes": "1GiB",
	"nats.embedded":                   false,
	"nats.embedded_listen":            "127.0.0.1:4222",
	"nats.embedded_store_dir":         "",
	"nats.embedded_config":            "",

	"cluster.name":   "",
	"cluster.prefix": "shardlog",

	"cluster.member":     "",
	"cluster.pinned_ttl": "5s",

	"cluster.max_pending": 64, // publish.DefaultWindow
}

// Flags maps command-line flags to the keys they set. A flag overrides the
// file and the environment only when it is given.
var Flags = map[string]string{
	"shards":               "shards",
	"dir":                  "dir",
	"file-pattern":         "file_pattern",
	"stdin":                "stdin",
	"max-message-bytes":    "max_message_bytes",
	"allow-routing-change": "allow_routing_change",
	"key":                  "routing.key",
	"seed":                 "routing.seed",
	"batch-max-bytes":      "batch.max_bytes",
	"batch-max-delay":      "batch.max_delay",
	"batch-buffer-bytes":   "batch.buffer_bytes",
	"sync":                 "sync",
	"sync-interval":        "sync_interval",
	"metrics-listen":       "metrics.listen",
	"log-format":           "log.format",
	"log-level":            "log.level",
	"rotate-max-bytes":     "rotate.max_bytes",
	"rotate-max-age":       "rotate.max_age",
	"rotate-compress":      "rotate.compress",
	"rotate-keep":          "rotate.keep",
	"rotate-keep-for":      "rotate.keep_for",
	"shutdown-timeout":     "shutdown_timeout",
	"file-mode":            "file_mode",
	"dir-mode":             "dir_mode",
	"file-group":           "file_group",
	"nats-url":             "nats.url",
	"subject":              "nats.subjects",
	"queue":                "nats.queue",
	"nats-creds":           "nats.creds_file",
	"js-stream":            "nats.jetstream.stream",
	"js-durable":           "nats.jetstream.durable",
	"js-create":            "nats.jetstream.create",
	"js-update-filter":     "nats.jetstream.update_filter",
	"nats-embedded":        "nats.embedded",
	"nats-embedded-listen": "nats.embedded_listen",
	"nats-embedded-store":  "nats.embedded_store_dir",
	"nats-embedded-config": "nats.embedded_config",
	"cluster":              "cluster.name",
	"prefix":               "cluster.prefix",
	"member":               "cluster.member",
	"pinned-ttl":           "cluster.pinned_ttl",
	"max-pending":          "cluster.max_pending",
}

// Error is a configuration or usage error: shardlog exits with status 2.
type Error struct{ Err error }

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func errorf(format string, a ...any) error { return &Error{fmt.Errorf(format, a...)} }

// Load reads the configuration: defaults, then the YAML file at path (if
// path is not empty), then SHARDLOG_* environment variables, then the flags
// in fs that were given. It does not validate; see Validate.
func Load(path string, fs *pflag.FlagSet) (Config, error) {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("SHARDLOG")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if err := checkEnv(os.Environ()); err != nil {
		return Config{}, err
	}
	if path != "" {
		data, err := readConfigFile(path)
		if err != nil {
			return Config{}, err
		}
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return Config{}, errorf("config file %s: %w", path, err)
		}
	}
	if fs != nil {
		for flag, key := range Flags {
			if f := fs.Lookup(flag); f != nil {
				if err := v.BindPFlag(key, f); err != nil {
					return Config{}, errorf("flag --%s: %w", flag, err)
				}
			}
		}
	}
	var c Config
	err := v.Unmarshal(&c, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			numberHook,
			modeHook,
			boolHook,
			byteSizeHook,
			enumHook("stdin", StdinModes()...),
			enumHook("sync", SyncModes()...),
			enumHook("rotate.compress", Compressions()...),
			enumHook("log.format", LogFormats()...),
			enumHook("log.level", LogLevels()...),
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	if err != nil {
		return Config{}, errorf("%s: %s", source(err, path, fs), cleanDecodeError(err))
	}
	c.NATS.EmbeddedListenSet = v.InConfig("nats.embedded_listen") || os.Getenv(envName("nats.embedded_listen")) != "" ||
		fs != nil && fs.Changed("nats-embedded-listen")
	return c, nil
}

// source names where the value a decoding error is about came from: a
// flag, an environment variable, or else the config file.
func source(err error, path string, fs *pflag.FlagSet) string {
	for key := range defaults {
		if !strings.Contains(err.Error(), "'"+key+"'") {
			continue
		}
		for flag, k := range Flags {
			if k == key && fs != nil && fs.Changed(flag) {
				return "flag --" + flag
			}
		}
		if env := envName(key); os.Getenv(env) != "" {
			return "environment " + env
		}
	}
	if path != "" {
		return "config file " + path
	}
	return "configuration"
}

// envName is the environment variable that sets key.
func envName(key string) string {
	return "SHARDLOG_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// MaxConfigBytes bounds a configuration file: a larger one (a log pasted by
// mistake, something hostile) is refused before it is parsed.
const MaxConfigBytes = 256 << 10

// readConfigFile reads the YAML file at path and checks it before viper
// does: its size, and that every key it sets is known and has a value (a
// key with nothing after its colon would otherwise be silently ignored).
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errorf("config file %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, errorf("config file %s: %w", path, err)
	}
	if len(data) > MaxConfigBytes {
		return nil, errorf("config file %s: larger than %d KiB: not a shardlog configuration", path, MaxConfigBytes>>10)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, errorf("config file %s: %w", path, yamlError(data, err))
	}
	if err := checkKeys("", doc); err != nil {
		return nil, errorf("config file %s: %w", path, err)
	}
	return data, nil
}

// knownPrefix reports whether key is a configuration key or the section
// of some (such as nats.jetstream).
func knownPrefix(key string) bool {
	for k := range defaults {
		if k == key || strings.HasPrefix(k, key+".") {
			return true
		}
	}
	return false
}

// checkKeys refuses keys of m (under prefix) that name no configuration
// key, and keys without a value.
func checkKeys(prefix string, m map[string]any) error {
	for k, val := range m {
		key := prefix + k
		if !knownPrefix(key) {
			return unknownKey(key)
		}
		if sub, ok := val.(map[string]any); ok {
			if _, leaf := defaults[key]; !leaf {
				if err := checkKeys(key+".", sub); err != nil {
					return err
				}
				continue
			}
		}
		if _, known := defaults[key]; !known {
			return fmt.Errorf("%s: a section, not a key: give keys under it (such as %s), or remove it", key, sectionKey(key))
		}
		if val == nil {
			return fmt.Errorf("%s: no value: give one, or remove the key to use the default (%s)", key, defaultText(key))
		}
	}
	return nil
}

// sectionKey returns a key of section: the first the man page lists, or
// else the first by name.
func sectionKey(section string) string {
	for _, m := range keyMeanings {
		if _, ok := defaults[m.key]; ok && strings.HasPrefix(m.key, section+".") {
			return m.key
		}
	}
	var first string
	for k := range defaults {
		if strings.HasPrefix(k, section+".") && (first == "" || k < first) {
			first = k
		}
	}
	return first
}

// unknownKey is the error for a key of the config file that names no
// configuration key, suggesting the nearest known one.
func unknownKey(key string) error {
	last := key[strings.LastIndex(key, ".")+1:]
	return fmt.Errorf("unknown key: %s%s", key, didYouMean("", nearest(key, knownKeys(), "."+last)))
}

// defaultText shows key's default in messages: "" for an empty one.
func defaultText(key string) string {
	if s, ok := defaults[key].(string); ok && s == "" {
		return `""`
	}
	return fmt.Sprint(defaults[key])
}

// checkEnv refuses SHARDLOG_* variables that name no key, so that a typo
// is not silently ignored, suggesting the nearest known one; and variables
// set to nothing, as an empty value in the file is refused: viper would
// take them for unset and use the default.
func checkEnv(environ []string) error {
	keys := map[string]string{}
	for k := range defaults {
		keys[envName(k)] = k
	}
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) {
			continue
		}
		key, known := keys[name]
		if !known {
			rest := strings.TrimPrefix(name, envPrefix)
			return errorf("environment: %s: names no configuration key%s", name,
				didYouMean(envPrefix, nearest(rest, envSuffixes(), "_"+rest)))
		}
		if val == "" {
			return errorf("environment: %s: empty: give a value, or unset it to use the default (%s)", name, defaultText(key))
		}
	}
	return nil
}

// cleanDecodeError rewords mapstructure's errors to name keys plainly.
func cleanDecodeError(err error) string {
	s := err.Error()
	s = strings.ReplaceAll(s, "decoding failed due to the following error(s):\n\n", "")
	s = strings.ReplaceAll(s, "has invalid keys:", "unknown key:")
	return s
}

// Validate checks c and returns an *Error naming the first bad key and value.
func (c Config) Validate() error {
	switch {
	case c.Shards <= 0:
		return errorf("shards: %d: must be at least 1", c.Shards)
	case c.Shards > MaxShards:
		return errorf("shards: %d: must be at most %d", c.Shards, MaxShards)
	case c.Dir == "":
		return errorf("dir: not set: give -d DIR or dir: in the config file")
	case c.MaxMessageBytes < 1 || c.MaxMessageBytes > 1<<30:
		return errorf("max_message_bytes: %d: must be from 1 to 1GiB", c.MaxMessageBytes)
	case c.Batch.MaxBytes < 1 || c.Batch.MaxBytes > 1<<30:
		return errorf("batch.max_bytes: %d: must be from 1 to 1GiB", c.Batch.MaxBytes)
	case c.Batch.BufferBytes > 1<<40:
		return errorf("batch.buffer_bytes: %d: must be at most 1TiB", c.Batch.BufferBytes)
	case c.Batch.MaxDelay <= 0:
		return errorf("batch.max_delay: %s: must be positive", c.Batch.MaxDelay)
	case c.Batch.BufferBytes < 2*(c.MaxMessageBytes+1)+2*shard.DefaultPageSize:
		return errorf("batch.buffer_bytes: %d: must be at least twice max_message_bytes (%d) plus 16KiB",
			c.Batch.BufferBytes, c.MaxMessageBytes)
	case c.SyncInterval <= 0:
		return errorf("sync_interval: %s: must be positive", c.SyncInterval)
	case c.ShutdownTimeout <= 0:
		return errorf("shutdown_timeout: %s: must be positive", c.ShutdownTimeout)
	case c.Rotate.MaxBytes < 0 || c.Rotate.MaxBytes > 1<<40:
		return errorf("rotate.max_bytes: %d: must be 0 (off) or up to 1TiB", c.Rotate.MaxBytes)
	case c.Rotate.MaxBytes > 0 && c.Rotate.MaxBytes < MinRotateBytes:
		return errorf("rotate.max_bytes: %d: must be 0 (off) or at least %dKiB (%d), as batches are at most a quarter of it",
			c.Rotate.MaxBytes, MinRotateBytes>>10, MinRotateBytes)
	case c.Rotate.MaxAge < 0 || c.Rotate.MaxAge > 0 && c.Rotate.MaxAge < time.Second:
		return errorf("rotate.max_age: %s: must be 0 (off) or at least 1s", c.Rotate.MaxAge)
	case c.Rotate.Keep < 0:
		return errorf("rotate.keep: %d: must be 0 (keep all) or more", c.Rotate.Keep)
	case c.Rotate.KeepFor < 0:
		return errorf("rotate.keep_for: %s: must be 0 (forever) or positive", c.Rotate.KeepFor)
	case !c.StdinOn() && !c.NATSOn():
		return errorf("stdin: %s: no input is configured (set nats.url or nats.embedded, or stdin: true)", c.Stdin)
	}
	if err := c.NATS.validate(c.NATSOn()); err != nil {
		return err
	}
	if err := c.validatePerms(); err != nil {
		return err
	}
	if c.Metrics.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil || port == "" {
			return errorf("metrics.listen: %q: want HOST:PORT, such as 127.0.0.1:9464", c.Metrics.Listen)
		}
	}
	if err := checkPattern(c.FilePattern, c.Shards); err != nil {
		return err
	}
	k, err := shard.ParseKey(c.Routing.Key)
	if err != nil {
		return &Error{err}
	}
	if k.NeedsNATS() && !c.NATSOn() {
		return errorf("routing.key: %q: needs NATS input (nats.url or nats.embedded)", c.Routing.Key)
	}
	return nil
}

// validatePerms checks file_mode, dir_mode and file_group: shardlog must
// be able to read and write what it creates, and the group must exist.
func (c Config) validatePerms() error {
	switch {
	case c.FileMode&0o600 != 0o600:
		return errorf("file_mode: %q: shardlog (the owner) must read and write its files: want at least \"0600\"", c.FileMode)
	case c.DirMode&0o700 != 0o700:
		return errorf("dir_mode: %q: shardlog (the owner) must list, create and remove files: want at least \"0700\"", c.DirMode)
	}
	_, _, err := c.GroupID()
	return err
}

// validate checks the NATS settings when NATS input is on.
func (n NATS) validate(on bool) error {
	if n.EmbeddedConfig != "" && !n.Embedded {
		return errorf("nats.embedded_config: %q: set, but nats.embedded is false: set nats.embedded (--nats-embedded) too, or remove it", n.EmbeddedConfig)
	}
	if !on {
		if n.JetStream.Stream != "" || len(n.Subjects) > 0 {
			return errorf("nats: subjects or jetstream.stream set, but neither nats.url nor nats.embedded")
		}
		return nil
	}
	auth := 0
	for _, set := range []bool{n.User != "" || n.Password != "", n.Token != "", n.NKeyFile != "", n.CredsFile != ""} {
		if set {
			auth++
		}
	}
	switch {
	case len(n.Subjects) == 0:
		return errorf("nats.subjects: empty: give at least one subject (--subject)")
	case auth > 1:
		return errorf("nats: set only one of user/password, token, nkey_file and creds_file")
	case (n.TLS.CertFile == "") != (n.TLS.KeyFile == ""):
		return errorf("nats.tls: cert_file and key_file go together")
	case n.PendingMsgs < 1:
		return errorf("nats.pending_msgs: %d: must be at least 1", n.PendingMsgs)
	case n.PendingBytes < 1<<20:
		return errorf("nats.pending_bytes: %d: must be at least 1MiB", n.PendingBytes)
	case n.ReconnectWait <= 0:
		return errorf("nats.reconnect_wait: %s: must be positive", n.ReconnectWait)
	case n.ConnectTimeout <= 0:
		return errorf("nats.connect_timeout: %s: must be positive", n.ConnectTimeout)
	case n.JetStream.Stream != "" && n.Queue != "":
		return errorf("nats.queue: %q: JetStream instances share work through the durable consumer (nats.jetstream.durable); leave queue empty", n.Queue)
	case n.JetStream.Stream != "" && n.JetStream.Durable == "":
		return errorf("nats.jetstream.durable: empty: a durable consumer name is needed")
	case n.JetStream.Stream != "" && n.JetStream.AckWait < time.Second:
		return errorf("nats.jetstream.ack_wait: %s: must be at least 1s", n.JetStream.AckWait)
	case n.JetStream.Stream != "" && n.JetStream.MaxAckPending < 1:
		return errorf("nats.jetstream.max_ack_pending: %d: must be at least 1", n.JetStream.MaxAckPending)
	case n.JetStream.StreamMaxAge < 0:
		return errorf("nats.jetstream.stream_max_age: %s: must be 0 (no limit) or positive", n.JetStream.StreamMaxAge)
	case n.JetStream.StreamMaxAge > 0 && n.JetStream.StreamMaxAge < time.Second:
		return errorf("nats.jetstream.stream_max_age: %s: must be 0 (no limit) or at least 1s", n.JetStream.StreamMaxAge)
	case n.JetStream.StreamMaxBytes < 0:
		return errorf("nats.jetstream.stream_max_bytes: %d: must be 0 (no limit) or positive", n.JetStream.StreamMaxBytes)
	}
	if n.Embedded {
		_, port, err := net.SplitHostPort(n.EmbeddedListen)
		if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 0 || p > 65535 {
			return errorf("nats.embedded_listen: %q: want HOST:PORT, such as 127.0.0.1:4222", n.EmbeddedListen)
		}
	}
	for i, u := range strings.Split(n.URL, ",") {
		if n.URL == "" {
			break
		}
		if err := checkURL(strings.TrimSpace(u)); err != nil {
			return errorf("nats.url: URL %d of the list, %q: %v", i+1, RedactURL(strings.TrimSpace(u)), err)
		}
	}
	for _, s := range n.Subjects {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return errorf("nats.subjects: %q: not a valid subject", s)
		}
	}
	return nil
}

// checkURL checks one NATS server URL: HOST:PORT, or a URL with a scheme
// the client speaks and a host.
func checkURL(u string) error {
	schemes := []string{"nats", "tls", "ws", "wss"}
	if !strings.Contains(u, "://") {
		u = "nats://" + u
	}
	parsed, err := url.Parse(u)
	if err != nil || parsed.Host == "" {
		return errors.New("not a valid URL; want nats://HOST:PORT")
	}
	if !slices.Contains(schemes, strings.ToLower(parsed.Scheme)) {
		return fmt.Errorf("scheme %q: want one of %s", parsed.Scheme, strings.Join(schemes, ", "))
	}
	return nil
}

// MaxShards is the largest shard count accepted; each shard holds a file open.
const MaxShards = 1 << 16

// maxNameBytes is the longest file name the system takes (NAME_MAX), less
// room for the suffix a rotated file's name adds.
const maxNameBytes = 255 - len(".20060102T150405.000000000Z.999.zst.tmp")

// checkPattern checks that a file pattern formats each of n shard numbers
// into a distinct plain file name.
func checkPattern(p string, n int) error {
	if strings.Count(p, "%")-2*strings.Count(p, "%%") != 1 || strings.Contains(fmt.Sprintf(p, 0), "%!") {
		return errorf("file_pattern: %q: must hold exactly one integer verb such as %%03d", p)
	}
	// The widest names are checked first, so that a pattern such as
	// %99999d is refused before n names of its width are made.
	for _, k := range []int{0, n - 1} {
		if name := fmt.Sprintf(p, k); name == "" || len(name) > maxNameBytes {
			return errorf("file_pattern: %q: shard %d's name is %d bytes; want 1 to %d", p, k, len(name), maxNameBytes)
		}
	}
	seen := make(map[string]int, n)
	for k := range n {
		name := fmt.Sprintf(p, k)
		if name == "" || len(name) > maxNameBytes {
			return errorf("file_pattern: %q: shard %d's name is %d bytes; want 1 to %d", p, k, len(name), maxNameBytes)
		}
		if j, dup := seen[name]; dup {
			return errorf("file_pattern: %q: gives shards %d and %d the same name %q", p, j, k, name)
		}
		if strings.ContainsRune(name, os.PathSeparator) || strings.HasPrefix(name, ".") || strings.ContainsRune(name, 0) {
			return errorf("file_pattern: %q: shard %d's name %q is not a plain file name in dir", p, k, name)
		}
		seen[name] = k
	}
	return nil
}

// FileName returns the name of shard k's file.
func (c Config) FileName(k int) string { return fmt.Sprintf(c.FilePattern, k) }

// FilePath returns the path of shard k's file.
func (c Config) FilePath(k int) string { return filepath.Join(c.Dir, c.FileName(k)) }

// Key returns the parsed routing key. Call it on a validated Config.
func (c Config) Key() shard.Key {
	k, _ := shard.ParseKey(c.Routing.Key)
	return k
}

// redact hides a secret, showing only whether it is set.
func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return "(set)"
}

// RedactURL returns the NATS URL list u with whatever stands before an
// '@' in each URL (user and password, or a token) replaced, so it can be
// shown. It does not parse: it must hide secrets in URLs that do not parse.
func RedactURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		at := strings.LastIndex(p, "@")
		if at < 0 {
			continue
		}
		start := 0
		if s := strings.Index(p, "://"); s >= 0 && s < at {
			start = s + len("://")
		}
		parts[i] = p[:start] + "REDACTED" + p[at:]
	}
	return strings.Join(parts, ",")
}

// Scrub returns s with every NATS secret of n (password, token, and what
// stands before '@' in a URL) replaced, for errors that may quote them.
func (n NATS) Scrub(s string) string {
	secrets := []string{n.Password, n.Token}
	for _, p := range strings.Split(n.URL, ",") {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			user := p[:at]
			if i := strings.Index(user, "://"); i >= 0 {
				user = user[i+len("://"):]
			}
			secrets = append(secrets, user)
			if _, pw, ok := strings.Cut(user, ":"); ok {
				secrets = append(secrets, pw, url.PathEscape(pw))
			}
		}
	}
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "REDACTED")
		}
	}
	return s
}

// SyncMode is the fsync policy.
type SyncMode string

// The sync policies.
const (
	SyncNone     SyncMode = "none"
	SyncInterval SyncMode = "interval"
	SyncBatch    SyncMode = "batch"
)

// enumHook decodes a string type that takes one of a few values, named
// by key in errors. A YAML boolean stands for "true" or "false".
func enumHook[T ~string](key string, values ...T) mapstructure.DecodeHookFuncType {
	typ := reflect.TypeFor[T]()
	return func(from, to reflect.Type, data any) (any, error) {
		if to != typ {
			return data, nil
		}
		s := fmt.Sprint(data)
		for _, v := range values {
			if strings.EqualFold(s, string(v)) {
				return v, nil
			}
		}
		return nil, fmt.Errorf("%s: %v: want one of %v", key, data, values)
	}
}

// StdinMode says whether standard input is read.
type StdinMode string

// The stdin modes. Auto reads standard input when no NATS input is set.
const (
	StdinAuto StdinMode = "auto"
	StdinOn   StdinMode = "true"
	StdinOff  StdinMode = "false"
)

// boolHook decodes booleans given as strings (environment variables,
// flags): exactly true or false, in any case; anything else is refused with
// the value named, rather than guessed.
func boolHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Bool || from.Kind() != reflect.String {
		return data, nil
	}
	switch strings.ToLower(strings.TrimSpace(data.(string))) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return nil, fmt.Errorf("%q: want true or false", data)
}

// numberHook decodes whole numbers and durations itself, rather than
// through weakly typed decoding, so that a wrong value is refused with the
// value named: a word, a fraction or a boolean where a number is wanted, a
// negative seed.
func numberHook(from, to reflect.Type, data any) (any, error) {
	if to == reflect.TypeFor[time.Duration]() {
		switch s := data.(type) {
		case time.Duration:
			return s, nil
		case string:
			d, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("%q: want a duration such as 200ms or 1s", s)
			}
			return d, nil
		}
		return nil, fmt.Errorf("%v: want a duration such as 200ms or 1s", data)
	}
	if _, ok := data.(string); ok && to == byteSizeType {
		return data, nil // byteSizeHook parses units
	}
	if to == reflect.TypeFor[Mode]() {
		return data, nil // modeHook's
	}
	var lo, hi int64
	switch to.Kind() {
	case reflect.Int, reflect.Int64:
		lo, hi = math.MinInt64, math.MaxInt64
	case reflect.Uint32:
		lo, hi = 0, math.MaxUint32
	default:
		return data, nil
	}
	var n int64
	v := reflect.ValueOf(data)
	switch d := data.(type) {
	case time.Duration:
		return nil, fmt.Errorf("%s is not a whole number", d)
	case int, int8, int16, int32, int64:
		n = v.Int()
	case uint, uint8, uint16, uint32, uint64:
		if v.Uint() > math.MaxInt64 {
			return nil, fmt.Errorf("%v is out of range", d)
		}
		n = int64(v.Uint())
	case float64:
		if d != math.Trunc(d) || d < math.MinInt64 || d > math.MaxInt64 {
			return nil, fmt.Errorf("%v is not a whole number", d)
		}
		n = int64(d)
	case string:
		v, err := strconv.ParseInt(strings.TrimSpace(d), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", d)
		}
		n = v
	default:
		return nil, fmt.Errorf("%v (%T) is not a whole number", data, data)
	}
	if n < lo || n > hi {
		return nil, fmt.Errorf("%d is out of range [%d, %d]", n, lo, hi)
	}
	return n, nil
}

// Describe returns the effective configuration, one "key: value" line per
// key, followed by where the value came from when origins names it.
func (c Config) Describe(origins map[string]string) string {
	var b strings.Builder
	for _, kv := range []struct {
		k string
		v any
	}{
		{"shards", c.Shards}, {"dir", c.Dir}, {"file_pattern", c.FilePattern}, {"stdin", c.Stdin},
		{"max_message_bytes", int64(c.MaxMessageBytes)}, {"allow_routing_change", c.AllowRoutingChange},
		{"routing.key", c.Routing.Key}, {"routing.seed", c.Routing.Seed},
		{"batch.max_bytes", int64(c.Batch.MaxBytes)}, {"batch.max_delay", c.Batch.MaxDelay},
		{"batch.buffer_bytes", int64(c.Batch.BufferBytes)}, {"sync", c.Sync},
		{"sync_interval", c.SyncInterval}, {"shutdown_timeout", c.ShutdownTimeout},
		{"file_mode", c.FileMode}, {"dir_mode", c.DirMode}, {"file_group", c.FileGroup},
		{"log.format", c.Log.Format}, {"log.level", c.Log.Level},
		{"metrics.listen", c.Metrics.Listen}, {"metrics.per_shard", c.Metrics.PerShard},
		{"rotate.max_bytes", int64(c.Rotate.MaxBytes)}, {"rotate.max_age", c.Rotate.MaxAge},
		{"rotate.compress", c.Rotate.Compress}, {"rotate.keep", c.Rotate.Keep}, {"rotate.keep_for", c.Rotate.KeepFor},
		{"nats.url", RedactURL(c.NATS.URL)}, {"nats.subjects", c.NATS.Subjects}, {"nats.queue", c.NATS.Queue},
		{"nats.name", c.NATS.Name}, {"nats.user", c.NATS.User}, {"nats.password", redact(c.NATS.Password)},
		{"nats.token", redact(c.NATS.Token)}, {"nats.nkey_file", c.NATS.NKeyFile}, {"nats.creds_file", c.NATS.CredsFile},
		{"nats.tls.ca_file", c.NATS.TLS.CAFile}, {"nats.tls.cert_file", c.NATS.TLS.CertFile}, {"nats.tls.key_file", c.NATS.TLS.KeyFile},
		{"nats.pending_msgs", c.NATS.PendingMsgs}, {"nats.pending_bytes", int64(c.NATS.PendingBytes)},
		{"nats.reconnect_wait", c.NATS.ReconnectWait}, {"nats.connect_timeout", c.NATS.ConnectTimeout},
		{"nats.jetstream.stream", c.NATS.JetStream.Stream}, {"nats.jetstream.durable", c.NATS.JetStream.Durable},
		{"nats.jetstream.create", c.NATS.JetStream.Create}, {"nats.jetstream.ack_wait", c.NATS.JetStream.AckWait},
		{"nats.jetstream.max_ack_pending", c.NATS.JetStream.MaxAckPending},
		{"nats.jetstream.update_filter", c.NATS.JetStream.UpdateFilter},
		{"nats.jetstream.stream_max_age", c.NATS.JetStream.StreamMaxAge},
		{"nats.jetstream.stream_max_bytes", int64(c.NATS.JetStream.StreamMaxBytes)},
		{"nats.embedded", c.NATS.Embedded}, {"nats.embedded_listen", c.NATS.EmbeddedListen},
		{"nats.embedded_store_dir", c.NATS.EmbeddedStoreDir}, {"nats.embedded_config", c.NATS.EmbeddedConfig},
		{"cluster.name", c.Cluster.Name}, {"cluster.prefix", c.Cluster.Prefix},
		{"cluster.member", c.Cluster.Member}, {"cluster.pinned_ttl", c.Cluster.PinnedTTL},
		{"cluster.max_pending", c.Cluster.MaxPending},
	} {
		fmt.Fprintf(&b, "%s: %v", kv.k, kv.v)
		if o := origins[kv.k]; o != "" {
			fmt.Fprintf(&b, "  # %s", o)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Origins tells, for every key, where Load took its value from: a flag, an
// environment variable, the config file at path, or the default.
func Origins(path string, fs *pflag.FlagSet) (map[string]string, error) {
	inFile := map[string]bool{}
	if path != "" {
		data, err := readConfigFile(path)
		if err != nil {
			return nil, err
		}
		var doc map[string]any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, errorf("config file %s: %w", path, err)
		}
		var walk func(prefix string, m map[string]any)
		walk = func(prefix string, m map[string]any) {
			for k, v := range m {
				if sub, ok := v.(map[string]any); ok {
					walk(prefix+k+".", sub)
				} else {
					inFile[prefix+k] = true
				}
			}
		}
		walk("", doc)
	}
	origins := make(map[string]string, len(defaults))
	for key := range defaults {
		origins[key] = "default"
		if inFile[key] {
			origins[key] = "file " + path
		}
		if os.Getenv(envName(key)) != "" {
			origins[key] = "environment " + envName(key)
		}
	}
	for flag, key := range Flags {
		if fs != nil && fs.Changed(flag) {
			origins[key] = "flag --" + flag
		}
	}
	return origins, nil
}
