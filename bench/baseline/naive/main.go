// Command naive is the lock-per-write baseline: a pool of goroutines takes
// messages one at a time and appends each with its own write(2) under the
// file's mutex. The pool reorders messages, so a file's lines are not in
// input order (check its output with bench/check -unordered).
//
//	naive N OUTDIR < input
//
// It appends each message of standard input to OUTDIR/shard-%03d.log, the
// shard being murmur3_32(message, 0) mod N: a baseline for bench/compare.sh.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/spaolacci/murmur3"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: naive N OUTDIR < input")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 1 {
		fmt.Fprintf(os.Stderr, "naive: N must be a positive integer, not %q\n", os.Args[1])
		os.Exit(2)
	}
	dir := os.Args[2]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail(fmt.Errorf("create directory %s: %w", dir, err))
	}
	files := make([]*os.File, n)
	locks := make([]sync.Mutex, n)
	for k := range files {
		path := filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fail(fmt.Errorf("open %s: %w", path, err))
		}
		files[k] = f
	}
	msgs := make(chan []byte, 1024)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range msgs {
				k := murmur3.Sum32(m[:len(m)-1]) % uint32(n)
				locks[k].Lock()
				_, err := files[k].Write(m)
				locks[k].Unlock()
				if err != nil {
					fail(fmt.Errorf("write %s: %w", files[k].Name(), err))
				}
			}
		}()
	}
	sc := bufio.NewReaderSize(os.Stdin, 1<<20)
	for {
		line, err := sc.ReadBytes('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				line = append(line, '\n')
			}
			msgs <- line
		}
		if err != nil {
			if err != io.EOF {
				fail(fmt.Errorf("read standard input: %w", err))
			}
			break
		}
	}
	close(msgs)
	wg.Wait()
	for _, f := range files {
		if err := f.Close(); err != nil {
			fail(fmt.Errorf("close %s: %w", f.Name(), err))
		}
	}
}

// fail prints err and exits 1.
func fail(err error) {
	fmt.Fprintln(os.Stderr, "naive:", err)
	os.Exit(1)
}
