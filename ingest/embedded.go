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
	srv.SetLogger(serverLog{log.With("component", "nats-server")}, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server on %s: not ready after 10s", cfg.EmbeddedListen)
	}
	log.Info("embedded NATS server listening", "url", srv.ClientURL(), "jetstream", opts.JetStream)
	return srv, nil
}

// serverLog passes the embedded server's log lines to slog.
type serverLog struct{ log *slog.Logger }

func (l serverLog) Noticef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l serverLog) Warnf(f string, v ...any)   { l.log.Warn(fmt.Sprintf(f, v...)) }
func (l serverLog) Fatalf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l serverLog) Errorf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l serverLog) Debugf(f string, v ...any)  {}
func (l serverLog) Tracef(f string, v ...any)  {}
