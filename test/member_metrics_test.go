package test

import (
	"slices"
	"testing"
	"time"
)

// TestMemberMetrics checks the counters a member exports on
// --metrics-listen: a payload without a final '\n' counts in
// shardlog_member_unterminated_total, a message for another member's
// shard (its durable changed by hand to read it) in
// shardlog_member_foreign_total, and neither in
// shardlog_member_redelivered_total; promtool finds the exposition well
// formed.
func TestMemberMetrics(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a,b")
	addr := freeAddr(t)
	dir := t.TempDir()
	d := startMember(t, url, "a", dir, "--metrics-listen", addr)
	for _, p := range []struct{ subject, payload string }{{"shardlog.0", "x\n"}, {"shardlog.1", "y"}} {
		if _, err := js.Publish(ctx, p.subject, []byte(p.payload)); err != nil {
			t.Fatal(err)
		}
	}
	// The durable, changed by hand, also reads shard 3, which is b's.
	cons, err := js.Consumer(ctx, "logs", "logs_a")
	if err != nil {
		t.Fatal(err)
	}
	cfg := cons.CachedInfo().Config
	cfg.FilterSubjects = append(slices.Clone(cfg.FilterSubjects), "shardlog.3")
	if _, err := js.UpdateConsumer(ctx, "logs", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "shardlog.3", []byte("b's\n")); err != nil {
		t.Fatal(err)
	}
	var body string
	waitFor(t, "the records written and the foreign message counted", 30*time.Second, func() bool {
		_, body = scrape(t, "http://"+addr+"/metrics")
		return metric(body, "shardlog_records_written_total") == 2 && metric(body, "shardlog_member_foreign_total") >= 1
	})
	for series, want := range map[string]float64{
		"shardlog_member_unterminated_total":   1,
		"shardlog_member_redelivered_total":    0,
		"shardlog_jetstream_redelivered_total": 0,
	} {
		if got := metric(body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	promtoolCheck(t, body)
	d.stop(t)
	if got := count(records(t, dir, 4)); got != 2 {
		t.Errorf("a's files hold %d records, want 2 (x, y)", got)
	}
}
