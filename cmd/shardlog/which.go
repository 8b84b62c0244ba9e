package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/ingest"
	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

func whichCmd(stdout, stderr io.Writer) *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "which [-c FILE] [-n N] [--seed S] [-d DIR] KEY...",
		Short: "Print the shard and file each key routes to",
		Long: `Print, for each KEY, a line "KEY<TAB>SHARD<TAB>FILE": the shard number and
the file that messages with that routing key go to. With the default routing
key the key is the whole message. When DIR records the routing its files were
written with (.shardlog-routing.json), that routing is used, and where the
flags or configuration differ from it, a note on standard error says so.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, keys []string) error {
			cfg, err := config.Load(path, cmd.Flags())
			if err != nil {
				return err
			}
			if cfg.Dir == "" {
				cfg.Dir = "."
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			// The files in dir follow the routing they were written with:
			// use it, and say where it differs from what was given.
			rec, ok, err := writer.ReadRouting(cfg.Dir)
			if err != nil {
				return runtimeError{err}
			}
			if ok {
				given := writer.Routing{Shards: cfg.Shards, Seed: cfg.Routing.Seed, Key: cfg.Key().String(), FilePattern: cfg.FilePattern}
				for _, d := range rec.Diff(given) {
					fmt.Fprintf(stderr, "shardlog which: %s was written with %s: using the directory's routing\n", cfg.Dir,
						strings.Replace(strings.Replace(d, " was ", " ", 1), ", now ", ", not ", 1))
				}
				cfg.Shards, cfg.Routing.Seed, cfg.FilePattern = rec.Shards, rec.Seed, rec.FilePattern
			}
			for _, key := range keys {
				k := int(shard.Sum32([]byte(key), cfg.Routing.Seed) % uint32(cfg.Shards))
				fmt.Fprintf(stdout, "%s\t%d\t%s\n", key, k, cfg.FilePath(k))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&path, "config", "c", "", "YAML configuration file")
	f.IntP("shards", "n", 0, "number of shards (default 16)")
	f.Uint32("seed", 0, "murmur3 seed")
	f.StringP("dir", "d", "", "directory of the shard files")
	f.String("file-pattern", "", "file name pattern (default shard-%03d.log)")
	return c
}

func checkConfigCmd(stdout io.Writer) *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "check-config [-c FILE] [flags]",
		Short: "Check the configuration run would use, and print it with where each value came from",
		Long: `Check-config loads the configuration exactly as run does (defaults, the file
given with -c, SHARDLOG_* environment variables, then the flags, which are
run's), validates it, and prints every key with its value and where that
value came from. It exits 2, naming the key, on the first error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path, cmd.Flags())
			if err != nil {
				return err
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
