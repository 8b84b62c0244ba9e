package writer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReopenAnswers: Reopen answers on its channel once the file is
// reopened, or with why not; the writer logs such reopens at Debug level
// only (its owner reports them in one line), while a vanished file's
// reopen is logged at Info.
func TestReopenAnswers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shard-000.log")
	log := &logBuffer{}
	w, err := Open(0, path, Options{CheckEvery: time.Hour, Log: log.logger()})
	must(t, err)
	stop := run(w)
	defer stop()
	done := make(chan error, 1)
	must(t, os.Rename(path, path+".1"))
	w.Reopen(done)
	if err := <-done; err != nil {
		t.Fatalf("reopen: %v, want nil", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the file was not made again: %v", err)
	}
	// A directory where the file was: the reopen fails, and says why.
	must(t, os.Rename(path, path+".2"))
	must(t, os.Mkdir(path, 0o755))
	w.Reopen(done)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "shard 0") {
		t.Errorf("reopen onto a directory: %v, want an error naming the shard", err)
	}
	must(t, os.Remove(path))
	if log.contains("level=INFO msg=\"reopened shard file\"") {
		t.Error("a reopen asked for was logged at Info")
	}
}
