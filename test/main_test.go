// Package test holds end-to-end tests of the built shardlog binary.
package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardlog/shardlog/internal/murmur3ref"
)

// bin is the shardlog binary that TestMain builds.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shardlog-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "shardlog")
	build := exec.Command("go", "build", "-race", "-o", bin, "../cmd/shardlog")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build shardlog:", err)
		os.Exit(1)
	}
	// The race runtime sleeps 1 s at every exit (atexit_sleep_ms) by
	// default: shardlog and its compress-file children exit often here.
	// Races are still reported (and make the exit status 66).
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a finished shardlog process left.
type result struct {
	stdout, stderr string
	code           int
}

// shardlog runs the binary with stdin as its standard input, in dir (or
// the current directory if dir is empty), and waits for it.
func shardlog(t *testing.T, stdin []byte, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("run shardlog %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// split cuts input into messages as the contract says: on '\n', a last
// line without '\n' still a message, lines longer than max cut into
// pieces of max bytes.
func split(input []byte, max int) [][]byte {
	var msgs [][]byte
	for len(input) > 0 {
		i := bytes.IndexByte(input, '\n')
		line := input
		if i >= 0 {
			line, input = input[:i], input[i+1:]
		} else {
			input = nil
		}
		for len(line) > max {
			msgs = append(msgs, line[:max])
			line = line[max:]
		}
		msgs = append(msgs, line)
	}
	return msgs
}

// expect returns the content each of n shard files must have for msgs.
func expect(msgs [][]byte, n int, seed uint32) [][]byte {
	files := make([][]byte, n)
	for _, m := range msgs {
		k := murmur3ref.Sum32(m, seed) % uint32(n)
		files[k] = append(append(files[k], m...), '\n')
	}
	return files
}

// checkFiles compares dir's shard files with want, byte for byte, and
// checks that dir holds no other files but the routing record.
func checkFiles(t *testing.T, dir, pattern string, want [][]byte) {
	t.Helper()
	names := map[string]bool{".shardlog-routing.json": true, ".shardlog.lock": true}
	for k, w := range want {
		name := fmt.Sprintf(pattern, k)
		names[name] = true
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("shard %d: %v", k, err)
			continue
		}
		if !bytes.Equal(got, w) {
			t.Errorf("shard %d (%s): got %d bytes, want %d; first difference at byte %d",
				k, name, len(got), len(w), firstDiff(got, w))
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !names[e.Name()] {
			t.Errorf("stray file %s", e.Name())
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
	}
}

// readAll returns the concatenated content of dir's shard files.
func readAll(t *testing.T, dir string, n int) []byte {
	t.Helper()
	var all []byte
	for k := range n {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k)))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, data...)
	}
	return all
}

func contains(s string, subs ...string) error {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return fmt.Errorf("%q lacks %q", s, sub)
		}
	}
	return nil
}
