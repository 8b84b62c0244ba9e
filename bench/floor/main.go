// Command floor does the work shardlog's data path cannot avoid, in the
// simplest way, so that benchmarks can say how far shardlog is from it. It
// reads standard input in 256 KiB blocks and appends to N files
// shard-%03d.log in -d, in one of four modes, each adding one piece of
// work to the one before:
//
//	copy     each block written whole to the next file in turn: a read
//	         and a write copy, as dd pays (cat's copy_file_range costs
//	         about the same)
//	scan     each line found and copied into its file's 256 KiB buffer
//	         (line number mod N), a buffer written when full
//	hash     the line's file chosen as shardlog chooses it, with its own
//	         code (shard.Hasher's ShardLines): murmur3 of the line, seed 0,
//	         mod N, so the files equal shardlog run -n N's
//	writers  hash, with one goroutine per file doing its writes, buffers
//	         handed over channels: the least it takes to use two cores
//
// It has none of shardlog's guarantees (lines must be shorter than 256
// KiB; no flush on a timer, no rotation, no error handling beyond
// stopping):
//
//	bench/floor.sh runs it beside cat and shardlog, interleaved
//	go run ./bench/floor -mode hash -d /tmp/out < input.log
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/shardlog/shardlog/shard"
)

// blockBytes is the most one read takes, as shardlog's stdin source.
const blockBytes = 256 << 10

func main() {
	mode := flag.String("mode", "hash", "copy, scan, hash or writers")
	dir := flag.String("d", "", "directory of the files")
	n := flag.Int("n", 16, "number of files")
	flag.Parse()
	if err := run(*mode, *dir, *n, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// run appends in's lines to n files shard-%03d.log in dir as mode says.
func run(mode, dir string, n int, in io.Reader) error {
	switch mode {
	case "copy", "scan", "hash", "writers":
	default:
		return fmt.Errorf("mode %q: want copy, scan, hash or writers", mode)
	}
	outs := make([]*os.File, n)
	for k := range outs {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		outs[k] = f
	}
	switch mode {
	case "copy":
		return copyBlocks(in, outs)
	case "scan", "hash":
		w := direct(outs)
		return splitLines(in, n, mode == "hash", w)
	case "writers":
		w := newWriters(outs)
		err := splitLines(in, n, true, w.write)
		return errors.Join(err, w.close())
	}
	return nil
}

// copyBlocks writes each block read from in to the next of outs in turn.
func copyBlocks(in io.Reader, outs []*os.File) error {
	buf := make([]byte, blockBytes)
	for i := 0; ; i++ {
		m, err := in.Read(buf)
		if m > 0 {
			if _, werr := outs[i%len(outs)].Write(buf[:m]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// splitLines copies each line of in into its file's buffer and calls
// write with a full buffer; it returns the buffer write gives back. A file
// is line number mod n, or the line's murmur3 mod n with hash.
func splitLines(in io.Reader, n int, hash bool, write func(k int, b []byte) []byte) error {
	bufs := make([][]byte, n)
	for k := range bufs {
		bufs[k] = make([]byte, 0, blockBytes)
	}
	buf := make([]byte, 2*blockBytes)
	var ends, shards []int32
	hasher := shard.NewHasher(shard.Key{}, 0, n) // the whole line, seed 0
	carry, line := 0, 0
	for {
		m, err := in.Read(buf[carry : carry+blockBytes])
		data := buf[:carry+m]
		if err == io.EOF && len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		ends = ends[:0]
		for off := 0; ; {
			i := bytes.IndexByte(data[off:], '\n')
			if i < 0 {
				break
			}
			ends = append(ends, int32(off+i))
			off += i + 1
		}
		shards = append(shards[:0], make([]int32, len(ends))...)
		if hash {
			hasher.ShardLines(data, ends, shards)
		} else {
			for i := range shards {
				shards[i] = int32((line + i) % n)
			}
			line += len(ends)
		}
		start := 0
		for i, e := range ends {
			k, rec := shards[i], data[start:e+1]
			if len(bufs[k])+len(rec) > cap(bufs[k]) {
				bufs[k] = write(int(k), bufs[k])
			}
			bufs[k] = append(bufs[k], rec...)
			start = int(e) + 1
		}
		carry = copy(buf, data[start:])
		if carry >= blockBytes {
			return fmt.Errorf("a line of more than %d bytes", blockBytes)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	for k, b := range bufs {
		if len(b) > 0 {
			write(k, b)
		}
	}
	return nil
}

// direct returns a write function that writes in the calling goroutine.
func direct(outs []*os.File) func(int, []byte) []byte {
	return func(k int, b []byte) []byte {
		if _, err := outs[k].Write(b); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(1)
		}
		return b[:0]
	}
}

// writers owns one goroutine per file and a pool of buffers.
type writers struct {
	in   []chan []byte
	pool chan []byte
	wg   sync.WaitGroup
	err  chan error
}

// newWriters starts a goroutine per file of outs.
func newWriters(outs []*os.File) *writers {
	w := &writers{in: make([]chan []byte, len(outs)), pool: make(chan []byte, 3*len(outs)), err: make(chan error, len(outs))}
	for range 2 * len(outs) {
		w.pool <- make([]byte, 0, blockBytes)
	}
	for k, f := range outs {
		w.in[k] = make(chan []byte, 2)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for b := range w.in[k] {
				if _, err := f.Write(b); err != nil {
					select {
					case w.err <- err: // the first error is enough
					default:
					}
				}
				w.pool <- b[:0]
			}
		}()
	}
	return w
}

// write hands b to file k's goroutine and returns a free buffer.
func (w *writers) write(k int, b []byte) []byte {
	w.in[k] <- b
	return <-w.pool
}

// close waits until every buffer handed over is written.
func (w *writers) close() error {
	for _, c := range w.in {
		close(c)
	}
	w.wg.Wait()
	select {
	case err := <-w.err:
		return err
	default:
		return nil
	}
}
