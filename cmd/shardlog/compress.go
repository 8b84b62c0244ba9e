package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shardlog/shardlog/writer"
)

// compressFileCmd compresses one rotated file for the archiver, in a child
// process: see niceCompressor. It is hidden: people do not call it. It
// ignores SIGHUP: its process is named shardlog too, and a SIGHUP meant for
// the daemon (pkill -HUP shardlog after logrotate) must not cut it short.
func compressFileCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "compress-file ALGORITHM SRC DST",
		Short:  "Write SRC compressed (gzip or zstd) to DST, synced",
		Hidden: true,
		Args:   cobra.ExactArgs(3),
		RunE: func(_ *cobra.Command, args []string) error {
			signal.Ignore(syscall.SIGHUP)
			if err := writer.CompressFile(context.Background(), args[1], args[2], writer.Compression(args[0])); err != nil {
				return runtimeError{err}
			}
			return nil
		},
	}
}

// niceCompressor compresses in a child process (shardlog compress-file) at
// the lowest CPU priority, so that compression takes only the CPU the write
// path leaves: Go cannot lower one goroutine's priority, the kernel can
// lower a process's. The child dies with shardlog (Pdeathsig), and a
// canceled ctx kills it; the archiver then removes what it wrote. A child
// killed by SIGHUP (sent before it could ignore it) is started again.
func niceCompressor(ctx context.Context, src, dst string, c writer.Compression) error {
	self, err := os.Executable()
	if err != nil {
		return writer.CompressFile(ctx, src, dst, c)
	}
	for range 3 {
		err = compressChild(ctx, self, src, dst, c)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || ctx.Err() != nil {
			break
		}
		if ws, ok := exit.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGHUP {
			break
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("compress-file %s: %w", src, err)
	}
	return nil
}

// compressChild runs one shardlog compress-file child and waits for it.
func compressChild(ctx context.Context, self, src, dst string, c writer.Compression) error {
	cmd := exec.CommandContext(ctx, self, "compress-file", string(c), src, dst)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return writer.CompressFile(ctx, src, dst, c)
	}
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, 19)
	if err := cmd.Wait(); err != nil {
		return childError{err, bytes.TrimSpace(stderr.Bytes())}
	}
	return nil
}

// childError is a compress-file child's failure and what it said.
type childError struct {
	err    error
	stderr []byte
}

func (e childError) Error() string { return fmt.Sprintf("%v: %s", e.err, e.stderr) }
func (e childError) Unwrap() error { return e.err }
