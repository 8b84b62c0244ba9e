package main

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

// statusEvery is how often STATUS= is sent to systemd.
const statusEvery = 5 * time.Second

// notifier tells systemd (sd_notify, when NOTIFY_SOCKET is set) how
// shardlog is doing: READY=1, RELOADING=1, STOPPING=1, a STATUS= line every
// few seconds, and WATCHDOG=1 at half the watchdog interval, sent only
// while every writer's loop answers, so that a shardlog stuck in a system
// call is restarted. A writer waiting for disk space answers: it is not
// stuck, and a restart would not help.
type notifier struct {
	log     *slog.Logger
	writers []*writer.Writer
	routers []*shard.Router

	mu      sync.Mutex // start and stop may race: a failing input stops before the start
	done    chan struct{}
	stopped bool
	wg      sync.WaitGroup
}

// notify sends state to systemd; without NOTIFY_SOCKET it does nothing.
func (n *notifier) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Debug("sd_notify", "state", state, "err", err)
	}
}

// start sends READY=1 and starts the status and watchdog loop, unless stop
// came first.
func (n *notifier) start() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	n.done = make(chan struct{})
	n.notify(daemon.SdNotifyReady + "\n" + n.status())
	watchdog, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("systemd watchdog settings", "err", err)
	}
	n.wg.Go(func() {
		status := time.NewTicker(statusEvery)
		defer status.Stop()
		var pings <-chan time.Time
		if watchdog > 0 {
			t := time.NewTicker(watchdog / 2)
			defer t.Stop()
			pings = t.C
		}
		for {
			select {
			case <-status.C:
				n.notify(n.status())
			case <-pings:
				if n.alive(watchdog / 4) {
					n.notify(daemon.SdNotifyWatchdog)
				}
			case <-n.done:
				return
			}
		}
	})
}

// alive reports whether every writer answers within timeout; it logs the
// first that does not.
func (n *notifier) alive(timeout time.Duration) bool {
	for _, w := range n.writers {
		if !w.Answers(timeout) {
			n.log.Error("a shard writer does not answer (stuck in a system call?): withholding the watchdog ping", "path", w.Path())
			return false
		}
	}
	return true
}

// status returns a STATUS= line: records received and written, and
// whether any writer waits (for disk space).
func (n *notifier) status() string {
	var routed, records, bytes int64
	for _, r := range n.routers {
		st, _ := r.Live()
		routed += st.Records
	}
	waiting := 0
	for _, w := range n.writers {
		st, wt := w.Live()
		records, bytes = records+st.Records, bytes+st.Bytes
		if wt {
			waiting++
		}
	}
	s := fmt.Sprintf("STATUS=%d records in, %d written (%d bytes) to %d files", routed, records, bytes, len(n.writers))
	if waiting > 0 {
		s += fmt.Sprintf("; BLOCKED: %d files waiting for disk space", waiting)
	}
	return s
}

// reloading brackets a reopen of the files (SIGHUP) for systemd.
func (n *notifier) reloading(reopen func()) {
	n.notify(daemon.SdNotifyReloading)
	reopen()
	n.notify(daemon.SdNotifyReady)
}

// stop sends STOPPING=1 and stops the loop.
func (n *notifier) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	n.stopped = true
	n.notify(daemon.SdNotifyStopping)
	if n.done != nil {
		close(n.done)
		n.wg.Wait()
	}
}
