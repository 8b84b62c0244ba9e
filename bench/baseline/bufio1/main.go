// Command bufio1 is the simple sequential Go way: one goroutine, one 64 KiB
// bufio.Writer per file, flushed at the end. Fast, but it does not stream
// (a quiet shard's lines sit in memory until its buffer fills).
//
//	bufio1 N OUTDIR < input
//
// It appends each message of standard input to OUTDIR/shard-%03d.log, the
// shard being murmur3_32(message, 0) mod N: a baseline for bench/compare.sh.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/spaolacci/murmur3"

	"github.com/shardlog/shardlog/bench/baseline"
)

func main() {
	fs := baseline.OpenShards("bufio1")
	n := len(fs)
	ws := make([]*bufio.Writer, n)
	for k, f := range fs {
		ws[k] = bufio.NewWriterSize(f, 64<<10)
	}
	sc := bufio.NewReaderSize(os.Stdin, 1<<20)
	for {
		line, err := sc.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: gather it whole.
			rest, err2 := sc.ReadBytes('\n')
			line, err = append(append([]byte(nil), line...), rest...), err2
		}
		if len(line) > 0 {
			msg := line
			if msg[len(msg)-1] == '\n' {
				msg = msg[:len(msg)-1]
			}
			// A write error sticks to the writer; Flush reports it.
			w := ws[murmur3.Sum32(msg)%uint32(n)]
			w.Write(msg)
			w.WriteByte('\n')
		}
		if err != nil {
			if err != io.EOF {
				fail(fmt.Errorf("read standard input: %w", err))
			}
			break
		}
	}
	for k := range ws {
		if err := ws[k].Flush(); err != nil {
			fail(fmt.Errorf("write %s: %w", fs[k].Name(), err))
		}
		if err := fs[k].Close(); err != nil {
			fail(fmt.Errorf("close %s: %w", fs[k].Name(), err))
		}
	}
}

// fail prints err and exits 1.
func fail(err error) { baseline.Fail("bufio1", err) }
