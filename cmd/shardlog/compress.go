package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shardlog/shardlog/writer"
)

// compressFileCmd compresses one rotated file for the archiver, in a child
// process: see niceCompressor. It is hidden: people do not call it.
func compressFileCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "compress-file ALGORITHM SRC DST",
		Short:  "Write SRC compressed (gzip or zstd) to DST, synced",
		Hidden: true,
		Args:   cobra.ExactArgs(3),
		RunE: func(_ *cobra.Command, args []string) error {
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
// canceled ctx kills it; the archiver then removes what it wrote.
func niceCompressor(ctx context.Context, src, dst string, c writer.Compression) error {
	self, err := os.Executable()
	if err != nil {
		return writer.CompressFile(ctx, src, dst, c)
	}
	cmd := exec.CommandContext(ctx, self, "compress-file", string(c), src, dst)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return writer.CompressFile(ctx, src, dst, c)
	}
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, 19)
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("compress-file %s: %v: %s", src, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}
