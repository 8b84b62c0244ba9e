package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shardlog/shardlog/config"
)

// TestManPages checks the pages shardlog man writes (make install's):
// one per command that is installed, none for a completion script that is
// not; shardlog(1), the unit's documentation, documents every
// configuration key (with its default and variable), the environment,
// signals, exit status and files; and placeholders such as header:<name>
// survive into the roff. Where man(1) is installed, every page must
// render without a warning.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if res := shardlog(t, nil, nil, "man", dir); res.code != 0 {
		t.Fatalf("man: exit %d: %s", res.code, res.stderr)
	}
	read := func(name string) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}

	// The pages: what make install installs, and what the unit names.
	pages, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range pages {
		got[filepath.Base(p)] = true
	}
	want := []string{"shardlog.1", "shardlog-run.1", "shardlog-which.1", "shardlog-check-config.1", "shardlog-version.1",
		"shardlog-completion.1", "shardlog-cluster.1", "shardlog-cluster-create.1", "shardlog-cluster-show.1", "shardlog-cluster-delete.1",
		"shardlog-route.1", "shardlog-grep.1", "shardlog-verify.1", "shardlog-reshard.1"}
	// A completion page for each script make install installs.
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	shells := regexp.MustCompile(`bin/shardlog completion (\w+)`).FindAllSubmatch(makefile, -1)
	if len(shells) < 3 {
		t.Fatalf("the Makefile installs %d completion scripts", len(shells))
	}
	for _, m := range shells {
		want = append(want, "shardlog-completion-"+string(m[1])+".1")
	}
	for _, name := range want {
		if !got[name] {
			t.Errorf("no page %s", name)
		}
		delete(got, name)
	}
	for name := range got {
		t.Errorf("page %s, for nothing installed", name) // shardlog-completion-powershell.1 was one
	}
	unit, err := os.ReadFile("../deploy/shardlog.service")
	if err != nil {
		t.Fatal(err)
	}
	docs := regexp.MustCompile(`(?m)^Documentation=(.*)$`).FindSubmatch(unit)
	if docs == nil {
		t.Fatal("the unit has no Documentation=")
	}
	for _, m := range regexp.MustCompile(`man:([\w-]+)\((\d)\)`).FindAllStringSubmatch(string(docs[1]), -1) {
		if _, err := os.Stat(filepath.Join(dir, m[1]+"."+m[2])); err != nil {
			t.Errorf("the unit's Documentation= names %s(%s), which is not written: %v", m[1], m[2], err)
		}
	}

	main := read("shardlog.1")
	for _, section := range []string{"CONFIGURATION", "ENVIRONMENT", "SIGNALS", "EXIT STATUS", "FILES"} {
		if !strings.Contains(main, "\n.SH "+section+"\n") {
			t.Errorf("shardlog.1 has no section %s", section)
		}
	}
	keys := config.Keys()
	if len(keys) < 40 {
		t.Fatalf("config.Keys lists %d keys", len(keys))
	}
	for _, k := range keys {
		_, entry, ok := strings.Cut(main, ".TP\n\\fB"+k.Key+"\\fP\n")
		entry, _, _ = strings.Cut(entry, "\n.")
		entry = strings.ReplaceAll(entry, "\\&", "") // roff's zero-width escapes
		if !ok || !strings.Contains(entry, "Default: "+k.Default+". ") || !strings.Contains(entry, "Variable: "+k.Env+". ") {
			t.Errorf("shardlog.1 lacks key %s with its default %q and variable %s: %q", k.Key, k.Default, k.Env, entry)
		}
	}
	for _, s := range []string{"SIGINT", "SIGTERM", "SIGHUP", "A second", "\\fB0\\fP", "\\fB1\\fP", "\\fB2\\fP",
		".shardlog-routing.json", ".shardlog.lock", ".shardlog-torn/", "/etc/shardlog/shardlog.yaml", "shard-NNN.log"} {
		if !strings.Contains(main, s) {
			t.Errorf("shardlog.1 lacks %q", s)
		}
	}
	for _, page := range []string{"shardlog.1", "shardlog-run.1", "shardlog-which.1", "shardlog-check-config.1"} {
		if text := read(page); !strings.Contains(text, "header:<name>") || !strings.Contains(text, "json:<field>") {
			t.Errorf("%s lacks header:<name> or json:<field> as text", page)
		}
	}

	t.Run("rendered", func(t *testing.T) {
		if _, err := exec.LookPath("man"); err != nil {
			t.Skip("man is not installed (apt-get install man-db groff-base): the pages are not rendered")
		}
		for _, page := range want {
			cmd := exec.Command("man", "--warnings", "-l", filepath.Join(dir, page))
			cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8")
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil || errb.Len() > 0 {
				t.Errorf("man %s: %v: %s", page, err, errb.String())
			}
			if page == "shardlog.1" {
				if err := contains(out.String(), "header:<name>", "EXIT STATUS", "SHARDLOG_BATCH_MAX_DELAY"); err != nil {
					t.Error(err)
				}
			}
		}
	})
}
