package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardlog/shardlog/internal/murmur3ref"
)

// hostileInput is the golden file of odd lines followed by lines around
// the size limits and a last line without a newline.
func hostileInput(t *testing.T) []byte {
	t.Helper()
	in, err := os.ReadFile("testdata/hostile.log")
	if err != nil {
		t.Fatal(err)
	}
	long := func(n int, c byte) []byte { return append(bytes.Repeat([]byte{c}, n), '\n') }
	in = append(in, long(64<<10+1, 'a')...)              // beyond bufio.Scanner's default limit
	in = append(in, long(1<<20, 'b')...)                 // exactly max_message_bytes
	in = append(in, long(1<<20+1, 'c')...)               // one byte over: split
	in = append(in, long(5<<19+7, 'd')...)               // two and a half times over
	in = append(in, bytes.Repeat([]byte{'\n'}, 1000)...) // empty lines
	for i := range 20000 {
		in = fmt.Appendf(in, "2026-11-24T00:00:00.%06dZ INFO api req=%08x \xff\x00\r\n", i, i*2654435761)
	}
	return append(in, "last line without newline"...)
}

func TestHostileInputByteForByte(t *testing.T) {
	in := hostileInput(t)
	msgs := split(in, 1<<20)
	cases := []struct {
		name    string
		shards  int
		seed    uint32
		pattern string
		args    []string
	}{
		{"one shard", 1, 0, "shard-%03d.log", nil},
		{"16 shards", 16, 0, "shard-%03d.log", nil},
		{"seed and pattern", 7, 0x9747B28C, "app.%d.log", []string{"--seed", "2538058380", "--file-pattern", "app.%d.log"}},
		{"tiny batches", 16, 0, "shard-%03d.log", []string{"--batch-max-bytes", "100", "--batch-buffer-bytes", "3MiB"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"run", "-n", fmt.Sprint(tc.shards), "-d", dir}, tc.args...)
			res := shardlog(t, in, nil, args...)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			checkFiles(t, dir, tc.pattern, expect(msgs, tc.shards, tc.seed))
			if err := contains(res.stderr, "splits=3"); err != nil {
				t.Errorf("split lines not counted: %v", err)
			}
		})
	}
}

func TestEmptyInput(t *testing.T) {
	dir := t.TempDir()
	if res := shardlog(t, nil, nil, "run", "-n", "3", "-d", dir); res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	checkFiles(t, dir, "shard-%03d.log", make([][]byte, 3))
}

func TestAppendsToExistingFiles(t *testing.T) {
	dir := t.TempDir()
	first, second := []byte("one\ntwo\nthree\n"), []byte("four\nfive\n")
	for _, in := range [][]byte{first, second} {
		if res := shardlog(t, in, nil, "run", "-n", "2", "-d", dir); res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
	}
	checkFiles(t, dir, "shard-%03d.log", expect(split(append(first, second...), 1<<20), 2, 0))
}

func TestConfigFileAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "shardlog.yaml")
	yaml := fmt.Sprintf("shards: 5\ndir: %s\nfile_pattern: \"f-%%02d.log\"\nrouting:\n  seed: 1\nbatch:\n  max_delay: 20ms\n", dir)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	in := []byte("alpha\nbeta\ngamma\ndelta\n")
	// The environment overrides the file's seed, and a flag the file's shards.
	res := shardlog(t, in, []string{"SHARDLOG_ROUTING_SEED=42"}, "run", "-c", cfg, "-n", "3")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	checkFiles(t, dir, "f-%02d.log", expect(split(in, 1<<20), 3, 42))
}

func TestWhichAgreesWithRun(t *testing.T) {
	keys := []string{"user=42 logged in", "", "\xff\rodd", "ünïcödé"}
	dir := t.TempDir()
	in := []byte(strings.Join(keys, "\n") + "\n")
	if res := shardlog(t, in, nil, "run", "-n", "16", "-d", dir, "--seed", "9"); res.code != 0 {
		t.Fatalf("run: exit %d: %s", res.code, res.stderr)
	}
	res := shardlog(t, nil, nil, append([]string{"which", "-n", "16", "--seed", "9", "-d", dir}, keys...)...)
	if res.code != 0 {
		t.Fatalf("which: exit %d: %s", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	if len(lines) != len(keys) {
		t.Fatalf("which printed %d lines for %d keys: %q", len(lines), len(keys), res.stdout)
	}
	for i, key := range keys {
		k := murmur3ref.Sum32([]byte(key), 9) % 16
		path := filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k))
		if want := fmt.Sprintf("%s\t%d\t%s", key, k, path); lines[i] != want {
			t.Errorf("which line %q, want %q", lines[i], want)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(append([]byte("\n"), data...), []byte("\n"+key+"\n")) {
			t.Errorf("%s does not hold %q", path, key)
		}
	}
}

// TestWhichReadsTheRecord: which follows the routing a directory records,
// and says where the flags differ from it.
func TestWhichReadsTheRecord(t *testing.T) {
	dir := t.TempDir()
	if res := shardlog(t, []byte("hello world\n"), nil, "run", "-n", "8", "--seed", "3", "-d", dir); res.code != 0 {
		t.Fatalf("run: exit %d: %s", res.code, res.stderr)
	}
	k := murmur3ref.Sum32([]byte("hello world"), 3) % 8
	want := fmt.Sprintf("hello world\t%d\t%s\n", k, filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k)))
	res := shardlog(t, nil, nil, "which", "-d", dir, "hello world")
	if res.code != 0 || res.stdout != want {
		t.Errorf("which without flags: exit %d, %q; want %q", res.code, res.stdout, want)
	}
	res = shardlog(t, nil, nil, "which", "-n", "16", "-d", dir, "hello world")
	if res.code != 0 || res.stdout != want {
		t.Errorf("which -n 16: exit %d, %q; want the directory's routing, %q", res.code, res.stdout, want)
	}
	if err := contains(res.stderr, "shards 8, not 16"); err != nil {
		t.Error(err)
	}
}

func TestVersionAndCheckConfig(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if res := shardlog(t, nil, nil, args...); res.code != 0 || !strings.HasPrefix(res.stdout, "shardlog ") {
			t.Errorf("%v: exit %d, stdout %q", args, res.code, res.stdout)
		}
	}
	res := shardlog(t, nil, nil, "check-config", "-c", "../deploy/shardlog.yaml")
	if res.code != 0 {
		t.Fatalf("check-config on the example: exit %d: %s", res.code, res.stderr)
	}
	if err := contains(res.stdout, "OK", "shards: 16", "batch.max_delay: 100ms"); err != nil {
		t.Error(err)
	}
	// Flags and the environment count as they do for run, and each value
	// says where it came from.
	res = shardlog(t, nil, []string{"SHARDLOG_SHARDS=8"}, "check-config", "-c", "../deploy/shardlog.yaml", "--batch-max-delay", "20ms")
	if res.code != 0 {
		t.Fatalf("check-config with flags: exit %d: %s", res.code, res.stderr)
	}
	if err := contains(res.stdout, "shards: 8  # environment SHARDLOG_SHARDS", "batch.max_delay: 20ms  # flag --batch-max-delay",
		"dir: /var/log/shardlog  # file ../deploy/shardlog.yaml", "nats.name: shardlog  # "); err != nil {
		t.Error(err)
	}
}
