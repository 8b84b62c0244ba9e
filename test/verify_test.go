package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readbackDir makes, with shardlog run, a directory of n shards keyed by
// json:user whose shards each hold gzip, zstd and current files, and
// returns it with the records written, in order.
func readbackDir(t *testing.T, n, users, perRun int) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	var all []string
	for i, extra := range [][]string{
		{"--rotate-max-bytes", "32KiB", "--rotate-compress", "gzip"},
		{"--rotate-max-bytes", "32KiB", "--rotate-compress", "zstd"},
		{},
	} {
		recs := userRecords(i*perRun, perRun, users)
		all = append(all, recs...)
		args := append([]string{"run", "-n", fmt.Sprint(n), "-d", dir, "--key", "json:user", "--batch-max-bytes", "8KiB"}, extra...)
		if res := shardlog(t, joinLines(recs), nil, args...); res.code != 0 {
			t.Fatalf("run: exit %d: %s", res.code, res.stderr)
		}
	}
	for k := range n {
		rotated, _ := rotatedFiles(t, dir, k)
		var gz, zst bool
		for _, f := range rotated {
			gz = gz || strings.HasSuffix(f, ".gz")
			zst = zst || strings.HasSuffix(f, ".zst")
		}
		if !gz || !zst {
			t.Fatalf("shard %d's rotated files are %v: want gzip and zstd ones", k, rotated)
		}
	}
	return dir, all
}

// copyDir copies the regular files of src into a new directory, keeping
// their modification times.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, e.Name())
		if err := os.WriteFile(p, data, 0o640); err != nil {
			t.Fatal(err)
		}
		info, _ := e.Info()
		os.Chtimes(p, info.ModTime(), info.ModTime())
	}
	return dst
}

func appendTo(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
}

// lineCount returns the number of lines of path.
func lineCount(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// otherShardUser returns a user u<i> whose shard among n is not k.
func otherShardUser(k, n int) (string, int) {
	for i := 0; ; i++ {
		u := fmt.Sprintf("x%d", i)
		if s := userShard(u, n); s != k {
			return u, s
		}
	}
}

// TestVerify checks shardlog verify on a directory shardlog run wrote
// (gzip, zstd and current files in each shard): clean, then with one
// fault planted at a time, each named with its file (and line).
func TestVerify(t *testing.T) {
	const n = 4
	dir, all := readbackDir(t, n, 40, 10000)
	cur := func(d string, k int) string { return filepath.Join(d, fmt.Sprintf("shard-%03d.log", k)) }
	rotated := func(d string, k int, ext string) string {
		files, _ := rotatedFiles(t, d, k)
		for _, f := range files {
			if strings.HasSuffix(f, ext) {
				return filepath.Join(d, filepath.Base(f))
			}
		}
		t.Fatalf("no %s file in shard %d", ext, k)
		return ""
	}

	t.Run("clean", func(t *testing.T) {
		res := shardlog(t, nil, nil, "verify", "-d", dir)
		want := fmt.Sprintf("%d records", len(all))
		if res.code != 0 || !strings.Contains(res.stdout, want) || !strings.Contains(res.stdout, " 0 findings") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and a summary with %s and 0 findings", res.code, res.stdout, res.stderr, want)
		}
		if lines := strings.Split(strings.TrimSpace(res.stdout), "\n"); len(lines) != 1 {
			t.Errorf("output: %q: want the summary line only", res.stdout)
		}
		// DIR as the argument (shardlog verify DIR) is the same check.
		arg := shardlog(t, nil, nil, "verify", dir)
		if arg.code != 0 || !strings.Contains(arg.stdout, want) || !strings.Contains(arg.stdout, " 0 findings") {
			t.Errorf("verify DIR: exit %d, stdout %q, stderr %q; want 0 and a summary with %s and 0 findings", arg.code, arg.stdout, arg.stderr, want)
		}
		other := t.TempDir()
		if both := shardlog(t, nil, nil, "verify", "-d", other, dir); both.code != 2 || !strings.Contains(both.stderr, "dir given twice: -d "+other+" and the argument "+dir) {
			t.Errorf("verify -d OTHER DIR: exit %d, stderr %q; want 2 naming both", both.code, both.stderr)
		}
	})

	u, belongs := otherShardUser(1, n)
	cases := []struct {
		name  string
		plant func(t *testing.T, d string) []string // the texts wanted
		args  []string
		code  int
	}{
		{"record in the wrong shard", func(t *testing.T, d string) []string {
			line := lineCount(t, cur(d, 1)) + 1
			appendTo(t, cur(d, 1), `{"user":"`+u+`","seq":-1}`+"\n")
			return []string{fmt.Sprintf("%s: line %d: record in shard 1 belongs to shard %d", cur(d, 1), line, belongs)}
		}, nil, 1},
		{"torn tail", func(t *testing.T, d string) []string {
			line := lineCount(t, cur(d, 2)) + 1
			appendTo(t, cur(d, 2), `{"user":"u1","se`)
			return []string{fmt.Sprintf("%s: line %d: torn last record", cur(d, 2), line)}
		}, nil, 1},
		{"truncated zstd", func(t *testing.T, d string) []string {
			p := rotated(d, 0, ".zst")
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()/2)
			return []string{p + ": line ", "unreadable from here"}
		}, nil, 1},
		{"truncated gzip", func(t *testing.T, d string) []string {
			p := rotated(d, 3, ".gz")
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-10)
			return []string{p + ": line ", "unreadable from here"}
		}, nil, 1},
		{"corrupt gzip", func(t *testing.T, d string) []string {
			p := rotated(d, 2, ".gz")
			data, _ := os.ReadFile(p)
			for i := len(data) / 3; i < len(data)/3+24; i++ {
				data[i] ^= 0xa5
			}
			os.WriteFile(p, data, 0o640)
			return []string{p + ": line ", "unreadable from here"}
		}, nil, 1},
		{"rotated name in the future", func(t *testing.T, d string) []string {
			p := cur(d, 0) + "." + time.Now().Add(48*time.Hour).UTC().Format("20060102T150405.000000000Z")
			os.WriteFile(p, nil, 0o640)
			return []string{p + ": rotated name out of order: its time"}
		}, nil, 1},
		{"shards limited to others", func(t *testing.T, d string) []string {
			appendTo(t, cur(d, 1), `{"user":"`+u+`","seq":-1}`+"\n")
			return nil
		}, []string{"--shards", "0,2-3"}, 0},
		{"shards limited to it", func(t *testing.T, d string) []string {
			appendTo(t, cur(d, 1), `{"user":"`+u+`","seq":-1}`+"\n")
			return []string{cur(d, 1) + ": line "}
		}, []string{"--shards", "1"}, 1},
		{"member directory with another member's shard", func(t *testing.T, d string) []string {
			var rec map[string]any
			data, _ := os.ReadFile(filepath.Join(d, ".shardlog-routing.json"))
			json.Unmarshal(data, &rec)
			rec["cluster"], rec["member"], rec["member_shards"] = "logs", "a", "0-1+3"
			data, _ = json.Marshal(rec)
			os.WriteFile(filepath.Join(d, ".shardlog-routing.json"), data, 0o640)
			return []string{cur(d, 2) + ": shard 2 is not this member's (member a of cluster logs has shards 0-1+3)"}
		}, nil, 1},
		{"a file of another pattern is a note", func(t *testing.T, d string) []string {
			os.WriteFile(filepath.Join(d, "shard-0009.log"), []byte("x\n"), 0o640)
			return []string{"note: " + filepath.Join(d, "shard-0009.log") + ": ignored"}
		}, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := copyDir(t, dir)
			want := c.plant(t, d)
			res := shardlog(t, nil, nil, append([]string{"verify", "-d", d}, c.args...)...)
			if res.code != c.code {
				t.Errorf("exit %d, want %d; stdout:\n%s\nstderr: %s", res.code, c.code, res.stdout, res.stderr)
			}
			if err := contains(res.stdout, want...); err != nil {
				t.Error(err)
			}
			if c.code == 0 && strings.Count(res.stdout, "\n") != 1+len(want) {
				t.Errorf("output:\n%s\nwant only the summary and %q", res.stdout, want)
			}
		})
	}

	t.Run("torn tail while shardlog runs", func(t *testing.T) {
		d := copyDir(t, dir)
		daemon := start(t, "run", "-n", fmt.Sprint(n), "-d", d, "--key", "json:user")
		waitFor(t, "shardlog to start", 30*time.Second, func() bool { return daemon.stderr.Contains("started") })
		appendTo(t, cur(d, 2), `{"user":"u1","se`)
		res := shardlog(t, nil, nil, "verify", "-d", d)
		if res.code != 0 {
			t.Errorf("exit %d, want 0 (a write in progress is no finding): %s", res.code, res.stdout)
		}
		if err := contains(res.stdout, "note: "+cur(d, 2)+": line ", "a write in progress (shardlog PID "+fmt.Sprint(daemon.cmd.Process.Pid)); err != nil {
			t.Error(err)
		}
		daemon.stdin.Close()
		daemon.wait(t, 60*time.Second)
	})

	t.Run("errors", func(t *testing.T) {
		bare := copyDir(t, dir)
		os.Remove(filepath.Join(bare, ".shardlog-routing.json"))
		subject := t.TempDir()
		os.WriteFile(filepath.Join(subject, ".shardlog-routing.json"), []byte(`{"shards":4,"seed":0,"key":"subject","file_pattern":"shard-%03d.log"}`), 0o640)
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"-d", bare}, "no routing record"},
			{[]string{"-d", subject}, "routing.key subject"},
			{[]string{"-d", dir, "--shards", "4"}, `--shards: "4": there are shards 0 to 3`},
			{[]string{"-d", dir, "-n", "8"}, "shards was 4, now 8"},
			{[]string{"-d", filepath.Join(dir, "missing")}, "missing"},
		} {
			res := shardlog(t, nil, nil, append([]string{"verify"}, c.args...)...)
			if res.code != 2 || !strings.Contains(res.stderr, c.want) {
				t.Errorf("verify %v: exit %d, stderr %q; want 2 and %q", c.args, res.code, res.stderr, c.want)
			}
		}
		// Without a record, -n and --key say how to read it.
		if res := shardlog(t, nil, nil, "verify", "-d", bare, "-n", "4", "--key", "json:user"); res.code != 0 {
			t.Errorf("verify -n 4 of a directory without record: exit %d: %s %s", res.code, res.stdout, res.stderr)
		}
	})
}
