package main

import (
	"log/slog"
	"time"

	"github.com/shardlog/shardlog/writer"
)

// reopens runs the reopens SIGHUP asks for in rounds: a round asks every
// writer to reopen its file and, once all have answered, logs one line
// saying how many were reopened and how many failed (with the first
// error). A line per file would be 4096 lines a night at N=4096. A SIGHUP
// during a round ends it, logging what has been answered and how many
// have not (a writer stuck in a system call), and starts another: one
// stuck writer does not keep the others from reopening. Its owner (run's
// SIGHUP loop) calls start and, for each value received on replies,
// reply; nothing else may use it.
type reopens struct {
	log     *slog.Logger
	writers []*writer.Writer
	// replies receives the current round's answers, nil between rounds.
	// Each round has its own, with room for every answer, so that no
	// writer ever waits to answer, even late.
	replies chan error

	pending, reopened, failed int // answers still to come, and those in
	first                     error
	startedAt                 time.Time
}

// newReopens returns the rounds of reopens of writers' files.
func newReopens(log *slog.Logger, writers []*writer.Writer) *reopens {
	return &reopens{log: log, writers: writers}
}

// start begins a round, ending the one under way, if any.
func (r *reopens) start() {
	if r.replies != nil {
		r.end()
	}
	r.replies = make(chan error, len(r.writers))
	r.pending, r.reopened, r.failed, r.first = len(r.writers), 0, 0, nil
	r.startedAt = time.Now()
	for _, w := range r.writers {
		w.Reopen(r.replies)
	}
}

// reply counts one writer's answer, err, and ends the round with the
// last one.
func (r *reopens) reply(err error) {
	if err != nil {
		r.failed++
		if r.first == nil {
			r.first = err
		}
	} else {
		r.reopened++
	}
	if r.pending--; r.pending == 0 {
		r.end()
	}
}

// end logs the round's line.
func (r *reopens) end() {
	r.replies = nil
	attrs := []any{"reopened", r.reopened, "took", time.Since(r.startedAt).Round(time.Millisecond)}
	if r.failed == 0 && r.pending == 0 {
		r.log.Info("SIGHUP: reopened shard files", attrs...)
		return
	}
	attrs = append(attrs, "failed", r.failed, "not_answered", r.pending)
	if r.first != nil {
		attrs = append(attrs, "first_error", r.first)
	}
	r.log.Warn("SIGHUP: reopened shard files, not all", attrs...)
}
