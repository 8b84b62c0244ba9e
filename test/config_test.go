package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUsageErrors checks that bad usage exits 2 with a message naming the
// flag or key and the value, and that nothing is written.
func TestUsageErrors(t *testing.T) {
	tmp := t.TempDir()
	aFile := filepath.Join(tmp, "a-file")
	if err := os.WriteFile(aFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := func(text string) string {
		path := filepath.Join(t.TempDir(), "shardlog.yaml")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cases := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"zero shards", []string{"run", "-n", "0"}, nil, []string{"shards", "0"}},
		{"negative shards", []string{"run", "-n", "-4"}, nil, []string{"shards", "-4"}},
		{"shards not a number", []string{"run", "-n", "lots"}, nil, []string{"shards", "lots"}},
		{"unknown flag", []string{"run", "--shard", "4"}, nil, []string{"unknown flag", "--shard"}},
		{"unknown command", []string{"walk"}, nil, []string{"unknown command", "walk"}},
		{"bad delay flag", []string{"run", "--batch-max-delay", "soon"}, nil, []string{"batch-max-delay", "soon"}},
		{"bad size flag", []string{"run", "--batch-max-bytes", "huge"}, nil, []string{"batch.max_bytes", "huge"}},
		{"unknown yaml key", []string{"run", "-c", yaml("shards: 4\nshrads: 5\n")}, nil, []string{"unknown key", "shrads"}},
		{"wrong yaml type", []string{"run", "-c", yaml("shards: four\n")}, nil, []string{"shards", "four"}},
		{"wrong nested type", []string{"run", "-c", yaml("batch:\n  max_delay: [1]\n")}, nil, []string{"batch.max_delay"}},
		{"missing config file", []string{"run", "-c", filepath.Join(tmp, "nope.yaml")}, nil, []string{"nope.yaml"}},
		{"env wrong type", []string{"run"}, []string{"SHARDLOG_SHARDS=sixteen"}, []string{"shards", "sixteen"}},
		{"env zero", []string{"run"}, []string{"SHARDLOG_SHARDS=0"}, []string{"shards: 0"}},
		{"env blamed, not the file", []string{"run", "-c", yaml("shards: 4\n")}, []string{"SHARDLOG_SHARDS=abc"},
			[]string{"environment SHARDLOG_SHARDS", "abc"}},
		{"env bool", []string{"run"}, []string{"SHARDLOG_NATS_EMBEDDED=yes"}, []string{"environment SHARDLOG_NATS_EMBEDDED", `"yes"`, "true or false"}},
		{"empty yaml value", []string{"run", "-c", yaml("shards:\n")}, nil, []string{"shards: no value"}},
		{"bad pattern", []string{"run", "--file-pattern", "shard.log"}, nil, []string{"file_pattern", "shard.log"}},
		{"subject key without NATS", []string{"run", "--key", "subject"}, nil, []string{"routing.key", "subject", "needs NATS"}},
		{"bad key", []string{"run", "--key", "body"}, nil, []string{"routing.key", "body"}},
		{"stdin off", []string{"run", "--stdin", "false"}, nil, []string{"stdin", "false"}},
		{"dir is a file", []string{"run", "-d", aFile}, nil, []string{"dir", aFile}},
		{"dir under a file", []string{"run", "-d", filepath.Join(aFile, "sub")}, nil, []string{"dir", "a-file"}},
		{"http NATS URL", []string{"run", "--nats-url", "http://127.0.0.1:4222", "--subject", "a"}, nil,
			[]string{"nats.url", "http://127.0.0.1:4222", `scheme "http"`, "nats, tls, ws, wss"}},
		{"which without keys", []string{"which", "-n", "4"}, nil, []string{"arg"}},
		{"check-config without dir", []string{"check-config"}, nil, []string{"dir: not set"}},
		{"check-config takes run's flags", []string{"check-config", "-d", "/tmp", "-n", "0"}, nil, []string{"shards: 0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			args := tc.args
			if args[0] == "run" && !hasFlag(args, "-d") {
				args = append(args, "-d", dir)
			}
			res := shardlog(t, []byte("must not be written\n"), tc.env, args...)
			if res.code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", res.code, res.stderr)
			}
			if err := contains(res.stderr, tc.want...); err != nil {
				t.Error(err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("%d files written despite the error", len(entries))
			}
		})
	}
}

// TestDirNotWritable: a directory shardlog may not write in is a usage
// error naming it. Tests run as root, who may write anywhere but in
// sysfs, so sysfs stands in for an unwritable directory.
func TestDirNotWritable(t *testing.T) {
	if _, err := os.Stat("/sys/kernel"); err != nil {
		t.Skip("no sysfs at /sys")
	}
	res := shardlog(t, []byte("must not be written\n"), nil, "run", "-n", "2", "-d", "/sys")
	if res.code != 2 {
		t.Errorf("exit %d, want 2; stderr: %s", res.code, res.stderr)
	}
	if err := contains(res.stderr, "dir /sys", "lock"); err != nil {
		t.Error(err)
	}
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag {
			return true
		}
	}
	return false
}

// TestRefusedRerouting: a directory written with one routing refuses
// another before anything is written, names both values, and accepts it
// when asked to.
func TestRefusedRerouting(t *testing.T) {
	in := []byte("first\nsecond\nthird\n")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"shard count", []string{"-n", "8"}, []string{"shards was 16, now 8"}},
		{"seed", []string{"--seed", "1"}, []string{"routing.seed was 0, now 1"}},
		{"pattern", []string{"--file-pattern", "log-%d.txt"}, []string{`file_pattern was "shard-%03d.log", now "log-%d.txt"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if res := shardlog(t, in, nil, "run", "-n", "16", "-d", dir); res.code != 0 {
				t.Fatalf("first run: exit %d: %s", res.code, res.stderr)
			}
			before := snapshot(t, dir)
			res := shardlog(t, []byte("fourth\n"), nil, append([]string{"run", "-d", dir}, tc.args...)...)
			if res.code != 2 {
				t.Errorf("exit %d, want 2: %s", res.code, res.stderr)
			}
			if err := contains(res.stderr, append(tc.want, "--allow-routing-change")...); err != nil {
				t.Error(err)
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("directory changed by a refused run:\nbefore %s\nafter  %s", before, after)
			}
			res = shardlog(t, []byte("fourth\n"), nil, append([]string{"run", "-d", dir, "--allow-routing-change"}, tc.args...)...)
			if res.code != 0 {
				t.Errorf("with --allow-routing-change: exit %d: %s", res.code, res.stderr)
			}
			// Proceeding is logged as the change it is.
			if err := contains(res.stderr, "routing changed on purpose", strings.Fields(tc.want[0])[0]+" was"); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestSecondInstanceRefused: a directory in use by a running shardlog is
// refused to a second one (exit 2), so two writers never share a file.
func TestSecondInstanceRefused(t *testing.T) {
	dir := t.TempDir()
	d := start(t, "run", "-n", "4", "-d", dir)
	waitFor(t, "the first instance to start", 30*time.Second, func() bool { return d.stderr.Contains("started") })
	res := shardlog(t, []byte("x\n"), nil, "run", "-n", "4", "-d", dir)
	if res.code != 2 {
		t.Errorf("second instance: exit %d, want 2: %s", res.code, res.stderr)
	}
	if err := contains(res.stderr, fmt.Sprintf("in use by shardlog PID %d", d.cmd.Process.Pid)); err != nil {
		t.Error(err)
	}
	if err := d.stdin.Close(); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t, 30*time.Second); code != 0 {
		t.Errorf("first instance: exit %d: %s", code, d.stderr.String())
	}
}

// snapshot describes every file in dir with its content.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	for _, e := range entries {
		if e.Name() == ".shardlog.lock" {
			continue // holds the PID of the last instance
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s += e.Name() + "=" + string(data) + ";"
	}
	return s
}
