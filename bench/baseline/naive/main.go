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
	"sync"

	"github.com/spaolacci/murmur3"

	"github.com/shardlog/shardlog/bench/baseline"
)

func main() {
	files := baseline.OpenShards("naive")
	n := len(files)
	locks := make([]sync.Mutex, n)
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
func fail(err error) { baseline.Fail("naive", err) }
