package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// fileState is what a file was: its content and modification time.
type fileState struct {
	data  string
	mtime time.Time
}

// dirState returns the state of every file in dir.
func dirState(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := map[string]fileState{}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		if info.Mode().IsRegular() {
			if data, err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		s[e.Name()] = fileState{string(data), info.ModTime()}
	}
	return s
}

// sameState fails the test if dir's files are not as before.
func sameState(t *testing.T, dir string, before map[string]fileState) {
	t.Helper()
	after := dirState(t, dir)
	for name, b := range before {
		a, ok := after[name]
		switch {
		case !ok:
			t.Errorf("%s: removed", name)
		case a.data != b.data:
			t.Errorf("%s: content changed", name)
		case !a.mtime.Equal(b.mtime):
			t.Errorf("%s: modification time changed from %s to %s", name, b.mtime, a.mtime)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s: created", name)
		}
	}
}

// userOf returns the user field of a record userRecords made.
func userOf(t *testing.T, rec string) string {
	t.Helper()
	var r struct{ User string }
	if err := json.Unmarshal([]byte(rec), &r); err != nil {
		t.Fatalf("record %q: %v", rec, err)
	}
	return r.User
}

// byUser groups records by user, in order.
func byUser(t *testing.T, recs []string) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	for _, r := range recs {
		u := userOf(t, r)
		m[u] = append(m[u], r)
	}
	return m
}

// shardRecords returns the records of each of dir's m shards, each
// shard's files read in the order written, and fails the test for a
// record not in the shard of its user, or a file that does not end with a
// whole record.
func shardRecords(t *testing.T, dir string, m int) [][]string {
	t.Helper()
	out := make([][]string, m)
	for k := range m {
		data, _ := history(t, dir, k)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			t.Errorf("shard %d ends within a record", k)
		}
		for rec := range strings.Lines(string(data)) {
			rec = strings.TrimSuffix(rec, "\n")
			if s := userShard(userOf(t, rec), m); s != k {
				t.Errorf("shard %d of %d holds %s, of shard %d", k, m, rec, s)
			}
			out[k] = append(out[k], rec)
		}
	}
	return out
}

// TestReshard reshards a directory of 16 shards (gzip, zstd and current
// files in each) into 32 and into 5, and checks record by record that
// every record is in the new directory once, in the shard of its key,
// each key's records in their original order; that the old directory is
// unchanged; that the new one records its routing and is accepted by run;
// and that a second reshard into it is refused.
func TestReshard(t *testing.T) {
	const n = 16
	dir, all := readbackDir(t, n, 300, 20000)
	before := dirState(t, dir)
	want := byUser(t, all)
	for _, c := range []struct {
		m    int
		args []string
	}{
		{32, []string{"--rotate-max-bytes", "64KiB", "--rotate-compress", "zstd"}},
		{5, []string{"--rotate-max-bytes", "128KiB", "--rotate-compress", "gzip", "--file-pattern", "part-%d.log"}},
	} {
		t.Run(fmt.Sprintf("16 to %d", c.m), func(t *testing.T) {
			to := filepath.Join(t.TempDir(), "new")
			args := append([]string{"reshard", "-d", dir, "--to", to, "-n", fmt.Sprint(c.m)}, c.args...)
			res := shardlog(t, nil, nil, args...)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			if err := contains(res.stderr, "16 of 16 source shards", fmt.Sprintf("%d records", len(all)), "files read"); err != nil {
				t.Error(err)
			}
			pattern := "shard-%03d.log"
			if slices.Contains(c.args, "--file-pattern") {
				// history reads shard-NNN.log names: link them.
				pattern = "part-%d.log"
				entries, _ := os.ReadDir(to)
				for _, e := range entries {
					var k int
					var rest string
					if _, err := fmt.Sscanf(e.Name(), "part-%d.%s", &k, &rest); err == nil {
						os.Link(filepath.Join(to, e.Name()), filepath.Join(to, fmt.Sprintf("shard-%03d.%s", k, rest)))
					}
				}
			}
			shards := shardRecords(t, to, c.m)
			var got []string
			for _, recs := range shards {
				got = append(got, recs...)
			}
			if len(got) != len(all) {
				t.Errorf("%d records in the new directory, want %d", len(got), len(all))
			}
			gotBy := byUser(t, got)
			for u, recs := range want {
				if !slices.Equal(gotBy[u], recs) {
					t.Errorf("user %s: %d records, want %d in their original order", u, len(gotBy[u]), len(recs))
				}
			}
			var rec map[string]any
			data, err := os.ReadFile(filepath.Join(to, ".shardlog-routing.json"))
			if err != nil {
				t.Fatal(err)
			}
			json.Unmarshal(data, &rec)
			if rec["shards"] != float64(c.m) || rec["key"] != "json:user" || rec["file_pattern"] != pattern {
				t.Errorf("routing record %s: want %d shards, key json:user, pattern %s", data, c.m, pattern)
			}
			if res := shardlog(t, nil, nil, "verify", "-d", to); res.code != 0 || !strings.Contains(res.stdout, fmt.Sprintf(" %d records", len(all))) {
				t.Errorf("verify of the new directory: exit %d: %s%s", res.code, res.stdout, res.stderr)
			}
			if _, err := os.Stat(filepath.Join(to, ".shardlog-reshard.json")); err == nil {
				t.Errorf("the progress marker is left after a finished reshard")
			}
			if res := shardlog(t, nil, nil, append([]string{"reshard", "-d", dir, "--to", to, "-n", fmt.Sprint(c.m)}, c.args...)...); res.code != 2 ||
				!strings.Contains(res.stderr, "so that no record is there twice") {
				t.Errorf("a second reshard into the same directory: exit %d, stderr %q; want 2, refused", res.code, res.stderr)
			}
			if res := shardlog(t, []byte(`{"user":"new"}`+"\n"), nil, "run", "-d", to, "-n", fmt.Sprint(c.m), "--key", "json:user", "--file-pattern", pattern); res.code != 0 {
				t.Errorf("run on the new directory: exit %d: %s", res.code, res.stderr)
			}
		})
	}
	sameState(t, dir, before)
}

// TestReshardRefused checks what reshard refuses, with exit 2 and a
// message naming why, before writing anything.
func TestReshardRefused(t *testing.T) {
	dir, _ := readbackDir(t, 4, 40, 10000)
	before := dirState(t, dir)
	other := routingDir(t, 3) // 3 shards, json:user
	bare := t.TempDir()
	os.WriteFile(filepath.Join(bare, "shard-000.log"), []byte("a\n"), 0o640)
	subject := t.TempDir()
	os.WriteFile(filepath.Join(subject, ".shardlog-routing.json"), []byte(`{"shards":4,"seed":0,"key":"subject","file_pattern":"shard-%03d.log"}`), 0o640)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no -n", []string{"-d", dir, "--to", filepath.Join(t.TempDir(), "x")}, "-n (shards): required"},
		{"no --to", []string{"-d", dir, "-n", "8"}, "--to: required"},
		{"into itself", []string{"-d", dir, "--to", dir, "-n", "8"}, "is DIR"},
		{"inside it", []string{"-d", dir, "--to", filepath.Join(dir, "sub"), "-n", "8"}, "is DIR"},
		{"another routing", []string{"-d", dir, "--to", other, "-n", "8"}, "shards was 3, now 8"},
		{"no routing record", []string{"-d", bare, "--to", filepath.Join(t.TempDir(), "x"), "-n", "8"}, "no routing record"},
		{"a subject key", []string{"-d", subject, "--to", filepath.Join(t.TempDir(), "x"), "-n", "8"}, "routing.key subject"},
		{"a bad new key", []string{"-d", dir, "--to", filepath.Join(t.TempDir(), "x"), "-n", "8", "--key", "header:X"}, "routing.key header:X"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := shardlog(t, nil, nil, append([]string{"reshard"}, c.args...)...)
			if res.code != 2 || !strings.Contains(res.stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", res.code, res.stderr, c.want)
			}
		})
	}
	t.Run("while shardlog runs on it", func(t *testing.T) {
		d := start(t, "run", "-n", "4", "-d", dir, "--key", "json:user")
		waitFor(t, "shardlog to start", 30*time.Second, func() bool { return d.stderr.Contains("started") })
		to := filepath.Join(t.TempDir(), "x")
		res := shardlog(t, nil, nil, "reshard", "-d", dir, "--to", to, "-n", "8")
		if res.code != 2 || !strings.Contains(res.stderr, fmt.Sprintf("shardlog PID %d", d.cmd.Process.Pid)) {
			t.Errorf("exit %d, stderr %q; want 2, naming PID %d", res.code, res.stderr, d.cmd.Process.Pid)
		}
		if _, err := os.Stat(to); err == nil {
			t.Errorf("%s was created", to)
		}
		d.stdin.Close()
		if code := d.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("run: exit %d: %s", code, d.stderr.String())
		}
		before = dirState(t, dir) // the run rewrote its lock file
	})
	sameState(t, dir, before)
}

// TestReshardInterrupted reshards into a small tmpfs that fills up, sends
// SIGTERM while the writers wait for space, and checks that reshard
// stops after shutdown_timeout saying what it did, with exit 1, that what
// it wrote holds no record twice and only whole records, each in its
// shard, and that a second reshard into it is refused naming the marker.
func TestReshardInterrupted(t *testing.T) {
	dir := t.TempDir()
	recs := make([]string, 0, 90000)
	for i := range 90000 {
		recs = append(recs, fmt.Sprintf(`{"user":"u%d","seq":%d,"pad":"%s"}`, i%500, i, strings.Repeat("p", 80)))
	}
	if res := shardlog(t, joinLines(recs), nil, "run", "-n", "16", "-d", dir, "--key", "json:user"); res.code != 0 {
		t.Fatal(res.stderr)
	}
	before := dirState(t, dir)
	to := filepath.Join(mountTmpfs(t, "8m"), "new")
	d := start(t, "reshard", "-d", dir, "--to", to, "-n", "5", "--shutdown-timeout", "1s")
	waitFor(t, "the new directory's disk to be full", 60*time.Second, func() bool {
		select {
		case <-d.done:
			t.Fatalf("reshard exited: %s", d.stderr.String())
		default:
		}
		return d.stderr.Contains("disk full")
	})
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t, 60*time.Second); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if err := contains(d.stderr.String(), "stopped", "of 16 source shards", "records", ".shardlog-reshard.json", "remove it and start again"); err != nil {
		t.Error(err)
	}
	var marker struct {
		State          string
		RecordsWritten int64 `json:"records_written"`
	}
	data, err := os.ReadFile(filepath.Join(to, ".shardlog-reshard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &marker); err != nil || marker.State != "interrupted" {
		t.Errorf("marker %s: want state interrupted", data)
	}
	seen := map[string]bool{}
	for k, shard := range shardRecords(t, to, 5) {
		for _, r := range shard {
			if seen[r] {
				t.Errorf("shard %d: %s twice", k, r)
			}
			seen[r] = true
		}
	}
	if len(seen) == 0 || len(seen) >= len(recs) || int64(len(seen)) != marker.RecordsWritten {
		t.Errorf("%d records written, the marker says %d; want some of %d", len(seen), marker.RecordsWritten, len(recs))
	}
	res := shardlog(t, nil, nil, "reshard", "-d", dir, "--to", to, "-n", "5")
	if res.code != 2 || !strings.Contains(res.stderr, ".shardlog-reshard.json") || !strings.Contains(res.stderr, "remove "+to+" and start again") {
		t.Errorf("reshard again: exit %d, stderr %q; want 2, naming the marker", res.code, res.stderr)
	}
	res = shardlog(t, nil, nil, "run", "-d", to, "-n", "5", "--key", "json:user")
	if res.code != 2 || !strings.Contains(res.stderr, "a reshard into it began and did not finish") {
		t.Errorf("run on the unfinished directory: exit %d, stderr %q; want 2, naming the marker", res.code, res.stderr)
	}
	sameState(t, dir, before)
}

// TestReshardBrokenSource reshards a directory one of whose gzip files was
// cut in half: reshard names the file on standard error and exits 1, and
// NEWDIR holds every record of every other file once and, of the broken
// file, the records before the break, in order. It also checks that
// --file-mode applies to NEWDIR's files, as run's writers make them.
func TestReshardBrokenSource(t *testing.T) {
	const n = 4
	src, all := readbackDir(t, n, 40, 10000)
	dir := copyDir(t, src)
	var broken string
	for _, f := range func() []string { fs, _ := rotatedFiles(t, dir, 2); return fs }() {
		if strings.HasSuffix(f, ".gz") {
			broken = filepath.Join(dir, filepath.Base(f))
			break
		}
	}
	data, err := os.ReadFile(broken)
	if err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	whole, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(broken, data[:len(data)/2], 0o640); err != nil {
		t.Fatal(err)
	}
	inBroken := map[string]bool{}
	var brokenRecs []string
	for r := range strings.Lines(string(whole)) {
		r = strings.TrimSuffix(r, "\n")
		inBroken[r] = true
		brokenRecs = append(brokenRecs, r)
	}

	to := filepath.Join(t.TempDir(), "new")
	res := shardlog(t, nil, nil, "reshard", "-d", dir, "--to", to, "-n", "3", "--file-mode", "0600")
	if res.code != 1 {
		t.Fatalf("exit %d, want 1: %s", res.code, res.stderr)
	}
	if err := contains(res.stderr, filepath.Base(broken), "could not be read to their end"); err != nil {
		t.Error(err)
	}
	count := map[string]int{}
	for _, recs := range shardRecords(t, to, 3) {
		for _, r := range recs {
			count[r]++
		}
	}
	for _, r := range all {
		if c := count[r]; c > 1 || c == 0 && !inBroken[r] {
			t.Errorf("record %s: %d times in NEWDIR", r, c)
		}
	}
	// Of the broken file, what was read is a prefix of its records.
	read := 0
	for read < len(brokenRecs) && count[brokenRecs[read]] == 1 {
		read++
	}
	for _, r := range brokenRecs[read:] {
		if count[r] != 0 {
			t.Errorf("record %s of the broken file, after one missing, is in NEWDIR", r)
		}
	}
	if read == 0 || read == len(brokenRecs) {
		t.Errorf("%d of the half file's %d records read: want those before the break", read, len(brokenRecs))
	}
	t.Logf("%d of the broken file's %d records read before the break", read, len(brokenRecs))
	for k := range 3 {
		info, err := os.Stat(filepath.Join(to, fmt.Sprintf("shard-%03d.log", k)))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("shard %d: mode %v, want 0600 (--file-mode)", k, info.Mode().Perm())
		}
	}
}
