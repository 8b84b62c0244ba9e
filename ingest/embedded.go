package ingest

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/shardlog/shardlog/config"
)

// StartEmbedded starts a NATS server inside shardlog, listening on
// cfg.EmbeddedListen, with JetStream storage in cfg.EmbeddedStoreDir if it
// is set, so that publishers need nothing else on a single host. The caller
// shuts it down (Shutdown, then WaitForShutdown) once its sources are done.
func StartEmbedded(cfg config.NATS, log *slog.Logger) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.EmbeddedListen)
	if err != nil {
		return nil, fmt.Errorf("nats.embedded_listen %q: %w", cfg.EmbeddedListen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats.embedded_listen %q: port: %w", cfg.EmbeddedListen, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "shardlog-embedded",
		Host:       host,
		Port:       port,
		NoSigs:     true,
		JetStream:  cfg.EmbeddedStoreDir != "",
		StoreDir:   cfg.EmbeddedStoreDir,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	sl := &serverLog{log: log.With("component", "nats-server"), fatal: make(chan string, 1)}
	srv.SetLogger(sl, false, false)
	srv.Start()
	// A server that cannot start (its port taken, say) reports why through
	// its log and is never ready: return its reason at once.
	for deadline := time.Now().Add(10 * time.Second); !srv.ReadyForConnections(50 * time.Millisecond); {
		select {
		case why := <-sl.fatal:
			srv.Shutdown()
			return nil, fmt.Errorf("embedded NATS server on nats.embedded_listen %s: %s", cfg.EmbeddedListen, why)
		default:
		}
		if time.Now().After(deadline) {
			srv.Shutdown()
			return nil, fmt.Errorf("embedded NATS server on nats.embedded_listen %s: not ready after 10s", cfg.EmbeddedListen)
		}
	}
	log.Info("embedded NATS server listening", "url", srv.ClientURL(), "jetstream", opts.JetStream)
	return srv, nil
}

// serverLog passes the embedded server's log lines to slog, and its first
// fatal error to fatal.
type serverLog struct {
	log   *slog.Logger
	fatal chan string
}

func (l *serverLog) Noticef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *serverLog) Warnf(f string, v ...any)   { l.log.Warn(fmt.Sprintf(f, v...)) }
func (l *serverLog) Errorf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l *serverLog) Debugf(f string, v ...any)  {}
func (l *serverLog) Tracef(f string, v ...any)  {}

func (l *serverLog) Fatalf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	l.log.Error(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}
