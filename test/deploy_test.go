package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardlog/shardlog/writer"
)

// TestMakeInstall installs into a DESTDIR as a packager would: the binary,
// the unit running it, the configuration (kept if there is one), man pages
// and completions.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("SKIP: make not installed")
	}
	dest := t.TempDir()
	install := func() string {
		cmd := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest, "PREFIX=/usr/local")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make install: %v: %s", err, out)
		}
		return string(out)
	}
	install()
	files := []string{
		"usr/local/bin/shardlog",
		"usr/local/lib/systemd/system/shardlog.service",
		"usr/local/lib/sysusers.d/shardlog.conf",
		"etc/shardlog/shardlog.yaml",
		"usr/local/share/man/man1/shardlog.1",
		"usr/local/share/man/man1/shardlog-run.1",
		"usr/local/share/bash-completion/completions/shardlog",
		"usr/local/share/zsh/site-functions/_shardlog",
		"usr/local/share/fish/vendor_completions.d/shardlog.fish",
	}
	for _, f := range files {
		if fi, err := os.Stat(filepath.Join(dest, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s not installed (%v)", f, err)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "usr/local/lib/systemd/system/shardlog.service"))
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/shardlog run -c /etc/shardlog/shardlog.yaml")) {
		t.Errorf("the unit does not run the installed binary")
	}
	// The unit's user (User=shardlog) is made by systemd-sysusers from the
	// installed sysusers.d file.
	if sysusers, err := exec.LookPath("systemd-sysusers"); err == nil {
		root := t.TempDir()
		if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dest, "usr/local/lib/sysusers.d/shardlog.conf")
		if out, err := exec.Command(sysusers, "--root="+root, conf).CombinedOutput(); err != nil {
			t.Errorf("systemd-sysusers %s: %v: %s", conf, err, out)
		}
		if passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); !bytes.HasPrefix(passwd, []byte("shardlog:")) {
			t.Errorf("systemd-sysusers made no user shardlog: passwd %q", passwd)
		}
	}
	man, _ := os.ReadFile(filepath.Join(dest, "usr/local/share/man/man1/shardlog-run.1"))
	if !bytes.Contains(man, []byte("shards")) {
		t.Errorf("shardlog-run.1 does not document the flags")
	}
	out, err := exec.Command(filepath.Join(dest, "usr/local/bin/shardlog"), "version").Output()
	if err != nil || !regexp.MustCompile(`^shardlog \S+ go1\.`).Match(out) || bytes.Contains(out, []byte("(devel)")) {
		t.Errorf("installed version: %q %v; want a version stamped from git", out, err)
	}
	// An operator's configuration survives a reinstall.
	conf := filepath.Join(dest, "etc/shardlog/shardlog.yaml")
	if err := os.WriteFile(conf, []byte("shards: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := install(); !strings.Contains(out, "kept") {
		t.Errorf("make install did not say it kept the configuration: %s", out)
	}
	if got, _ := os.ReadFile(conf); string(got) != "shards: 4\n" {
		t.Errorf("reinstall overwrote the configuration: %q", got)
	}
}

// TestUnitFile checks deploy/shardlog.service with systemd's own tools:
// systemd-analyze verify accepts it, and security rates it OK or better.
func TestUnitFile(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIP: systemd-analyze not installed (Debian package systemd; .ci/run installs it)")
	}
	unit, err := os.ReadFile("../deploy/shardlog.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "WatchdogSec=",
		"LimitNOFILE=65536", "TimeoutStopSec=", "User=shardlog", "Group=adm", "LogsDirectory=shardlog", "LogsDirectoryMode=0750",
		"ProtectSystem=strict"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("the unit lacks %s", want)
		}
	}
	// verify checks that ExecStart's binary exists: point it at the one
	// under test.
	dir := t.TempDir()
	path := filepath.Join(dir, "shardlog.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/shardlog"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v: %s", err, out)
	}
	out, err := exec.Command(analyze, "security", "--offline=true", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v: %s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for shardlog.service: ([\d.]+) (\w+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no rating in: %s", out)
	}
	if rating := string(m[2]); rating != "OK" && rating != "SAFE" {
		t.Errorf("exposure %s %s, want OK or SAFE", m[1], rating)
	}
	t.Logf("systemd-analyze security: %s %s", m[1], m[2])
}

// TestLogrotateConf checks deploy/logrotate.conf against shardlog: its
// create mode is file_mode's default (owner and group left to those of the
// file rotated), and the fallback that signals shardlog when systemctl
// cannot (pkill) matches a running "shardlog run" but not a
// "shardlog compress-file" child, whose process is named shardlog too.
func TestLogrotateConf(t *testing.T) {
	conf, err := os.ReadFile("../deploy/logrotate.conf")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("\tcreate %04o\n", writer.DefaultFileMode); !bytes.Contains(conf, []byte(want)) {
		t.Errorf("logrotate.conf lacks %q (file_mode's default, owner and group as the rotated file's)", want)
	}
	var pgrep string
	for _, line := range strings.Split(string(conf), "\n") {
		for _, cmd := range strings.Split(line, " || ") {
			if cmd = strings.TrimSpace(cmd); strings.HasPrefix(cmd, "pkill -HUP ") {
				pgrep = strings.Replace(cmd, "pkill -HUP", "pgrep", 1)
			}
		}
	}
	if pgrep == "" {
		t.Fatal("no pkill -HUP fallback in logrotate.conf's postrotate")
	}
	if _, err := exec.LookPath("pgrep"); err != nil {
		t.Skip("SKIP: pgrep not installed (Debian package procps)")
	}
	d := start(t, "run", "-n", "2", "-d", t.TempDir())
	// A compress-file child, held open on a FIFO it waits to read.
	dir := t.TempDir()
	fifo := filepath.Join(dir, "rotated")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(bin, "compress-file", "gzip", fifo, fifo+".gz")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	childDone := make(chan struct{})
	go func() { _ = child.Wait(); close(childDone) }()
	t.Cleanup(func() { _ = child.Process.Kill(); <-childDone })
	waitFor(t, "both processes to run", 30*time.Second, func() bool {
		self, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child.Process.Pid))
		return d.stderr.Contains("started") && bytes.Contains(self, []byte("compress-file"))
	})
	out, _ := exec.Command("sh", "-c", pgrep).Output() // exit 1: no match
	pids := strings.Fields(string(out))
	if !slices.Contains(pids, strconv.Itoa(d.cmd.Process.Pid)) {
		t.Errorf("%s does not match the running shardlog run (PID %d); it matched %v", pgrep, d.cmd.Process.Pid, pids)
	}
	if slices.Contains(pids, strconv.Itoa(child.Process.Pid)) {
		t.Errorf("%s matches a shardlog compress-file child (PID %d): logrotate's fallback would signal it", pgrep, child.Process.Pid)
	}
	d.stdin.Close()
	if code := d.wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit %d: %s", code, d.stderr.String())
	}
}
