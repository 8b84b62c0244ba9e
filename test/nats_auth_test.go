package test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// The tests in this file start a NATS server that demands authentication
// or TLS and check that shardlog, configured through the YAML file or the
// environment, receives with the right credentials and, with wrong ones,
// exits 1 at once with an error that says why and never shows the secret.

// authSubject is what the auth tests subscribe to; they publish on authTopic.
const (
	authSubject = "auth.>"
	authTopic   = "auth.in"
)

// writeFile writes data to name in a new temporary directory and returns its path.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// natsYAML writes a configuration file whose nats section holds url,
// subjects (authSubject) and the extra lines given (already indented by
// two spaces, under nats:).
func natsYAML(t *testing.T, url string, extra ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "nats:\n  url: %q\n  subjects: [%q]\n", url, authSubject)
	for _, l := range extra {
		b.WriteString("  " + l + "\n")
	}
	return writeFile(t, "shardlog.yaml", []byte(b.String()))
}

// setenv sets the SHARDLOG_* variables in env (alternating names and
// values) for this test; the daemon inherits them.
func setenv(t *testing.T, env ...string) {
	t.Helper()
	for i := 0; i+1 < len(env); i += 2 {
		t.Setenv(env[i], env[i+1])
	}
}

// flows starts shardlog with args (plus -n 4 -d DIR), publishes 100
// messages with pub, checks that each lands in its shard once shardlog
// has stopped, and that no secret appears on stderr.
func flows(t *testing.T, pub *nats.Conn, secrets []string, args ...string) {
	t.Helper()
	const n, msgs = 4, 100
	dir := t.TempDir()
	d := startNATS(t, append([]string{"run", "-n", fmt.Sprint(n), "-d", dir, "--batch-max-delay", "10ms"}, args...)...)
	var want []string
	for i := range msgs {
		m := fmt.Sprintf("%s message %d", t.Name(), i)
		want = append(want, m)
		if err := pub.Publish(authTopic, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	waitRecords(t, dir, n, msgs)
	d.stop(t)
	checkShards(t, records(t, dir, n), want, func(m string) string { return m })
	noSecrets(t, d.stderr.String(), secrets)
}

// exits starts shardlog with args (plus -n 4 -d DIR) and returns its exit
// status and stderr once it exits, failing the test if it takes longer
// than a refused connection should.
func exits(t *testing.T, args ...string) (code int, stderr string) {
	t.Helper()
	d := start(t, append([]string{"run", "-n", "4", "-d", t.TempDir()}, args...)...)
	// A refused connection fails at once (in tens of milliseconds); the
	// limit leaves room for a slow -race start and the 5s connect timeout,
	// and catches a shardlog that keeps retrying.
	code = d.wait(t, 10*time.Second)
	return code, d.stderr.String()
}

// refused starts shardlog with args (plus -n 4 -d DIR) and checks that it
// exits 1 within a few seconds, that stderr says why (it contains, case
// folded, one of why), and that no secret appears on it.
func refused(t *testing.T, secrets, why []string, args ...string) {
	t.Helper()
	code, stderr := exits(t, args...)
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	lower := strings.ToLower(stderr)
	found := false
	for _, w := range why {
		found = found || strings.Contains(lower, strings.ToLower(w))
	}
	if !found {
		t.Errorf("stderr does not mention any of %q:\n%s", why, stderr)
	}
	noSecrets(t, stderr, secrets)
}

// noSecrets fails if any secret appears in s.
func noSecrets(t *testing.T, s string, secrets []string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			t.Errorf("the secret %q is shown on stderr:\n%s", sec, s)
		}
	}
}

// kv is a YAML line setting key to the string v.
func kv(key, v string) string { return fmt.Sprintf("%s: %q", key, v) }

func TestNATSAuthUserPassword(t *testing.T) {
	const user, password = "shardlog", "pw-Right-5e1f0c"
	srv := natsServer(t, &server.Options{Username: user, Password: password}, false)
	url, addr := srv.ClientURL(), srv.Addr().String()

	t.Run("right credentials in the config file", func(t *testing.T) {
		cfg := natsYAML(t, url, kv("user", user), kv("password", password))
		flows(t, client(t, url, nats.UserInfo(user, password)), []string{password}, "-c", cfg)
	})
	t.Run("right credentials in the URL", func(t *testing.T) {
		cfg := natsYAML(t, fmt.Sprintf("nats://%s:%s@%s", user, password, addr))
		flows(t, client(t, url, nats.UserInfo(user, password)), []string{password}, "-c", cfg)
	})

	const wrong = "pw-Wrong-9a7d3b"
	wrongURL := fmt.Sprintf("nats://%s:%s@%s", user, wrong, addr)
	for _, tc := range []struct {
		name string
		env  []string // SHARDLOG_* variables
		url  string   // nats.url in the config file
		yaml []string // more nats keys in the config file
	}{
		{"wrong password in the environment", []string{"SHARDLOG_NATS_USER", user, "SHARDLOG_NATS_PASSWORD", wrong}, url, nil},
		{"environment overrides the file's password", []string{"SHARDLOG_NATS_PASSWORD", wrong}, url,
			[]string{kv("user", user), kv("password", password)}},
		{"no password", nil, url, nil},
		{"wrong user", []string{"SHARDLOG_NATS_USER", "nobody", "SHARDLOG_NATS_PASSWORD", password}, url, nil},
		{"wrong password in the URL", nil, wrongURL, nil},
		{"wrong password in the URL from the environment", []string{"SHARDLOG_NATS_URL", wrongURL}, url, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setenv(t, tc.env...)
			refused(t, []string{wrong}, []string{"authorization"}, "-c", natsYAML(t, tc.url, tc.yaml...))
		})
	}
}

func TestNATSAuthToken(t *testing.T) {
	const token = "tok"
	srv := natsServer(t, &server.Options{Authorization: token}, false)
	url := srv.ClientURL()
	pub := client(t, url, nats.Token(token))

	t.Run("right token in the environment", func(t *testing.T) {
		setenv(t, "SHARDLOG_NATS_TOKEN", token)
		// "tok" is too common a string to look for on stderr.
		flows(t, pub, nil, "--nats-url", url, "--subject", authSubject)
	})
	t.Run("right token in the config file", func(t *testing.T) {
		flows(t, pub, nil, "-c", natsYAML(t, url, kv("token", token)))
	})
	const wrong = "tok-Wrong-41c9e2"
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"wrong token in the environment", []string{"SHARDLOG_NATS_TOKEN", wrong}, []string{"--nats-url", url, "--subject", authSubject}},
		{"wrong token in the config file", nil, []string{"-c", natsYAML(t, url, kv("token", wrong))}},
		{"no token", nil, []string{"--nats-url", url, "--subject", authSubject}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setenv(t, tc.env...)
			refused(t, []string{wrong}, []string{"authorization"}, tc.args...)
		})
	}
}

// nkeySeed returns a new user key pair's seed and public key.
func nkeySeed(t *testing.T) (seed []byte, pub string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	if seed, err = kp.Seed(); err != nil {
		t.Fatal(err)
	}
	if pub, err = kp.PublicKey(); err != nil {
		t.Fatal(err)
	}
	return seed, pub
}

func TestNATSAuthNKey(t *testing.T) {
	seed, pub := nkeySeed(t)
	wrongSeed, _ := nkeySeed(t)
	srv := natsServer(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}}, false)
	url := srv.ClientURL()
	seedFile := writeFile(t, "user.nk", append(seed, '\n'))
	wrongFile := writeFile(t, "other.nk", wrongSeed)
	secrets := []string{string(seed), string(wrongSeed)}

	pubOpt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	pubConn := client(t, url, pubOpt)
	t.Run("seed file in the config file", func(t *testing.T) {
		flows(t, pubConn, secrets, "-c", natsYAML(t, url, kv("nkey_file", seedFile)))
	})
	t.Run("seed file in the environment", func(t *testing.T) {
		setenv(t, "SHARDLOG_NATS_NKEY_FILE", seedFile)
		flows(t, pubConn, secrets, "-c", natsYAML(t, url))
	})
	for _, tc := range []struct {
		name string
		env  []string
		yaml []string
	}{
		{"another seed in the config file", nil, []string{kv("nkey_file", wrongFile)}},
		{"another seed in the environment", []string{"SHARDLOG_NATS_NKEY_FILE", wrongFile}, nil},
		{"no seed", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setenv(t, tc.env...)
			refused(t, secrets, []string{"authorization"}, "-c", natsYAML(t, url, tc.yaml...))
		})
	}
}

// pki holds the paths of PEM files for a TLS test: a CA, a server
// certificate for 127.0.0.1 and a client certificate, both signed by the
// CA, and a second CA that signed neither.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey, otherCA string
}

// newPKI generates the certificates and keys of a pki in a temporary directory.
func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(0)
	template := func(cn string) *x509.Certificate {
		serial++
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
	}
	sign := func(tmpl, parent *x509.Certificate, k, parentKey *ecdsa.PrivateKey) (*x509.Certificate, []byte) {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, der
	}
	keyPEM := func(name string, k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, "PRIVATE KEY", der)
	}
	newCA := func(cn string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		k := key()
		tmpl := template(cn)
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		c, der := sign(tmpl, tmpl, k, k)
		return c, k, der
	}

	var p pki
	ca, caKey, caDER := newCA("shardlog test CA")
	p.ca = write("ca.pem", "CERTIFICATE", caDER)
	_, _, otherDER := newCA("some other CA")
	p.otherCA = write("other-ca.pem", "CERTIFICATE", otherDER)

	sk := key()
	st := template("127.0.0.1")
	st.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	st.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	_, der := sign(st, ca, sk, caKey)
	p.serverCert, p.serverKey = write("server.pem", "CERTIFICATE", der), keyPEM("server-key.pem", sk)

	ck := key()
	ct := template("shardlog")
	ct.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	_, der = sign(ct, ca, ck, caKey)
	p.clientCert, p.clientKey = write("client.pem", "CERTIFICATE", der), keyPEM("client-key.pem", ck)
	return p
}

// tlsNATSServer starts a NATS server (with JetStream if asked) that
// demands TLS with a client certificate signed by p's CA.
func tlsNATSServer(t *testing.T, p pki, jetstream bool) *server.Server {
	t.Helper()
	tlsCfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: p.serverCert, KeyFile: p.serverKey, CaFile: p.ca, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	// TLSTimeout (seconds) leaves the -race build time for the handshake.
	return natsServer(t, &server.Options{TLS: true, TLSConfig: tlsCfg, TLSVerify: true, TLSTimeout: 5}, jetstream)
}

func TestNATSAuthTLS(t *testing.T) {
	p := newPKI(t)
	srv := tlsNATSServer(t, p, false)
	addr := srv.Addr().String()
	pub := client(t, "tls://"+addr, nats.RootCAs(p.ca), nats.ClientCert(p.clientCert, p.clientKey))

	// tlsYAML is the nats.tls section with the files given (ca, cert, key).
	tlsYAML := func(ca, cert, key string) []string {
		lines := []string{"tls:"}
		for _, f := range [][2]string{{"ca_file", ca}, {"cert_file", cert}, {"key_file", key}} {
			if f[1] != "" {
				lines = append(lines, "  "+kv(f[0], f[1]))
			}
		}
		return lines
	}
	for _, scheme := range []string{"tls", "nats"} {
		t.Run(scheme+" URL with CA and client certificate", func(t *testing.T) {
			flows(t, pub, nil, "-c", natsYAML(t, scheme+"://"+addr, tlsYAML(p.ca, p.clientCert, p.clientKey)...))
		})
	}
	t.Run("files in the environment", func(t *testing.T) {
		setenv(t, "SHARDLOG_NATS_TLS_CA_FILE", p.ca, "SHARDLOG_NATS_TLS_CERT_FILE", p.clientCert, "SHARDLOG_NATS_TLS_KEY_FILE", p.clientKey)
		flows(t, pub, nil, "--nats-url", "tls://"+addr, "--subject", authSubject)
	})

	for _, tc := range []struct {
		name   string
		scheme string
		yaml   []string
	}{
		{"no client certificate", "tls", tlsYAML(p.ca, "", "")},
		{"no client certificate, nats URL", "nats", tlsYAML(p.ca, "", "")},
		{"no CA", "tls", tlsYAML("", p.clientCert, p.clientKey)},
		{"another CA", "tls", tlsYAML(p.otherCA, p.clientCert, p.clientKey)},
		// The server asks for TLS: the client tries it and cannot verify the server.
		{"no TLS settings", "nats", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused(t, nil, []string{"tls", "certificate"}, "-c", natsYAML(t, tc.scheme+"://"+addr, tc.yaml...))
		})
	}
}

// operator is a NATS operator with one account, whose JWT the server
// trusts through a memory resolver.
type operator struct {
	claims  *jwt.OperatorClaims
	account nkeys.KeyPair
	accJWT  string
}

func newOperator(t *testing.T) operator {
	t.Helper()
	okp, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	opub, _ := okp.PublicKey()
	ojwt, err := jwt.NewOperatorClaims(opub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	oc, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	akp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	apub, _ := akp.PublicKey()
	ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	return operator{claims: oc, account: akp, accJWT: ajwt}
}

// creds writes a credentials file for a new user of account akp and
// returns its path and the user's seed.
func creds(t *testing.T, akp nkeys.KeyPair) (path, seed string) {
	t.Helper()
	ukp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	data, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "user.creds", data), string(useed)
}

func TestNATSAuthCredsFile(t *testing.T) {
	op := newOperator(t)
	resolver := &server.MemAccResolver{}
	apub, _ := op.account.PublicKey()
	if err := resolver.Store(apub, op.accJWT); err != nil {
		t.Fatal(err)
	}
	srv := natsServer(t, &server.Options{TrustedOperators: []*jwt.OperatorClaims{op.claims}, AccountResolver: resolver}, false)
	url := srv.ClientURL()

	good, goodSeed := creds(t, op.account)
	pub := client(t, url, nats.UserCredentials(good))
	t.Run("creds file in the config file", func(t *testing.T) {
		flows(t, pub, []string{goodSeed}, "-c", natsYAML(t, url, kv("creds_file", good)))
	})
	t.Run("creds file as a flag", func(t *testing.T) {
		flows(t, pub, []string{goodSeed}, "--nats-url", url, "--subject", authSubject, "--nats-creds", good)
	})

	// A user of an account the server does not know, under another operator.
	stranger, strangerSeed := creds(t, newOperator(t).account)
	// A user JWT that is valid but paired with a seed that is not its own.
	mismatched := writeFile(t, "mismatched.creds", func() []byte {
		data, err := os.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(strings.Replace(string(data), goodSeed, strangerSeed, 1))
	}())
	for _, tc := range []struct {
		name, file string
	}{
		{"user of an unknown account", stranger},
		{"seed not matching the JWT", mismatched},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused(t, []string{goodSeed, strangerSeed}, []string{"authorization"}, "-c", natsYAML(t, url, kv("creds_file", tc.file)))
		})
	}
}

// TestNATSAuthURLSecretsNotShown puts credentials in nats.url in the forms
// the NATS client accepts and checks that shardlog's log never shows them,
// whether the connection succeeds or fails.
func TestNATSAuthURLSecretsNotShown(t *testing.T) {
	const user, password, token = "shardlog", "pw-Url-3c8e41", "tok-Url-b5d2a7"
	pwSrv := natsServer(t, &server.Options{Username: user, Password: password}, false)
	tokSrv := natsServer(t, &server.Options{Authorization: token}, false)
	pwAddr, tokAddr := pwSrv.Addr().String(), tokSrv.Addr().String()

	// NATS takes a URL's user name without a password as a token.
	for _, tc := range []struct {
		name, url string
		pub       *nats.Conn
	}{
		{"right token in the URL", "nats://" + token + "@" + tokAddr, client(t, tokSrv.ClientURL(), nats.Token(token))},
		{"right password in a URL without scheme", user + ":" + password + "@" + pwAddr, client(t, pwSrv.ClientURL(), nats.UserInfo(user, password))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flows(t, tc.pub, []string{password, token}, "--nats-url", tc.url, "--subject", authSubject)
		})
	}

	const wrongPW, wrongTok = "pw-Wrong-0d4f61", "tok-Wrong-e83a15"
	for _, tc := range []struct {
		name, url string
		why       []string // what stderr mentions; nil: any error will do
	}{
		{"wrong token in the URL", "nats://" + wrongTok + "@" + tokAddr, []string{"authorization"}},
		// The NATS client takes a URL without scheme as nats://.
		{"wrong password in a URL without scheme", user + ":" + wrongPW + "@" + pwAddr, []string{"authorization"}},
		{"wrong token in a URL without scheme", wrongTok + "@" + tokAddr, []string{"authorization"}},
		{"wrong password in a list, second URL without scheme", "nats://" + tokAddr + "," + user + ":" + wrongPW + "@" + pwAddr, nil},
		// A password with a '%' that is not an escape makes the URL invalid.
		{"password that is not URL-escaped", "nats://" + user + ":" + wrongPW + "%zz@" + pwAddr, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--nats-url", tc.url, "--subject", authSubject}
			if tc.why != nil {
				refused(t, []string{wrongPW, wrongTok}, tc.why, args...)
				return
			}
			code, stderr := exits(t, args...)
			if code == 0 {
				t.Errorf("exit 0; stderr:\n%s", stderr)
			}
			noSecrets(t, stderr, []string{wrongPW, wrongTok})
		})
	}
}

// TestNATSAuthRefusedOnReconnect: credentials refused while reconnecting
// (a server restarted with rotated credentials, say) are retried like any
// other failure; once the server accepts them again, messages flow. The
// NATS client's default would close the connection after two refusals.
func TestNATSAuthRefusedOnReconnect(t *testing.T) {
	const user, password, other = "shardlog", "pw-Right-5e1f0c", "pw-Rotated-77b2"
	srv := natsServer(t, &server.Options{Username: user, Password: password}, false)
	port := srv.Addr().(*net.TCPAddr).Port
	url := srv.ClientURL()
	dir := t.TempDir()
	d := startNATS(t, "run", "-n", "4", "-d", dir, "-c", natsYAML(t, url, kv("user", user), kv("password", password),
		kv("reconnect_wait", "100ms")), "--batch-max-delay", "10ms")

	srv.Shutdown()
	srv.WaitForShutdown()
	refusing := natsServer(t, &server.Options{Port: port, Username: user, Password: other}, false)
	waitFor(t, "three refused reconnects", 60*time.Second, func() bool {
		return strings.Count(strings.ToLower(d.stderr.String()), "authorization violation") >= 3
	})
	refusing.Shutdown()
	refusing.WaitForShutdown()
	select {
	case <-d.done:
		t.Fatalf("shardlog exited while its credentials were refused: %s", d.stderr.String())
	default:
	}

	natsServer(t, &server.Options{Port: port, Username: user, Password: password}, false)
	waitFor(t, "shardlog to reconnect", 60*time.Second, func() bool { return d.stderr.Contains("reconnected to NATS") })
	nc := client(t, url, nats.UserInfo(user, password))
	waitFor(t, "a message after the reconnect", 30*time.Second, func() bool {
		if err := nc.Publish(authTopic, []byte("probe")); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		return bytes.Contains(readAll(t, dir, 4), []byte("probe\n"))
	})
	d.stop(t)
	noSecrets(t, d.stderr.String(), []string{password, other})
}
