// Package baseline holds what the baseline programs under it share: their
// command line (N OUTDIR, the input on standard input) and their files.
package baseline

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// OpenShards reads the command line "N OUTDIR" of the program name, creates
// OUTDIR and opens OUTDIR/shard-%03d.log for each shard k < N, for
// appending. On a wrong command line it exits 2, on an error 1.
func OpenShards(name string) []*os.File {
	if len(os.Args) != 3 {
		fmt.Fprintf(os.Stderr, "usage: %s N OUTDIR < input\n", name)
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 1 {
		fmt.Fprintf(os.Stderr, "%s: N must be a positive integer, not %q\n", name, os.Args[1])
		os.Exit(2)
	}
	dir := os.Args[2]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		Fail(name, fmt.Errorf("create directory %s: %w", dir, err))
	}
	files := make([]*os.File, n)
	for k := range files {
		path := filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k))
		if files[k], err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			Fail(name, fmt.Errorf("open %s: %w", path, err))
		}
	}
	return files
}

// Fail prints err, after the program's name, and exits 1.
func Fail(name string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(1)
}
