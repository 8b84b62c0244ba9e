package verify

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/shardlog/shardlog/internal/murmur3ref"
	"github.com/shardlog/shardlog/readback"
	"github.com/shardlog/shardlog/writer"
)

const n = 4

// users returns, for each shard of n, two users whose key hashes there
// (by the reference murmur3, not the code under test).
func users(t *testing.T) [n][]string {
	t.Helper()
	var by [n][]string
	for i := 0; i < 1000; i++ {
		u := fmt.Sprintf("u%d", i)
		k := murmur3ref.Sum32([]byte(u), 0) % n
		if len(by[k]) < 2 {
			by[k] = append(by[k], u)
		}
	}
	for k, us := range by {
		if len(us) < 2 {
			t.Fatalf("no two users for shard %d", k)
		}
	}
	return by
}

func records(us []string, from, count int) []byte {
	var b []byte
	for i := from; i < from+count; i++ {
		b = fmt.Appendf(b, `{"user":%q,"seq":%d}`+"\n", us[i%len(us)], i)
	}
	return b
}

func compress(t *testing.T, ext string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	switch ext {
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

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func routing(t *testing.T, members string) readback.Routing {
	t.Helper()
	rt, err := readback.NewRouting(writer.Routing{Shards: n, Key: "json:user", FilePattern: "shard-%03d.log", MemberShards: members, Member: "a", Cluster: "c"})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// cleanDir writes, for each shard, a gzip and a zstd rotated file and a
// current one, of records that belong there, and returns the number of
// records, bytes and files.
func cleanDir(t *testing.T, dir string, by [n][]string) (recs, size, files int64) {
	t.Helper()
	for k := range n {
		base := filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k))
		for i, f := range []struct{ suffix string }{
			{".20261201T000000.000000000Z.gz"}, {".20261202T000000.000000000Z.zst"}, {""},
		} {
			data := records(by[k], i*1000, 1000)
			write(t, base+f.suffix, compress(t, filepath.Ext(f.suffix), data))
			recs += 1000
			size += int64(len(data))
			files++
		}
	}
	return recs, size, files
}

func check(t *testing.T, dir string, rt readback.Routing, opt Options) ([]string, Summary) {
	t.Helper()
	var got []string
	sum, err := Check(dir, rt, opt, func(f Finding) { got = append(got, f.String()) })
	if err != nil {
		t.Fatal(err)
	}
	return got, sum
}

func TestCheckClean(t *testing.T) {
	dir := t.TempDir()
	recs, size, files := cleanDir(t, dir, users(t))
	write(t, filepath.Join(dir, writer.RoutingFile), []byte("{}"))
	write(t, filepath.Join(dir, writer.LockFile), nil)
	got, sum := check(t, dir, routing(t, ""), Options{})
	if len(got) != 0 {
		t.Errorf("findings in a clean directory: %q", got)
	}
	if want := (Summary{Files: files, Records: recs, Bytes: size}); sum != want {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
}

// TestCheckFindings plants one fault of each kind and checks that each
// is named, with its file and line, in order of shard and file.
func TestCheckFindings(t *testing.T) {
	by := users(t)
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		plant func(t *testing.T, dir string)
		opt   Options
		rt    string // member shards
		want  []string
	}{
		{"record in the wrong shard", func(t *testing.T, dir string) {
			f, _ := os.OpenFile(filepath.Join(dir, "shard-001.log"), os.O_APPEND|os.O_WRONLY, 0)
			f.Write(records(by[3], 7, 1))
			f.Close()
		}, Options{}, "", []string{"shard-001.log: line 1001: record in shard 1 belongs to shard 3"}},
		{"torn tail", func(t *testing.T, dir string) {
			f, _ := os.OpenFile(filepath.Join(dir, "shard-002.log"), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(`{"user":"x`)
			f.Close()
		}, Options{}, "", []string{"shard-002.log: line 1001: torn last record"}},
		{"torn tail of a live directory", func(t *testing.T, dir string) {
			f, _ := os.OpenFile(filepath.Join(dir, "shard-002.log"), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(`{"user":"x`)
			f.Close()
		}, Options{Live: true, Holder: "shardlog PID 7"}, "", []string{"note: " + "DIR/shard-002.log: line 1001: last record without its newline: a write in progress (shardlog PID 7"}},
		{"truncated zstd", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "shard-000.log.20261202T000000.000000000Z.zst")
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()/2)
		}, Options{}, "", []string{"shard-000.log.20261202T000000.000000000Z.zst: line ", "unreadable from here"}},
		{"corrupt gzip", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "shard-003.log.20261201T000000.000000000Z.gz")
			data, _ := os.ReadFile(p)
			for i := len(data) / 2; i < len(data)/2+16; i++ {
				data[i] ^= 0x5a
			}
			write(t, p, data)
		}, Options{}, "", []string{"shard-003.log.20261201T000000.000000000Z.gz: line ", "unreadable from here"}},
		{"stamp in the future", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "shard-001.log.20261204T000000.000000000Z"), records(by[1], 0, 1))
		}, Options{Now: func() time.Time { return now }}, "", []string{"shard-001.log.20261204T000000.000000000Z: rotated name out of order: its time 2026-12-04T00:00:00Z is in the future"}},
		{"plain rotated file written after its time", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "shard-001.log.20261203T000000.000000000Z")
			write(t, p, records(by[1], 0, 1))
			os.Chtimes(p, now, now)
		}, Options{Now: func() time.Time { return now }}, "", []string{"shard-001.log.20261203T000000.000000000Z: rotated name out of order: modified at 2026-12-03T12:00:00Z, after the time in its name"}},
		{"plain and compressed copies differ", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "shard-002.log.20261203T000000.000000000Z")
			write(t, p, records(by[2], 0, 10))
			os.Chtimes(p, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
			write(t, p+".zst", compress(t, ".zst", records(by[2], 0, 9)))
		}, Options{}, "", []string{"shard-002.log.20261203T000000.000000000Z.zst: compressed copy of shard-002.log.20261203T000000.000000000Z holds"}},
		{"another member's shard", func(t *testing.T, dir string) {}, Options{}, "0-1+3",
			[]string{"shard-002.log.20261201T000000.000000000Z.gz: shard 2 is not this member's (member a of cluster c has shards 0-1+3)"}},
		{"another member's shard, empty", func(t *testing.T, dir string) {
			for _, suffix := range []string{".20261201T000000.000000000Z.gz", ".20261202T000000.000000000Z.zst"} {
				os.Remove(filepath.Join(dir, "shard-002.log"+suffix))
			}
			write(t, filepath.Join(dir, "shard-002.log"), nil)
		}, Options{}, "0-1+3", nil},
		{"shards limited", func(t *testing.T, dir string) {
			f, _ := os.OpenFile(filepath.Join(dir, "shard-001.log"), os.O_APPEND|os.O_WRONLY, 0)
			f.Write(records(by[3], 7, 1))
			f.Close()
		}, Options{Shards: []int{0, 2, 3}}, "", nil},
		{"ignored name", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "shard-007.log"), records(by[3], 0, 1))
		}, Options{}, "", []string{`note: DIR/shard-007.log: ignored: not a file of this directory's shards (4 shards, file pattern "shard-%03d.log")`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cleanDir(t, dir, by)
			c.plant(t, dir)
			got, sum := check(t, dir, routing(t, c.rt), c.opt)
			joined := strings.ReplaceAll(strings.Join(got, "\n"), dir, "DIR")
			for _, w := range c.want {
				if !strings.Contains(joined, w) {
					t.Errorf("findings:\n%s\nwant one with %q", joined, w)
				}
			}
			if c.want == nil && len(got) > 0 {
				t.Errorf("findings: %q, want none", got)
			}
			var findings int64
			for _, g := range got {
				if !strings.HasPrefix(g, "note: ") {
					findings++
				}
			}
			if sum.Findings != findings {
				t.Errorf("summary counts %d findings, %d reported", sum.Findings, findings)
			}
		})
	}
}

// TestCheckOrderAndBound checks that findings come in order of shard,
// file and line whatever the number of workers, and that a file full of
// wrong records names MaxPerFile of them and counts the rest.
func TestCheckOrderAndBound(t *testing.T) {
	by := users(t)
	dir := t.TempDir()
	for k := range n {
		// Every record of shard k belongs to shard k+1.
		write(t, filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k)), records(by[(k+1)%n], 0, 50))
		write(t, filepath.Join(dir, fmt.Sprintf("shard-%03d.log.20261201T000000.000000000Z.gz", k)), compress(t, ".gz", records(by[(k+1)%n], 0, 50)))
	}
	for _, workers := range []int{1, 2, 4} {
		got, sum := check(t, dir, routing(t, ""), Options{Workers: workers, MaxPerFile: 3})
		var want []string
		for k := range n {
			for _, name := range []string{fmt.Sprintf("shard-%03d.log.20261201T000000.000000000Z.gz", k), fmt.Sprintf("shard-%03d.log", k)} {
				for line := 1; line <= 3; line++ {
					want = append(want, fmt.Sprintf("%s: line %d: record in shard %d belongs to shard %d", filepath.Join(dir, name), line, k, (k+1)%n))
				}
				want = append(want, fmt.Sprintf("%s: 47 more records in the wrong shard (the first 3 are named above)", filepath.Join(dir, name)))
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%d workers: findings\n%s\nwant\n%s", workers, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if sum.Records != 2*n*50 || sum.Findings != int64(len(want)) {
			t.Errorf("%d workers: summary %+v", workers, sum)
		}
	}
}

func TestParseShards(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
		err  string
	}{
		{"3,7", []int{3, 7}, ""},
		{"0-3", []int{0, 1, 2, 3}, ""},
		{"0-1+3", []int{0, 1, 3}, ""},
		{"7,3,3", []int{7, 3}, ""},
		{"8", nil, `"8": there are shards 0 to 7`},
		{"3-1", nil, "ends before it starts"},
		{"x", nil, `"x": want shard numbers`},
		{"-1", nil, `want shard numbers`},
		{"", nil, "no shard given"},
	} {
		got, err := ParseShards(c.in, 8)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseShards(%q): %v, want an error with %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseShards(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
