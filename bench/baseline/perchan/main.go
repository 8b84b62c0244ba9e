// Command perchan is the one-goroutine-per-file design without batched
// hand-offs: every message crosses a channel on its own to the goroutine that
// owns its file, which writes through a 64 KiB bufio.Writer.
//
//	perchan N OUTDIR < input
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
	files := baseline.OpenShards("perchan")
	n := len(files)
	chans := make([]chan []byte, n)
	var wg sync.WaitGroup
	for k, f := range files {
		chans[k] = make(chan []byte, 256)
		wg.Add(1)
		go func(ch chan []byte) {
			defer wg.Done()
			// A write error sticks to the writer; Flush reports it.
			w := bufio.NewWriterSize(f, 64<<10)
			for m := range ch {
				w.Write(m)
			}
			if err := w.Flush(); err != nil {
				fail(fmt.Errorf("write %s: %w", f.Name(), err))
			}
			if err := f.Close(); err != nil {
				fail(fmt.Errorf("close %s: %w", f.Name(), err))
			}
		}(chans[k])
	}
	sc := bufio.NewReaderSize(os.Stdin, 1<<20)
	for {
		line, err := sc.ReadBytes('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				line = append(line, '\n')
			}
			chans[murmur3.Sum32(line[:len(line)-1])%uint32(n)] <- line
		}
		if err != nil {
			if err != io.EOF {
				fail(fmt.Errorf("read standard input: %w", err))
			}
			break
		}
	}
	for _, ch := range chans {
		close(ch)
	}
	wg.Wait()
}

// fail prints err and exits 1.
func fail(err error) { baseline.Fail("perchan", err) }
