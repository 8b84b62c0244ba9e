package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manCmd writes the man pages of every command into a directory, for
// make install. It is hidden: people read the pages, not this.
func manCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return runtimeError{err}
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			header := &doc.GenManHeader{Title: "SHARDLOG", Section: "1", Source: "shardlog " + version(), Manual: "shardlog manual"}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return runtimeError{fmt.Errorf("man pages: %w", err)}
			}
			return nil
		},
	}
}
