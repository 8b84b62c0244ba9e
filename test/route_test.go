package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// routeInput returns n distinct lines, with keys spread over the shards,
// as route's standard input.
func routeInput(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "user-%d did thing %d\n", i%37, i)
	}
	return b.Bytes()
}

// streamShards returns the records the stream holds for each of n
// shards, each with its newline, concatenated in stream order, checking
// the batches as streamBatches does.
func streamShards(t *testing.T, ctx context.Context, js jetstream.JetStream, stream string, n int) [][]byte {
	t.Helper()
	got := make([][]byte, n)
	for _, b := range streamBatches(t, ctx, js, stream, n) {
		for _, r := range b.records {
			got[b.shard] = append(append(got[b.shard], r...), '\n')
		}
	}
	return got
}

// TestRoutePublishesShards pipes lines into shardlog route and checks that
// it exits 0, that the cluster's stream holds on shardlog.<k> exactly the
// lines that hash to k under the layout's N, in input order, in batches
// that each have a distinct Nats-Msg-Id, and that it logs what it
// published. Then members a and b write those batches, each line once, to
// the file of its shard.
func TestRoutePublishesShards(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a,b", "--seed", "7")
	const lines = 3000
	input := routeInput(lines)
	res := shardlog(t, input, nil, "route", "--cluster", "logs", "--nats-url", url, "--batch-max-bytes", "2KiB")
	if res.code != 0 {
		t.Fatalf("route: exit %d: %s", res.code, res.stderr)
	}
	want := expect(split(input, 1<<20), 4, 7)
	got := streamShards(t, ctx, js, "logs", 4)
	for k := range 4 {
		if len(want[k]) == 0 {
			t.Fatalf("shard %d gets no line: the input does not test it", k)
		}
		if !bytes.Equal(got[k], want[k]) {
			t.Errorf("stream, shard %d: %d bytes, want %d; first difference at byte %d", k, len(got[k]), len(want[k]), firstDiff(got[k], want[k]))
		}
	}
	m := regexp.MustCompile(`records=(\d+) batches=(\d+)`).FindStringSubmatch(res.stderr)
	if m == nil || m[1] != strconv.Itoa(lines) || m[2] == "0" {
		t.Errorf("route's summary does not say %d records in batches: %s", lines, res.stderr)
	}

	dirs := map[string]string{"a": t.TempDir(), "b": t.TempDir()}
	for name, dir := range dirs {
		d := startMember(t, url, name, dir)
		waitAcked(t, js, "logs", "logs_"+name)
		d.stop(t)
	}
	checkMemberFiles(t, dirs, map[string][]int{"a": {0, 1}, "b": {2, 3}}, want)
}

// checkMemberFiles checks that each member's directory (dirs) holds, for
// each of its shards, exactly want[k] in shard k's file.
func checkMemberFiles(t *testing.T, dirs map[string]string, shards map[string][]int, want [][]byte) {
	t.Helper()
	for name, ks := range shards {
		for _, k := range ks {
			got, err := os.ReadFile(filepath.Join(dirs[name], fmt.Sprintf("shard-%03d.log", k)))
			if err != nil || !bytes.Equal(got, want[k]) {
				t.Errorf("member %s, shard %d: %d bytes, want %d (%v); first difference at byte %d",
					name, k, len(got), len(want[k]), err, firstDiff(got, want[k]))
			}
		}
	}
}

// TestRouteRefusals checks that route refuses, with exit 2 and a message
// naming the key and the value, a routing value that contradicts the
// layout (naming both), a cluster without a layout, and a missing
// cluster name or NATS URL; and that it publishes nothing then.
func TestRouteRefusals(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a,b")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"shards", []string{"--nats-url", url, "--cluster", "logs", "-n", "8"}, "shards: 8 (flag --shards) contradicts cluster logs, whose layout has 4"},
		{"seed", []string{"--nats-url", url, "--cluster", "logs", "--seed", "2"}, "routing.seed: 2 (flag --seed) contradicts cluster logs, whose layout has 0"},
		{"key", []string{"--nats-url", url, "--cluster", "logs", "--key", "json:user"}, "routing.key: json:user (flag --key) contradicts cluster logs, whose layout has message"},
		{"no such cluster", []string{"--nats-url", url, "--cluster", "nope"}, `cluster.name: "nope": cluster nope: no such cluster`},
		{"no cluster", []string{"--nats-url", url}, "cluster.name: not set"},
		{"no url", []string{"--cluster", "logs"}, "nats.url: not set"},
		{"batch", []string{"--nats-url", url, "--cluster", "logs", "--batch-max-delay", "0s"}, "batch.max_delay: 0s: must be positive"},
	}
	for _, tc := range cases {
		res := shardlog(t, []byte("x\ny\n"), nil, append([]string{"route"}, tc.args...)...)
		if res.code != 2 || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%s: exit %d, want 2 and %q: %s", tc.name, res.code, tc.want, res.stderr)
		}
	}
	s, err := js.Stream(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("stream after refusals: %+v, %v; want it empty", info.State, err)
	}
}

// TestRouteNotStored checks that a batch the stream can never store (it
// is larger than the stream's max_msg_size) makes route exit 1 naming the
// cause and how many records were not stored.
func TestRouteNotStored(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "2", "--members", "a")
	s, err := js.Stream(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgSize = 64
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	input := routeInput(200)
	res := shardlog(t, input, nil, "route", "--cluster", "logs", "--nats-url", url)
	m := regexp.MustCompile(`\((\d+) records not stored\)`).FindStringSubmatch(res.stderr)
	if res.code != 1 || m == nil || m[1] == "0" || !strings.Contains(res.stderr, "batch larger than the server accepts") {
		t.Errorf("route into a stream that takes 64 bytes: exit %d, want 1 naming the cause and a count of records not stored: %s", res.code, res.stderr)
	}
}

// stdinRead returns the number of messages route's summary says it read
// from standard input and how many of them failed.
func stdinRead(t *testing.T, stderr string) (read, failed int) {
	t.Helper()
	m := regexp.MustCompile(`input=stdin messages=(\d+) written=\d+ failed=(\d+)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no summary of standard input in route's log: %s", stderr)
	}
	read, _ = strconv.Atoi(m[1])
	failed, _ = strconv.Atoi(m[2])
	return read, failed
}

// TestRouteSignal checks that SIGTERM, with standard input still open,
// makes route stop reading, publish every line it read, and exit 0: the
// stream then holds, for each shard, the lines read that hash to it, in
// order, and as many lines as route read.
func TestRouteSignal(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a,b")
	d := start(t, "route", "--cluster", "logs", "--nats-url", url, "--batch-max-bytes", "1KiB", "--batch-max-delay", "1h")
	input := routeInput(4000)
	if _, err := d.stdin.Write(input); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "route to publish", 30*time.Second, func() bool {
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs > 0
	})
	d.stop(t)
	read, failed := stdinRead(t, d.stderr.String())
	if failed != 0 || read == 0 {
		t.Errorf("route read %d lines and failed %d: want some read, none failed", read, failed)
	}
	got := streamShards(t, ctx, js, "logs", 4)
	want := expect(split(input, 1<<20)[:read], 4, 0)
	for k := range 4 {
		if !bytes.Equal(got[k], want[k]) {
			t.Errorf("stream, shard %d: %d bytes, want the %d of the %d lines read; first difference at byte %d",
				k, len(got[k]), len(want[k]), read, firstDiff(got[k], want[k]))
		}
	}
}

// TestRouteAbort checks that route, whose NATS server went away, retries
// (saying so) until a stop, and once shutdown_timeout passes after SIGTERM gives up
// and exits 1 naming how many records were not stored: all it read.
func TestRouteAbort(t *testing.T) {
	srv := natsServer(t, nil, true)
	url := srv.ClientURL()
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a,b")
	d := start(t, "route", "--cluster", "logs", "--nats-url", url, "--shutdown-timeout", "1s")
	waitFor(t, "route to start", 30*time.Second, func() bool { return d.stderr.Contains("msg=routing") })
	srv.Shutdown()
	srv.WaitForShutdown()
	if _, err := d.stdin.Write(routeInput(100)); err != nil {
		t.Fatal(err)
	}
	if err := d.stdin.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "route to retry", 60*time.Second, func() bool { return d.stderr.Contains("publish refused: retrying") })
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("route stopped with its server gone: exit %d, want 1: %s", code, d.stderr.String())
	}
	read, failed := stdinRead(t, d.stderr.String())
	if read == 0 || failed != read || !strings.Contains(d.stderr.String(), fmt.Sprintf("(%d records not stored)", read)) {
		t.Errorf("route read %d lines, failed %d: want all of them failed and named: %s", read, failed, d.stderr.String())
	}
}

// TestRouteKilledReadingStdin kills route (kill -9) while it reads a pipe,
// mid-stream, and checks what README's failure table says of it: what
// the stream stored are whole records, and for each shard a prefix of
// that shard's records in input order (a shard's batches are stored one
// after another, so a kill cuts each shard's sequence, never a hole in
// it); what route had read and not stored is lost with the pipe.
func TestRouteKilledReadingStdin(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a")
	const lines = 40000
	input := routeInput(lines)
	d := start(t, "route", "--cluster", "logs", "--nats-url", url, "--batch-max-bytes", "2KiB", "--max-pending", "4")
	// Half the input, then the kill once the stream holds some of it.
	half := bytes.Index(input[len(input)/2:], []byte("\n")) + len(input)/2 + 1
	if _, err := d.stdin.Write(input[:half]); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream to store some batches", 30*time.Second, func() bool {
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs >= 10
	})
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.wait(t, 10*time.Second)

	want := expect(split(input, 1<<20), 4, 0)
	got := streamShards(t, ctx, js, "logs", 4)
	stored := 0
	for k := range 4 {
		if !bytes.HasPrefix(want[k], got[k]) {
			t.Errorf("shard %d: the stream's %d bytes are not a prefix of the shard's records in input order (first difference at byte %d)",
				k, len(got[k]), firstDiff(got[k], want[k]))
		}
		if n := len(got[k]); n > 0 && got[k][n-1] != '\n' {
			t.Errorf("shard %d: the stream ends in a torn record", k)
		}
		stored += bytes.Count(got[k], []byte("\n"))
	}
	if stored == 0 || stored >= lines {
		t.Errorf("%d of %d records stored: want some, not all (the kill came mid-stream)", stored, lines)
	}
	t.Logf("killed mid-stream: %d of the %d records written into the pipe before the kill were stored", stored, bytes.Count(input[:half], []byte("\n")))
}
