package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// instanceKeys returns the keys of cluster's instance entries in bucket
// shardlog_instances (none if the bucket does not exist).
func instanceKeys(t *testing.T, ctx context.Context, js jetstream.JetStream, cluster string) []string {
	t.Helper()
	kv, err := js.KeyValue(ctx, "shardlog_instances")
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	l, err := kv.ListKeysFiltered(ctx, cluster+".>")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// show runs cluster show for cluster logs and returns its instance lines
// (those after the "member\tinstance" header).
func show(t *testing.T, url string) string {
	t.Helper()
	res := shardlog(t, nil, nil, "cluster", "show", "--nats-url", url, "--cluster", "logs")
	if res.code != 0 {
		t.Fatalf("show: exit %d: %s", res.code, res.stderr)
	}
	_, after, ok := strings.Cut(res.stdout, "member\tinstance\n")
	if !ok {
		t.Fatalf("show printed no instances:\n%s", res.stdout)
	}
	return after
}

// waitShow polls cluster show until its instance lines satisfy ok.
func waitShow(t *testing.T, url, what string, ok func(lines string) bool) string {
	t.Helper()
	var last string
	for deadline := time.Now().Add(60 * time.Second); ; {
		if last = show(t, url); ok(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster show: %s: not within 60s; last:\n%s", what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterShowInstances runs two instances of member a and one of b and
// checks that cluster show names them by host and pid: none pinned before
// any batch, then a's active instance (the one that writes the files) and
// its standby, and b's single instance active; that after a kill -9 of
// a's active instance show names the other active once it has taken over,
// and no longer lists the dead one once its entry expires (three
// heartbeats of 1.5s with a pinned TTL of 3s); and that a clean stop
// removes an instance's entry at once.
func TestClusterShowInstances(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a,b")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	as := []*daemon{
		startMember(t, url, "a", dirs[0], "--pinned-ttl", "3s"),
		startMember(t, url, "a", dirs[1], "--pinned-ttl", "3s"),
	}
	b := startMember(t, url, "b", dirs[2], "--pinned-ttl", "3s")
	pid := func(d *daemon) int { return d.cmd.Process.Pid }

	// Registered before they report that they receive: no waiting here.
	lines := show(t, url)
	if err := contains(lines, "a\tactive: none pinned yet\n", fmt.Sprintf("a\tstandby: %s %d\n", host, pid(as[0])),
		fmt.Sprintf("a\tstandby: %s %d\n", host, pid(as[1])), "b\tactive: none pinned yet\n",
		fmt.Sprintf("b\tstandby: %s %d\n", host, pid(b))); err != nil {
		t.Errorf("show before any batch: %v", err)
	}

	publish := func(from, n int) {
		for i := from; i < from+n; i++ {
			if _, err := js.Publish(ctx, fmt.Sprintf("shardlog.%d", i%4), fmt.Appendf(nil, "m%d\n", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(0, 40)
	active := -1
	waitFor(t, "one instance of a to write a's batches", 60*time.Second, func() bool {
		for i := range as {
			if count(records(t, dirs[i], 4)) >= 20 {
				active = i
				return true
			}
		}
		return false
	})
	standby := 1 - active
	waitAcked(t, js, "logs", "logs_a")
	waitAcked(t, js, "logs", "logs_b")
	if !as[active].stderr.Contains("this instance is the member's active one") {
		t.Errorf("the instance that wrote a's files did not log that it is the active one: %s", as[active].stderr.String())
	}
	since := `\(since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)\n`
	wantA := regexp.MustCompile(fmt.Sprintf(`(?m)^a\tactive: %s %d %s`, regexp.QuoteMeta(host), pid(as[active]), since))
	wantB := regexp.MustCompile(fmt.Sprintf(`(?m)^b\tactive: %s %d %s`, regexp.QuoteMeta(host), pid(b), since))
	lines = waitShow(t, url, "a's and b's active instances named", func(lines string) bool {
		return wantA.MatchString(lines) && wantB.MatchString(lines)
	})
	if want := fmt.Sprintf("a\tstandby: %s %d\n", host, pid(as[standby])); !strings.Contains(lines, want) {
		t.Errorf("show lacks %q:\n%s", want, lines)
	}
	if n := strings.Count(lines, "\n"); n != 3 {
		t.Errorf("show printed %d instance lines, want 3:\n%s", n, lines)
	}

	if err := as[active].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-as[active].done
	killed := time.Now()
	// The standby is pinned only with a batch to deliver: give it some.
	publish(40, 40)
	wantA = regexp.MustCompile(fmt.Sprintf(`(?m)^a\tactive: %s %d %s`, regexp.QuoteMeta(host), pid(as[standby]), since))
	waitShow(t, url, "the standby named active after the kill", func(lines string) bool { return wantA.MatchString(lines) })
	t.Logf("show named the new active instance %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	dead := fmt.Sprintf(" %d", pid(as[active]))
	lines = waitShow(t, url, "the killed instance no longer listed", func(lines string) bool { return !strings.Contains(lines, dead) })
	t.Logf("show stopped listing the killed instance %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	if !wantA.MatchString(lines) || !wantB.MatchString(lines) || strings.Count(lines, "\n") != 2 {
		t.Errorf("show after the killed instance expired:\n%s", lines)
	}

	// A clean stop removes the entry: nothing left to expire.
	as[standby].stop(t)
	b.stop(t)
	if keys := instanceKeys(t, ctx, js, "logs"); len(keys) != 0 {
		t.Errorf("instance entries left after a clean stop: %v", keys)
	}
	lines = show(t, url)
	if strings.Contains(lines, host) || strings.Contains(lines, "standby") {
		t.Errorf("show lists instances after they stopped:\n%s", lines)
	}
}

// TestClusterDeleteInstances checks that cluster delete removes the
// entries of the cluster's instances, even one no instance refreshes any
// more (as a killed instance leaves until it expires: written here
// without an expiry), and leaves another cluster's.
func TestClusterDeleteInstances(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "2", "--members", "a")
	memberCluster(t, url, "--cluster", "keep", "--prefix", "keep", "-n", "2", "--members", "a")
	kept := startNATS(t, "run", "--nats-url", url, "--cluster", "keep", "--member", "a", "-d", t.TempDir())
	if keys := instanceKeys(t, ctx, js, "keep"); len(keys) != 1 {
		t.Fatalf("keep's instance entries: %v, want one", keys)
	}
	kv, err := js.KeyValue(ctx, "shardlog_instances")
	if err != nil {
		t.Fatal(err)
	}
	stale := `{"cluster":"logs","member":"a","id":"0123456789abcdef","host":"gone","pid":1}`
	if _, err := kv.Put(ctx, "logs.a.0123456789abcdef", []byte(stale)); err != nil {
		t.Fatal(err)
	}
	if lines := show(t, url); !strings.Contains(lines, "a\tstandby: gone 1\n") {
		t.Errorf("show does not list the entry written by hand:\n%s", lines)
	}
	if res := shardlog(t, nil, nil, "cluster", "delete", "--nats-url", url, "--cluster", "logs"); res.code != 0 {
		t.Fatalf("delete: exit %d: %s", res.code, res.stderr)
	}
	if keys := instanceKeys(t, ctx, js, "logs"); len(keys) != 0 {
		t.Errorf("instance entries of logs after delete: %v", keys)
	}
	if keys := instanceKeys(t, ctx, js, "keep"); len(keys) != 1 {
		t.Errorf("delete of logs touched keep's instance entries: %v", keys)
	}
	kept.stop(t)
}

// TestMemberNotRegistered runs a member whose NATS user may not write to
// the instances' bucket: it warns that it cannot register, and writes
// its batches all the same, and stops cleanly.
func TestMemberNotRegistered(t *testing.T) {
	srv := natsServer(t, &server.Options{Users: []*server.User{
		{Username: "admin", Password: "adminpw"},
		{Username: "member", Password: "memberpw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{"$JS.API.>", "$JS.ACK.>"}, Deny: []string{"$KV.shardlog_instances.>"}},
		}},
	}}, true)
	admin := fmt.Sprintf("nats://admin:adminpw@%s", srv.Addr())
	member := fmt.Sprintf("nats://member:memberpw@%s", srv.Addr())
	memberCluster(t, admin, "--cluster", "logs", "-n", "2", "--members", "a")
	dir := t.TempDir()
	d := startMember(t, member, "a", dir)
	js, err := jetstream.New(client(t, admin))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for k := range 2 {
		if _, err := js.Publish(ctx, fmt.Sprintf("shardlog.%d", k), fmt.Appendf(nil, "r%d\n", k)); err != nil {
			t.Fatal(err)
		}
	}
	waitRecords(t, dir, 2, 2)
	waitAcked(t, js, "logs", "logs_a")
	d.stop(t)
	if !d.stderr.Contains("could not register this instance for cluster show") {
		t.Errorf("no warning about the registration: %s", d.stderr.String())
	}
	if keys := instanceKeys(t, ctx, js, "logs"); len(keys) != 0 {
		t.Errorf("entries written against the permissions: %v", keys)
	}
}
