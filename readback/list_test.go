package readback

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shardlog/shardlog/writer"
)

// touch creates the named empty files in dir.
func touch(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func testRouting(t *testing.T, n int, key string) Routing {
	t.Helper()
	r, err := NewRouting(writer.Routing{Shards: n, Key: key, FilePattern: "shard-%03d.log"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func names(fs []File) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return out
}

// TestListOrder checks that a shard's files are listed in the order they
// were written, each content once, and that other names are ignored.
func TestListOrder(t *testing.T) {
	const s1 = "20261203T100000.000000000Z"
	const s2 = "20261203T100000.000000001Z"
	const s3 = "20261203T110000.500000000Z"
	for _, tc := range []struct {
		name    string
		files   []string
		want    []string // shard 1's, in order
		ignored []string
	}{
		{
			name:  "stamps and counters",
			files: []string{"shard-001.log", "shard-001.log." + s3, "shard-001.log." + s1 + ".10", "shard-001.log." + s1 + ".9", "shard-001.log." + s1, "shard-001.log." + s2},
			want:  []string{"shard-001.log." + s1, "shard-001.log." + s1 + ".9", "shard-001.log." + s1 + ".10", "shard-001.log." + s2, "shard-001.log." + s3, "shard-001.log"},
		},
		{
			name: "compressed and plain mixed",
			files: []string{"shard-001.log." + s1 + ".gz", "shard-001.log." + s2 + ".zst", "shard-001.log." + s3,
				"shard-001.log." + s3 + ".zst", "shard-001.log." + s3 + ".zst.tmp", "shard-001.log." + s2 + ".1.gz"},
			want:    []string{"shard-001.log." + s1 + ".gz", "shard-001.log." + s2 + ".zst", "shard-001.log." + s2 + ".1.gz", "shard-001.log." + s3},
			ignored: []string{"shard-001.log." + s3 + ".zst.tmp"},
		},
		{
			name:  "logrotate numbered",
			files: []string{"shard-001.log", "shard-001.log.1", "shard-001.log.2.gz", "shard-001.log.10.gz", "shard-001.log.9.gz"},
			want:  []string{"shard-001.log.10.gz", "shard-001.log.9.gz", "shard-001.log.2.gz", "shard-001.log.1", "shard-001.log"},
		},
		{
			name:  "logrotate dateext",
			files: []string{"shard-001.log", "shard-001.log-20261202", "shard-001.log-20261130.gz", "shard-001.log-20261201.gz"},
			want:  []string{"shard-001.log-20261130.gz", "shard-001.log-20261201.gz", "shard-001.log-20261202", "shard-001.log"},
		},
		{
			name: "not shard files",
			files: []string{"shard-001.log", ".shardlog-routing.json", ".shardlog.lock", "shard-001.log.gz", "shard-001.logx",
				"shard-001.log.20261203T10", "shard-001.log.x", "shard-009.log", "shard-001.log-2026120", "notes.txt", "shard-001.log." + s1 + ".bz2"},
			want: []string{"shard-001.log"},
			ignored: []string{".shardlog-routing.json", ".shardlog.lock", "notes.txt", "shard-001.log-2026120", "shard-001.log." + s1 + ".bz2",
				"shard-001.log.20261203T10", "shard-001.log.gz", "shard-001.log.x", "shard-001.logx", "shard-009.log"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			touch(t, dir, tc.files...)
			l, err := List(dir, testRouting(t, 4, "message"))
			if err != nil {
				t.Fatal(err)
			}
			if got := names(l.Shards[1]); !slices.Equal(got, tc.want) {
				t.Errorf("shard 1:\n got %q\nwant %q", got, tc.want)
			}
			for k, fs := range l.Shards {
				if k != 1 && len(fs) > 0 {
					t.Errorf("shard %d: %q", k, names(fs))
				}
			}
			slices.Sort(l.Ignored)
			slices.Sort(tc.ignored)
			if !slices.Equal(l.Ignored, tc.ignored) && len(l.Ignored)+len(tc.ignored) > 0 {
				t.Errorf("ignored:\n got %q\nwant %q", l.Ignored, tc.ignored)
			}
		})
	}
}

// TestListTimes checks each file's time range from the names, and which
// files a --since/--until range skips.
func TestListTimes(t *testing.T) {
	dir := t.TempDir()
	t1 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	t3 := t2.Add(time.Hour)
	stamp := func(t time.Time) string { return t.Format(StampLayout) }
	touch(t, dir, "shard-000.log."+stamp(t1)+".zst", "shard-000.log."+stamp(t2)+".gz", "shard-000.log."+stamp(t3), "shard-000.log")
	fs, err := ListShard(dir, testRouting(t, 1, "message"), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]time.Time{{{}, t1}, {t1, t2}, {t2, t3}, {t3, {}}}
	for i, f := range fs {
		if !f.From.Equal(want[i][0]) || !f.To.Equal(want[i][1]) {
			t.Errorf("%s: from %v to %v, want %v to %v", f.Name, f.From, f.To, want[i][0], want[i][1])
		}
	}
	for _, tc := range []struct {
		since, until time.Time
		want         []int // indexes of fs read
	}{
		{time.Time{}, time.Time{}, []int{0, 1, 2, 3}},
		{t2, time.Time{}, []int{1, 2, 3}}, // since included: file 1 ends at t2
		{t2.Add(time.Nanosecond), time.Time{}, []int{2, 3}},
		{time.Time{}, t1, []int{0, 1}}, // until included: file 1 starts at t1
		{time.Time{}, t1.Add(-time.Nanosecond), []int{0}},
		{t1.Add(time.Minute), t2.Add(-time.Minute), []int{1}},
		{t3.Add(time.Hour), time.Time{}, []int{3}}, // the current file is open-ended
	} {
		var got []int
		for i, f := range fs {
			if f.Overlaps(tc.since, tc.until) {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("since %v until %v: read %v, want %v", tc.since, tc.until, got, tc.want)
		}
	}
}

// TestOpenCompressedCopy checks that a rotated file whose original is
// removed after List (its compression finished) is read from its
// compressed copy, and that one removed for good is reported as such.
func TestOpenCompressedCopy(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "shard-000.log.20261203T100000.000000000Z")
	writeFile(t, base, writer.CompressNone, []byte("a\nb\n"))
	writeFile(t, base+".zst", writer.CompressZstd, []byte("a\nb\n"))
	fs, err := ListShard(dir, testRouting(t, 1, "message"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Path != base || !slices.Equal(fs[0].Alts(), []string{base + ".zst"}) {
		t.Fatalf("listed %q, want %s once, with its .zst", names(fs), base)
	}
	if err := os.Remove(base); err != nil {
		t.Fatal(err)
	}
	r := NewReader(Options{})
	defer r.Close()
	path, err := r.Open(fs[0])
	if err != nil || path != base+".zst" {
		t.Fatalf("open: %s, %v; want %s.zst", path, err, base)
	}
	if got := readAll(t, r); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("read %q", got)
	}
	os.Remove(base + ".zst")
	if _, err := r.Open(fs[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open of a removed file: %v, want ErrNotExist", err)
	}
}

// TestRouting checks NewRouting's refusals and that keys and shards are
// the router's.
func TestRouting(t *testing.T) {
	for _, key := range []string{"subject", "header:X-User"} {
		_, err := NewRouting(writer.Routing{Shards: 4, Key: key, FilePattern: "s%d"})
		if !errors.Is(err, ErrKeyNotInRecords) {
			t.Errorf("key %s: %v, want ErrKeyNotInRecords", key, err)
		}
	}
	for _, bad := range []writer.Routing{{Shards: 0, FilePattern: "s%d"}, {Shards: 2}, {Shards: 2, FilePattern: "s%d", Key: "bogus"}} {
		if _, err := NewRouting(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	r := testRouting(t, 16, "json:user")
	for _, tc := range []struct {
		rec, key string
		ok       bool
	}{
		{`{"user":"u42","x":1}`, "u42", true},
		{`{"x":{"user":"no"},"user":7}`, "7", true},
		{`{"user":"a\"b"}`, `a"b`, true},
		{`not json`, `not json`, false},
		{`{"other":1}`, `{"other":1}`, false},
	} {
		k, ok := r.KeyOf([]byte(tc.rec))
		if string(k) != tc.key || ok != tc.ok {
			t.Errorf("KeyOf(%s) = %q, %v; want %q, %v", tc.rec, k, ok, tc.key, tc.ok)
		}
	}
}
