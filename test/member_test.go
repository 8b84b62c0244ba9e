package test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// memberCluster runs shardlog cluster create against url with args, and
// fails the test unless it succeeds.
func memberCluster(t *testing.T, url string, args ...string) {
	t.Helper()
	res := shardlog(t, nil, nil, append([]string{"cluster", "create", "--nats-url", url}, args...)...)
	if res.code != 0 {
		t.Fatalf("cluster create: exit %d: %s", res.code, res.stderr)
	}
}

// startMember starts shardlog run as member m of cluster logs, writing to dir,
// and waits until it pulls from the stream.
func startMember(t *testing.T, url, m, dir string, args ...string) *daemon {
	t.Helper()
	return startNATS(t, append([]string{"run", "--nats-url", url, "--cluster", "logs", "--member", m, "-d", dir}, args...)...)
}

// TestMemberWritesItsShards runs members a and b of a cluster of 8
// shards, publishes batches to every shard's subject, and checks that
// each member's files hold exactly the records of its own shards, in the
// order published, each in the file of the subject's shard (not re-hashed:
// the records' own hashes differ), that no file of another member's shard
// gets a byte, that a payload without a final '\n' gives whole records,
// that every batch is acknowledged, and that each directory records its
// cluster, member and shards.
func TestMemberWritesItsShards(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "8", "--members", "a,b")
	dirs := map[string]string{"a": t.TempDir(), "b": t.TempDir()}
	owner := func(k int) string {
		if k < 4 {
			return "a"
		}
		return "b"
	}
	ma := startMember(t, url, "a", dirs["a"])
	mb := startMember(t, url, "b", dirs["b"])

	want := make([][]string, 8)
	for i := range 20 {
		for k := range 8 {
			recs := []string{fmt.Sprintf("s%d-m%d-r0", k, i), fmt.Sprintf("s%d-m%d-r1", k, i)}
			payload := strings.Join(recs, "\n") + "\n"
			if i == 19 && k == 2 {
				payload = strings.TrimSuffix(payload, "\n") // unterminated: still whole records
			}
			if _, err := js.Publish(ctx, fmt.Sprintf("shardlog.%d", k), []byte(payload)); err != nil {
				t.Fatal(err)
			}
			want[k] = append(want[k], recs...)
		}
	}
	files := map[string][][]string{}
	for m, dir := range dirs {
		files[m] = waitRecords(t, dir, 8, 4*20*2)
	}
	waitAcked(t, js, "logs", "logs_a")
	waitAcked(t, js, "logs", "logs_b")
	ma.stop(t)
	mb.stop(t)
	for m, dir := range dirs {
		files[m] = records(t, dir, 8)
		for k := range 8 {
			if owner(k) != m {
				// Not even an empty file: the directory shows which
				// shards live on this member.
				if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k))); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("member %s has a file of shard %d, which is not its own (stat: %v)", m, k, err)
				}
				continue
			}
			if !slices.Equal(files[m][k], want[k]) {
				t.Errorf("member %s, shard %d: %d records %.80q, want %d in order %.80q", m, k, len(files[m][k]), files[m][k], len(want[k]), want[k])
			}
		}
	}
	if ma.stderr.Contains("standard input is not read") {
		t.Errorf("member a warned about standard input, which a member never reads: %s", ma.stderr.String())
	}
	if !strings.Contains(ma.stderr.String(), "unterminated=1") {
		t.Errorf("member a did not count the unterminated payload: %s", ma.stderr.String())
	}
	for m, shards := range map[string]string{"a": "0-3", "b": "4-7"} {
		data, err := os.ReadFile(filepath.Join(dirs[m], ".shardlog-routing.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{`"cluster": "logs"`, `"member": "` + m + `"`, `"member_shards": "` + shards + `"`, `"shards": 8`} {
			if !strings.Contains(string(data), s) {
				t.Errorf("member %s's routing record lacks %s: %s", m, s, data)
			}
		}
	}
}

// TestMemberRefusals checks that run as a member refuses, with exit 2 and
// a message naming the key and the value, what it cannot do: a cluster
// without a layout, a member the layout does not name, a routing value
// that contradicts the layout (naming both), half of the pair of names,
// and a directory that another member, or run without a cluster, wrote.
func TestMemberRefusals(t *testing.T) {
	url, _, _ := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "8", "--members", "a,b", "--seed", "3")
	dirA := t.TempDir()
	ma := startMember(t, url, "a", dirA)
	ma.stop(t)
	plain := t.TempDir()
	if res := shardlog(t, []byte("x\n"), nil, "run", "-n", "8", "--seed", "3", "-d", plain); res.code != 0 {
		t.Fatalf("plain run: exit %d: %s", res.code, res.stderr)
	}
	res := shardlog(t, nil, nil, "check-config", "--nats-url", url, "--cluster", "logs", "--member", "b", "-d", t.TempDir())
	if err := contains(res.stdout, "shards: 8  # cluster logs's layout", "routing.seed: 3  # cluster logs's layout",
		"nats.subjects: [shardlog.4 shardlog.5 shardlog.6 shardlog.7]", "nats.jetstream.durable: logs_b", "cluster.member: b  # flag --member"); res.code != 0 || err != nil {
		t.Errorf("check-config as member b: exit %d, %v: %s%s", res.code, err, res.stdout, res.stderr)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no such cluster", []string{"--cluster", "nope", "--member", "a", "-d", t.TempDir()}, `cluster.name: "nope": cluster nope: no such cluster`},
		{"no such member", []string{"--cluster", "logs", "--member", "c", "-d", t.TempDir()}, `cluster.member: "c": not a member of cluster logs (its members: a, b)`},
		{"shards", []string{"--cluster", "logs", "--member", "a", "-n", "16", "-d", t.TempDir()}, "shards: 16 (flag --shards) contradicts cluster logs, whose layout has 8"},
		{"seed", []string{"--cluster", "logs", "--member", "a", "--seed", "4", "-d", t.TempDir()}, "routing.seed: 4 (flag --seed) contradicts cluster logs, whose layout has 3"},
		{"key", []string{"--cluster", "logs", "--member", "a", "--key", "json:user", "-d", t.TempDir()}, "routing.key: json:user (flag --key) contradicts cluster logs, whose layout has message"},
		{"file pattern", []string{"--cluster", "logs", "--member", "a", "--file-pattern", "x-%d", "-d", t.TempDir()}, `file_pattern: x-%d (flag --file-pattern) contradicts cluster logs, whose layout has shard-%03d.log`},
		{"member only", []string{"--member", "a", "-d", t.TempDir()}, `cluster.name: not set, but cluster.member is "a"`},
		{"cluster only", []string{"--cluster", "logs", "-d", t.TempDir()}, "cluster.member: not set"},
		{"subjects", []string{"--cluster", "logs", "--member", "a", "--subject", "x", "-d", t.TempDir()}, "nats.subjects: [x]"},
		{"pinned ttl", []string{"--cluster", "logs", "--member", "a", "--pinned-ttl", "100ms", "-d", t.TempDir()}, "cluster.pinned_ttl: 100ms"},
		{"other member's dir", []string{"--cluster", "logs", "--member", "b", "-d", dirA}, `cluster.member was "a", now "b", member shards was "0-3", now "4-7"`},
		{"plain run's dir", []string{"--cluster", "logs", "--member", "a", "-d", plain}, `cluster.name was "", now "logs"`},
	}
	for _, tc := range cases {
		res := shardlog(t, nil, nil, append([]string{"run", "--nats-url", url}, tc.args...)...)
		if res.code != 2 || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%s: exit %d, want 2 and %q: %s", tc.name, res.code, tc.want, res.stderr)
		}
	}
}

// TestMemberOldServer checks that run --cluster against Debian's
// nats-server 2.9, which cannot pin a priority group, exits 1 saying it
// needs 2.11 or later.
func TestMemberOldServer(t *testing.T) {
	srv := binaryJS(t)
	if !olderThan(srv, 2, 11) {
		t.Skipf("SKIP: the installed nats-server is %s, not older than 2.11", srv.version)
	}
	res := shardlog(t, nil, nil, "run", "--nats-url", srv.url, "--cluster", "logs", "--member", "a", "-d", t.TempDir())
	if res.code != 1 || !strings.Contains(res.stderr, "needs nats-server 2.11 or later") || !strings.Contains(res.stderr, srv.version) {
		t.Errorf("exit %d, want 1 naming version %s and what is needed: %s", res.code, srv.version, res.stderr)
	}
}

// TestMemberStandbyTakesOver runs two instances of member a, each with a
// directory of its own: the server delivers to one of them only; once
// that one is killed (SIGKILL), the other takes over within about the
// pinned TTL, and every record published, before and after, is in one of
// the two directories (at least once).
func TestMemberStandbyTakesOver(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a")
	dirs := []string{t.TempDir(), t.TempDir()}
	ds := []*daemon{
		startMember(t, url, "a", dirs[0], "--pinned-ttl", "5s"),
		startMember(t, url, "a", dirs[1], "--pinned-ttl", "5s"),
	}
	publishBatches := func(from, n int) []string {
		var all []string
		for i := from; i < from+n; i++ {
			k := i % 4
			recs := []string{fmt.Sprintf("m%d-r0", i), fmt.Sprintf("m%d-r1", i)}
			if _, err := js.Publish(ctx, fmt.Sprintf("shardlog.%d", k), []byte(strings.Join(recs, "\n")+"\n")); err != nil {
				t.Fatal(err)
			}
			all = append(all, recs...)
		}
		return all
	}
	first := publishBatches(0, 100)
	// Wait until one of them holds everything; the other must hold nothing.
	active := -1
	waitFor(t, "one instance to write the first batches", 60*time.Second, func() bool {
		for i, dir := range dirs {
			if count(records(t, dir, 4)) >= len(first) {
				active = i
				return true
			}
		}
		return false
	})
	standby := 1 - active
	waitAcked(t, js, "logs", "logs_a")
	if n := count(records(t, dirs[standby], 4)); n != 0 {
		t.Fatalf("the standby wrote %d records while the active one was pinned", n)
	}

	if err := ds[active].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-ds[active].done
	killed := time.Now()
	second := publishBatches(100, 100)
	waitFor(t, "the standby to write the later batches", 60*time.Second, func() bool {
		return count(records(t, dirs[standby], 4)) >= len(second)
	})
	t.Logf("the standby took over %s after the kill (pinned TTL 5s)", time.Since(killed).Round(100*time.Millisecond))
	waitAcked(t, js, "logs", "logs_a")
	ds[standby].stop(t)
	for i, d := range ds {
		if !d.stderr.Contains("this instance is the member's active one") {
			t.Errorf("instance %d did not log that it became the active one: %s", i, d.stderr.String())
		}
	}

	have := map[string]bool{}
	for _, dir := range dirs {
		for _, f := range records(t, dir, 4) {
			for _, r := range f {
				have[r] = true
			}
		}
	}
	for _, r := range append(first, second...) {
		if !have[r] {
			t.Errorf("record %s is in neither directory", r)
		}
	}
	// Everything the killed one acknowledged it had written.
	for _, r := range second {
		if !slices.Contains(slices.Concat(records(t, dirs[standby], 4)...), r) {
			t.Errorf("record %s, published after the kill, is not in the standby's directory", r)
			break
		}
	}
}

// TestMemberStalledActive stops (SIGSTOP) the active instance of a member
// mid-stream, as a hung host would: the standby takes over, and what the
// stalled one had received but not acknowledged is delivered to the
// standby after ack_wait, so that every record published is in the
// standby's directory. When the stalled one wakes up (SIGCONT) it may
// still write what it held (pinning is not fencing), and it stops cleanly.
func TestMemberStalledActive(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a")
	t.Setenv("SHARDLOG_NATS_JETSTREAM_ACK_WAIT", "2s")
	dirs := []string{t.TempDir(), t.TempDir()}
	ds := []*daemon{
		startMember(t, url, "a", dirs[0], "--pinned-ttl", "3s"),
		startMember(t, url, "a", dirs[1], "--pinned-ttl", "3s"),
	}
	publish := func(from, n int) []string {
		var all []string
		for i := from; i < from+n; i++ {
			rec := fmt.Sprintf("m%d", i)
			if _, err := js.Publish(ctx, fmt.Sprintf("shardlog.%d", i%4), []byte(rec+"\n")); err != nil {
				t.Fatal(err)
			}
			all = append(all, rec)
		}
		return all
	}
	first := publish(0, 40)
	active := -1
	waitFor(t, "one instance to write the first batches", 60*time.Second, func() bool {
		for i, dir := range dirs {
			if count(records(t, dir, 4)) >= len(first) {
				active = i
				return true
			}
		}
		return false
	})
	standby := 1 - active
	waitAcked(t, js, "logs", "logs_a")

	if err := ds[active].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	second := publish(40, 40)
	waitFor(t, "the standby to hold every later record", 60*time.Second, func() bool {
		have := slices.Concat(records(t, dirs[standby], 4)...)
		for _, r := range second {
			if !slices.Contains(have, r) {
				return false
			}
		}
		return true
	})
	waitAcked(t, js, "logs", "logs_a")
	if err := ds[active].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	ds[active].stop(t)
	ds[standby].stop(t)
	if !ds[standby].stderr.Contains("this instance is the member's active one") {
		t.Errorf("the standby did not log that it became the active one: %s", ds[standby].stderr.String())
	}
	if m := regexp.MustCompile(`redelivered=\d+`).FindString(ds[standby].stderr.String()); m != "" {
		t.Logf("standby: %s (messages the stalled one held)", m)
	}
}
