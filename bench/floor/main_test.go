package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardlog/shardlog/internal/murmur3ref"
)

// TestModes runs every mode on lines that span several blocks and checks
// what the files hold: every line once, in order, in the file its mode
// chose (murmur3 for hash and writers, the line number for scan), and the
// input whole across the files for copy.
func TestModes(t *testing.T) {
	const n = 5
	var in bytes.Buffer
	var lines []string
	for i := range 20000 {
		l := fmt.Sprintf("line %d %s", i, strings.Repeat("x", i%97))
		lines = append(lines, l)
		in.WriteString(l + "\n")
	}
	lines = append(lines, "last without newline")
	in.WriteString("last without newline")

	for _, mode := range []string{"copy", "scan", "hash", "writers"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			if err := run(mode, dir, n, bytes.NewReader(in.Bytes())); err != nil {
				t.Fatal(err)
			}
			got := make([][]byte, n)
			for k := range got {
				b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k)))
				if err != nil {
					t.Fatal(err)
				}
				got[k] = b
			}
			if mode == "copy" {
				if total := len(bytes.Join(got, nil)); total != in.Len() {
					t.Errorf("files hold %d bytes, want %d", total, in.Len())
				}
				return
			}
			want := make([][]byte, n)
			for i, l := range lines {
				k := i % n
				if mode != "scan" {
					k = int(murmur3ref.Sum32([]byte(l), 0) % n)
				}
				want[k] = append(append(want[k], l...), '\n')
			}
			for k := range want {
				if !bytes.Equal(got[k], want[k]) {
					t.Errorf("file %d: %d bytes, want %d", k, len(got[k]), len(want[k]))
				}
			}
		})
	}
}

// TestUnknownMode names the mode it refuses.
func TestUnknownMode(t *testing.T) {
	err := run("fast", t.TempDir(), 2, strings.NewReader(""))
	if err == nil || !strings.Contains(err.Error(), `"fast"`) {
		t.Errorf("err = %v, want one naming \"fast\"", err)
	}
}
