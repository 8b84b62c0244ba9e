package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// walkthrough returns the shell block of README's "A walk-through on one
// host", as a user would paste it.
func walkthrough(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "### A walk-through on one host\n")
	if !ok {
		t.Fatal(`README.md has no "### A walk-through on one host"`)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	block, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 {
		t.Fatal("README.md: no sh block in the walk-through")
	}
	return block
}

// freeRun returns a port prefix P such that ports P1, P2 and P3 (P
// followed by one digit) are free on loopback, for the walk-through's
// "422$i" and "622$i".
func freeRun(t *testing.T, avoid string) string {
	t.Helper()
	for p := 300; p < 650; p++ {
		prefix := fmt.Sprint(p)
		if prefix == avoid {
			continue
		}
		free := true
		for i := 1; i <= 3 && free; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%s%d", prefix, i))
			if err != nil {
				free = false
				continue
			}
			l.Close()
		}
		if free {
			return prefix
		}
	}
	t.Fatal("no three free loopback ports in a row")
	return ""
}

// TestREADMEWalkthrough pastes README's walk-through into bash, as a user
// would (its ports moved to free ones), with shardlog and a nats-server
// built from the module on PATH: three nats-server processes in one
// cluster, an R3 stream, members a (twice), b and c, and two route
// instances. It checks what the walk-through's comments promise: every
// line in the members' files once, cluster show naming a's active
// instance and its standby, and which naming user=u42's shard, member and
// file. Without natscli's nats command the line that publishes through it
// is left out, and 1000 fewer lines are expected.
func TestREADMEWalkthrough(t *testing.T) {
	server := moduleNATSServer(t)
	script := walkthrough(t)
	client := freeRun(t, "")
	route := freeRun(t, client)
	script = strings.ReplaceAll(script, "422", client)
	script = strings.ReplaceAll(script, "622", route)
	want := 101000
	if _, err := exec.LookPath("nats"); err != nil {
		t.Log("no nats command (natscli) on PATH: the walk-through's nats pub line is left out")
		var kept []string
		for _, line := range strings.Split(script, "\n") {
			if !strings.HasPrefix(line, "nats ") {
				kept = append(kept, line)
			}
		}
		script = strings.Join(kept, "\n")
		want -= 1000
	}

	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	// Its own process group, so that the servers and members it leaves
	// running in the background are stopped with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+filepath.Dir(server)+":"+os.Getenv("PATH"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	err = cmd.Wait()
	stdout, _ := os.ReadFile(out.Name())
	if err != nil {
		t.Fatalf("the walk-through failed: %v\n%s", err, stdout)
	}

	// Members write asynchronously: wait until their files hold every line.
	lines := func() int {
		n := 0
		for _, d := range []string{"a1", "a2", "b", "c"} {
			files, _ := filepath.Glob(filepath.Join(dir, d, "shard-*.log"))
			for _, f := range files {
				data, _ := os.ReadFile(f)
				n += strings.Count(string(data), "\n")
			}
		}
		return n
	}
	waitFor(t, fmt.Sprintf("%d lines in the members' files", want), 60*time.Second, func() bool { return lines() >= want })
	if n := lines(); n != want {
		t.Errorf("the members' files hold %d lines, want %d", n, want)
	}
	for _, re := range []string{`(?m)^member\tinstance$`, `(?m)^user=u42\t13\tc\tshard-013\.log$`} {
		if !regexp.MustCompile(re).Match(stdout) {
			t.Errorf("the walk-through's output lacks %s:\n%s", re, stdout)
		}
	}
	// Right after route, the members may not have been pinned yet (show
	// then says so): ask again until they have.
	urls := fmt.Sprintf("nats://127.0.0.1:%[1]s1,nats://127.0.0.1:%[1]s2,nats://127.0.0.1:%[1]s3", client)
	var show string
	instances := regexp.MustCompile(`(?m)^a\tactive: \S+ \d+ \(since .*\n(.*\n)*a\tstandby: \S+ \d+$`)
	waitFor(t, "cluster show naming a's active instance and its standby", 30*time.Second, func() bool {
		show = shardlog(t, nil, nil, "cluster", "show", "--nats-url", urls, "--cluster", "logs").stdout
		return instances.MatchString(show) && strings.Contains(show, "b\tactive: ") && strings.Contains(show, "c\tactive: ")
	})
}
