package test

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// jsServer is a JetStream server that a test runs shardlog against.
type jsServer struct {
	url     string
	version string
	// restart stops the server and starts it again on the same port
	// with the same store.
	restart func(t *testing.T)
}

// eachJetStreamServer runs f against every kind of JetStream server
// shardlog must work with: the current nats-server, in this process, and
// the nats-server binary installed on the machine (Debian's package, 2.9,
// older than the embedded one). Without that binary the second subtest
// skips, saying so.
func eachJetStreamServer(t *testing.T, f func(t *testing.T, srv *jsServer)) {
	t.Run("current", func(t *testing.T) { f(t, inProcessJS(t)) })
	t.Run("binary", func(t *testing.T) { f(t, binaryJS(t)) })
}

// inProcessJS starts the current nats-server in this process.
func inProcessJS(t *testing.T) *jsServer {
	store := t.TempDir()
	srv := natsServer(t, &server.Options{StoreDir: store}, true)
	js := &jsServer{url: srv.ClientURL(), version: server.VERSION}
	js.restart = func(t *testing.T) {
		port := srv.Addr().(interface{ String() string }).String()
		p, _ := strconv.Atoi(port[strings.LastIndex(port, ":")+1:])
		srv.Shutdown()
		srv.WaitForShutdown()
		srv = natsServer(t, &server.Options{Port: p, StoreDir: store}, true)
	}
	return js
}

// natsServerBinary returns the path of the installed nats-server, or
// skips the test.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("SKIP: no nats-server binary installed (Debian: apt-get install nats-server; .ci/run installs it): " +
		"the older-server JetStream cases did not run")
	return ""
}

var listenRE = regexp.MustCompile(`Listening for client connections on [^\s]*:(\d+)`)

// binaryJS starts the installed nats-server binary with JetStream on a
// random loopback port.
func binaryJS(t *testing.T) *jsServer {
	t.Helper()
	path := natsServerBinary(t)
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v: %s", path, err, out)
	}
	store := t.TempDir()
	var cmd *exec.Cmd
	start := func(t *testing.T, port int) int {
		t.Helper()
		cmd = exec.Command(path, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", store)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ports := make(chan int, 1)
		ready := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
					p, _ := strconv.Atoi(m[1])
					ports <- p
				}
				if strings.Contains(sc.Text(), "Server is ready") {
					close(ready)
					break
				}
			}
			_, _ = io.Copy(io.Discard, stderr)
		}()
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("%s did not become ready in 30s", path)
		}
		return <-ports
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	port := start(t, -1)
	t.Cleanup(stop)
	version := strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(string(out), "nats-server:")), "v")
	t.Logf("running against %s %s", path, version)
	return &jsServer{
		url:     "nats://127.0.0.1:" + strconv.Itoa(port),
		version: version,
		restart: func(t *testing.T) {
			stop()
			start(t, port)
		},
	}
}

// olderThan reports whether srv's version is below major.minor.
func olderThan(srv *jsServer, major, minor int) bool {
	var maj, mnr int
	fmt.Sscanf(srv.version, "%d.%d", &maj, &mnr)
	return maj < major || maj == major && mnr < minor
}
