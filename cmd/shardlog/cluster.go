package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/shardlog/shardlog/cluster"
	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/ingest"
	"github.com/shardlog/shardlog/shard"
)

// clusterTimeout bounds each cluster command's work with the server.
const clusterTimeout = 30 * time.Second

// clusterCmd is shardlog cluster: create, show and delete a cluster's
// layout and stream.
func clusterCmd(stdout, stderr io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "cluster create|show|delete --cluster NAME --nats-url URL",
		Short: "Create, show or delete a cluster: its stream and its layout in NATS",
		Long: `A cluster spreads N shards over members on several hosts, through a NATS
JetStream stream (see README, "Past one machine"). Its layout (stream,
subject prefix, N, seed, key, file pattern, and the shards of each member)
is written once, by cluster create, as key NAME of the key-value bucket
` + cluster.Bucket + `; it never changes: changing the members or their shards
means a new cluster.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return &config.Error{Err: errors.New("cluster: give a command: create, show or delete (see shardlog cluster --help)")}
		},
	}
	c.AddCommand(clusterCreateCmd(stdout, stderr), clusterShowCmd(stdout, stderr), clusterDeleteCmd(stdout, stderr))
	return c
}

// clusterFlags adds the flags every cluster command takes: the
// configuration file, the cluster's name, and the NATS connection.
func clusterFlags(f *pflag.FlagSet, path *string) {
	f.StringVarP(path, "config", "c", "", "YAML configuration file (nats.* keys for the connection)")
	f.String("cluster", "", "name of the cluster")
	f.String("nats-url", "", "NATS server URL(s), comma-separated")
	f.String("nats-creds", "", "NATS credentials file")
}

// loadCluster loads the configuration of a cluster command and checks
// the cluster's name and the NATS connection settings.
func loadCluster(path string, fs *pflag.FlagSet) (config.Config, error) {
	cfg, err := config.Load(path, fs)
	if err != nil {
		return cfg, err
	}
	if err := cfg.ValidateCluster(); err != nil {
		return cfg, err
	}
	return cfg, cluster.CheckName("cluster.name", cfg.Cluster.Name)
}

// withJetStream connects to NATS as run does (the same options, the
// same authentication and TLS), and calls f with a JetStream context.
func withJetStream(cfg config.Config, stderr io.Writer, f func(ctx context.Context, js jetstream.JetStream) error) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src := ingest.NewNATS(cfg.NATS, 1, log)
	if err := src.Connect(nil); err != nil {
		return runtimeError{err}
	}
	defer src.Close()
	js, err := jetstream.New(src.Conn())
	if err != nil {
		return runtimeError{fmt.Errorf("JetStream: %w", err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if err := awaitJetStream(ctx, js); err != nil {
		return runtimeError{errors.New(cfg.NATS.Scrub(err.Error()))}
	}
	if err := f(ctx, js); err != nil {
		if errors.As(err, new(*config.Error)) {
			return err
		}
		return runtimeError{errors.New(cfg.NATS.Scrub(err.Error()))}
	}
	return nil
}

// awaitJetStream waits until JetStream answers (its account information),
// asking again every attempt, until ctx is done. A NATS cluster that has
// just started answers only once it has elected a meta leader, a few
// seconds after its servers are ready; a request sent before that is
// dropped, and would otherwise wait for the whole timeout.
func awaitJetStream(ctx context.Context, js jetstream.JetStream) error {
	const attempt = 2 * time.Second
	var last error
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		_, err := js.AccountInfo(actx)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
			return fmt.Errorf("JetStream: %w (start nats-server with -js, or a jetstream block in its configuration)", err)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("JetStream did not answer within %s (a NATS cluster answers once it has elected its meta leader): %w",
				clusterTimeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func clusterCreateCmd(stdout, stderr io.Writer) *cobra.Command {
	var path, assign string
	var members []string
	var replicas int
	c := &cobra.Command{
		Use:   "create --cluster NAME -n N --members a,b[,...] [--assign a=0-7,b=8-15] [flags]",
		Short: "Create a cluster's stream and write its layout",
		Long: `Create creates the cluster's JetStream stream (named NAME; file storage;
subjects <prefix>.*; work-queue retention; --replicas replicas; a
duplicate window of 2m for Nats-Msg-Id) and then writes the layout to
key NAME of the key-value bucket ` + cluster.Bucket + ` (created if missing).

Shards go to the members in balanced contiguous ranges, in the order of
--members (16 shards to a,b: a 0-7, b 8-15), unless --assign says
otherwise: MEMBER=SHARDS entries separated by ',', SHARDS being shard
numbers and ranges first-last joined by '+' (a=0-3+8-11,b=4-7+12-15).
Every shard must go to exactly one member.

A cluster that exists already is refused (exit 1) and left as it is; if
the stream cannot be created (its subjects overlap another stream's: give
each cluster its own --prefix), nothing is written.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadCluster(path, cmd.Flags())
			if err != nil {
				return err
			}
			key, err := shard.ParseKey(cfg.Routing.Key)
			if err != nil {
				return &config.Error{Err: err}
			}
			ms, err := cluster.Assign(cfg.Shards, members, assign)
			if err != nil {
				return err
			}
			l := &cluster.Layout{
				Version: cluster.Version, Name: cfg.Cluster.Name, Stream: cfg.Cluster.Name,
				Prefix: cfg.Cluster.Prefix, N: cfg.Shards, Seed: cfg.Routing.Seed, Key: key.String(),
				FilePattern: cfg.FilePattern, Replicas: replicas, Members: ms,
			}
			if err := l.Validate(); err != nil {
				return err
			}
			return withJetStream(cfg, stderr, func(ctx context.Context, js jetstream.JetStream) error {
				if err := cluster.Create(ctx, js, l); err != nil {
					return err
				}
				return printLayout(stdout, l, nil)
			})
		},
	}
	f := c.Flags()
	clusterFlags(f, &path)
	f.IntP("shards", "n", 16, "number of shards (files)")
	f.StringSliceVar(&members, "members", nil, "the members, in order, comma-separated")
	f.StringVar(&assign, "assign", "", "shards of each member: a=0-7,b=8-15 (ranges joined by +: a=0-3+8-11)")
	f.IntVar(&replicas, "replicas", 1, "replicas of the stream (1 to 5)")
	f.String("prefix", "shardlog", "subject prefix: shard k's batches go to <prefix>.k")
	f.String("key", shard.KeyMessage, "routing key: message, subject, header:<name> or json:<field>")
	f.Uint32("seed", 0, "murmur3 seed")
	f.String("file-pattern", "shard-%03d.log", "file name pattern, with one integer verb")
	return c
}

func clusterShowCmd(stdout, stderr io.Writer) *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "show --cluster NAME",
		Short: "Print a cluster's layout, the messages pending for each member and its instances",
		Long: `Show prints the cluster's layout (stream, prefix, N, seed, key, file
pattern, replicas); then a line per member: its name, its shards, and
the messages (batches) the stream holds for them, tab-separated; and
then, per member, its running instances, each named by host and pid
(member and instance tab-separated):

  a  active: host1 4242 (since 2026-12-03T13:05:09Z)
  a  standby: host2 977
  b  active: none pinned yet
  c  none running

The active instance is the one the server pins (it receives the member's
batches; "since" is when the server pinned it); "none pinned yet" means
no batch has been delivered since the last pin ended; "unknown instance"
means the pinned one has no entry (not yet, cannot, or stopped). Each running
member instance keeps an entry, key <cluster>.<member>.<id>, in the
key-value bucket ` + cluster.InstanceBucket + `: it writes it at once when it sees a
new pin and refreshes it every heartbeat (half its cluster.pinned_ttl,
1s to 10s); the entry expires three heartbeats after the last refresh
and is removed on a clean stop. So after a takeover show names the new
active instance as soon as it has received a batch, and an instance
killed is listed until its entry expires, three heartbeats at most.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadCluster(path, cmd.Flags())
			if err != nil {
				return err
			}
			return withJetStream(cfg, stderr, func(ctx context.Context, js jetstream.JetStream) error {
				l, err := cluster.Read(ctx, js, cfg.Cluster.Name)
				if err != nil {
					return err
				}
				pending, err := cluster.Pending(ctx, js, l)
				if err != nil {
					return err
				}
				pins := make([]cluster.Pin, len(l.Members))
				for i, m := range l.Members {
					if pins[i], err = cluster.Pinned(ctx, js, l.Stream, ingest.MemberDurable(l.Name, m.Name), m.Name); err != nil {
						return fmt.Errorf("cluster %s: member %s: %w", l.Name, m.Name, err)
					}
				}
				instances, skipped, err := cluster.Instances(ctx, js, l.Name)
				if err != nil {
					return err
				}
				for _, err := range skipped {
					fmt.Fprintf(stderr, "shardlog: warning: %v: not listed\n", err)
				}
				if err := printLayout(stdout, l, pending); err != nil {
					return err
				}
				return printInstances(stdout, l, instances, pins)
			})
		},
	}
	clusterFlags(c.Flags(), &path)
	return c
}

func clusterDeleteCmd(stdout, stderr io.Writer) *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "delete --cluster NAME",
		Short: "Delete a cluster's stream and layout",
		Long: `Delete deletes the cluster's stream, with the batches it still holds,
the entries of its instances in the key-value bucket ` + cluster.InstanceBucket + `, and
then its layout. A cluster without a layout is an error (exit 1).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadCluster(path, cmd.Flags())
			if err != nil {
				return err
			}
			return withJetStream(cfg, stderr, func(ctx context.Context, js jetstream.JetStream) error {
				if err := cluster.Delete(ctx, js, cfg.Cluster.Name); err != nil {
					return err
				}
				_, err := fmt.Fprintf(stdout, "deleted cluster %s\n", cfg.Cluster.Name)
				return err
			})
		},
	}
	clusterFlags(c.Flags(), &path)
	return c
}

// printLayout prints l, and a line per member with its shards and, if
// pending is not nil, the messages pending for them.
func printLayout(w io.Writer, l *cluster.Layout, pending []uint64) error {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	fmt.Fprintf(tw, "cluster:\t%s\n", l.Name)
	fmt.Fprintf(tw, "stream:\t%s (subjects %s, replicas %d, file storage, work queue)\n", l.Stream, strings.Join(l.Subjects(), ","), l.Replicas)
	fmt.Fprintf(tw, "prefix:\t%s\n", l.Prefix)
	fmt.Fprintf(tw, "shards:\t%d\n", l.N)
	fmt.Fprintf(tw, "seed:\t%d\n", l.Seed)
	fmt.Fprintf(tw, "key:\t%s\n", l.Key)
	fmt.Fprintf(tw, "file_pattern:\t%s\n", l.FilePattern)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write standard output: %w", err)
	}
	out := bufio.NewWriter(w)
	if pending != nil {
		fmt.Fprintln(out, "member\tshards\tpending")
	} else {
		fmt.Fprintln(out, "member\tshards")
	}
	for i, m := range l.Members {
		fmt.Fprintf(out, "%s\t%s", m.Name, cluster.Ranges(m.Shards))
		if pending != nil {
			fmt.Fprintf(out, "\t%d", pending[i])
		}
		fmt.Fprintln(out)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write standard output: %w", err)
	}
	return nil
}

// printInstances prints, for each member of l in turn, its active
// instance (the one whose last seen pin is pins[i], the member's pin) and
// its standbys, from instances, each on a line "member<TAB>what".
func printInstances(w io.Writer, l *cluster.Layout, instances []cluster.Instance, pins []cluster.Pin) error {
	out := bufio.NewWriter(w)
	fmt.Fprintln(out, "member\tinstance")
	for i, m := range l.Members {
		var mine []cluster.Instance
		for _, in := range instances {
			if in.Member == m.Name {
				mine = append(mine, in)
			}
		}
		pin := pins[i]
		active, standbys := cluster.Select(mine, pin)
		switch {
		case active != nil:
			fmt.Fprintf(out, "%s\tactive: %s %d (since %s)\n", m.Name, active.Host, active.PID, pin.Since.UTC().Format(time.RFC3339))
		case pin.ID != "":
			fmt.Fprintf(out, "%s\tactive: unknown instance (since %s; not registered yet)\n", m.Name, pin.Since.UTC().Format(time.RFC3339))
		case len(mine) > 0:
			fmt.Fprintf(out, "%s\tactive: none pinned yet\n", m.Name)
		default:
			fmt.Fprintf(out, "%s\tnone running\n", m.Name)
		}
		for _, in := range standbys {
			fmt.Fprintf(out, "%s\tstandby: %s %d\n", m.Name, in.Host, in.PID)
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write standard output: %w", err)
	}
	return nil
}

// whichCluster is which --cluster: it prints, for each key, the shard,
// the member that owns it and the file, under the cluster's layout. A
// routing value given (by a flag, the environment or the file) that
// differs from the layout's is an error naming both.
func whichCluster(path string, fs *pflag.FlagSet, cfg config.Config, keys []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := cfg.ValidateCluster(); err != nil {
		return err
	}
	if err := cluster.CheckName("cluster.name", cfg.Cluster.Name); err != nil {
		return err
	}
	origins, err := config.Origins(path, fs)
	if err != nil {
		return err
	}
	var l *cluster.Layout
	if err := withJetStream(cfg, stderr, func(ctx context.Context, js jetstream.JetStream) error {
		var rerr error
		l, rerr = cluster.Read(ctx, js, cfg.Cluster.Name)
		return rerr
	}); err != nil {
		return err
	}
	if err := checkAgainstLayout(cfg, origins, l); err != nil {
		return err
	}
	return showKeys(keys, stdin, stdout, func(out io.Writer, key []byte) {
		k := l.Shard(key)
		member, _ := l.Member(k)
		fmt.Fprintf(out, "%s\t%d\t%s\t%s\n", key, k, member, filepath.Join(cfg.Dir, l.FileName(k)))
	})
}

// readLayout reads cluster name's layout for a command that needs it to
// run (route, run as a member): a cluster that does not exist is a
// configuration error naming cluster.name.
func readLayout(ctx context.Context, js jetstream.JetStream, name string) (*cluster.Layout, error) {
	l, err := cluster.Read(ctx, js, name)
	if errors.Is(err, cluster.ErrNotFound) {
		return nil, &config.Error{Err: fmt.Errorf("cluster.name: %q: %w: create it with shardlog cluster create", name, err)}
	}
	return l, err
}
