package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardlog/shardlog/internal/murmur3ref"
)

// clusterJS starts a JetStream server and returns its URL and a
// JetStream client of it, to look at what shardlog cluster made.
func clusterJS(t *testing.T) (string, jetstream.JetStream, context.Context) {
	t.Helper()
	srv := natsServer(t, nil, true)
	js, err := jetstream.New(client(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return srv.ClientURL(), js, ctx
}

// storedLayout returns the layout of cluster name as stored, decoded
// into a map (so that the stored field names are what is checked), and
// its revision; nil if there is none.
func storedLayout(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) (map[string]any, uint64) {
	t.Helper()
	kv, err := js.KeyValue(ctx, "shardlog_clusters")
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		t.Fatalf("layout %s: %v: %s", name, err, e.Value())
	}
	return m, e.Revision()
}

// TestClusterCreate checks that cluster create makes the stream as
// documented (work-queue retention, file storage, subjects <prefix>.*,
// the duplicate window) and stores the layout; that a second create of
// the same cluster is refused naming it and changes nothing; and that
// bad flags are refused, naming them, before anything is made.
func TestClusterCreate(t *testing.T) {
	url, js, ctx := clusterJS(t)
	res := shardlog(t, nil, nil, "cluster", "create", "--nats-url", url, "--cluster", "logs", "-n", "16",
		"--members", "a,b", "--prefix", "app.logs", "--seed", "9", "--key", "json:user", "--replicas", "1")
	if res.code != 0 {
		t.Fatalf("create: exit %d: %s", res.code, res.stderr)
	}
	if err := contains(res.stdout, "a\t0-7\n", "b\t8-15\n", "shards:       16", "key:          json:user"); err != nil {
		t.Errorf("create printed %v:\n%s", err, res.stdout)
	}
	s, err := js.Stream(ctx, "logs")
	if err != nil {
		t.Fatalf("stream logs: %v", err)
	}
	cfg := s.CachedInfo().Config
	if cfg.Retention != jetstream.WorkQueuePolicy || cfg.Storage != jetstream.FileStorage ||
		!slices.Equal(cfg.Subjects, []string{"app.logs.*"}) || cfg.Replicas != 1 || cfg.Duplicates != 2*time.Minute {
		t.Errorf("stream config: retention %v, storage %v, subjects %v, replicas %d, duplicates %s",
			cfg.Retention, cfg.Storage, cfg.Subjects, cfg.Replicas, cfg.Duplicates)
	}
	layout, rev := storedLayout(t, ctx, js, "logs")
	want := map[string]any{"version": 1.0, "name": "logs", "stream": "logs", "prefix": "app.logs", "shards": 16.0,
		"seed": 9.0, "key": "json:user", "file_pattern": "shard-%03d.log", "replicas": 1.0}
	for k, v := range want {
		if layout[k] != v {
			t.Errorf("stored layout: %s = %v, want %v (layout %v)", k, layout[k], v, layout)
		}
	}
	if got := fmt.Sprint(layout["members"]); got != "[map[name:a shards:[[0 7]]] map[name:b shards:[[8 15]]]]" {
		t.Errorf("stored members: %s", got)
	}

	res = shardlog(t, nil, nil, "cluster", "create", "--nats-url", url, "--cluster", "logs", "-n", "8",
		"--members", "x", "--prefix", "other")
	if res.code != 1 || !strings.Contains(res.stderr, "cluster logs: exists already") {
		t.Errorf("second create: exit %d: %s", res.code, res.stderr)
	}
	if again, rev2 := storedLayout(t, ctx, js, "logs"); rev2 != rev || fmt.Sprint(again) != fmt.Sprint(layout) {
		t.Errorf("second create changed the layout: revision %d, was %d: %v", rev2, rev, again)
	}
	if info, err := s.Info(ctx); err != nil || !slices.Equal(info.Config.Subjects, []string{"app.logs.*"}) {
		t.Errorf("second create changed the stream: %v, %v", info, err)
	}

	bad := []struct {
		name string
		args []string
		want string
	}{
		{"assign out of range", []string{"--members", "a,b", "--assign", "a=0-7,b=8-16"}, "member b: shards 8-16: not shards of 0-15"},
		{"assign gap", []string{"--assign", "a=0-6,b=8-15"}, "shard 7: assigned to none of the members (a, b)"},
		{"assign overlap", []string{"--assign", "a=0-8,b=8-15"}, "shard 8: assigned to both a and b"},
		{"assign syntax", []string{"--assign", "a=0-7,b:8-15"}, `--assign: "b:8-15": want MEMBER=SHARDS`},
		{"member name", []string{"--members", "a,b.c"}, `member: "b.c"`},
		{"no members", nil, "members: none"},
		{"cluster name", []string{"--cluster", "x.y", "--members", "a"}, `cluster.name: "x.y"`},
		{"prefix", []string{"--prefix", "a.*", "--members", "a"}, `cluster.prefix: "a.*"`},
		{"replicas", []string{"--replicas", "7", "--members", "a"}, "replicas: 7"},
		{"shards", []string{"-n", "0", "--members", "a"}, "shards: 0"},
		{"no url", []string{"--nats-url", "", "--members", "a"}, "nats.url: not set"},
		{"no cluster", []string{"--cluster", "", "--members", "a"}, "cluster.name: not set"},
	}
	for _, tc := range bad {
		args := append([]string{"cluster", "create", "--nats-url", url, "--cluster", "new", "--prefix", "new"}, tc.args...)
		res := shardlog(t, nil, nil, args...)
		if res.code != 2 || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%s: exit %d, want 2 and %q: %s", tc.name, res.code, tc.want, res.stderr)
		}
	}
	if _, err := js.Stream(ctx, "new"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("a refused create made stream new: %v", err)
	}
	if l, _ := storedLayout(t, ctx, js, "new"); l != nil {
		t.Errorf("a refused create wrote a layout: %v", l)
	}

	// Subjects that overlap another stream's: no layout is written.
	res = shardlog(t, nil, nil, "cluster", "create", "--nats-url", url, "--cluster", "logs2", "--members", "a", "--prefix", "app.logs")
	if res.code != 1 || !strings.Contains(res.stderr, "create stream logs2: subjects app.logs.*") {
		t.Errorf("overlapping create: exit %d: %s", res.code, res.stderr)
	}
	if l, _ := storedLayout(t, ctx, js, "logs2"); l != nil {
		t.Errorf("an overlapping create wrote a layout: %v", l)
	}
}

// TestClusterShow checks that cluster show prints the layout and, per
// member, its shards and the messages the stream holds for them, and
// then that no instance of any member runs (TestClusterShowInstances
// runs some).
func TestClusterShow(t *testing.T) {
	url, js, ctx := clusterJS(t)
	if res := shardlog(t, nil, nil, "cluster", "create", "--nats-url", url, "--cluster", "logs", "-n", "10",
		"--members", "a,b,c", "--seed", "3"); res.code != 0 {
		t.Fatalf("create: exit %d: %s", res.code, res.stderr)
	}
	for _, subject := range []string{"shardlog.3", "shardlog.3", "shardlog.3", "shardlog.5", "shardlog.9", "shardlog.9"} {
		if _, err := js.Publish(ctx, subject, []byte("batch\n")); err != nil {
			t.Fatal(err)
		}
	}
	res := shardlog(t, nil, nil, "cluster", "show", "--nats-url", url, "--cluster", "logs")
	if res.code != 0 {
		t.Fatalf("show: exit %d: %s", res.code, res.stderr)
	}
	if err := contains(res.stdout, "cluster:      logs\n", "stream:       logs (subjects shardlog.*, replicas 1",
		"prefix:       shardlog\n", "shards:       10\n", "seed:         3\n", "key:          message\n",
		"file_pattern: shard-%03d.log\n", "member\tshards\tpending\na\t0-3\t3\nb\t4-6\t1\nc\t7-9\t2\n",
		"member\tinstance\na\tnone running\nb\tnone running\nc\tnone running\n"); err != nil {
		t.Errorf("show printed %v:\n%s", err, res.stdout)
	}

	res = shardlog(t, nil, nil, "cluster", "show", "--nats-url", url, "--cluster", "nope")
	if res.code != 1 || !strings.Contains(res.stderr, "cluster nope: no such cluster") {
		t.Errorf("show nope: exit %d: %s", res.code, res.stderr)
	}
}

// TestWhichCluster checks which --cluster: the shard is the one which -n
// N gives for the same seed, the member is the one whose range holds it,
// keys are read from standard input with "-", and a routing flag that
// contradicts the layout is refused naming both values.
func TestWhichCluster(t *testing.T) {
	url, _, _ := clusterJS(t)
	if res := shardlog(t, nil, nil, "cluster", "create", "--nats-url", url, "--cluster", "logs", "-n", "16",
		"--members", "a,b,c", "--assign", "c=0-3+12-15,a=4-7,b=8-11", "--seed", "9", "--file-pattern", "part-%02d.log"); res.code != 0 {
		t.Fatalf("create: exit %d: %s", res.code, res.stderr)
	}
	owner := func(k uint32) string {
		switch {
		case k >= 4 && k <= 7:
			return "a"
		case k >= 8 && k <= 11:
			return "b"
		}
		return "c"
	}
	keys := numbered("user", 40)
	var want []string
	for _, key := range keys {
		k := murmur3ref.Sum32([]byte(key), 9) % 16
		want = append(want, fmt.Sprintf("%s\t%d\t%s\tpart-%02d.log", key, k, owner(k), k))
	}
	shards := map[string]bool{}
	for _, line := range want {
		shards[strings.Split(line, "\t")[2]] = true
	}
	if len(shards) != 3 {
		t.Fatalf("the keys reach members %v only: pick other keys", shards)
	}

	plain := shardlog(t, nil, nil, append([]string{"which", "-n", "16", "--seed", "9", "--file-pattern", "part-%02d.log"}, keys...)...)
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
	}{
		{"arguments", "", keys},
		{"stdin", strings.Join(keys[1:], "\n"), []string{keys[0], "-"}},
	} {
		res := shardlog(t, []byte(tc.stdin), nil, append([]string{"which", "--nats-url", url, "--cluster", "logs"}, tc.args...)...)
		if res.code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.name, res.code, res.stderr)
		}
		got := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
		if !slices.Equal(got, want) {
			t.Errorf("%s: which --cluster printed\n%s\nwant\n%s", tc.name, res.stdout, strings.Join(want, "\n"))
		}
		// The shard is the one plain which gives.
		plainLines := strings.Split(strings.TrimSuffix(plain.stdout, "\n"), "\n")
		for i, line := range got {
			if i < len(plainLines) && strings.Split(line, "\t")[1] != strings.Split(plainLines[i], "\t")[1] {
				t.Errorf("%s: %q and which -n 16: %q disagree", tc.name, line, plainLines[i])
			}
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "8"}, "shards: 8 (flag --shards) contradicts cluster logs, whose layout has 16"},
		{[]string{"--seed", "1"}, "routing.seed: 1 (flag --seed) contradicts cluster logs, whose layout has 9"},
		{[]string{"--key", "subject"}, "routing.key: subject (flag --key) contradicts cluster logs, whose layout has message"},
		{[]string{"--file-pattern", "x-%d"}, "file_pattern: x-%d (flag --file-pattern) contradicts"},
	} {
		res := shardlog(t, nil, nil, append(append([]string{"which", "--nats-url", url, "--cluster", "logs"}, tc.args...), "k")...)
		if res.code != 2 || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("which --cluster %v: exit %d, want 2 and %q: %s", tc.args, res.code, tc.want, res.stderr)
		}
	}
	// The same values as the layout's are no contradiction.
	res := shardlog(t, nil, nil, "which", "--nats-url", url, "--cluster", "logs", "-n", "16", "--seed", "9", keys[0])
	if res.code != 0 || res.stdout != want[0]+"\n" {
		t.Errorf("which with the layout's values: exit %d: %s%s", res.code, res.stdout, res.stderr)
	}
	res = shardlog(t, nil, nil, "which", "--nats-url", url, "--cluster", "nope", "k")
	if res.code != 1 || !strings.Contains(res.stderr, "cluster nope: no such cluster") {
		t.Errorf("which --cluster nope: exit %d: %s", res.code, res.stderr)
	}
}

// TestClusterDelete checks that cluster delete removes the stream and
// the layout, and that deleting a missing cluster exits 1 naming it.
func TestClusterDelete(t *testing.T) {
	url, js, ctx := clusterJS(t)
	for _, name := range []string{"logs", "keep"} {
		if res := shardlog(t, nil, nil, "cluster", "create", "--nats-url", url, "--cluster", name, "--prefix", name,
			"--members", "a"); res.code != 0 {
			t.Fatalf("create %s: exit %d: %s", name, res.code, res.stderr)
		}
	}
	if _, err := js.Publish(ctx, "logs.0", []byte("batch\n")); err != nil {
		t.Fatal(err)
	}
	res := shardlog(t, nil, nil, "cluster", "delete", "--nats-url", url, "--cluster", "logs")
	if res.code != 0 {
		t.Fatalf("delete: exit %d: %s", res.code, res.stderr)
	}
	if _, err := js.Stream(ctx, "logs"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream logs after delete: %v", err)
	}
	if l, _ := storedLayout(t, ctx, js, "logs"); l != nil {
		t.Errorf("layout of logs after delete: %v", l)
	}
	if _, err := js.Stream(ctx, "keep"); err != nil {
		t.Errorf("delete of logs removed stream keep: %v", err)
	}
	if l, _ := storedLayout(t, ctx, js, "keep"); l == nil {
		t.Error("delete of logs removed the layout of keep")
	}
	res = shardlog(t, nil, nil, "cluster", "delete", "--nats-url", url, "--cluster", "logs")
	if res.code != 1 || !strings.Contains(res.stderr, "cluster logs: no such cluster") {
		t.Errorf("delete again: exit %d: %s", res.code, res.stderr)
	}
}

// TestClusterAuthAndUsage checks that the cluster commands connect with
// run's authentication settings (a token from SHARDLOG_NATS_TOKEN), that
// a refused connection exits 1 without showing the secret, and that the
// cluster command itself wants a subcommand (exit 2).
func TestClusterAuthAndUsage(t *testing.T) {
	const token = "s3cret-token"
	srv := natsServer(t, &server.Options{Authorization: token}, true)
	url := srv.ClientURL()
	args := []string{"cluster", "create", "--nats-url", url, "--cluster", "logs", "--members", "a,b"}
	res := shardlog(t, nil, []string{"SHARDLOG_NATS_TOKEN=wrong-" + token}, args...)
	if res.code != 1 || !strings.Contains(res.stderr, "connect to NATS") || strings.Contains(res.stderr, token) {
		t.Errorf("wrong token: exit %d: %s", res.code, res.stderr)
	}
	res = shardlog(t, nil, []string{"SHARDLOG_NATS_TOKEN=" + token}, args...)
	if res.code != 0 {
		t.Fatalf("create with the token: exit %d: %s", res.code, res.stderr)
	}
	js, err := jetstream.New(client(t, url, nats.Token(token)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(context.Background(), "logs"); err != nil {
		t.Errorf("stream logs: %v", err)
	}
	res = shardlog(t, nil, []string{"SHARDLOG_NATS_TOKEN=" + token}, "which", "--nats-url", url, "--cluster", "logs", "-d", "/var/log/app", "k")
	if res.code != 0 || !regexp.MustCompile(`^k\t\d+\t[ab]\t/var/log/app/shard-0\d\d\.log\n$`).MatchString(res.stdout) {
		t.Errorf("which --cluster -d: exit %d: %q %s", res.code, res.stdout, res.stderr)
	}

	for _, args := range [][]string{{"cluster"}, {"cluster", "bogus"}} {
		res := shardlog(t, nil, nil, args...)
		if res.code != 2 {
			t.Errorf("shardlog %v: exit %d, want 2: %s", args, res.code, res.stderr)
		}
	}
}

// TestClusterNoJetStream checks that the cluster commands, against a
// server without JetStream, exit 1 at once saying how to enable it,
// rather than waiting for an answer that cannot come.
func TestClusterNoJetStream(t *testing.T) {
	srv := natsServer(t, nil, false)
	for _, args := range [][]string{
		{"cluster", "create", "--cluster", "logs", "--members", "a"},
		{"cluster", "show", "--cluster", "logs"},
		{"which", "--cluster", "logs", "key"},
	} {
		res := shardlog(t, nil, nil, append(args, "--nats-url", srv.ClientURL())...)
		if res.code != 1 || !strings.Contains(res.stderr, "jetstream not enabled") || !strings.Contains(res.stderr, "-js") {
			t.Errorf("%v: exit %d: %s", args, res.code, res.stderr)
		}
	}
}
