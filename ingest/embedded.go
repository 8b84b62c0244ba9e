package ingest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/shardlog/shardlog/config"
)

// Embedded is a NATS server running inside shardlog, with what shardlog's
// own connection needs to reach it. Shut it down with Shutdown (then
// WaitForShutdown) once its sources are done, or with Discard when the
// start fails.
type Embedded struct {
	*server.Server
	// user and password are shardlog's own user on a server whose
	// authorization is shardlog's (nats.embedded_config has none): made at
	// each start, never logged. Both are empty otherwise.
	user, password string
	// inboxPrefix is the prefix of shardlog's reply subjects, where its
	// JetStream pulls are delivered: not _INBOX, which publishers may
	// read (for their JetStream acknowledgements).
	inboxPrefix string
	// publishURL is the address publishers use, logged at the start.
	publishURL string
	// created is the top directory of the JetStream store that this start
	// made ("" if none), removed by Discard.
	created string
}

// The names of the users the embedded server knows when its authorization
// is shardlog's: its own connection's, and the one every client that gives
// no credentials is (server.Options.NoAuthUser).
const (
	ownUser       = "shardlog"
	publisherUser = "publisher"
	// ownInboxPrefix prefixes the reply subjects of shardlog's own
	// connection to the embedded server (JetStream pulls are delivered
	// there): only its own user may subscribe to it.
	ownInboxPrefix = "_SHARDLOG_INBOX"
)

// reservedSubjects returns the subjects a publisher without credentials
// may never publish to, even if nats.subjects covers them (say ">"):
// JetStream's API and acknowledgements (deleting a stream, acknowledging
// messages shardlog has not written), the system account's, and
// shardlog's own inbox.
func reservedSubjects() []string {
	return []string{"$JS.>", "$KV.>", "$O.>", "$SYS.>", "$NRG.>", "$MQTT.>", ownInboxPrefix + ".>"}
}

// embeddedPlan is the embedded server's options, made from the
// configuration and nats.embedded_config, before anything is started.
type embeddedPlan struct {
	opts *server.Options
	// ownAuth is set when the server's authorization is shardlog's: the
	// file has none.
	ownAuth bool
}

// CheckEmbedded checks the embedded server's configuration as StartEmbedded
// does, without starting anything: nats.embedded_config parses, agrees with
// shardlog's own keys, and says enough for the listen address and for
// JetStream. Its errors are *config.Error.
func CheckEmbedded(cfg config.NATS) error {
	_, err := planEmbedded(cfg)
	return err
}

// planEmbedded reads nats.embedded_config (if set) with nats-server's own
// parser, puts shardlog's keys on top, and refuses what cannot work or is
// not safe: a key and the file that set the same thing differently, a
// listen address beyond loopback that anyone could use, credentials that
// would be ignored, a JetStream stream on a server without JetStream.
func planEmbedded(cfg config.NATS) (*embeddedPlan, error) {
	opts := &server.Options{}
	file := cfg.EmbeddedConfig
	if file != "" {
		var err error
		if opts, err = server.ProcessConfigFile(file); err != nil {
			return nil, &config.Error{Err: fmt.Errorf("nats.embedded_config: %s: %w", file, err)}
		}
	}
	if err := planListen(cfg, opts); err != nil {
		return nil, err
	}
	if err := planStore(cfg, opts); err != nil {
		return nil, err
	}
	if opts.ServerName == "" {
		opts.ServerName = "shardlog-embedded"
	}
	// shardlog handles the signals: SIGHUP reopens files, it does not
	// reload the server.
	opts.NoSigs = true
	p := &embeddedPlan{opts: opts, ownAuth: !hasAuth(opts)}
	hostPort := net.JoinHostPort(opts.Host, strconv.Itoa(max(opts.Port, 0)))
	switch {
	case p.ownAuth && !isLoopback(opts.Host):
		where := "nats.embedded_listen"
		if !cfg.EmbeddedListenSet && file != "" {
			where += " (here nats.embedded_config " + file + "'s listen)"
		}
		return nil, &config.Error{Err: fmt.Errorf("%s: %s is not a loopback address, and the embedded server has no authentication: "+
			"anyone who reaches it could publish into the logs; listen on 127.0.0.1, or set nats.embedded_config (--nats-embedded-config) "+
			"to a nats-server configuration file with an authorization block (users with permissions, or a token)", where, hostPort)}
	case p.ownAuth && otherListener(opts) != "":
		return nil, &config.Error{Err: fmt.Errorf("nats.embedded_config: %s opens a %s listener, which shardlog's own authorization "+
			"(publish-only for clients without credentials) does not cover: give the file an authorization block, "+
			"and that listener one of its own", file, otherListener(opts))}
	case p.ownAuth && cfg.URL == "":
		// shardlog reaches a server whose authorization is its own with
		// a secret of its own: credentials given for it would be ignored.
		if key := credentialKey(cfg); key != "" {
			return nil, &config.Error{Err: fmt.Errorf("%s: set, but the embedded server has no authorization of yours "+
				"(nats.embedded_config) and shardlog connects to it with a secret of its own: remove %s, "+
				"or give nats.embedded_config an authorization block that admits these credentials", key, key)}
		}
	case !p.ownAuth && cfg.URL == "" && credentialKey(cfg) == "" && opts.NoAuthUser == "":
		return nil, &config.Error{Err: fmt.Errorf("nats.embedded_config: %s has an authorization block, so shardlog's own connection "+
			"needs credentials it admits: set nats.user and nats.password (SHARDLOG_NATS_USER, SHARDLOG_NATS_PASSWORD), "+
			"nats.token (SHARDLOG_NATS_TOKEN), nats.nkey_file or nats.creds_file", file)}
	}
	if cfg.URL == "" && cfg.JetStream.Stream != "" && !opts.JetStream {
		return nil, &config.Error{Err: fmt.Errorf("nats.jetstream.stream: %q: the embedded server has no JetStream: "+
			"set nats.embedded_store_dir (--nats-embedded-store DIR) to enable it, or give nats.embedded_config a jetstream block",
			cfg.JetStream.Stream)}
	}
	return p, nil
}

// planListen sets the address in opts. nats.embedded_listen applies where
// the file says nothing; where both set the host or the port differently,
// the start is refused naming both. The key's default (127.0.0.1:4222)
// counts as not set: a file that sets listen (or host, or port) is then
// followed, and the default fills in what it leaves out.
func planListen(cfg config.NATS, opts *server.Options) error {
	host, portStr, err := net.SplitHostPort(cfg.EmbeddedListen)
	if err != nil {
		return &config.Error{Err: fmt.Errorf("nats.embedded_listen: %q: %w", cfg.EmbeddedListen, err)}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return &config.Error{Err: fmt.Errorf("nats.embedded_listen: %q: port: %w", cfg.EmbeddedListen, err)}
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	fileHost, filePort := opts.Host, opts.Port
	if filePort == 0 {
		filePort = server.RANDOM_PORT
	}
	if cfg.EmbeddedListenSet && (opts.Host != "" && opts.Host != host || opts.Port != 0 && filePort != port) {
		return &config.Error{Err: fmt.Errorf("nats.embedded_listen: %q and nats.embedded_config %s's listen %q differ: set the address in one of them",
			cfg.EmbeddedListen, cfg.EmbeddedConfig, net.JoinHostPort(fileHost, strconv.Itoa(max(opts.Port, 0))))}
	}
	if opts.Host == "" {
		opts.Host = host
	}
	if opts.Port == 0 {
		opts.Port = port
	}
	return nil
}

// planStore sets the JetStream store in opts: nats.embedded_store_dir
// enables JetStream there; a file's jetstream block enables it too, in
// its store_dir. Both store directories set, and different, is refused.
func planStore(cfg config.NATS, opts *server.Options) error {
	dir := cfg.EmbeddedStoreDir
	if dir == "" {
		return nil
	}
	if opts.StoreDir != "" && filepath.Clean(opts.StoreDir) != filepath.Clean(dir) {
		return &config.Error{Err: fmt.Errorf("nats.embedded_store_dir: %q and nats.embedded_config %s's store_dir %q differ: set the directory in one of them",
			dir, cfg.EmbeddedConfig, opts.StoreDir)}
	}
	opts.JetStream, opts.StoreDir = true, dir
	return nil
}

// hasAuth reports whether opts authenticate clients in any way nats-server
// knows: a user, a token, NKeys, accounts' users, operators (JWT), or an
// authorization callout.
func hasAuth(o *server.Options) bool {
	return o.Username != "" || o.Authorization != "" || len(o.Users) > 0 || len(o.Nkeys) > 0 ||
		len(o.TrustedOperators) > 0 || len(o.TrustedKeys) > 0 || o.AuthCallout != nil || o.CustomClientAuthentication != nil
}

// otherListener names a listener of opts for servers (cluster routes,
// gateways, leaf nodes), which shardlog's own users do not govern, or "".
func otherListener(o *server.Options) string {
	switch {
	case o.Cluster.Port != 0:
		return "cluster"
	case o.Gateway.Port != 0:
		return "gateway"
	case o.LeafNode.Port != 0:
		return "leafnodes"
	}
	return ""
}

// credentialKey returns the first NATS credential key set in cfg, or "".
func credentialKey(cfg config.NATS) string {
	for _, k := range []struct {
		key string
		set bool
	}{
		{"nats.user", cfg.User != ""}, {"nats.password", cfg.Password != ""}, {"nats.token", cfg.Token != ""},
		{"nats.nkey_file", cfg.NKeyFile != ""}, {"nats.creds_file", cfg.CredsFile != ""},
	} {
		if k.set {
			return k.key
		}
	}
	return ""
}

// isLoopback reports whether host is a loopback address (or localhost).
// Other names are not resolved: they count as reachable from elsewhere.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// leastPrivilege gives opts two users: shardlog's own (user, with the
// bcrypt hash of its password),
// which may read subjects and use JetStream, and the user every client
// without credentials is, which may only publish to subjects (and receive
// replies in _INBOX, so that a JetStream publisher gets its
// acknowledgements).
func leastPrivilege(opts *server.Options, subjects []string, ownHash string) {
	opts.Users = []*server.User{
		{
			Username: ownUser,
			Password: ownHash,
			Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.>", "$JS.ACK.>"}},
				Subscribe: &server.SubjectPermission{Allow: append(append([]string(nil), subjects...), ownInboxPrefix+".>")},
			},
		},
		{
			// Clients without credentials are this user (NoAuthUser),
			// which has no password: the server, which warns of any user
			// whose password is not a bcrypt hash, then warns at every
			// start; serverLog leaves that warning out.
			Username: publisherUser,
			Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: append([]string(nil), subjects...), Deny: reservedSubjects()},
				// Replies only: a JetStream publisher's acknowledgements.
				// Logs never pass there: shardlog's own replies use
				// ownInboxPrefix.
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			},
		},
	}
	opts.NoAuthUser = publisherUser
}

// newSecret returns 32 random bytes in hex and their bcrypt hash, which is
// what the server keeps. The lowest cost suffices: the secret is 256
// random bits, not a word to guess.
func newSecret() (secret, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	secret = hex.EncodeToString(b)
	h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	return secret, string(h), err
}

// StartEmbedded starts a NATS server inside shardlog, so that publishers
// need nothing else on a single host: listening on nats.embedded_listen,
// with JetStream storage in nats.embedded_store_dir if it is set, and
// whatever nats.embedded_config (a nats-server configuration file) says.
// Without an authorization block there, shardlog's own connection is a
// user of its own, with a password made now, and every other client may
// only publish to nats.subjects. Configuration errors are *config.Error
// and come before anything is created. A start that fails removes the
// store directory it made.
func StartEmbedded(cfg config.NATS, log *slog.Logger) (*Embedded, error) {
	p, err := planEmbedded(cfg)
	if err != nil {
		return nil, err
	}
	opts := p.opts
	e := &Embedded{inboxPrefix: ownInboxPrefix}
	if p.ownAuth {
		var ownHash string
		if e.password, ownHash, err = newSecret(); err != nil {
			return nil, fmt.Errorf("embedded NATS server: make shardlog's secret: %w", err)
		}
		e.user = ownUser
		leastPrivilege(opts, cfg.Subjects, ownHash)
	}
	if opts.JetStream && opts.StoreDir != "" {
		// nats-server keeps its store in StoreDir/jetstream.
		if e.created, err = firstMissing(filepath.Join(opts.StoreDir, "jetstream")); err != nil {
			return nil, fmt.Errorf("nats.embedded_store_dir %s: %w", opts.StoreDir, err)
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, &config.Error{Err: fmt.Errorf("embedded NATS server: %w", err)}
	}
	e.Server = srv
	sl := &serverLog{log: log.With("component", "nats-server"), fatal: make(chan string, 1), ownAuth: p.ownAuth}
	srv.SetLogger(sl, false, false)
	srv.Start()
	// A server that cannot start (its port taken, say) reports why through
	// its log and is never ready: return its reason at once.
	listen := net.JoinHostPort(opts.Host, strconv.Itoa(max(opts.Port, 0)))
	for deadline := time.Now().Add(10 * time.Second); !srv.ReadyForConnections(50 * time.Millisecond); {
		select {
		case why := <-sl.fatal:
			e.Discard()
			return nil, fmt.Errorf("embedded NATS server on nats.embedded_listen %s: %s", listen, why)
		default:
		}
		if time.Now().After(deadline) {
			e.Discard()
			return nil, fmt.Errorf("embedded NATS server on nats.embedded_listen %s: not ready after 10s", listen)
		}
	}
	e.publishURL = publishURL(srv.ClientURL(), opts.Host)
	auth := "publish to nats.subjects only, without credentials"
	if !p.ownAuth {
		auth = "nats.embedded_config's authorization"
	}
	log.Info("embedded NATS server listening", "url", e.publishURL, "jetstream", opts.JetStream, "clients", auth)
	return e, nil
}

// Discard shuts down the server of a start that failed, and removes the
// store directory that start made: a failed start leaves nothing behind.
func (e *Embedded) Discard() {
	if e.Server != nil {
		e.Shutdown()
		e.WaitForShutdown()
	}
	if e.created != "" {
		_ = os.RemoveAll(e.created)
		e.created = ""
	}
}

// firstMissing returns the topmost directory on the way to path that does
// not exist yet ("" if path exists): what creating path would make.
func firstMissing(path string) (string, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	missing := ""
	for p := path; ; p = filepath.Dir(p) {
		_, err := os.Lstat(p)
		switch {
		case err == nil:
			return missing, nil
		case !errors.Is(err, os.ErrNotExist):
			return "", err
		}
		missing = p
		if filepath.Dir(p) == p {
			return missing, nil
		}
	}
}

// publishURL returns the address publishers use for a server whose client
// URL is clientURL: the URL itself, or, when the server listens on every
// interface (host unspecified), the URL with the host's first address
// that is not loopback (or its name) in place of 0.0.0.0 or ::.
func publishURL(clientURL, host string) string {
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return clientURL
	}
	u, err := url.Parse(clientURL)
	if err != nil {
		return clientURL
	}
	name := hostAddress()
	if name == "" {
		return clientURL
	}
	u.Host = net.JoinHostPort(name, u.Port())
	return u.String()
}

// hostAddress returns the first IPv4 address of the host that is not
// loopback, else its first such IPv6 address (not link-local), else its
// name, else "".
func hostAddress() string {
	var v6 string
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
				continue
			}
			if n.IP.To4() != nil {
				return n.IP.String()
			}
			if v6 == "" {
				v6 = n.IP.String()
			}
		}
	}
	if v6 != "" {
		return v6
	}
	name, _ := os.Hostname()
	return name
}

// serverLog passes the embedded server's log lines to slog, and its first
// fatal error to fatal.
type serverLog struct {
	log   *slog.Logger
	fatal chan string
	// ownAuth is set when shardlog made the server's users: the server's
	// warning of a password that is not a bcrypt hash is then about the
	// publishers' user, which has none by design (see leastPrivilege), and
	// is logged at debug only.
	ownAuth bool
}

// plaintextWarning begins the server's warning of passwords that are not
// bcrypt hashes.
const plaintextWarning = "Plaintext passwords detected"

func (l *serverLog) Noticef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *serverLog) Warnf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	if l.ownAuth && strings.HasPrefix(msg, plaintextWarning) {
		l.log.Debug(msg)
		return
	}
	l.log.Warn(msg)
}
func (l *serverLog) Errorf(f string, v ...any) { l.log.Error(fmt.Sprintf(f, v...)) }
func (l *serverLog) Debugf(f string, v ...any) {}
func (l *serverLog) Tracef(f string, v ...any) {}

func (l *serverLog) Fatalf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	l.log.Error(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}
