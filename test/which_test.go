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

// whichLine is the line which prints for key under the routing n, seed,
// pattern in dir.
func whichLine(dir, pattern string, n int, seed uint32, key string) string {
	k := murmur3ref.Sum32([]byte(key), seed) % uint32(n)
	return fmt.Sprintf("%s\t%d\t%s", key, k, filepath.Join(dir, fmt.Sprintf(pattern, k)))
}

// TestWhichReadsStdin checks that "which -" takes its keys from standard
// input, one per line, framed as run frames messages (a last line without
// '\n' is a key, '\r' is part of a key, an empty line is the empty key),
// and that each key's line names the file run wrote it to.
func TestWhichReadsStdin(t *testing.T) {
	dir := t.TempDir()
	in := []byte("user=42 logged in\ncrlf line\r\n\nünïcödé\nlast without newline")
	if res := shardlog(t, in, nil, "run", "-n", "16", "--seed", "9", "-d", dir); res.code != 0 {
		t.Fatalf("run: exit %d: %s", res.code, res.stderr)
	}
	keys := []string{"user=42 logged in", "crlf line\r", "", "ünïcödé", "last without newline"}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"only stdin", []string{"-"}, keys},
		{"between arguments", []string{"first", "-", "after"}, append(append([]string{"first"}, keys...), "after")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := shardlog(t, in, nil, append([]string{"which", "-n", "16", "--seed", "9", "-d", dir}, tc.args...)...)
			if res.code != 0 {
				t.Fatalf("which: exit %d: %s", res.code, res.stderr)
			}
			var want strings.Builder
			for _, key := range tc.want {
				want.WriteString(whichLine(dir, "shard-%03d.log", 16, 9, key) + "\n")
			}
			if res.stdout != want.String() {
				t.Errorf("which printed\n%q\nwant\n%q", res.stdout, want.String())
			}
		})
	}
	// Each key of the input is in the file which names.
	res := shardlog(t, in, nil, "which", "-d", dir, "-")
	for _, line := range strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n") {
		f := strings.Split(line, "\t")
		data, err := os.ReadFile(f[2])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(append([]byte("\n"), data...), []byte("\n"+f[0]+"\n")) {
			t.Errorf("%s does not hold %q", f[2], f[0])
		}
	}
	// Empty input: no keys, no lines.
	if res := shardlog(t, nil, nil, "which", "-d", dir, "-"); res.code != 0 || res.stdout != "" {
		t.Errorf("which - on empty input: exit %d, stdout %q", res.code, res.stdout)
	}
}

// TestWhichKey checks that which takes --key, that its KEY arguments are
// then the key's values (a JSON field's, here), finding the files run
// wrote, and that --key is compared with the directory's routing.
func TestWhichKey(t *testing.T) {
	dir := t.TempDir()
	in := []byte(`{"user":"alice","msg":"a"}` + "\n" + `{"user":"bob","msg":"b"}` + "\n" + `{"user":"alice","msg":"c"}` + "\n")
	if res := shardlog(t, in, nil, "run", "-n", "8", "--key", "json:user", "-d", dir); res.code != 0 {
		t.Fatalf("run: exit %d: %s", res.code, res.stderr)
	}
	res := shardlog(t, nil, nil, "which", "--key", "json:user", "-d", dir, "alice", "bob")
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("which --key json:user: exit %d, stderr %q", res.code, res.stderr)
	}
	want := whichLine(dir, "shard-%03d.log", 8, 0, "alice") + "\n" + whichLine(dir, "shard-%03d.log", 8, 0, "bob") + "\n"
	if res.stdout != want {
		t.Errorf("which printed %q, want %q", res.stdout, want)
	}
	for user, msgs := range map[string][]string{"alice": {"a", "c"}, "bob": {"b"}} {
		path := strings.Split(strings.Split(res.stdout, "\n")[map[string]int{"alice": 0, "bob": 1}[user]], "\t")[2]
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if rec := fmt.Sprintf(`{"user":%q,"msg":%q}`, user, m); !bytes.Contains(data, []byte(rec)) {
				t.Errorf("%s lacks %s", path, rec)
			}
		}
	}
	// Another kind than the directory's: a note, and the directory's routing.
	res = shardlog(t, nil, nil, "which", "--key", "message", "-d", dir, "alice")
	if res.code != 0 || res.stdout != whichLine(dir, "shard-%03d.log", 8, 0, "alice")+"\n" {
		t.Errorf("which --key message: exit %d, stdout %q", res.code, res.stdout)
	}
	if err := contains(res.stderr, "routing.key json:user, not message"); err != nil {
		t.Error(err)
	}
	// Keys only NATS messages have need no NATS here.
	for _, key := range []string{"subject", "header:X-Tenant"} {
		res = shardlog(t, nil, nil, "which", "--key", key, "-n", "4", "-d", t.TempDir(), "logs.api")
		if res.code != 0 || !strings.HasPrefix(res.stdout, "logs.api\t") {
			t.Errorf("which --key %s: exit %d, stdout %q, stderr %q", key, res.code, res.stdout, res.stderr)
		}
	}
	res = shardlog(t, nil, nil, "which", "--key", "body", "-n", "4", "x")
	if res.code != 2 || !strings.Contains(res.stderr, `"body"`) {
		t.Errorf("which --key body: exit %d, stderr %q; want 2 naming the value", res.code, res.stderr)
	}
}

// TestWhichNotesOnlyWhatDiffers checks that which notes the directory's
// routing only where a value given (a flag, a variable, the file) differs
// from it: not for values left at their defaults, not for equal ones.
func TestWhichNotesOnlyWhatDiffers(t *testing.T) {
	dir := t.TempDir()
	if res := shardlog(t, []byte("hello world\n"), nil, "run", "-n", "8", "--seed", "3", "--file-pattern", "f-%02d.log", "-d", dir); res.code != 0 {
		t.Fatalf("run: exit %d: %s", res.code, res.stderr)
	}
	conf := filepath.Join(t.TempDir(), "shardlog.yaml")
	if err := os.WriteFile(conf, []byte("shards: 8\nrouting:\n  seed: 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		args  []string
		env   []string
		notes []string // each must be noted, and nothing else
	}{
		{"no flags", nil, nil, nil},
		{"equal flags", []string{"-n", "8", "--seed", "3", "--file-pattern", "f-%02d.log", "--key", "message"}, nil, nil},
		{"other shards", []string{"-n", "16"}, nil, []string{"shards 8, not 16"}},
		{"other seed and pattern", []string{"--seed", "4", "--file-pattern", "s-%d"}, nil,
			[]string{"routing.seed 3, not 4", `file_pattern "f-%02d.log", not "s-%d"`}},
		{"other key", []string{"--key", "json:user"}, nil, []string{"routing.key message, not json:user"}},
		{"variable", nil, []string{"SHARDLOG_SHARDS=4"}, []string{"shards 8, not 4"}},
		{"file", []string{"-c", conf}, nil, []string{"routing.seed 3, not 5"}},
	}
	want := whichLine(dir, "f-%02d.log", 8, 3, "hello world") + "\n"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := shardlog(t, nil, tc.env, append(append([]string{"which", "-d", dir}, tc.args...), "hello world")...)
			if res.code != 0 || res.stdout != want {
				t.Fatalf("exit %d, stdout %q; want the directory's routing, %q; stderr %q", res.code, res.stdout, want, res.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\n")
			if res.stderr == "" {
				lines = nil
			}
			if len(lines) != len(tc.notes) {
				t.Errorf("stderr %q: want %d notes", res.stderr, len(tc.notes))
			}
			for _, note := range tc.notes {
				if !strings.Contains(res.stderr, note) || !strings.Contains(res.stderr, "using the directory's routing") {
					t.Errorf("stderr %q lacks %q", res.stderr, note)
				}
			}
		})
	}
}
