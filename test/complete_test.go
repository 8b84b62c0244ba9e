package test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestCompletionOffersValues checks that shell completion (cobra's hidden
// __complete command, which the installed bash, zsh and fish scripts
// call) offers the values of the flags that take one of a few, for every
// command that has them; and that the forms of --key that a name follows
// (header:, json:) get no space after them.
func TestCompletionOffersValues(t *testing.T) {
	cases := []struct {
		cmd, flag, typed string
		want             []string
		noSpace          bool
	}{
		{"run", "--sync", "", []string{"none", "interval", "batch"}, false},
		{"run", "--key", "", []string{"message", "subject", "header:", "json:"}, true},
		{"run", "--key", "j", []string{"json:"}, true},
		{"run", "--key", "m", []string{"message"}, false},
		{"run", "--rotate-compress", "", []string{"none", "gzip", "zstd"}, false},
		{"run", "--log-level", "", []string{"debug", "info", "warn", "error"}, false},
		{"run", "--log-format", "", []string{"text", "json"}, false},
		{"run", "--stdin", "", []string{"auto", "true", "false"}, false},
		{"check-config", "--sync", "", []string{"none", "interval", "batch"}, false},
		{"check-config", "--key", "", []string{"message", "subject", "header:", "json:"}, true},
		{"check-config", "--rotate-compress", "g", []string{"gzip"}, false},
		{"check-config", "--log-level", "", []string{"debug", "info", "warn", "error"}, false},
		{"check-config", "--log-format", "", []string{"text", "json"}, false},
		{"check-config", "--stdin", "", []string{"auto", "true", "false"}, false},
		{"which", "--key", "", []string{"message", "subject", "header:", "json:"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.cmd+" "+tc.flag+" "+tc.typed, func(t *testing.T) {
			res := shardlog(t, nil, nil, "__complete", tc.cmd, tc.flag, tc.typed)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
			last := lines[len(lines)-1]
			directive, err := strconv.Atoi(strings.TrimPrefix(last, ":"))
			if !strings.HasPrefix(last, ":") || err != nil {
				t.Fatalf("no directive line in %q", res.stdout)
			}
			if got := lines[:len(lines)-1]; !slices.Equal(got, tc.want) {
				t.Errorf("offered %q, want %q", got, tc.want)
			}
			d := cobra.ShellCompDirective(directive)
			if d&cobra.ShellCompDirectiveNoFileComp == 0 {
				t.Errorf("directive %d offers file names too", d)
			}
			if noSpace := d&cobra.ShellCompDirectiveNoSpace != 0; noSpace != tc.noSpace {
				t.Errorf("directive %d: no space %v, want %v", d, noSpace, tc.noSpace)
			}
		})
	}
}
