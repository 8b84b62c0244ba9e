package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardlog/shardlog/writer"
)

// TestReopenRounds: a round of reopens logs one line once every writer has
// answered; a writer that does not answer (its loop stuck) does not keep
// later rounds from reopening the others, and is named in their lines.
func TestReopenRounds(t *testing.T) {
	dir := t.TempDir()
	var ws []*writer.Writer
	for k := range 3 {
		w, err := writer.Open(k, filepath.Join(dir, fmt.Sprintf("shard-%d.log", k)), writer.Options{Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	// Writers 0 and 1 run; writer 2's loop never runs: it stands for one
	// stuck in a system call.
	done := make(chan struct{})
	for _, w := range ws[:2] {
		go func() { _ = w.Run(); done <- struct{}{} }()
	}
	defer func() {
		for _, w := range ws[:2] {
			w.CloseInput()
		}
		<-done
		<-done
	}()
	var buf bytes.Buffer
	r := newReopens(slog.New(slog.NewTextHandler(&buf, nil)), ws)
	// answer hands the round its answers until only left are pending (or
	// the round ended).
	answer := func(left int) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for r.replies != nil && r.pending > left {
			select {
			case err := <-r.replies:
				r.reply(err)
			case <-deadline:
				t.Fatalf("%d answers pending after 30s, want %d", r.pending, left)
			}
		}
	}
	r.start()
	answer(1) // writer 2 does not answer: the round stays open
	if buf.Len() != 0 {
		t.Fatalf("a round logged before every writer answered: %s", buf.String())
	}
	r.start() // the next SIGHUP
	answer(0)
	if r.replies != nil {
		t.Fatal("the second round did not end")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one per round:\n%s", len(lines), buf.String())
	}
	for i, want := range [][]string{
		{"level=WARN", "reopened=2", "failed=0", "not_answered=1"},
		{"level=WARN", "reopened=2", "failed=1", "not_answered=0", "shard 2", "still pending"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("round %d: %q lacks %q", i+1, lines[i], w)
			}
		}
	}
}
