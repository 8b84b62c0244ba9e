package test

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClusterOverTLS runs the cluster path against a JetStream server that
// demands TLS with client certificates, the files given in the
// environment as for run: cluster create, route from standard input,
// members a and b, cluster show and which --cluster all connect, each
// member's files hold exactly its shards' lines, and without the client
// certificate cluster create and route fail with a TLS error.
func TestClusterOverTLS(t *testing.T) {
	p := newPKI(t)
	srv := tlsNATSServer(t, p, true)
	url := "tls://" + srv.Addr().String()

	// Without the client certificate (the CA alone), nothing connects.
	noCert := []string{"SHARDLOG_NATS_TLS_CA_FILE=" + p.ca}
	for _, args := range [][]string{
		{"cluster", "create", "--nats-url", url, "--cluster", "logs", "-n", "4", "--members", "a,b"},
		{"route", "--nats-url", url, "--cluster", "logs"},
	} {
		if res := shardlog(t, []byte("x\n"), noCert, args...); res.code == 0 || !strings.Contains(res.stderr, "tls error") && !strings.Contains(res.stderr, "tls: ") {
			t.Errorf("%s without a client certificate: exit %d, stderr %q; want a TLS error (the server demands a client certificate)", args[0], res.code, res.stderr)
		}
	}

	setenv(t, "SHARDLOG_NATS_TLS_CA_FILE", p.ca, "SHARDLOG_NATS_TLS_CERT_FILE", p.clientCert, "SHARDLOG_NATS_TLS_KEY_FILE", p.clientKey)
	memberCluster(t, url, "--cluster", "logs", "-n", "4", "--members", "a,b")
	dirs := map[string]string{"a": t.TempDir(), "b": t.TempDir()}
	members := map[string]*daemon{}
	for name, dir := range dirs {
		members[name] = startMember(t, url, name, dir)
	}
	const lines = 2000
	input := routeInput(lines)
	if res := shardlog(t, input, nil, "route", "--cluster", "logs", "--nats-url", url, "--batch-max-bytes", "4KiB"); res.code != 0 {
		t.Fatalf("route: exit %d: %s", res.code, res.stderr)
	}

	js, err := jetstream.New(client(t, url, nats.RootCAs(p.ca), nats.ClientCert(p.clientCert, p.clientKey)))
	if err != nil {
		t.Fatal(err)
	}
	for name := range dirs {
		waitAcked(t, js, "logs", "logs_"+name)
	}
	if res := shardlog(t, nil, nil, "cluster", "show", "--nats-url", url, "--cluster", "logs"); res.code != 0 ||
		!strings.Contains(res.stdout, "a\tactive: ") || !strings.Contains(res.stdout, "b\tactive: ") {
		t.Errorf("cluster show: exit %d, want 0 and a line of a's and b's active instances: %s%s", res.code, res.stdout, res.stderr)
	}
	if res := shardlog(t, nil, nil, "which", "--nats-url", url, "--cluster", "logs", "user42"); res.code != 0 || !strings.Contains(res.stdout, "user42\t") {
		t.Errorf("which --cluster: exit %d: %s%s", res.code, res.stdout, res.stderr)
	}
	for _, d := range members {
		d.stop(t)
	}
	checkMemberFiles(t, dirs, map[string][]int{"a": {0, 1}, "b": {2, 3}}, expect(split(input, 1<<20), 4, 0))
}
