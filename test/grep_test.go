package test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/shardlog/shardlog/internal/murmur3ref"
)

// userRecords returns n JSON records, their user fields cycling through
// users u0 to u<users-1>, numbered from first.
func userRecords(first, n, users int) []string {
	var recs []string
	for i := first; i < first+n; i++ {
		recs = append(recs, fmt.Sprintf(`{"user":"u%d","seq":%d,"pad":"%s"}`, i%users, i, strings.Repeat("p", i%37)))
	}
	return recs
}

func joinLines(recs []string) []byte {
	if len(recs) == 0 {
		return nil
	}
	return []byte(strings.Join(recs, "\n") + "\n")
}

// userShard returns the shard of user key u among n.
func userShard(u string, n int) int { return int(murmur3ref.Sum32([]byte(u), 0) % uint32(n)) }

// ofUsers returns the records of recs whose user is one of users, in order.
func ofUsers(recs []string, users ...string) []string {
	var out []string
	for _, r := range recs {
		for _, u := range users {
			if strings.Contains(r, `"user":"`+u+`"`) {
				out = append(out, r)
			}
		}
	}
	return out
}

// sameShardUsers returns two users u<i> among u0..u<users-1> that share
// a shard of n, and one of another shard.
func sameShardUsers(t *testing.T, users, n int) (a, b, other string) {
	t.Helper()
	byShard := map[int][]string{}
	for i := range users {
		u := fmt.Sprintf("u%d", i)
		byShard[userShard(u, n)] = append(byShard[userShard(u, n)], u)
	}
	for k, us := range byShard {
		if len(us) >= 3 {
			for k2, us2 := range byShard {
				if k2 != k {
					return us[0], us[1], us2[0]
				}
			}
		}
	}
	t.Fatal("no shard with three users")
	return
}

// grepLines runs shardlog grep with args and returns its output's lines.
func grepLines(t *testing.T, args ...string) ([]string, result) {
	t.Helper()
	res := shardlog(t, nil, nil, append([]string{"grep"}, args...)...)
	var lines []string
	if res.stdout != "" {
		lines = strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	}
	return lines, res
}

// TestGrep writes a directory with shardlog run itself, so that a shard
// holds gzip, zstd and current files, and greps it: a key sharing its
// shard with others, several keys, --count, --files, exit statuses, and a
// flag that contradicts the routing record.
func TestGrep(t *testing.T) {
	dir := t.TempDir()
	const n, users = 4, 12
	var all []string
	for i, extra := range [][]string{
		{"--rotate-max-bytes", "32KiB", "--rotate-compress", "gzip"},
		{"--rotate-max-bytes", "32KiB", "--rotate-compress", "zstd"},
		{},
	} {
		recs := userRecords(i*5000, 5000, users)
		all = append(all, recs...)
		args := append([]string{"run", "-n", fmt.Sprint(n), "-d", dir, "--key", "json:user", "--batch-max-bytes", "8KiB"}, extra...)
		if res := shardlog(t, joinLines(recs), nil, args...); res.code != 0 {
			t.Fatalf("run: exit %d: %s", res.code, res.stderr)
		}
	}
	a, b, other := sameShardUsers(t, users, n)
	k := userShard(a, n)
	rotated, _ := rotatedFiles(t, dir, k)
	var kinds []string
	for _, f := range rotated {
		kinds = append(kinds, filepath.Ext(f))
	}
	if !slices.Contains(kinds, ".gz") || !slices.Contains(kinds, ".zst") {
		t.Fatalf("shard %d's rotated files are %v: want gzip and zstd ones", k, rotated)
	}

	t.Run("one key", func(t *testing.T) {
		got, res := grepLines(t, "-d", dir, a)
		if want := ofUsers(all, a); res.code != 0 || !slices.Equal(got, want) {
			t.Fatalf("exit %d, %d records (stderr %q); want 0 and %d records of %s, in order", res.code, len(got), res.stderr, len(want), a)
		}
		if res.stderr != "" {
			t.Errorf("stderr: %s", res.stderr)
		}
	})
	t.Run("keys of one shard and another", func(t *testing.T) {
		got, res := grepLines(t, "-d", dir, other, a, b, a)
		first, second := ofUsers(all, a, b), ofUsers(all, other)
		if userShard(other, n) < k {
			first, second = second, first
		}
		if want := append(first, second...); res.code != 0 || !slices.Equal(got, want) {
			t.Fatalf("exit %d, %d records; want %d: shard by shard, in file order", res.code, len(got), len(want))
		}
	})
	t.Run("count", func(t *testing.T) {
		_, res := grepLines(t, "-d", dir, "--count", a, b)
		if want := fmt.Sprintln(len(ofUsers(all, a, b))); res.code != 0 || res.stdout != want {
			t.Errorf("exit %d, %q; want %q", res.code, res.stdout, want)
		}
		_, res = grepLines(t, "-d", dir, "--count", "nobody")
		if res.code != 1 || res.stdout != "0\n" {
			t.Errorf("count of nobody: exit %d, %q; want 1, 0", res.code, res.stdout)
		}
	})
	t.Run("files", func(t *testing.T) {
		got, res := grepLines(t, "-d", dir, "--files", a, b)
		want := append(rotated, filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k)))
		if res.code != 0 || !slices.Equal(got, want) {
			t.Errorf("exit %d, files\n%q\nwant\n%q", res.code, got, want)
		}
	})
	t.Run("exit statuses", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			err  []string
		}{
			{[]string{"-d", dir, "nobody"}, 1, nil},
			{[]string{"-d", dir, "--key", "message", a}, 2, []string{"routing.key", "json:user", "message", "--key"}},
			{[]string{"-d", dir, "-n", "5", a}, 2, []string{"shards", "4", "5"}},
			{[]string{"-d", dir, "--key", "json:user", "-n", "4", a}, 0, nil},
			{[]string{"-d", dir, "--since", "yesterday", a}, 2, []string{"--since", "yesterday"}},
			{[]string{"-d", dir, "-f", "--count", a}, 2, []string{"--follow"}},
			{[]string{"-d", filepath.Join(dir, "missing"), "--key", "json:user", a}, 2, []string{"missing"}},
			{[]string{"-d", dir}, 2, []string{"arg"}},
		} {
			_, res := grepLines(t, tc.args...)
			if res.code != tc.code {
				t.Errorf("grep %q: exit %d, want %d; stderr %s", tc.args, res.code, tc.code, res.stderr)
			}
			if err := contains(res.stderr, tc.err...); err != nil {
				t.Errorf("grep %q: %v", tc.args, err)
			}
		}
	})
	t.Run("closed output", func(t *testing.T) {
		// More records than a pipe and grep's buffer hold, read by a
		// reader that goes away at once.
		big := t.TempDir()
		recs := userRecords(0, 40000, 1)
		if res := shardlog(t, joinLines(recs), nil, "run", "-n", "2", "-d", big, "--key", "json:user"); res.code != 0 {
			t.Fatal(res.stderr)
		}
		cmd := exec.Command(bin, "grep", "-d", big, "u0")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errb syncBuffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != recs[0]+"\n" {
			t.Fatalf("first line %q, %v", line, err)
		}
		out.Close()
		err = cmd.Wait()
		if err != nil || errb.String() != "" {
			t.Errorf("grep with its output closed: %v; stderr %q; want exit 0, quiet", err, errb.String())
		}
	})
}

// routingDir returns a new directory with the routing record shardlog run
// writes for n shards keyed by json:user, and no records.
func routingDir(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	if res := shardlog(t, nil, nil, "run", "-n", fmt.Sprint(n), "-d", dir, "--key", "json:user"); res.code != 0 {
		t.Fatal(res.stderr)
	}
	return dir
}

// compressed returns data compressed by the suffix of name.
func compressed(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	switch filepath.Ext(name) {
	case ".gz":
		w := gzip.NewWriter(&b)
		w.Write(data)
		w.Close()
	case ".zst":
		w, err := zstd.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
	default:
		return data
	}
	return b.Bytes()
}

// TestGrepSinceUntil checks that --since and --until skip the rotated
// files whose names put them outside the range, both ends included.
func TestGrepSinceUntil(t *testing.T) {
	dir := routingDir(t, 1)
	t1 := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
	t2, t3 := t1.Add(time.Hour), t1.Add(2*time.Hour)
	for _, f := range []struct {
		name string
		rec  string
	}{
		{"shard-000.log." + t1.Format("20060102T150405.000000000Z") + ".gz", `{"user":"u","in":"1"}`},
		{"shard-000.log." + t2.Format("20060102T150405.000000000Z") + ".zst", `{"user":"u","in":"2"}`},
		{"shard-000.log." + t3.Format("20060102T150405.000000000Z"), `{"user":"u","in":"3"}`},
		{"shard-000.log", `{"user":"u","in":"current"}`},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), compressed(t, f.name, []byte(f.rec+"\n")), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rfc := func(t time.Time) string { return t.Format(time.RFC3339Nano) }
	for _, tc := range []struct {
		args []string
		want []string // the "in" of the records printed
		code int
	}{
		{nil, []string{"1", "2", "3", "current"}, 0},
		{[]string{"--since", rfc(t2)}, []string{"2", "3", "current"}, 0},
		{[]string{"--since", rfc(t2.Add(time.Second))}, []string{"3", "current"}, 0},
		{[]string{"--until", rfc(t1)}, []string{"1", "2"}, 0},
		{[]string{"--since", rfc(t1.Add(time.Minute)), "--until", rfc(t2.Add(-time.Minute))}, []string{"2"}, 0},
		{[]string{"--since", "90m"}, []string{"3", "current"}, 0},
		{[]string{"--until", "4h"}, []string{"1"}, 0},
		{[]string{"--since", rfc(t2), "--until", rfc(t1)}, nil, 2},
	} {
		got, res := grepLines(t, append([]string{"-d", dir, "u"}, tc.args...)...)
		var ins []string
		for _, l := range got {
			ins = append(ins, strings.TrimSuffix(strings.SplitN(l, `"in":"`, 2)[1], `"}`))
		}
		if res.code != tc.code || !slices.Equal(ins, tc.want) {
			t.Errorf("%q: exit %d, records %q; want %d, %q (stderr %s)", tc.args, res.code, ins, tc.code, tc.want, res.stderr)
		}
	}
}

// TestGrepBroken checks bad input: a truncated .gz and a corrupt .zst are
// named with where they broke, the rest is printed, and the exit status is
// 2; a torn last record is printed and noted; other files are ignored.
func TestGrepBroken(t *testing.T) {
	dir := routingDir(t, 2)
	k := userShard("u", 2)
	base := filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k))
	recs := func(from, n int) []byte {
		var b []byte
		for i := from; i < from+n; i++ {
			b = fmt.Appendf(b, `{"user":"u","n":%d,"pad":"%s"}`+"\n", i, strings.Repeat("x", i%100))
		}
		return b
	}
	gz := compressed(t, ".gz", recs(0, 5000))
	zs := compressed(t, ".zst", recs(5000, 5000))
	for i := len(zs) / 2; i < len(zs)/2+32; i++ {
		zs[i] ^= 0xff
	}
	files := map[string][]byte{
		base + ".20261201T000000.000000000Z.gz":  gz[:len(gz)/2],
		base + ".20261202T000000.000000000Z.zst": zs,
		base + ".20261203T000000.000000000Z":     recs(10000, 10),
		base:                                     append(recs(10010, 10), `{"user":"u","n":"torn`...),
		base + ".bak":                            recs(99999, 1),
		filepath.Join(dir, "notes.txt"):          recs(99999, 1),
	}
	for p, data := range files {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, res := grepLines(t, "-d", dir, "u")
	if res.code != 2 {
		t.Errorf("exit %d, want 2", res.code)
	}
	if err := contains(res.stderr, filepath.Base(base)+".20261201T000000.000000000Z.gz", filepath.Base(base)+".20261202T000000.000000000Z.zst",
		"broken at line", "unexpected EOF", "torn last record"); err != nil {
		t.Error(err)
	}
	// The whole records of the truncated file, then the other files'.
	joined := strings.Join(got, "\n") + "\n"
	tail := string(recs(10000, 20)) + `{"user":"u","n":"torn` + "\n"
	if !strings.HasSuffix(joined, tail) {
		t.Errorf("output does not end with the plain files' records and the torn one:\n%s", joined[max(0, len(joined)-300):])
	}
	if !strings.HasPrefix(joined, string(recs(0, 100))) {
		t.Errorf("the records of the truncated file before the break are missing")
	}
	if strings.Contains(joined, `"n":99999`) {
		t.Errorf("a file that is not a shard file was read")
	}
}

// follower is shardlog grep -f running, its output read line by line.
type follower struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	err   syncBuffer
}

func startFollow(t *testing.T, args ...string) *follower {
	t.Helper()
	f := &follower{cmd: exec.Command(bin, append([]string{"grep", "-f"}, args...)...), lines: make(chan string, 1<<16), done: make(chan struct{})}
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	f.cmd.Stderr = &f.err
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(f.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f.lines <- sc.Text()
		}
		close(f.lines)
	}()
	t.Cleanup(func() {
		_ = f.cmd.Process.Kill()
		<-f.done
		_ = f.cmd.Wait()
	})
	return f
}

// expect reads the follower's next lines and checks they are want.
func (f *follower) expect(t *testing.T, what string, want []string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for i, w := range want {
		select {
		case l, ok := <-f.lines:
			if !ok {
				t.Fatalf("%s: grep -f ended after %d of %d lines; stderr %s", what, i, len(want), f.err.String())
			}
			if l != w {
				t.Fatalf("%s: line %d: %q, want %q", what, i, l, w)
			}
		case <-deadline:
			t.Fatalf("%s: %d of %d lines within 60s; stderr %s", what, i, len(want), f.err.String())
		}
	}
}

// TestGrepFollow follows a key's records while shardlog run writes them:
// across shardlog's own rotations (compressed behind grep's back) and a
// logrotate-style rename, records still written to the renamed file, and
// a SIGHUP reopen; SIGTERM ends grep with status 0.
func TestGrepFollow(t *testing.T) {
	dir := t.TempDir()
	const n, users = 2, 6
	d := start(t, "run", "-n", fmt.Sprint(n), "-d", dir, "--key", "json:user", "--batch-max-delay", "5ms",
		"--rotate-max-bytes", "32KiB", "--rotate-compress", "zstd")
	a, b, _ := sameShardUsers(t, users, n)
	k := userShard(a, n)
	path := filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k))
	write := func(recs []string) {
		t.Helper()
		if _, err := d.stdin.Write(joinLines(recs)); err != nil {
			t.Fatal(err)
		}
	}
	before := userRecords(0, 60, users)
	write(before)
	waitFor(t, "the first records in their file", 30*time.Second, func() bool {
		data, _ := os.ReadFile(path)
		return bytes.Contains(data, []byte(ofUsers(before, a)[len(ofUsers(before, a))-1]))
	})
	f := startFollow(t, "-d", dir, a)
	f.expect(t, "records written before grep started", ofUsers(before, a))

	// Enough to rotate the shard's file several times.
	rotating := userRecords(60, 3000, users)
	write(rotating)
	f.expect(t, "records across rotations", ofUsers(rotating, a))
	if files, _ := rotatedFiles(t, dir, k); len(files) < 2 {
		t.Fatalf("shard %d rotated %d times", k, len(files))
	}

	// logrotate: rename, create, records still go to the renamed file
	// until SIGHUP; then to the new one.
	pipeEmpty(t, d)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	renamed := userRecords(3060, 12, users)
	write(renamed)
	f.expect(t, "records written to the renamed file", ofUsers(renamed, a))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reopen", 30*time.Second, func() bool { return d.stderr.Contains("SIGHUP: reopened shard files") })
	reopened := userRecords(3072, 12, users)
	write(reopened)
	f.expect(t, "records written after the reopen", ofUsers(reopened, a))

	// Nothing else of the key, nothing of b sharing its shard.
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.done:
	case <-time.After(30 * time.Second):
		t.Fatal("grep -f did not stop on SIGTERM")
	}
	for l := range f.lines {
		t.Errorf("extra line %q", l)
	}
	if err := f.cmd.Wait(); err != nil {
		t.Errorf("grep -f stopped by SIGTERM: %v, want exit 0; stderr %s", err, f.err.String())
	}
	if strings.Contains(f.err.String(), b) {
		t.Errorf("stderr: %s", f.err.String())
	}
	d.stdin.Close()
	if code := d.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("run: exit %d: %s", code, d.stderr.String())
	}
}

// TestGrepOddInput checks a record longer than max_message_bytes (made by
// hand: shardlog splits longer lines), printed whole, and a directory
// written with a subject key, which cannot be read back by key.
func TestGrepOddInput(t *testing.T) {
	dir := routingDir(t, 1)
	long := `{"user":"u","big":"` + strings.Repeat("b", 3<<20) + `"}`
	content := `{"user":"v"}` + "\n" + long + "\n" + `{"user":"u","after":1}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "shard-000.log"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got, res := grepLines(t, "-d", dir, "u")
	if res.code != 0 || len(got) != 2 || got[0] != long || got[1] != `{"user":"u","after":1}` {
		t.Errorf("exit %d, %d lines (%d bytes first); want the long record whole and the next", res.code, len(got), len(res.stdout))
	}

	subj := t.TempDir()
	record := `{"shards": 4, "seed": 0, "key": "subject", "file_pattern": "shard-%03d.log"}`
	if err := os.WriteFile(filepath.Join(subj, ".shardlog-routing.json"), []byte(record), 0o600); err != nil {
		t.Fatal(err)
	}
	_, res = grepLines(t, "-d", subj, "orders.eu")
	if err := contains(res.stderr, "routing.key subject", "not in the records"); res.code != 2 || err != nil {
		t.Errorf("subject key: exit %d, %v", res.code, err)
	}
}

// TestGrepFollowNothing: grep -f stopped before any record of its key
// was written exits 1, as grep finding nothing.
func TestGrepFollowNothing(t *testing.T) {
	// A directory without a routing record: grep notes it on stderr,
	// after it has set its signal handling.
	f := startFollow(t, "-d", t.TempDir(), "-n", "2", "nobody")
	waitFor(t, "grep -f to start", 30*time.Second, func() bool { return f.err.Contains("has no routing record") })
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-f.done
	err := f.cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("grep -f stopped with nothing found: %v, want exit 1; stderr %s", err, f.err.String())
	}
}

// TestGrepMemberDir checks grep in a cluster member's directory: a key of
// one of the member's shards is found; a key of another member's shard is
// not there, and grep says which shard it is and how to find its member,
// rather than only exiting 1.
func TestGrepMemberDir(t *testing.T) {
	url, js, ctx := clusterJS(t)
	memberCluster(t, url, "--cluster", "logs", "-n", "8", "--members", "a,b")
	dir := t.TempDir()
	d := startMember(t, url, "a", dir)
	keyOf := func(want func(k uint32) bool) string {
		for i := 0; ; i++ {
			key := fmt.Sprintf("key-%d", i)
			if want(murmur3ref.Sum32([]byte(key), 0) % 8) {
				return key
			}
		}
	}
	mineKey := keyOf(func(k uint32) bool { return k < 4 })
	otherKey := keyOf(func(k uint32) bool { return k >= 4 })
	k := murmur3ref.Sum32([]byte(mineKey), 0) % 8
	if _, err := js.Publish(ctx, fmt.Sprintf("shardlog.%d", k), []byte(mineKey+"\n")); err != nil {
		t.Fatal(err)
	}
	waitAcked(t, js, "logs", "logs_a")
	d.stop(t)

	res := shardlog(t, nil, nil, "grep", "-d", dir, mineKey)
	if res.code != 0 || res.stdout != mineKey+"\n" {
		t.Errorf("grep %s: exit %d, stdout %q: %s", mineKey, res.code, res.stdout, res.stderr)
	}
	res = shardlog(t, nil, nil, "grep", "-d", dir, otherKey)
	other := murmur3ref.Sum32([]byte(otherKey), 0) % 8
	want := fmt.Sprintf("key %q is in shard %d, which member a of cluster logs (shards 0-3) does not hold: shardlog which --cluster logs", otherKey, other)
	if res.code != 1 || res.stdout != "" || !strings.Contains(res.stderr, want) {
		t.Errorf("grep %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", otherKey, res.code, res.stdout, res.stderr, want)
	}
}
