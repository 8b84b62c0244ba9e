package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardlog/shardlog/internal/murmur3ref"
)

// startEnv starts shardlog with args, as start does, with env added to
// its environment.
func startEnv(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(bin, args...)}
	d.cmd.Env = append(os.Environ(), env...)
	var err error
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	d.launch(t)
	return d
}

// waitLog waits until d's log holds s, failing the test if d exits first.
func waitLog(t *testing.T, d *daemon, what, s string) {
	t.Helper()
	waitFor(t, what, 60*time.Second, func() bool {
		select {
		case <-d.done:
			t.Fatalf("%s: shardlog exited: %s", what, d.stderr.String())
		default:
		}
		return d.stderr.Contains(s)
	})
}

// failoverRecord is record seq of route instance r: distinct, so that each
// can be traced, and all of one width (31 bytes with its newline).
func failoverRecord(r, seq int) string {
	return fmt.Sprintf("r%d-%06d user-%05d did thing", r, seq, (seq*7919+r*31)%100000)
}

// parseFailoverRecord returns the route instance and sequence number of a
// record failoverRecord made, or ok false.
func parseFailoverRecord(rec string) (r, seq int, ok bool) {
	if _, err := fmt.Sscanf(rec, "r%d-%d", &r, &seq); err != nil {
		return 0, 0, false
	}
	return r, seq, rec == failoverRecord(r, seq)
}

// feed writes records into the standard input of route instances at a
// steady rate, so that failures can be made while records flow.
type feed struct {
	sent atomic.Int64 // records written, over all routes
	stop chan struct{}
	wg   sync.WaitGroup
}

// feedRoutes starts writing perRoute records (failoverRecord(r, 0...)) to
// the standard input of routes[r], perTick records every tick, and closes
// it after the last. The writers stop, and are waited for, when the test
// ends.
func feedRoutes(t *testing.T, routes []*daemon, perRoute, perTick int, tick time.Duration) *feed {
	f := &feed{stop: make(chan struct{})}
	for r, d := range routes {
		f.wg.Go(func() {
			defer d.stdin.Close()
			tk := time.NewTicker(tick)
			defer tk.Stop()
			var buf []byte
			for seq := 0; seq < perRoute; {
				buf = buf[:0]
				n := 0
				for end := min(seq+perTick, perRoute); seq < end; seq++ {
					buf = append(append(buf, failoverRecord(r, seq)...), '\n')
					n++
				}
				if _, err := d.stdin.Write(buf); err != nil {
					t.Errorf("feed route %d at record %d: %v", r, seq, err)
					return
				}
				f.sent.Add(int64(n))
				select {
				case <-tk.C:
				case <-f.stop:
					return
				}
			}
		})
	}
	t.Cleanup(func() {
		close(f.stop)
		for _, d := range routes {
			d.stdin.Close() // ends a write blocked on a full pipe
		}
		f.wg.Wait()
	})
	return f
}

// dirBytes returns the bytes in dir's n shard files.
func dirBytes(t *testing.T, dir string, n int) int64 {
	t.Helper()
	var sum int64
	for k := range n {
		st, err := os.Stat(filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k)))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err == nil {
			sum += st.Size()
		}
	}
	return sum
}

// statsCount returns the value of name= in the last "stopped" line of a
// member's log, or -1.
func statsCount(log, name string) int {
	ms := regexp.MustCompile(`msg=stopped .*\b`+name+`=(\d+)`).FindAllStringSubmatch(log, -1)
	if ms == nil {
		return -1
	}
	n, _ := strconv.Atoi(ms[len(ms)-1][1])
	return n
}

// TestClusterFailover is issue 17's failure test, on a 3-node NATS cluster
// of real nats-server processes (built from the module go.mod requires)
// with an R3 stream: two route instances, each fed 100k distinct records
// on standard input at a steady rate, route into cluster logs (16 shards:
// member a owns 0-7, b 8-15); member a runs as two instances, each with a
// directory of its own (two hosts), b as one. Mid-stream, the active
// instance of a is killed (SIGKILL), and later one NATS node, which is
// restarted after a while; the killed instance of a is restarted too, as
// a host would be, and becomes a standby. Then the input ends, and once
// the stream's consumers have nothing pending every member stops.
//
// Every record must be in the file of its shard, in a directory of the
// member that owns the shard (a's two directories together for 0-7), at
// least once; none in a wrong shard or on a wrong member. b, never
// killed, holds exactly its records, each once, and each route's in that
// route's input order: the node killed is one off b's path (not the
// server b is connected to, nor the leader of b's durable), since a node
// on a member's path makes what that member had not acknowledged come
// again after ack_wait, written twice and out of order. The duplicates are counted and bounded: a message
// comes back only if it was delivered and not acknowledged, and the
// server lets at most max_ack_pending (64 here) be so at a time, so each
// failure that hits a (the kill of its active instance; the node's, if
// it served a) makes at most 64 messages come back, each at most
// batch.max_bytes/31 records: a's instances must count at most 2*64
// redelivered messages, and the duplicate records must fit in the
// messages counted (at most 264 each). When there are duplicates, a's
// instances must report redelivered messages in their metrics and final
// log line. which --cluster must name, for a sample of keys, the member
// whose files hold them. The takeover time (kill to the standby's first
// write: the pinned TTL, or ack_wait when the dead instance held
// max_ack_pending messages, for the server then delivers nothing more
// until they time out), the pause of the stream after the node's kill,
// and the duplicates are logged.
func TestClusterFailover(t *testing.T) {
	const (
		shards        = 16
		perRoute      = 100_000
		total         = 2 * perRoute
		maxAckPending = 64
		batchBytes    = 8 << 10
		recordBytes   = 31
		perBatch      = batchBytes / recordBytes // records in a message, at most
	)
	if n := len(failoverRecord(1, perRoute-1)) + 1; n != recordBytes {
		t.Fatalf("records are %d bytes, want %d", n, recordBytes)
	}
	c := startNATSCluster(t, 3)
	urls := c.URLs()
	started := time.Now()
	if res := shardlog(t, nil, nil, "cluster", "create", "--nats-url", urls, "--cluster", "logs",
		"-n", strconv.Itoa(shards), "--members", "a,b", "--replicas", "3"); res.code != 0 {
		t.Fatalf("cluster create: exit %d: %s", res.code, res.stderr)
	}
	js, err := jetstream.New(client(t, urls, nats.MaxReconnects(-1)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	memberEnv := func(conn string) []string {
		return []string{"SHARDLOG_NATS_NAME=" + conn, "SHARDLOG_NATS_JETSTREAM_ACK_WAIT=5s",
			"SHARDLOG_NATS_JETSTREAM_MAX_ACK_PENDING=" + strconv.Itoa(maxAckPending)}
	}
	type instance struct {
		d       *daemon
		dir     string
		metrics string
	}
	startInstance := func(member, conn, dir string) *instance {
		in := &instance{dir: dir, metrics: freeAddr(t)}
		in.d = startEnv(t, memberEnv(conn), "run", "--nats-url", urls, "--cluster", "logs", "--member", member,
			"-d", dir, "--pinned-ttl", "2s", "--batch-max-delay", "20ms", "--metrics-listen", in.metrics)
		waitLog(t, in.d, "member "+conn+" to pull", "receiving from NATS")
		return in
	}
	a := []*instance{startInstance("a", "member-a0", t.TempDir()), startInstance("a", "member-a1", t.TempDir())}
	b := startInstance("b", "member-b", t.TempDir())

	routes := make([]*daemon, 2)
	for r := range routes {
		routes[r] = startEnv(t, []string{"SHARDLOG_NATS_NAME=route-" + strconv.Itoa(r)},
			"route", "--nats-url", urls, "--cluster", "logs", "--batch-max-bytes", strconv.Itoa(batchBytes))
		waitLog(t, routes[r], "route "+strconv.Itoa(r)+" to start", "msg=routing")
	}
	// 100 records per route every 25ms: 25s of input if the machine
	// keeps up (it may not: the pipe then slows the feed down).
	f := feedRoutes(t, routes, perRoute, 100, 25*time.Millisecond)
	fed := func(frac float64) func() bool {
		return func() bool { return f.sent.Load() >= int64(frac*total) }
	}

	// The kill of a's active instance: the one whose files grow.
	waitFor(t, "a quarter of the input fed", 2*time.Minute, fed(0.25))
	active := -1
	last := []int64{dirBytes(t, a[0].dir, shards), dirBytes(t, a[1].dir, shards)}
	waitFor(t, "one instance of a to write", 30*time.Second, func() bool {
		now := []int64{dirBytes(t, a[0].dir, shards), dirBytes(t, a[1].dir, shards)}
		grew := []bool{now[0] > last[0], now[1] > last[1]}
		last = now
		switch {
		case grew[0] && !grew[1]:
			active = 0
		case grew[1] && !grew[0]:
			active = 1
		}
		return active >= 0
	})
	standby := 1 - active
	if !a[active].d.stderr.Contains("this instance is the member's active one") {
		t.Errorf("a's instance %d writes but did not log that it is the active one: %s", active, a[active].d.stderr.String())
	}
	if err := a[active].d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a[active].d.done
	killed := time.Now()
	killedAt := f.sent.Load()
	before := dirBytes(t, a[standby].dir, shards)
	held := -1 // messages delivered and not acknowledged when the active one died
	if cons, err := js.Consumer(ctx, "logs", "logs_a"); err == nil {
		if info, err := cons.Info(ctx); err == nil {
			held = info.NumAckPending
		}
	}
	waitFor(t, "a's standby to take over", 60*time.Second, func() bool {
		return dirBytes(t, a[standby].dir, shards) > before
	})
	takeover := time.Since(killed)
	if killedAt >= total {
		t.Errorf("a's active instance was killed after the input ended (%d records fed): not mid-stream", killedAt)
	}
	// The host comes back: the instance restarts on its directory (and
	// cuts a record the kill tore) as a standby.
	a[active] = startInstance("a", fmt.Sprintf("member-a%d-again", active), a[active].dir)

	// The kill of one NATS node, not one on b's path (the server b is
	// connected to, or the leader of b's durable), so that b, which
	// nothing else disturbs, must hold each of its records once and in
	// order; of those, the one that serves most: leads the stream,
	// through which routes publish, or has route or a's connections.
	waitFor(t, "three fifths of the input fed", 2*time.Minute, fed(0.6))
	stream := mustStream(ctx, t, js)
	si, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := js.Consumer(ctx, "logs", "logs_b")
	if err != nil {
		t.Fatal(err)
	}
	cbi, err := ci.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	avoid := map[string]bool{c.connectedTo("member-b"): true, cbi.Cluster.Leader: true}
	// roles lists, per node, what of the test's it serves.
	roles := map[string][]string{si.Cluster.Leader: {"stream leader"}}
	if ca, err := js.Consumer(ctx, "logs", "logs_a"); err == nil {
		if cai, err := ca.Info(ctx); err == nil && cai.Cluster != nil {
			roles[cai.Cluster.Leader] = append(roles[cai.Cluster.Leader], "leader of a's durable")
		}
	}
	for _, conn := range []string{"route-0", "route-1", "member-a0", "member-a1", "member-a0-again", "member-a1-again"} {
		if n := c.connectedTo(conn); n != "" {
			roles[n] = append(roles[n], conn+"'s server")
		}
	}
	victim := -1
	for i, n := range c.nodes {
		if !avoid[n.name] && (victim < 0 || len(roles[n.name]) > len(roles[c.nodes[victim].name])) {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("no node off b's path: %v", avoid)
	}
	c.kill(t, victim)
	nodeKilled := time.Now()
	nodeKilledAt := f.sent.Load()
	// The pause: from the kill until the stream stores batches again.
	waitFor(t, "the stream to store batches again after the node's kill", 60*time.Second, func() bool {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		info, err := stream.Info(cctx)
		return err == nil && info.State.LastSeq > si.State.LastSeq && info.State.LastTime.After(nodeKilled)
	})
	pause := time.Since(nodeKilled)
	waitFor(t, "four fifths of the input fed", 2*time.Minute, fed(0.8))
	c.restart(t, victim)
	if nodeKilledAt >= total {
		t.Errorf("the NATS node was killed after the input ended (%d records fed): not mid-stream", nodeKilledAt)
	}

	for r, d := range routes {
		if code := d.wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("route %d: exit %d: %s", r, code, d.stderr.String())
		}
	}
	waitConsumed(t, ctx, js, "logs_a")
	waitConsumed(t, ctx, js, "logs_b")
	// The metrics of a's instances, read before they stop.
	redeliveredMetric := map[int]float64{}
	for i, in := range a {
		_, body := scrape(t, "http://"+in.metrics+"/metrics")
		redeliveredMetric[i] = metric(body, "shardlog_member_redelivered_total")
		if v := metric(body, "shardlog_jetstream_redelivered_total"); v != redeliveredMetric[i] {
			t.Errorf("a's instance %d: shardlog_jetstream_redelivered_total %v, shardlog_member_redelivered_total %v: want them equal", i, v, redeliveredMetric[i])
		}
		for _, series := range []string{"shardlog_member_foreign_total", "shardlog_member_unterminated_total"} {
			if v := metric(body, series); v != 0 {
				t.Errorf("a's instance %d: %s = %v, want 0", i, series, v)
			}
		}
		if i == standby {
			promtoolCheck(t, body)
		}
	}
	for _, in := range append(a, b) {
		in.d.stop(t)
	}
	elapsed := time.Since(started)

	// Where every record is.
	owner := func(k int) string {
		if k < shards/2 {
			return "a"
		}
		return "b"
	}
	dirs := map[string][]string{"a": {a[0].dir, a[1].dir}, "b": {b.dir}}
	copies := make(map[string]int, total)
	inDir := map[string]map[string]bool{} // dir -> records
	for m, ds := range dirs {
		for _, dir := range ds {
			inDir[dir] = map[string]bool{}
			for k, recs := range records(t, dir, shards) {
				last := map[int]int{} // route -> last sequence number, for b's order
				for _, rec := range recs {
					r, seq, ok := parseFailoverRecord(rec)
					if !ok {
						t.Errorf("%s's file of shard %d holds %q, which is no record fed", m, k, rec)
						continue
					}
					if want := int(murmur3ref.Sum32([]byte(rec), 0) % shards); want != k {
						t.Errorf("record %q is in shard %d's file, want shard %d's", rec, k, want)
					}
					if owner(k) != m {
						t.Errorf("record %q of shard %d is on member %s, which does not own that shard", rec, k, m)
					}
					copies[rec]++
					inDir[dir][rec] = true
					if m == "b" {
						if l, ok := last[r]; ok && seq <= l {
							t.Errorf("b, shard %d: route %d's record %d after its record %d: not in input order", k, r, seq, l)
						}
						last[r] = seq
					}
				}
			}
		}
	}
	missing, dups := 0, 0
	for r := range 2 {
		for seq := range perRoute {
			rec := failoverRecord(r, seq)
			n := copies[rec]
			if n == 0 {
				if missing++; missing <= 5 {
					t.Errorf("record %q (shard %d) is in no file", rec, murmur3ref.Sum32([]byte(rec), 0)%shards)
				}
			}
			if n > 1 && owner(int(murmur3ref.Sum32([]byte(rec), 0)%shards)) == "b" {
				t.Errorf("b holds record %q %d times, want once", rec, n)
			}
			dups += max(0, n-1)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d records lost", missing, total)
	}

	// The duplicates, and what a's instances counted.
	redelivered := 0
	for i, in := range a {
		n := statsCount(in.d.stderr.String(), "redelivered")
		if n < 0 {
			t.Errorf("a's instance %d: no redelivered= in its final log line: %s", i, in.d.stderr.String())
		}
		if float64(n) != redeliveredMetric[i] {
			t.Errorf("a's instance %d: shardlog_member_redelivered_total %v, but its final log line says redelivered=%d", i, redeliveredMetric[i], n)
		}
		redelivered += max(0, n)
	}
	if n := statsCount(b.d.stderr.String(), "redelivered"); n != 0 {
		t.Errorf("b counted %d redelivered messages, want 0 (nothing on its path failed)", n)
	}
	if redelivered > 2*maxAckPending {
		t.Errorf("a's instances counted %d redelivered messages, more than 2 failures × max_ack_pending %d", redelivered, maxAckPending)
	}
	if dups > redelivered*perBatch {
		t.Errorf("%d duplicate records, more than the %d redelivered messages can hold (%d records each at most)", dups, redelivered, perBatch)
	}
	if dups > 0 && redeliveredMetric[standby] <= 0 && redeliveredMetric[active] <= 0 {
		t.Errorf("%d duplicate records written, but a's instances report shardlog_member_redelivered_total %v", dups, redeliveredMetric)
	}

	// which --cluster names, for a sample of keys, the member whose files
	// hold the key's records.
	var sample []string
	for seq := 0; seq < perRoute; seq += 9973 {
		sample = append(sample, failoverRecord(seq%2, seq))
	}
	res := shardlog(t, nil, nil, append([]string{"which", "--nats-url", urls, "--cluster", "logs"}, sample...)...)
	if res.code != 0 {
		t.Fatalf("which --cluster: exit %d: %s", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	if len(lines) != len(sample) {
		t.Fatalf("which --cluster printed %d lines for %d keys: %s", len(lines), len(sample), res.stdout)
	}
	for i, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[0] != sample[i] {
			t.Errorf("which --cluster: line %q, want key %q, shard, member, file", line, sample[i])
			continue
		}
		found := false
		for _, dir := range dirs[f[2]] {
			data, err := os.ReadFile(filepath.Join(dir, f[3]))
			if err == nil && strings.Contains("\n"+string(data), "\n"+sample[i]+"\n") {
				found = true
			}
		}
		if !found {
			t.Errorf("which --cluster says %q is on member %s in %s: not there", sample[i], f[2], f[3])
		}
	}

	t.Logf("a's standby took over %s after its active instance was killed (pinned TTL 2s, ack wait 5s), %d of %d records fed, %d messages unacknowledged (max %d)",
		takeover.Round(10*time.Millisecond), killedAt, total, held, maxAckPending)
	t.Logf("NATS node %s (%s) killed with %d of %d records fed: the stream stored again %s later; restarted at 80%%",
		c.nodes[victim].name, strings.Join(roles[c.nodes[victim].name], ", "), nodeKilledAt, total, pause.Round(10*time.Millisecond))
	t.Logf("%d duplicate records; a's instances counted %d redelivered messages (metrics %v); %s in all",
		dups, redelivered, redeliveredMetric, elapsed.Round(100*time.Millisecond))
	if t.Failed() {
		for i, in := range a {
			t.Logf("a's instance %d's log:\n%s", i, logTail(in.d.stderr.String(), 3000))
		}
		t.Logf("b's log:\n%s", logTail(b.d.stderr.String(), 3000))
	}
	for r, d := range routes {
		if m := regexp.MustCompile(`msg=published .*`).FindString(d.stderr.String()); m != "" {
			t.Logf("route %d: %s", r, m)
		}
	}
}

// waitConsumed waits until durable of stream logs has nothing pending
// and nothing awaiting acknowledgement. Its information may be missing
// for a while after a node's failure (its leader is elected again). It
// also waits for the (work-queue) stream to hold none of the durable's
// subjects: the server tells consumers of stored messages asynchronously,
// so "nothing pending" alone can come before they know.
func waitConsumed(t *testing.T, ctx context.Context, js jetstream.JetStream, durable string) {
	t.Helper()
	var last error
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var info *jetstream.ConsumerInfo
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		cons, err := js.Consumer(cctx, "logs", durable)
		if err == nil {
			info, err = cons.Info(cctx)
		}
		switch {
		case err != nil:
			last = err
		case info.NumPending == 0 && info.NumAckPending == 0:
			// The server tells a consumer of stored messages
			// asynchronously: settled only once the stream (work
			// queue) holds none of its subjects any more.
			filters := info.Config.FilterSubjects
			if info.Config.FilterSubject != "" {
				filters = append(filters, info.Config.FilterSubject)
			}
			left, err := streamHolds(cctx, js, filters)
			if err == nil && left == 0 {
				cancel()
				return
			}
			last = fmt.Errorf("nothing pending, but the stream holds %d of its messages (%v)", left, err)
		default:
			last = fmt.Errorf("%d pending, %d awaiting acknowledgement", info.NumPending, info.NumAckPending)
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("durable %s not consumed within 90s: %v", durable, last)
		}
	}
}

// mustStream returns the cluster logs's stream.
func mustStream(ctx context.Context, t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	s, err := js.Stream(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// promtoolCheck checks a metrics exposition with promtool check metrics,
// if promtool is installed.
func promtoolCheck(t *testing.T, body string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("SKIP promtool: not installed (Debian package prometheus; .ci/run installs it)")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v: %s", err, out)
	}
}

// streamHolds returns how many messages stream logs holds on subjects.
func streamHolds(ctx context.Context, js jetstream.JetStream, subjects []string) (uint64, error) {
	str, err := js.Stream(ctx, "logs")
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, f := range subjects {
		i, err := str.Info(ctx, jetstream.WithSubjectFilter(f))
		if err != nil {
			return 0, err
		}
		for _, c := range i.State.Subjects {
			n += c
		}
	}
	return n, nil
}
