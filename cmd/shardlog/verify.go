package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/readback"
	"github.com/shardlog/shardlog/verify"
	"github.com/shardlog/shardlog/writer"
)

// verifyCmd is shardlog verify: it re-hashes every record of a directory
// and names what is out of place.
func verifyCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		path, only string
		count      int
	)
	c := &cobra.Command{
		Use:   "verify [-c FILE] [-d DIR | DIR] [--shards LIST] [-n N --key K --seed S --file-pattern P]",
		Short: "Check that every record of a directory is in its shard, and every file whole",
		Long: `Verify reads every file of every shard of DIR (rotated, compressed and
current; logrotate's too), re-hashes each record with the directory's
routing, and prints one line per finding, naming the file and, where it
is about a record, its line number:

  - a record in the wrong shard, and the shard its key belongs to (the
    first 100 of a file are named, the rest counted in one line);
  - a torn last record (no newline at the end of the file). In the current
    file of a directory a running shardlog holds (its lock), it is a write
    in progress: a note, not a finding;
  - a file that cannot be read to its end: a truncated or corrupt .gz or
    .zst, with the line where it broke;
  - rotated names out of order, as far as names and times tell: a rotated
    file whose time (in its name) is in the future, an uncompressed rotated
    file modified more than a second after the time in its name (written
    after it was rotated: renamed or copied by hand), and a rotated file
    present both plain and compressed whose contents differ in length;
  - in a cluster member's directory (its routing record names the member's
    shards), a file of a shard that is another member's (an empty current
    file is not: members of earlier versions opened every shard's file,
    and wrote only their own).

DIR is given with -d or as the one argument (shardlog verify /var/log/app).

Names in DIR that are no shard files of its routing (another file pattern
or N, say) are listed as notes: they are ignored, not checked.

The routing (shards, seed, key, file pattern) is the one DIR records in
.shardlog-routing.json; -n, --seed, --key and --file-pattern (or -c FILE,
SHARDLOG_* variables) are needed only for a directory without a record,
and one that contradicts the record is an error. A directory routed by
--key subject or header:<name> cannot be verified (records do not hold
those keys): an error says so.

--shards 3,7 (or ranges, 0-3,8) checks only those shards. Shards are read
in parallel, one per core, each as a stream in bounded memory; the
findings are printed in order of shard, file (as written) and line.
A summary line ends the output: files, records, bytes, findings, notes,
elapsed time.

Exit status: 0 when nothing was found (notes allowed), 1 with findings,
2 on an error (a bad flag, a directory without routing record and no -n,
an unreadable directory).`,
		Example: `  shardlog verify -d /var/log/app
  shardlog verify /var/log/app
  shardlog verify -d /var/log/app --shards 3,7`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			if len(args) == 1 {
				if d := cmd.Flags().Lookup("dir"); d.Changed && d.Value.String() != args[0] {
					return &config.Error{Err: fmt.Errorf("dir given twice: -d %s and the argument %s", d.Value, args[0])}
				}
				if err := cmd.Flags().Set("dir", args[0]); err != nil {
					return &config.Error{Err: err}
				}
			}
			rt, dir, cfg, err := sourceRouting("verify", path, cmd.Flags(), count, stderr)
			if err != nil {
				return err
			}
			opt := verify.Options{MaxRecord: int(cfg.MaxMessageBytes)}
			if only != "" {
				if opt.Shards, err = verify.ParseShards(only, rt.Shards); err != nil {
					return &config.Error{Err: fmt.Errorf("--shards: %w", err)}
				}
			}
			if release, err := readback.ShareLock(dir); errors.Is(err, readback.ErrLocked) {
				opt.Live, opt.Holder = true, strings.TrimPrefix(err.Error(), readback.ErrLocked.Error()+": ")
			} else if err == nil {
				release()
			}
			out := bufio.NewWriterSize(stdout, 64<<10)
			sum, err := verify.Check(dir, rt, opt, func(f verify.Finding) { fmt.Fprintln(out, f) })
			if err != nil {
				out.Flush()
				return &config.Error{Err: fmt.Errorf("dir %s: %w", dir, err)}
			}
			fmt.Fprintf(out, "shardlog verify: %s: %d files, %d records, %d bytes, %d findings, %d notes, %s\n",
				dir, sum.Files, sum.Records, sum.Bytes, sum.Findings, sum.Notes, time.Since(start).Round(time.Millisecond))
			if err := out.Flush(); err != nil {
				return runtimeError{fmt.Errorf("write standard output: %w", err)}
			}
			if sum.Findings > 0 {
				return exitStatus(exitRuntime)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&path, "config", "c", "", "YAML configuration file (its dir and routing are used)")
	f.StringP("dir", "d", "", "directory of the shard files (default .)")
	f.StringVar(&only, "shards", "", "check only these shards: numbers and ranges, such as 3,7 or 0-3")
	f.IntVarP(&count, "shard-count", "n", 0, "number of shards, for a directory without a routing record (default 16)")
	f.Uint32("seed", 0, "murmur3 seed, for a directory without a routing record")
	f.String("key", "", "routing key, for a directory without a routing record: message or json:<field> (default message)")
	f.String("file-pattern", "", "file name pattern, for a directory without a routing record (default shard-%03d.log)")
	f.String("max-message-bytes", "1MiB", "longest record read whole: the max_message_bytes it was written with")
	return c
}

// sourceRouting finds the routing of the directory a command reads
// (verify, reshard): its routing record, or, for a directory without one,
// the configuration (-c FILE, SHARDLOG_*, flags; shards from n when not
// zero). A value given that contradicts the record is a configuration
// error naming both. It returns the routing, the directory and the
// configuration loaded.
func sourceRouting(name, path string, flags *pflag.FlagSet, n int, stderr io.Writer) (readback.Routing, string, config.Config, error) {
	// The configuration's flags, without those named otherwise here
	// (--shards is verify's list of shards).
	load := pflag.NewFlagSet(name, pflag.ContinueOnError)
	for _, fl := range []string{"dir", "seed", "key", "file-pattern", "max-message-bytes"} {
		if f := flags.Lookup(fl); f != nil {
			load.AddFlag(f)
		}
	}
	if n != 0 {
		load.Int("shards", 0, "")
		_ = load.Set("shards", fmt.Sprint(n))
	}
	cfg, err := config.Load(path, load)
	if err != nil {
		return readback.Routing{}, "", cfg, err
	}
	if cfg.Dir == "" {
		cfg.Dir = "."
	}
	origins, err := config.Origins(path, load)
	if err != nil {
		return readback.Routing{}, "", cfg, err
	}
	rec, ok, err := recordedRouting(name, cfg, origins)
	if err != nil {
		return readback.Routing{}, "", cfg, err
	}
	if !ok {
		if origins["shards"] == "default" {
			return readback.Routing{}, "", cfg, &config.Error{Err: fmt.Errorf("dir %s: no routing record (%s): give its shards (-n), and its key, seed and file pattern if not the defaults",
				cfg.Dir, writer.RoutingFile)}
		}
		fmt.Fprintf(stderr, "shardlog %s: %s has no routing record (%s): reading it as shards %d, seed %d, key %s, file pattern %q\n",
			name, cfg.Dir, writer.RoutingFile, cfg.Shards, cfg.Routing.Seed, cfg.Routing.Key, cfg.FilePattern)
		// A subject or header key: readback says why it is refused.
		if err := validateOffline(cfg); err != nil {
			return readback.Routing{}, "", cfg, err
		}
		rec = writer.Routing{Shards: cfg.Shards, Seed: cfg.Routing.Seed, Key: cfg.Routing.Key, FilePattern: cfg.FilePattern}
	}
	rt, err := readback.NewRouting(rec)
	if err != nil {
		return readback.Routing{}, "", cfg, &config.Error{Err: fmt.Errorf("dir %s: %s cannot be done: %w", cfg.Dir, name, err)}
	}
	return rt, cfg.Dir, cfg, nil
}
