package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardlog/shardlog/cluster"
	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/grep"
	"github.com/shardlog/shardlog/readback"
	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

// grepCmd is shardlog grep: it prints the records of keys, reading only
// their shards' files.
func grepCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		path                 string
		count, files, follow bool
		sinceFlag, untilFlag string
	)
	c := &cobra.Command{
		Use:   "grep [-c FILE] [-d DIR] [--key K] [--seed S] [-n N] [--count | --files | -f] [--since T] [--until T] KEY...",
		Short: "Print the records of keys, reading only their shards' files",
		Long: `Print the records whose key is one of the KEYs given, reading only the files of
the KEYs' shards: each shard's rotated files in the order they were written
(.gz and .zst decompressed as a stream, never to disk), then its current
file. With --key json:<field> a record's key is its field's value (u42 for
{"user":"u42"}: a string's contents, another value's JSON text), and records
without the field are not printed; with --key message, the whole record.
Records of other keys that share a shard are skipped.

The routing (shards, seed, key, file pattern) is the one DIR records in
.shardlog-routing.json: -n, --seed, --key and --file-pattern (or -c FILE or
SHARDLOG_* variables) are needed only for a directory without a record,
and one that contradicts the record is an error naming both values. A
directory written with --key subject or header:<name> cannot be read
back by key: those keys are not in the records (an error says so).

Records are printed in file order within a shard; with KEYs of several
shards, shard by shard, in increasing shard number. Each shard is read
once, whatever the number of its KEYs.

Files read, in order: shardlog's rotated FILE.<UTC time>[.<n>][.gz|.zst]
by the time in their names, then the current FILE; logrotate's FILE.<n>
(highest first) and FILE-YYYYMMDD (dateext) are read too, before them.
A rotated file found both plain and compressed (its compression just
finished) is read once. Other files in DIR are ignored.

--since and --until (an RFC 3339 time such as 2026-12-03T10:00:00Z, or a
duration ago such as 2h) skip the rotated files written entirely outside
the range, by the times in their names: a rotated file's name holds the
time it was rotated (its last record's time at most), and its first
record is not older than the file rotated before it. Both ends are
included. Records carry no time: the files that overlap the range are
printed whole, so records somewhat outside it may be printed. Files
logrotate named are always read.

-f (--follow) goes on printing the KEYs' new records as they are written,
until SIGINT or SIGTERM, as tail -F does: across shardlog's rotation and
logrotate's rename followed by a SIGHUP reopen (the renamed file is read
to its end once the new one holds data). It looks for new records every
200ms; a record is printed once its newline is written.

A truncated or corrupt .gz or .zst file is named on standard error with
the line where it broke; the records before the break and the other
files are still printed, and the exit status is 2. A last record
without its newline (torn) is printed as it is, with a newline, and
noted on standard error.

Exit status: 0 when a record was printed (or counted, or, with --files,
a file listed), 1 when none, 2 on an error. A standard output closed
early (shardlog grep ... | head) ends grep quietly, with status 0.`,
		Example: `  shardlog grep -d /var/log/app --key json:user u42
  shardlog grep -d /var/log/app --since 2h --count u42 u43
  shardlog grep -d /var/log/app -f u42`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, keys []string) error {
			since, err := grepTime("since", sinceFlag)
			if err != nil {
				return err
			}
			until, err := grepTime("until", untilFlag)
			if err != nil {
				return err
			}
			switch {
			case !since.IsZero() && !until.IsZero() && since.After(until):
				return &config.Error{Err: fmt.Errorf("--since %s is after --until %s", sinceFlag, untilFlag)}
			case follow && (count || files || untilFlag != ""):
				return &config.Error{Err: errors.New("--follow: cannot be combined with --count, --files or --until")}
			case count && files:
				return &config.Error{Err: errors.New("--count and --files: give one")}
			}
			ctx := context.Background()
			if follow {
				// Before anything is read or said, so that a stop
				// is always grep's to handle.
				var stop context.CancelFunc
				ctx, stop = signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
				defer stop()
			}
			g, dir, err := newGrep(path, cmd, keys, grep.Options{Since: since, Until: until, Count: count, Stderr: stderr}, stdout)
			if err != nil {
				return err
			}
			// A reader that went away (| head) makes writes fail with
			// EPIPE instead of killing grep: it ends quietly.
			signal.Ignore(syscall.SIGPIPE)
			defer signal.Reset(syscall.SIGPIPE)
			if files {
				err = g.ListFiles(dir)
			} else {
				err = g.Run(ctx, dir, follow)
			}
			return grepStatus(g, err)
		},
	}
	f := c.Flags()
	f.StringVarP(&path, "config", "c", "", "YAML configuration file (its dir and routing are used)")
	f.StringP("dir", "d", "", "directory of the shard files (default .)")
	f.IntP("shards", "n", 0, "number of shards, for a directory without a routing record (default 16)")
	f.Uint32("seed", 0, "murmur3 seed, for a directory without a routing record")
	f.String("key", "", "routing key whose values KEY are, for a directory without a routing record: message or json:<field> (default message)")
	f.String("file-pattern", "", "file name pattern, for a directory without a routing record (default shard-%03d.log)")
	f.BoolVar(&count, "count", false, "print the number of records found instead of the records")
	f.BoolVar(&files, "files", false, "print the files that would be read, in order, instead of the records")
	f.BoolVarP(&follow, "follow", "f", false, "go on printing new records as they are written, until SIGINT or SIGTERM")
	f.StringVar(&sinceFlag, "since", "", "skip rotated files written entirely before this time (RFC 3339, or a duration ago such as 2h)")
	f.StringVar(&untilFlag, "until", "", "skip files written entirely after this time (RFC 3339, or a duration ago such as 2h)")
	return c
}

// grepTime parses the value of --since or --until: an RFC 3339 time, or a
// duration meaning that long ago. An empty value is no bound.
func grepTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, &config.Error{Err: fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-12-03T10:00:00Z, or a duration ago such as 2h", flag, v)}
}

// recordedRouting reads the routing record of cfg's directory, if it has
// one (ok), for command name, which reads files back: a routing value
// given (origins says by what) that contradicts the record is a
// configuration error naming both, since files are read with the
// routing they were written with.
func recordedRouting(name string, cfg config.Config, origins map[string]string) (rec writer.Routing, ok bool, err error) {
	rec, ok, err = writer.ReadRouting(cfg.Dir)
	if err != nil {
		return rec, false, &config.Error{Err: fmt.Errorf("dir %s: %w", cfg.Dir, err)}
	}
	if !ok {
		return rec, false, nil
	}
	if diffs := rec.Diff(givenRouting(rec, cfg, origins)); len(diffs) > 0 {
		var from []string
		for _, k := range []string{"shards", "routing.seed", "routing.key", "file_pattern"} {
			if origins[k] != "default" {
				from = append(from, k+" from "+origins[k])
			}
		}
		return rec, false, &config.Error{Err: fmt.Errorf("dir %s: its routing record (%s) contradicts what was given: %s (%s); "+
			"%s reads files with the routing they were written with: leave the value out",
			cfg.Dir, writer.RoutingFile, strings.Join(diffs, ", "), strings.Join(from, ", "), name)}
	}
	return rec, true, nil
}

// newGrep loads the configuration, finds the directory's routing (its
// record; given values only where it has none, and none contradicting
// it), and returns a Grep of keys printing to stdout, and the directory.
func newGrep(path string, cmd *cobra.Command, keys []string, opt grep.Options, stdout io.Writer) (*grep.Grep, string, error) {
	stderr := opt.Stderr
	cfg, err := config.Load(path, cmd.Flags())
	if err != nil {
		return nil, "", err
	}
	if cfg.Dir == "" {
		cfg.Dir = "."
	}
	if _, err := shard.ParseKey(cfg.Routing.Key); err != nil {
		return nil, "", &config.Error{Err: err}
	}
	origins, err := config.Origins(path, cmd.Flags())
	if err != nil {
		return nil, "", err
	}
	rec, ok, err := recordedRouting("grep", cfg, origins)
	if err != nil {
		return nil, "", err
	}
	if ok {
		cfg.Shards, cfg.Routing.Seed, cfg.Routing.Key, cfg.FilePattern = rec.Shards, rec.Seed, rec.Key, rec.FilePattern
	} else {
		fmt.Fprintf(stderr, "shardlog grep: %s has no routing record (%s): reading it as shards %d, seed %d, key %s, file pattern %q\n",
			cfg.Dir, writer.RoutingFile, cfg.Shards, cfg.Routing.Seed, cfg.Routing.Key, cfg.FilePattern)
	}
	// A subject or header key: readback refuses it, saying why.
	if err := validateOffline(cfg); err != nil {
		return nil, "", err
	}
	rt, err := readback.NewRouting(writer.Routing{Shards: cfg.Shards, Seed: cfg.Routing.Seed, Key: cfg.Routing.Key, FilePattern: cfg.FilePattern})
	if err != nil {
		return nil, "", &config.Error{Err: fmt.Errorf("dir %s: %w", cfg.Dir, err)}
	}
	var mine []cluster.Range // a member's directory holds these shards only
	if ok && rec.MemberShards != "" {
		if mine, err = cluster.ParseRanges(rec.MemberShards); err != nil {
			return nil, "", fmt.Errorf("dir %s: %s: %w", cfg.Dir, writer.RoutingFile, err)
		}
	}
	for _, key := range keys {
		if k := rt.ShardOf([]byte(key)); mine != nil && !cluster.InRanges(mine, k) {
			fmt.Fprintf(stderr, "shardlog grep: %s: key %q is in shard %d, which member %s of cluster %s (shards %s) does not hold: "+
				"shardlog which --cluster %s names its member\n", cfg.Dir, key, k, rec.Member, rec.Cluster, rec.MemberShards, rec.Cluster)
		}
	}
	opt.MaxRecord = int(cfg.MaxMessageBytes)
	g := grep.New(rt, keys, stdout, opt)
	return g, cfg.Dir, nil
}

// grepStatus finishes g after err, what its run returned, and returns
// grep's exit: 0 found, 1 nothing found, 2 a problem with a file or
// another error. A standard output closed by its reader (| head) ends
// grep quietly.
func grepStatus(g *grep.Grep, err error) error {
	found, failed, ferr := g.Finish()
	if err == nil {
		err = ferr
	}
	switch {
	case err != nil && errors.Is(err, syscall.EPIPE):
		return nil
	case err != nil && errors.As(err, new(*fs.PathError)):
		return err
	case err != nil:
		return fmt.Errorf("write standard output: %w", err)
	case failed:
		return exitStatus(exitUsage)
	case found == 0:
		return exitStatus(exitRuntime)
	}
	return nil
}
