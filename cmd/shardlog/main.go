// Command shardlog writes a stream of log messages into N files, each
// message to the file chosen by a murmur3 hash of it mod N.
//
//	app | shardlog run -n 16 -d /var/log/app
//
// See README.md for the commands and configuration.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/shardlog/shardlog/config"
)

// Exit statuses, part of shardlog's contract.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// runtimeError marks a failure while running, as opposed to a usage or
// configuration error: shardlog exits with status 1.
type runtimeError struct{ err error }

func (e runtimeError) Error() string { return e.err.Error() }
func (e runtimeError) Unwrap() error { return e.err }

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

// execute runs the command line args and returns the exit status.
func execute(args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "shardlog",
		Short:         "Write a stream of log messages into N files, by murmur3 hash mod N",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetVersionTemplate("shardlog {{.Version}}\n")
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &config.Error{Err: fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	root.AddCommand(runCmd(stderr), whichCmd(os.Stdin, stdout, stderr), checkConfigCmd(stdout), versionCmd(stdout), manCmd(), compressFileCmd(), clusterCmd(stdout, stderr), routeCmd(stderr))
	root.AddCommand(grepCmd(stdout, stderr))
	root.AddCommand(verifyCmd(stdout, stderr), reshardCmd(stderr))
	registerCompletions(root)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	if st := exitStatus(0); errors.As(err, &st) {
		return int(st)
	}
	fmt.Fprintln(stderr, "shardlog:", err)
	if errors.As(err, new(runtimeError)) {
		return exitRuntime
	}
	return exitUsage
}

func versionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintln(stdout, "shardlog", version())
		},
	}
}

// stampedVersion is set at build time by the Makefile (go build -ldflags
// "-X main.stampedVersion=$(git describe)"); a plain go build leaves it
// empty and the module's version, (devel) in a checkout, is shown.
var stampedVersion string

// version returns the version stamped at build time, or the module
// version, with the VCS revision and the Go version.
func version() string { return buildVersion() + " " + runtime.Version() }

// buildVersion returns the version stamped at build time, or the module
// version with the VCS revision.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if stampedVersion != "" {
		return stampedVersion
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v
}

// exitStatus is an error that only sets the exit status: grep's 1 for
// "nothing found", or verify's 1 for findings, is no failure to report.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
