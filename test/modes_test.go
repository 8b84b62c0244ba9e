package test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// startUmask starts shardlog as start does, but with umask set to mask
// (octal, as the shell's umask takes it).
func startUmask(t *testing.T, mask string, env []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command("/bin/sh", append([]string{"-c", "umask " + mask + ` && exec "$0" "$@"`, bin}, args...)...)}
	d.cmd.Env = append(os.Environ(), env...)
	var err error
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	d.launch(t)
	return d
}

// otherGroup returns the name and ID of a group, other than the test's,
// that shardlog (run by the test's user) may give its files, or skips.
func otherGroup(t *testing.T) (string, int) {
	t.Helper()
	var gids []int
	if os.Geteuid() == 0 {
		for _, name := range []string{"adm", "daemon", "bin", "sys", "users", "nogroup"} {
			if g, err := user.LookupGroup(name); err == nil {
				id, _ := strconv.Atoi(g.Gid)
				gids = append(gids, id)
			}
		}
	} else {
		gids, _ = os.Getgroups()
	}
	for _, id := range gids {
		if id == os.Getegid() {
			continue
		}
		if g, err := user.LookupGroupId(strconv.Itoa(id)); err == nil {
			return g.Name, id
		}
	}
	t.Skip("SKIP: no group other than the test's that shardlog may give files")
	return "", 0
}

// TestFileModes: whatever the umask, everything shardlog creates (the
// directory and its parents, shard files, rotated and compressed files,
// the routing record, the lock, .shardlog-torn and what it keeps) gets
// file_mode or dir_mode, and file_group if set; an existing file keeps
// its mode.
func TestFileModes(t *testing.T) {
	group, gid := otherGroup(t)
	for _, tc := range []struct {
		name      string
		umask     string
		args, env []string
		file, dir fs.FileMode
		gid       int // -1: the test's
	}{
		{"defaults, umask 000", "000", nil, nil, 0o640, 0o750, -1},
		{"defaults, umask 022", "022", nil, nil, 0o640, 0o750, -1},
		{"flags and a group by name, umask 000", "000", []string{"--file-mode", "0600", "--dir-mode", "0700", "--file-group", group}, nil, 0o600, 0o700, gid},
		{"environment and a group by ID, umask 077", "077", nil,
			[]string{"SHARDLOG_FILE_MODE=0644", "SHARDLOG_DIR_MODE=0755", "SHARDLOG_FILE_GROUP=" + strconv.Itoa(gid)}, 0o644, 0o755, gid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.gid
			if want < 0 {
				want = os.Getegid()
			}
			top := filepath.Join(t.TempDir(), "new")
			dir := filepath.Join(top, "out")
			args := append([]string{"run", "-n", "2", "-d", dir, "--batch-max-delay", "10ms",
				"--rotate-max-bytes", "256KiB", "--rotate-compress", "gzip"}, tc.args...)
			d := startUmask(t, tc.umask, tc.env, args...)
			if _, err := d.stdin.Write(lines("mode", 20000)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a compressed file of each shard", 60*time.Second, func() bool {
				gz, _ := filepath.Glob(filepath.Join(dir, "shard-00[01].log.*.gz"))
				return len(gz) >= 2 && strings.Contains(fmt.Sprint(gz), "shard-000") && strings.Contains(fmt.Sprint(gz), "shard-001")
			})
			d.stdin.Close()
			if code := d.wait(t, 60*time.Second); code != 0 {
				t.Fatalf("exit %d: %s", code, d.stderr.String())
			}
			// A torn tail, cut at the next start, is kept in .shardlog-torn.
			f, err := os.OpenFile(filepath.Join(dir, "shard-000.log"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("torn")
			f.Close()
			d = startUmask(t, tc.umask, tc.env, args...)
			d.stdin.Close()
			if code := d.wait(t, 60*time.Second); code != 0 {
				t.Fatalf("second run: exit %d: %s", code, d.stderr.String())
			}
			seen := map[string]bool{}
			check := func(path string, mode fs.FileMode) {
				var st syscall.Stat_t
				if err := syscall.Stat(path, &st); err != nil {
					t.Fatal(err)
				}
				if got := fs.FileMode(st.Mode).Perm(); got != mode || int(st.Gid) != want {
					t.Errorf("%s: mode %04o group %d, want %04o group %d", path, got, st.Gid, mode, want)
				}
			}
			check(top, tc.dir)
			err = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				name := e.Name()
				switch {
				case e.IsDir():
					check(path, tc.dir)
				case strings.HasSuffix(name, ".gz"):
					seen["compressed"] = true
					check(path, tc.file)
				case strings.Contains(name, ".log."):
					seen["rotated"] = true
					check(path, tc.file)
				default:
					seen[name] = true
					check(path, tc.file)
				}
				if filepath.Base(filepath.Dir(path)) == ".shardlog-torn" {
					seen["torn"] = true
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, what := range []string{"shard-000.log", "shard-001.log", ".shardlog-routing.json", ".shardlog.lock", "compressed", "torn"} {
				if !seen[what] {
					t.Errorf("no %s in %s to check", what, dir)
				}
			}
		})
	}
	t.Run("existing files keep their mode", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "shard-000.log")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o604); err != nil {
			t.Fatal(err)
		}
		if res := shardlog(t, lines("x", 100), nil, "run", "-n", "1", "-d", dir); res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o604 {
			t.Errorf("an existing shard file's mode changed: %v %v", fi.Mode(), err)
		}
	})
}

// TestFileModeErrors: a bad file_mode, dir_mode or file_group is a
// configuration error (exit 2) naming the key and the value, and nothing
// is created.
func TestFileModeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		yaml string
		want []string
	}{
		{"not octal", []string{"--file-mode", "0999"}, "", []string{"file_mode", `"0999"`, "octal"}},
		{"beyond 0777", []string{"--dir-mode", "01777"}, "", []string{"dir_mode", `"01777"`}},
		{"owner cannot write", []string{"--file-mode", "0440"}, "", []string{"file_mode", `"0440"`, "0600"}},
		{"owner cannot list", []string{"--dir-mode", "0650"}, "", []string{"dir_mode", `"0650"`, "0700"}},
		{"unknown group", []string{"--file-group", "no-such-group-x"}, "", []string{"file_group", `"no-such-group-x"`}},
		{"unquoted in YAML", nil, "file_mode: 0640\n", []string{"file_mode", "416", "octal mode as a quoted string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			dir := filepath.Join(tmp, "out")
			args := append([]string{"run", "-n", "2", "-d", dir}, tc.args...)
			if tc.yaml != "" {
				conf := filepath.Join(tmp, "shardlog.yaml")
				if err := os.WriteFile(conf, []byte(tc.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-c", conf)
			}
			res := shardlog(t, []byte("x\n"), nil, args...)
			if res.code != 2 {
				t.Errorf("exit %d, want 2: %s", res.code, res.stderr)
			}
			if err := contains(res.stderr, tc.want...); err != nil {
				t.Error(err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("%s was created (%v)", dir, err)
			}
		})
	}
}

// TestLockAndRecordComeBack: after rm -rf of the directory under a running
// shardlog, the lock and the routing record come back with the files: a
// second instance, even with another -n, is refused naming the first's
// PID, and the first still writes.
func TestLockAndRecordComeBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	d := start(t, "run", "-n", "4", "-d", dir, "--batch-max-delay", "10ms")
	waitFor(t, "the first instance to start", 30*time.Second, func() bool { return d.stderr.Contains("started") })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(d.cmd.Process.Pid)
	waitFor(t, "the lock and the routing record back", 30*time.Second, func() bool {
		lock, _ := os.ReadFile(filepath.Join(dir, ".shardlog.lock"))
		_, err := os.Stat(filepath.Join(dir, ".shardlog-routing.json"))
		return strings.TrimSpace(string(lock)) == pid && err == nil
	})
	record, err := os.ReadFile(filepath.Join(dir, ".shardlog-routing.json"))
	if err != nil || !bytes.Contains(record, []byte(`"shards": 4`)) {
		t.Errorf("routing record %q (%v), want shards 4", record, err)
	}
	res := shardlog(t, []byte("second\n"), nil, "run", "-n", "8", "-d", dir)
	if res.code != 2 {
		t.Errorf("second instance: exit %d, want 2: %s", res.code, res.stderr)
	}
	if err := contains(res.stderr, "in use by shardlog PID "+pid); err != nil {
		t.Error(err)
	}
	if _, err := d.stdin.Write([]byte("still writing\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first instance's record", 30*time.Second, func() bool {
		return bytes.Equal(readAll(t, dir, 4), []byte("still writing\n"))
	})
	d.stdin.Close()
	if code := d.wait(t, 30*time.Second); code != 0 {
		t.Errorf("first instance: exit %d: %s", code, d.stderr.String())
	}
}

// TestCompressChildIgnoresSIGHUP: a shardlog compress-file child sent
// SIGHUP mid-run (a pkill -HUP meant for the daemon) finishes its file.
// Its source is a FIFO, so the test knows the child is reading it when
// it sends the signal.
func TestCompressChildIgnoresSIGHUP(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "src.gz")
	if err := syscall.Mkfifo(src, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "compress-file", "gzip", src, dst)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	done := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	w, err := os.OpenFile(src, os.O_WRONLY, 0) // returns once the child opened it
	if err != nil {
		t.Fatal(err)
	}
	data := lines("compressed", 1000)
	half := len(data) / 2
	_, werr := w.Write(data[:half])
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if werr == nil {
		_, werr = w.Write(data[half:])
	}
	w.Close()
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("compress-file after SIGHUP: %v (writing: %v): %s", waitErr, werr, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("compress-file did not finish within 60s")
	}
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("compressed copy: %d bytes (%v), want %d", len(got), err, len(data))
	}
}

// TestSIGHUPLogsOneLine: a SIGHUP at N=64 logs one line at Info level,
// saying how many files were reopened, not one per file.
func TestSIGHUPLogsOneLine(t *testing.T) {
	dir := t.TempDir()
	d := start(t, "run", "-n", "64", "-d", dir)
	waitFor(t, "shardlog to start", 30*time.Second, func() bool { return d.stderr.Contains("started") })
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reopen line", 30*time.Second, func() bool { return d.stderr.Contains("SIGHUP: reopened shard files") })
	d.stdin.Close()
	if code := d.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, d.stderr.String())
	}
	var reopen []string
	for _, l := range strings.Split(d.stderr.String(), "\n") {
		if strings.Contains(strings.ToLower(l), "reopen") && !strings.Contains(l, "reopens=") {
			reopen = append(reopen, l)
		}
	}
	if len(reopen) != 1 || !strings.Contains(reopen[0], "level=INFO") || !strings.Contains(reopen[0], "reopened=64") {
		t.Errorf("%d lines about reopening, want one at Info saying reopened=64:\n%s", len(reopen), strings.Join(reopen, "\n"))
	}
}

// TestFileGroupNotAllowed: a file_group the user running shardlog may not
// give files (not root, not a member) is refused at start, exit 2, naming
// file_group, the value and what to do. Run as nobody, so the test needs
// root.
func TestFileGroupNotAllowed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root, to run shardlog as another user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("SKIP: no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	group, _ := otherGroup(t)
	// A copy of the binary and a directory that nobody may use.
	tmp := t.TempDir()
	for p := tmp; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self := filepath.Join(tmp, "shardlog")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(self, data, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "out")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "run", "-n", "2", "-d", out, "--file-group", group)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Stdin = strings.NewReader("x\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("exit %v, want 2: %s", err, stderr.String())
	}
	if err := contains(stderr.String(), "file_group", `"`+group+`"`, "member of the group"); err != nil {
		t.Error(err)
	}
	if entries, _ := os.ReadDir(out); len(entries) > 0 {
		t.Errorf("%s holds %d files after a refused start, want none", out, len(entries))
	}
}
