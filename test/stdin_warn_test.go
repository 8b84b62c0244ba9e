package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestUnreadStdinWarned: with NATS input configured, standard input is
// not read (stdin: auto); when it is a pipe or a file, which the user
// meant to be read, shardlog warns once. /dev/null, or stdin turned off
// on purpose, says nothing.
func TestUnreadStdinWarned(t *testing.T) {
	srv := natsServer(t, &server.Options{}, false)
	const warning = "standard input is not read: NATS input is configured (stdin: auto); use --stdin true to read both"
	file := filepath.Join(t.TempDir(), "input.log")
	if err := os.WriteFile(file, lines("never read", 10), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		stdin string // a path, or "" for a pipe
		extra []string
		want  int
	}{
		{"file", file, nil, 1},
		{"pipe", "", nil, 1},
		{"/dev/null", os.DevNull, nil, 0},
		{"stdin false", file, []string{"--stdin", "false"}, 0},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, "/", ""), func(t *testing.T) {
			args := append([]string{"run", "-n", "2", "-d", t.TempDir(), "--nats-url", srv.ClientURL(), "--subject", "logs.>"}, tc.extra...)
			var d *daemon
			if tc.stdin == "" {
				d = start(t, args...)
				if _, err := d.stdin.Write(lines("piped", 10)); err != nil {
					t.Fatal(err)
				}
			} else {
				f, err := os.Open(tc.stdin)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				d = &daemon{cmd: exec.Command(bin, args...)}
				d.cmd.Stdin = f
				d.launch(t)
			}
			waitFor(t, "shardlog to subscribe", 30*time.Second, func() bool {
				select {
				case <-d.done:
					t.Fatalf("shardlog exited: %s", d.stderr.String())
				default:
				}
				return d.stderr.Contains("receiving from NATS")
			})
			d.stop(t)
			if got := strings.Count(d.stderr.String(), warning); got != tc.want {
				t.Errorf("warned %d times, want %d:\n%s", got, tc.want, d.stderr.String())
			}
			if tc.want > 0 {
				if err := contains(d.stderr.String(), "level=WARN"); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
