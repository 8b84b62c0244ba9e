package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shardlog/shardlog/config"
)

// TestLogStormIsRateLimited: a storm of one warning logs one line per
// interval, the next one counting those left out; info lines and other
// warnings pass.
func TestLogStormIsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	h := newLogger(&buf, config.Log{Format: config.LogText, Level: "info"}).Handler()
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	log := func(at time.Duration, level slog.Level, msg string) {
		r := slog.NewRecord(t0.Add(at), level, msg, 0)
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 1000 {
		log(time.Duration(i)*time.Millisecond, slog.LevelWarn, "disk full")
		log(time.Duration(i)*time.Millisecond, slog.LevelInfo, "reopened")
	}
	log(time.Second, slog.LevelError, "slow consumer")
	log(warnEvery+time.Second, slog.LevelWarn, "disk full")
	out := buf.String()
	if n := strings.Count(out, "disk full"); n != 2 {
		t.Errorf("%d lines of the storm, want 2:\n%s", n, out)
	}
	if !strings.Contains(out, "suppressed=999") {
		t.Errorf("the second line does not count the 999 left out:\n%s", out)
	}
	if n := strings.Count(out, "reopened"); n != 1000 {
		t.Errorf("%d info lines, want all 1000", n)
	}
	if !strings.Contains(out, "slow consumer") {
		t.Errorf("another warning was held back")
	}
}

func TestLogJSON(t *testing.T) {
	var buf bytes.Buffer
	newLogger(&buf, config.Log{Format: config.LogJSON, Level: "warn"}).Info("hidden")
	newLogger(&buf, config.Log{Format: config.LogJSON, Level: "warn"}).Warn("shown", "shard", 3)
	if got := buf.String(); strings.Contains(got, "hidden") || !strings.Contains(got, `"msg":"shown","shard":3`) {
		t.Errorf("log %q", got)
	}
}
