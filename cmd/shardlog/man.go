package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/shardlog/shardlog/config"
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
				return runtimeError{fmt.Errorf("man pages: %w", err)}
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			prepareMan(root)
			header := &doc.GenManHeader{Title: "SHARDLOG", Section: "1", Source: "shardlog " + buildVersion(), Manual: "shardlog manual"}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return runtimeError{fmt.Errorf("man pages: %w", err)}
			}
			return nil
		},
	}
}

// completionInstalled reports whether make install installs the
// completion script for shell; the others get no man page.
func completionInstalled(shell string) bool {
	switch shell {
	case "bash", "zsh", "fish":
		return true
	}
	return false
}

// prepareMan readies the command tree for cobra/doc, which renders its
// texts as Markdown: placeholders such as header:<name> are escaped, so
// that they are not taken for HTML and dropped; completion commands for
// shells whose script is not installed are hidden; and shardlog(1) gets
// the reference sections (configuration keys, environment, signals, exit
// status, files). It changes the tree for good: call it only to write
// the pages.
func prepareMan(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Short, c.Long = escapeMarkdown(c.Short), escapeMarkdown(c.Long)
		c.Flags().VisitAll(func(f *pflag.Flag) { f.Usage = escapeMarkdown(f.Usage) })
		if c.Parent() != nil && c.Parent().Name() == "completion" && !completionInstalled(c.Name()) {
			c.Hidden = true
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if root.Long == "" {
		root.Long = "shardlog writes a stream of log messages, from standard input or NATS subjects, into N files: " +
			"each message goes to the file chosen by a murmur3 hash of it (or of a key taken from it) mod N, " +
			"so that the files are the ones a mmh3.hash(line, signed=False) % N script would write. " +
			"**shardlog run** is the daemon (**shardlog-run**(1)); **shardlog which** names the file a key's messages go to; " +
			"**shardlog check-config** checks a configuration and shows where each value came from; " +
			"**shardlog cluster** creates, shows and deletes the layout of a cluster over NATS JetStream; " +
			"**shardlog route** routes standard input or NATS input as run does and publishes the batches to a cluster's stream; " +
			"**shardlog grep** prints a key's records, reading only its shard's files; " +
			"**shardlog verify** checks that every record of a directory is in its shard; " +
			"**shardlog reshard** rewrites a directory into another number of shards."
	}
	root.Long += "\n\n" + manReference()
}

// escapeMarkdown escapes the characters of s that Markdown would take for
// markup (HTML tags, emphasis, code, links), so that s renders as written.
func escapeMarkdown(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_<>[]&", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// manReference returns the reference sections of shardlog(1), in Markdown:
// the configuration keys come from the config package, so that every key
// it knows is listed, with its default, flags and variable.
func manReference() string {
	var b strings.Builder
	b.WriteString(`# CONFIGURATION
Each setting is a configuration key. Its value comes from, lowest first: the default, the YAML file given with **-c** (under systemd, */etc/shardlog/shardlog.yaml*), the key's **SHARDLOG_** variable (see ENVIRONMENT), and a flag of **run** or **check-config**, when given. In the file, a key with dots is written in sections: **batch.max_delay** is *max_delay* under *batch*. **shardlog check-config** prints every value and where it came from.

Sizes are a whole number of bytes or one with the unit B, KiB, MiB, GiB or TiB (powers of 1024); 1MB, 10k and 1mib are refused. Durations take Go's units (200ms, 1s, 24h). Booleans are true or false. An unknown key (with the nearest known ones suggested), a value of the wrong type, a key with no value, or a file that is not YAML (naming its line) is a configuration error.

`)
	for _, k := range config.Keys() {
		fmt.Fprintf(&b, "**%s**\n: ", escapeMarkdown(k.Key))
		fmt.Fprintf(&b, "Default: %s. ", escapeMarkdown(k.Default))
		if len(k.Flags) > 0 {
			fmt.Fprintf(&b, "Flag: %s. ", escapeMarkdown(strings.Join(k.Flags, ", ")))
		}
		fmt.Fprintf(&b, "Variable: %s. %s\n\n", escapeMarkdown(k.Env), escapeMarkdown(k.Meaning))
	}
	b.WriteString(`# ENVIRONMENT
**SHARDLOG_**_KEY_
: Sets the configuration key _KEY_, written in upper case with **\_** for **.**: **SHARDLOG_BATCH_MAX_DELAY=20ms** sets **batch.max_delay**. Each key's variable is listed under CONFIGURATION. A variable overrides the file and is overridden by a flag. An unknown **SHARDLOG_** variable (with the nearest known ones suggested), or one set to nothing (**SHARDLOG_SHARDS=**; unset it to get the default), is a configuration error.

# SIGNALS
**SIGINT**, **SIGTERM**
: Stop: stop reading, write everything already read (NATS: what the client holds; JetStream messages are acknowledged once written), close the files, stop the embedded NATS server last, and exit 0. A writer waiting for disk space is given **shutdown_timeout**; then shardlog gives up on what it could not write and exits 1, naming how many records were not written.

A second **SIGINT** or **SIGTERM**
: Stop waiting at once: give up on what is not written yet, cut any partly written batch off its file (kept in *.shardlog-torn/*), so that every file ends with a whole record, and exit 1 naming how many records were not written. If the files cannot be cut back within 5 s, shardlog exits regardless; the next start repairs them.

**SIGHUP**
: Reopen every shard file by name, creating it if missing, each between two batches: for logrotate's create mode (the unit's **ExecReload**).

**SIGPIPE**
: Ignored: a reader of shardlog's own log that went away loses the log lines; the data path goes on.

# EXIT STATUS
**0**
: Done: standard input ended (or a stop was asked for) and every record read was written.

**1**
: A runtime failure: a read or write that failed for good (naming the shard, the file and how many records were not written), a stop that gave up, or NATS refusing the connection at startup.

**2**
: A usage or configuration error: the message names the flag, key or variable and the value. Nothing has been written.

**shardlog grep** exits as grep does: 0 when a record was found, 1 when none, 2 on an error (**shardlog-grep**(1)).

**shardlog verify** exits 0 when it found nothing, 1 with findings, 2 on an error (**shardlog-verify**(1)); **shardlog reshard** exits 1 when interrupted (**shardlog-reshard**(1)).

# FILES
*DIR/shard-NNN.log*
: The shard files: **dir** and **file_pattern**; opened for appending. Rotated files are named *FILE.UTC-TIME* (with *.1*, *.2* should a name be taken), and *.gz* or *.zst* once compressed.

*DIR/.shardlog-routing.json*
: The routing the files were written with (shards, seed, key, file pattern). A start with another is refused unless **allow_routing_change**; **which** uses it.

*DIR/.shardlog.lock*
: Held locked (flock) by the running shardlog, with its PID inside: a second instance on the directory is refused.

*DIR/.shardlog-torn/*
: The bytes cut off a shard file's end: a record torn by a crash, cut back at start, or a batch cut short by a stop that gave up.

*/etc/shardlog/shardlog.yaml*
: The configuration the systemd unit runs with (**-c**); *make install* puts the example there unless one is there.
`)
	return b.String()
}
