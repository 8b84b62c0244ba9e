package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/ingest"
	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

// whichCmd is shardlog which: it names the shard and file of each key
// given, or read from stdin, under the routing of the directory.
func whichCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "which [-c FILE] [-n N] [--seed S] [--key KIND] [-d DIR] [--cluster NAME] KEY... | -",
		Short: "Print the shard and file each key routes to",
		Long: `Print, for each KEY, a line "KEY<TAB>SHARD<TAB>FILE": the shard number and
the file that messages with that routing key go to. A KEY of "-" reads keys
from standard input instead, one per line (a last line without a newline
is a key too; a carriage return is part of the key, as in routing). To
look up the key "-" itself, give it on standard input.

KEY is the value that is hashed: with the default --key message, the whole
message; with --key json:<field>, the field's value (alice for
{"user":"alice"}: a string's contents, another value's JSON text such as 42);
with --key subject or header:<name>, the subject or the header's value. A
message without its key is routed by the whole message: give the message.

When DIR records the routing its files were written with
(.shardlog-routing.json), that routing is used (shards, seed, key and file
pattern); where a flag, a SHARDLOG_* variable or the file given with -c sets
one of them differently, a note on standard error says so. Values left at
their defaults are not compared.

With --cluster NAME, the routing is the cluster's layout, read from NATS
(see shardlog cluster), and each line is "KEY<TAB>SHARD<TAB>MEMBER<TAB>FILE":
the member that owns the shard, and the file's name (under -d DIR if
given). A routing value given that differs from the layout's is an error.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, keys []string) error {
			cfg, err := config.Load(path, cmd.Flags())
			if err != nil {
				return err
			}
			if cfg.Cluster.Name != "" {
				return whichCluster(path, cmd.Flags(), cfg, keys, stdin, stdout, stderr)
			}
			if cfg.Dir == "" {
				cfg.Dir = "."
			}
			if err := validateOffline(cfg); err != nil {
				return err
			}
			origins, err := config.Origins(path, cmd.Flags())
			if err != nil {
				return err
			}
			// The files in dir follow the routing they were written with:
			// use it, and say where what was given differs from it.
			rec, ok, err := writer.ReadRouting(cfg.Dir)
			if err != nil {
				return runtimeError{err}
			}
			if ok {
				for _, d := range rec.Diff(givenRouting(rec, cfg, origins)) {
					fmt.Fprintf(stderr, "shardlog which: %s was written with %s: using the directory's routing\n", cfg.Dir,
						strings.Replace(strings.Replace(d, " was ", " ", 1), ", now ", ", not ", 1))
				}
				cfg.Shards, cfg.Routing.Seed, cfg.FilePattern = rec.Shards, rec.Seed, rec.FilePattern
			}
			return showKeys(keys, stdin, stdout, func(out io.Writer, key []byte) {
				k := int(shard.Sum32(key, cfg.Routing.Seed) % uint32(cfg.Shards))
				fmt.Fprintf(out, "%s\t%d\t%s\n", key, k, cfg.FilePath(k))
			})
		},
	}
	f := c.Flags()
	f.StringVarP(&path, "config", "c", "", "YAML configuration file")
	f.IntP("shards", "n", 0, "number of shards (default 16)")
	f.Uint32("seed", 0, "murmur3 seed")
	f.String("key", "", "routing key whose values KEY are: message, subject, header:<name> or json:<field> (default message)")
	f.StringP("dir", "d", "", "directory of the shard files")
	f.String("file-pattern", "", "file name pattern (default shard-%03d.log)")
	f.String("cluster", "", "use the layout of this cluster, read from NATS (--nats-url), and print each key's member too")
	f.String("nats-url", "", "with --cluster: NATS server URL(s), comma-separated")
	f.String("nats-creds", "", "with --cluster: NATS credentials file")
	return c
}

// givenRouting returns the routing of cfg for the values that were given
// (by a flag, the environment or the file; origins says which), and rec's
// for the rest: compared with rec, it differs only where a value given
// differs.
func givenRouting(rec writer.Routing, cfg config.Config, origins map[string]string) writer.Routing {
	given := func(key string) bool { return origins[key] != "default" }
	r := rec
	if given("shards") {
		r.Shards = cfg.Shards
	}
	if given("routing.seed") {
		r.Seed = cfg.Routing.Seed
	}
	if given("routing.key") {
		r.Key = cfg.Key().String()
	}
	if given("file_pattern") {
		r.FilePattern = cfg.FilePattern
	}
	return r
}

// readKeys calls key for each line of r, without its '\n'; a last line
// without one is a key too, and every other byte, '\r' included, is part
// of the key, as in routing.
func readKeys(r io.Reader, key func([]byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			key(bytes.TrimSuffix(line, []byte("\n")))
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// checkConfigCmd is shardlog check-config: it loads and validates the
// configuration as run does, and prints it with where each value came from.
func checkConfigCmd(stdout io.Writer) *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "check-config [-c FILE] [flags]",
		Short: "Check the configuration run would use, and print it with where each value came from",
		Long: `Check-config loads the configuration exactly as run does (defaults, the file
given with -c, SHARDLOG_* environment variables, then the flags, which are
run's), validates it, and prints every key with its value and where that
value came from. It exits 2, naming the key, on the first error. As a
member of a cluster (--cluster, --member), it reads the cluster's layout
from NATS, as run does, and the routing values are the layout's.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path, cmd.Flags())
			if err != nil {
				return err
			}
			member := cfg.MemberOn()
			if member {
				if cfg, _, err = memberConfig(path, cmd.Flags(), cfg, cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			if cfg.NATS.Embedded {
				if err := ingest.CheckEmbedded(cfg.NATS); err != nil {
					return err
				}
			}
			origins, err := config.Origins(path, cmd.Flags())
			if err != nil {
				return err
			}
			if member {
				for _, k := range []string{"shards", "routing.seed", "routing.key", "file_pattern", "cluster.prefix", "nats.subjects",
					"nats.jetstream.stream", "nats.jetstream.durable"} {
					origins[k] = "cluster " + cfg.Cluster.Name + "'s layout"
				}
			}
			what := path
			if what == "" {
				what = "configuration"
			}
			fmt.Fprintf(stdout, "%s: OK\n%s", what, cfg.Describe(origins))
			return nil
		},
	}
	c.Flags().StringVarP(&path, "config", "c", "", "YAML configuration file")
	runFlags(c.Flags())
	return c
}

// showKeys writes, with show, a line for each of keys, reading the keys
// from stdin, one per line, in place of a key "-".
func showKeys(keys []string, stdin io.Reader, stdout io.Writer, show func(out io.Writer, key []byte)) error {
	out := bufio.NewWriter(stdout)
	for _, key := range keys {
		if key != "-" {
			show(out, []byte(key))
			continue
		}
		if err := readKeys(stdin, func(key []byte) { show(out, key) }); err != nil {
			return runtimeError{fmt.Errorf("read keys from standard input: %w", err)}
		}
	}
	if err := out.Flush(); err != nil {
		return runtimeError{fmt.Errorf("write standard output: %w", err)}
	}
	return nil
}

// validateOffline validates cfg for a command that reads no input (which,
// grep, verify): a key that only NATS messages have (subject, header:)
// needs no NATS configured there; whether such a key can be used is the
// command's to say.
func validateOffline(cfg config.Config) error {
	if k, err := shard.ParseKey(cfg.Routing.Key); err == nil && k.NeedsNATS() {
		cfg.Routing.Key = shard.KeyMessage
	}
	return cfg.Validate()
}
