package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/shardlog/shardlog/config"
)

// warnEvery is how often one kind of warning or error (by its message) is
// logged at most; the lines left out are counted in the next one.
const warnEvery = 10 * time.Second

// newLogger returns shardlog's own logger: text (logfmt) or JSON on w, from
// the configured level, with warnings and errors rate-limited so that a
// storm (a full disk at N=4096, a slow consumer) logs one line per kind
// per warnEvery rather than one per shard or event.
func newLogger(w io.Writer, cfg config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Level.Level()}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Format == config.LogJSON {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(&rateLimited{next: h, every: warnEvery, state: &rateState{last: map[string]*rateSeen{}}})
}

// rateLimited passes records below Warn through, and of each warning or
// error message at most one per every, adding suppressed=N for those left
// out since the last one passed.
type rateLimited struct {
	next  slog.Handler
	every time.Duration
	state *rateState // shared by the handlers WithAttrs and WithGroup make
}

type rateState struct {
	mu   sync.Mutex
	last map[string]*rateSeen
}

type rateSeen struct {
	at         time.Time
	suppressed int
}

func (h *rateLimited) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *rateLimited) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	h.state.mu.Lock()
	s := h.state.last[r.Message]
	if s != nil && r.Time.Sub(s.at) < h.every {
		s.suppressed++
		h.state.mu.Unlock()
		return nil
	}
	n := 0
	if s != nil {
		n = s.suppressed
	}
	h.state.last[r.Message] = &rateSeen{at: r.Time}
	h.state.mu.Unlock()
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", n))
	}
	return h.next.Handle(ctx, r)
}

func (h *rateLimited) WithAttrs(as []slog.Attr) slog.Handler {
	return &rateLimited{next: h.next.WithAttrs(as), every: h.every, state: h.state}
}

func (h *rateLimited) WithGroup(name string) slog.Handler {
	return &rateLimited{next: h.next.WithGroup(name), every: h.every, state: h.state}
}
