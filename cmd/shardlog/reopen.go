package main

import (
	"log/slog"
	"time"

	"github.com/shardlog/shardlog/writer"
)

// reopens runs the reopens SIGHUP asks for in rounds, one at a time: a
// round asks every writer to reopen its file and, once all have answered,
// logs one line saying how many were reopened and how many failed (with
// the first error). A line per file would be 4096 lines a night at
// N=4096. A SIGHUP during a round starts another once it ends. Its owner
// (run's SIGHUP loop) calls start and, for each value received on
// replies, reply.
type reopens struct {
	log     *slog.Logger
	writers []*writer.Writer
	// replies receives each writer's answer in the round; it has room
	// for all of them, so that no writer waits.
	replies chan error

	running     bool
	again       bool // a SIGHUP came during the round
	pending     int  // answers still to come in the round
	failed      int
	first       error
	startedAt   time.Time
	reopenedAll int // files reopened in the round
}

// newReopens returns the rounds of reopens of writers' files.
func newReopens(log *slog.Logger, writers []*writer.Writer) *reopens {
	return &reopens{log: log, writers: writers, replies: make(chan error, len(writers))}
}

// start begins a round, or, if one is running, notes that another must
// follow it.
func (r *reopens) start() {
	if r.running {
		r.again = true
		return
	}
	r.running, r.pending, r.failed, r.first, r.reopenedAll = true, len(r.writers), 0, nil, 0
	r.startedAt = time.Now()
	for _, w := range r.writers {
		w.Reopen(r.replies)
	}
	if r.pending == 0 {
		r.end()
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
		r.reopenedAll++
	}
	if r.pending--; r.pending == 0 {
		r.end()
	}
}

// end logs the round's line and starts the next round if one was asked for.
func (r *reopens) end() {
	r.running = false
	took := time.Since(r.startedAt).Round(time.Millisecond)
	if r.failed > 0 {
		r.log.Warn("SIGHUP: reopened shard files; some failed and are retried", "reopened", r.reopenedAll,
			"failed", r.failed, "first_error", r.first, "took", took)
	} else {
		r.log.Info("SIGHUP: reopened shard files", "reopened", r.reopenedAll, "took", took)
	}
	if r.again {
		r.again = false
		r.start()
	}
}
