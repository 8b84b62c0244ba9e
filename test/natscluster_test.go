package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// moduleServer is the nats-server binary built from the module go.mod
// requires, once per run of the test binary: the version the in-process
// servers are (2.11 or later, which members need to pin), where the
// installed one (Debian's 2.9) is too old.
var moduleServer struct {
	once sync.Once
	path string
	err  error
}

// moduleNATSServer returns the path of a nats-server built from the
// github.com/nats-io/nats-server/v2 module that go.mod requires, building
// it on first use next to the shardlog binary (the Go build cache makes it
// quick); without a go command it skips the test, saying why.
func moduleNATSServer(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("SKIP: no go command on PATH to build nats-server from the module github.com/nats-io/nats-server/v2 " +
			"(the installed nats-server, if any, may be older than 2.11, which cannot pin): the NATS cluster test did not run")
	}
	moduleServer.once.Do(func() {
		path := filepath.Join(filepath.Dir(bin), "nats-server")
		build := exec.Command(goCmd, "build", "-o", path, "github.com/nats-io/nats-server/v2")
		if out, err := build.CombinedOutput(); err != nil {
			moduleServer.err = fmt.Errorf("go build github.com/nats-io/nats-server/v2: %w: %s", err, out)
			return
		}
		moduleServer.path = path
	})
	if moduleServer.err != nil {
		t.Fatal(moduleServer.err)
	}
	return moduleServer.path
}

// natsNode is one nats-server process of a natsCluster.
type natsNode struct {
	name string
	// client, route and monitor are its loopback addresses: clients,
	// the cluster's routes, and HTTP monitoring.
	client, route, monitor string
	conf                   string
	stderr                 *syncBuffer
	cmd                    *exec.Cmd
	done                   chan struct{}
}

// url is the node's client URL.
func (n *natsNode) url() string { return "nats://" + n.client }

// running reports whether the node's process runs.
func (n *natsNode) running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// natsCluster is a NATS cluster of nats-server processes with JetStream
// on loopback, each with its own configuration file and store, which a
// test can kill -9 and restart one node at a time.
type natsCluster struct {
	path  string
	nodes []*natsNode
}

// startNATSCluster starts a cluster of size nats-server processes (built
// by moduleNATSServer) on free loopback ports and waits until JetStream
// has elected a meta leader that every node knows. The processes are
// killed when the test ends.
func startNATSCluster(t *testing.T, size int) *natsCluster {
	t.Helper()
	c := &natsCluster{path: moduleNATSServer(t)}
	dir := t.TempDir()
	addrs := freeAddrs(t, 3*size)
	for i := range size {
		a := addrs[3*i:]
		c.nodes = append(c.nodes, &natsNode{name: fmt.Sprintf("n%d", i),
			client: a[0], route: a[1], monitor: a[2]})
	}
	routes := make([]string, size)
	for i, n := range c.nodes {
		routes[i] = "nats-route://" + n.route
	}
	for _, n := range c.nodes {
		n.conf = filepath.Join(dir, n.name+".conf")
		conf := fmt.Sprintf(`server_name: %s
listen: %q
http: %q
jetstream {
  store_dir: %q
  max_memory_store: 64MB
  max_file_store: 4GB
}
cluster {
  name: shardlog-test
  listen: %q
  routes: [%s]
}
`, n.name, n.client, n.monitor, filepath.Join(dir, n.name+"-store"), n.route, strings.Join(routes, ", "))
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.running() {
				_ = n.cmd.Process.Kill()
				<-n.done
			}
			if t.Failed() && n.stderr != nil {
				t.Logf("nats-server %s's log ends:\n%s", n.name, logTail(n.stderr.String(), 3000))
			}
		}
	})
	for i := range c.nodes {
		c.start(t, i)
	}
	c.waitReady(t)
	return c
}

// logTail returns the last n bytes of s.
func logTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// URLs returns the client URLs of every node, comma-separated, as
// --nats-url takes them.
func (c *natsCluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = n.url()
	}
	return strings.Join(urls, ",")
}

// start starts node i (again, on the same ports and store) and waits
// until it accepts clients.
func (c *natsCluster) start(t *testing.T, i int) {
	t.Helper()
	n := c.nodes[i]
	if n.stderr == nil {
		n.stderr = &syncBuffer{}
	}
	n.cmd = exec.Command(c.path, "-c", n.conf)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	n.cmd.Stderr = pw
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start nats-server %s: %v", n.name, err)
	}
	pw.Close()
	ready := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		for isReady := false; sc.Scan(); {
			fmt.Fprintln(n.stderr, sc.Text())
			if !isReady && strings.Contains(sc.Text(), "Server is ready") {
				close(ready)
				isReady = true
			}
		}
		pr.Close()
	}()
	done := make(chan struct{})
	n.done = done
	go func() { _ = n.cmd.Wait(); <-copied; close(done) }()
	select {
	case <-ready:
	case <-done:
		t.Fatalf("nats-server %s exited: %s", n.name, n.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("nats-server %s not ready within 30s: %s", n.name, n.stderr.String())
	}
}

// kill kills node i with SIGKILL and waits until it is gone.
func (c *natsCluster) kill(t *testing.T, i int) {
	t.Helper()
	n := c.nodes[i]
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill nats-server %s: %v", n.name, err)
	}
	<-n.done
}

// restart starts node i again after kill, and waits until the cluster
// is whole again (see waitReady).
func (c *natsCluster) restart(t *testing.T, i int) {
	t.Helper()
	c.start(t, i)
	c.waitReady(t)
}

// jsz returns the JetStream information of node i from its monitoring
// port.
func (c *natsCluster) jsz(i int) (*server.JSInfo, error) {
	var info server.JSInfo
	err := getJSON("http://"+c.nodes[i].monitor+"/jsz", &info)
	return &info, err
}

// getJSON decodes the JSON that a GET of url returns into v.
func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// waitReady waits until every running node names the same JetStream
// meta leader, in a meta group of all the nodes, and the leader sees
// every running peer current.
func (c *natsCluster) waitReady(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		why := c.notReady()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the NATS cluster is not ready within 60s: %s", why)
		}
	}
}

// notReady says why the cluster is not ready (see waitReady), or "".
func (c *natsCluster) notReady() string {
	leader := ""
	for i, n := range c.nodes {
		if !n.running() {
			continue
		}
		info, err := c.jsz(i)
		if err != nil {
			return err.Error()
		}
		switch m := info.Meta; {
		case m == nil || m.Leader == "":
			return n.name + " knows no meta leader"
		case m.Size != len(c.nodes):
			return fmt.Sprintf("%s sees a meta group of %d", n.name, m.Size)
		case leader != "" && m.Leader != leader:
			return fmt.Sprintf("meta leaders %s and %s", leader, m.Leader)
		default:
			leader = m.Leader
		}
	}
	i := c.index(leader)
	if i < 0 {
		return "meta leader " + leader + " is not a node"
	}
	info, err := c.jsz(i)
	if err != nil || info.Meta == nil || info.Meta.Leader != leader {
		return "meta leader " + leader + " does not say so"
	}
	current := map[string]bool{}
	for _, p := range info.Meta.Replicas {
		current[p.Name] = p.Current && !p.Offline
	}
	for _, n := range c.nodes {
		if n.running() && n.name != leader && !current[n.name] {
			return "meta leader " + leader + " does not see " + n.name + " current"
		}
	}
	return ""
}

// index returns the index of the node named name, or -1.
func (c *natsCluster) index(name string) int {
	for i, n := range c.nodes {
		if n.name == name {
			return i
		}
	}
	return -1
}

// connectedTo returns the name of the running node to which the client
// connection named conn is connected, or "" if none shows it.
func (c *natsCluster) connectedTo(conn string) string {
	for _, n := range c.nodes {
		if !n.running() {
			continue
		}
		var cz server.Connz
		if err := getJSON("http://"+n.monitor+"/connz?limit=1000", &cz); err != nil {
			continue
		}
		for _, ci := range cz.Conns {
			if ci.Name == conn {
				return n.name
			}
		}
	}
	return ""
}
