package test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freeAddr returns a loopback address with a free port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// freeAddrs returns n loopback addresses that were free, all different:
// each is held open until the last is found (addresses from freeAddr
// called in turn can repeat, and a cluster test once gave a server the
// same port for clients and routes).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs
}

// scrape fetches url and returns its status and body.
func scrape(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// metric returns the value of the series (name with labels, as written)
// in an exposition, or -1.
func metric(body, series string) float64 {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// TestMetrics scrapes a running shardlog: the counters equal what the
// files hold, /healthz and /readyz answer, promtool finds the exposition
// well formed, and per-shard series appear only when asked for.
func TestMetrics(t *testing.T) {
	for _, perShard := range []bool{false, true} {
		t.Run("per_shard="+strconv.FormatBool(perShard), func(t *testing.T) {
			addr := freeAddr(t)
			setenv(t, "SHARDLOG_METRICS_PER_SHARD", strconv.FormatBool(perShard))
			dir := t.TempDir()
			d := start(t, "run", "-n", "4", "-d", dir, "--batch-max-delay", "10ms", "--metrics-listen", addr)
			in := lines("metrics", 10000)
			if _, err := d.stdin.Write(in); err != nil {
				t.Fatal(err)
			}
			base := "http://" + addr
			var body string
			waitFor(t, "the counters to reach 10000", 30*time.Second, func() bool {
				_, body = scrape(t, base+"/metrics")
				return metric(body, "shardlog_records_written_total") == 10000
			})
			if got := count(records(t, dir, 4)); got != 10000 {
				t.Errorf("files hold %d records, metrics say 10000", got)
			}
			for series, want := range map[string]float64{
				`shardlog_messages_received_total{input="stdin"}`: 10000,
				`shardlog_records_routed_total{input="stdin"}`:    10000,
				`shardlog_written_bytes_total`:                    float64(len(in)),
				`shardlog_records_failed_total{input="stdin"}`:    0,
				`shardlog_files_waiting`:                          0,
			} {
				if got := metric(body, series); got != want {
					t.Errorf("%s = %v, want %v", series, got, want)
				}
			}
			if strings.Contains(body, "shardlog_member_") {
				t.Errorf("run that is no member exports member series")
			}
			if metric(body, "shardlog_batch_bytes_count") < 1 || metric(body, "shardlog_write_duration_seconds_count") < 1 {
				t.Errorf("no batches observed in the histograms")
			}
			var shardSum float64
			for k := range 4 {
				shardSum += max(0, metric(body, `shardlog_shard_records_written_total{shard="`+strconv.Itoa(k)+`"}`))
			}
			if hasShard := strings.Contains(body, "shardlog_shard_records_written_total{"); hasShard != perShard {
				t.Errorf("per-shard series present: %v, want %v", hasShard, perShard)
			} else if perShard && shardSum != 10000 {
				t.Errorf("per-shard records sum to %v", shardSum)
			}
			if code, b := scrape(t, base+"/healthz"); code != 200 {
				t.Errorf("/healthz: %d %s", code, b)
			}
			if code, b := scrape(t, base+"/readyz"); code != 200 {
				t.Errorf("/readyz: %d %s", code, b)
			}
			if promtool, err := exec.LookPath("promtool"); err == nil {
				cmd := exec.Command(promtool, "check", "metrics")
				cmd.Stdin = strings.NewReader(body)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("promtool check metrics: %v: %s", err, out)
				}
			} else {
				t.Log("SKIP promtool: not installed (Debian package prometheus; .ci/run installs it)")
			}
			d.stdin.Close()
			if code := d.wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit %d: %s", code, d.stderr.String())
			}
		})
	}
}

// TestMetricsAddressInUse: a metrics address in use fails the start at
// once (exit 1), naming the key, before anything is created.
func TestMetricsAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir() + "/out"
	res := shardlog(t, []byte("x\n"), nil, "run", "-d", dir, "--metrics-listen", l.Addr().String())
	if res.code != 1 || !regexp.MustCompile(`metrics.listen \S+: .*address already in use`).MatchString(res.stderr) {
		t.Errorf("exit %d: %s", res.code, res.stderr)
	}
}

// TestPrometheusConfigs checks the shipped scrape configuration and alert
// rules with promtool, and that the rules name metrics shardlog exports.
func TestPrometheusConfigs(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("SKIP: promtool not installed (Debian package prometheus; .ci/run installs it)")
	}
	for _, args := range [][]string{{"check", "rules", "../deploy/shardlog.rules.yml"}, {"check", "config", "../deploy/prometheus.yml"}} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v: %s", args, err, out)
		}
	}
}
