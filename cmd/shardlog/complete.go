package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/shardlog/shardlog/config"
)

// registerCompletions makes the shell completion of every command's flags
// offer what they take: for a flag whose key takes one of a few values,
// those values, from the config package's own lists; for -c, YAML files;
// for -d, directories.
func registerCompletions(root *cobra.Command) {
	for _, c := range root.Commands() {
		for flag, key := range config.Flags {
			values := config.Choices(key)
			if values == nil || c.Flags().Lookup(flag) == nil {
				continue
			}
			// Registering twice is the only error, and each flag of
			// each command is registered once here.
			_ = c.RegisterFlagCompletionFunc(flag, completeValues(values))
		}
		if c.Flags().Lookup("config") != nil {
			_ = c.MarkFlagFilename("config", "yaml", "yml")
		}
		if c.Flags().Lookup("dir") != nil {
			_ = c.MarkFlagDirname("dir")
		}
	}
}

// completeValues returns a completion function offering the values that
// begin with what was typed. A value ending in ':' (json:, header:) is a
// prefix to which a name is added: while one is offered, the shell adds
// no space after the completion.
func completeValues(values []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, typed string) ([]string, cobra.ShellCompDirective) {
		var out []string
		directive := cobra.ShellCompDirectiveNoFileComp
		for _, v := range values {
			if strings.HasPrefix(v, typed) {
				out = append(out, v)
				if strings.HasSuffix(v, ":") {
					directive |= cobra.ShellCompDirectiveNoSpace
				}
			}
		}
		return out, directive
	}
}
