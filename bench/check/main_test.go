package main

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/shardlog/shardlog/internal/murmur3ref"
)

// shards is how many shards the tests route into.
const shards = 4

// testInput returns the test's input messages.
func testInput() []string {
	msgs := make([]string, 200)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("2026-11-25T00:00:%02d.%06dZ INFO svc=api req=%d msg=\"request completed\"", i%60, i, i*2654435761%4294967296)
	}
	return msgs
}

// route returns the records of each file a correct run writes: shard
// file name to its records, in input order.
func route(msgs []string, pattern string, seed uint32) map[string][]string {
	files := map[string][]string{}
	for _, m := range msgs {
		name := fmt.Sprintf(pattern, murmur3ref.Sum32([]byte(m), seed)%shards)
		files[name] = append(files[name], m)
	}
	return files
}

// shardOf returns the file name of msg's shard with the default pattern.
func shardOf(msg string) string {
	return fmt.Sprintf("shard-%03d.log", murmur3ref.Sum32([]byte(msg), 0)%shards)
}

// stamp returns the time suffix of a file rotated at 10:i one day.
func stamp(i int) string {
	return time.Date(2026, 11, 25, 10, i, 0, 0, time.UTC).Format(stampLayout)
}

// write writes each file of files into dir, its records each ended by
// '\n', compressed as its name says.
func write(t *testing.T, dir string, files map[string][]string) {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	for name, recs := range files {
		var data bytes.Buffer
		for _, r := range recs {
			data.WriteString(r + "\n")
		}
		b := data.Bytes()
		switch {
		case strings.HasSuffix(name, ".gz"):
			var z bytes.Buffer
			w := gzip.NewWriter(&z)
			w.Write(b)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			b = z.Bytes()
		case strings.HasSuffix(name, ".zst"):
			b = enc.EncodeAll(b, nil)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheck(t *testing.T) {
	msgs := testInput()
	first := shardOf(msgs[0])
	tests := []struct {
		name    string
		flags   []string
		pattern string // default shard-%03d.log
		seed    uint32
		change  func(t *testing.T, dir string, files map[string][]string)
		ok      bool
		want    []string // in the output
	}{
		{name: "correct", ok: true, want: []string{"check: 200 messages, 4 shards, 0 shards wrong"}},
		{name: "correct unordered", flags: []string{"-unordered"}, ok: true},
		{name: "seed and pattern", flags: []string{"-seed", "7", "-pattern", "s%d.txt"}, pattern: "s%d.txt", seed: 7, ok: true},
		{name: "wrong seed", flags: []string{"-seed", "8"}, want: []string{"belongs in shard-", "4 shards wrong ("}},
		{
			name: "missing line",
			change: func(t *testing.T, dir string, files map[string][]string) {
				name := shardOf(msgs[4])
				files[name] = slices.DeleteFunc(files[name], func(r string) bool { return r == msgs[4] })
			},
			want: []string{shardOf(msgs[4]) + ": missing input line 5: ", "1 shards wrong (1 missing)"},
		},
		{
			name: "extra line",
			change: func(t *testing.T, dir string, files map[string][]string) {
				name := shardOf("not in the input")
				files[name] = slices.Insert(files[name], 2, "not in the input")
			},
			want: []string{shardOf("not in the input") + ":3: extra record (not in the input, or once too often): \"not in the input\"", "(1 extra)"},
		},
		{
			name: "line in the wrong shard",
			change: func(t *testing.T, dir string, files map[string][]string) {
				from := shardOf(msgs[6])
				to := fmt.Sprintf("shard-%03d.log", (murmur3ref.Sum32([]byte(msgs[6]), 0)+1)%shards)
				files[from] = slices.DeleteFunc(files[from], func(r string) bool { return r == msgs[6] })
				files[to] = append(files[to], msgs[6])
			},
			want: []string{fmt.Sprintf(": input line 7 belongs in %s", shardOf(msgs[6])), "2 shards wrong (1 in the wrong shard)"},
		},
		{
			name: "two lines swapped",
			change: func(t *testing.T, dir string, files map[string][]string) {
				f := files[first]
				f[1], f[2] = f[2], f[1]
			},
			want: []string{first + ":3: input line", "stands after input line", "not in input order", "(1 out of order)"},
		},
		{
			name:  "two lines swapped, unordered",
			flags: []string{"-unordered"},
			change: func(t *testing.T, dir string, files map[string][]string) {
				f := files[first]
				f[1], f[2] = f[2], f[1]
			},
			ok: true,
		},
		{
			name: "one line moved far back",
			change: func(t *testing.T, dir string, files map[string][]string) {
				f := files[first]
				files[first] = append(f[1:], f[0])
			},
			want: []string{"input line 1 stands after input line", "(1 out of order)"},
		},
		{
			name: "duplicates",
			change: func(t *testing.T, dir string, files map[string][]string) {
				files[first] = append(files[first], files[first][0], files[first][1])
			},
			want: []string{"(2 extra)"},
		},
		{
			name:  "duplicates, at least once",
			flags: []string{"-at-least-once"},
			change: func(t *testing.T, dir string, files map[string][]string) {
				f := files[first]
				files[first] = append(append([]string{f[3]}, f...), f[0], f[1])
			},
			ok:   true,
			want: []string{", 3 duplicates"},
		},
		{
			name: "no newline at the end",
			change: func(t *testing.T, dir string, files map[string][]string) {
				write(t, dir, files)
				path := filepath.Join(dir, first)
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, data[:len(data)-1], 0o644); err != nil {
					t.Fatal(err)
				}
				clear(files)
			},
			want: []string{first + fmt.Sprintf(":%d: no newline at the end of the file", len(route(msgs, "shard-%03d.log", 0)[first]))},
		},
		{
			name: "stray file",
			change: func(t *testing.T, dir string, files map[string][]string) {
				files["shard-004.log"] = []string{"x"}
			},
			want: []string{"shard-004.log: a file no shard owns", "0 shards wrong (1 stray file)"},
		},
		{
			name:  "rotated gz and zst",
			flags: []string{"-rotated"},
			change: func(t *testing.T, dir string, files map[string][]string) {
				rotate(files, ".gz", ".zst")
				files[first+"."+stamp(3)+".zst.tmp"] = []string{"a compression cut short"}
				files[".shardlog-routing.json"] = []string{"{}"}
			},
			ok: true,
		},
		{
			name:  "rotated, a file and its compressed copy",
			flags: []string{"-rotated"},
			change: func(t *testing.T, dir string, files map[string][]string) {
				rotate(files, "", ".zst")
				name := first + "." + stamp(1) + ".1"
				files[name] = files[name+".zst"]
			},
			ok: true,
		},
		{
			name: "rotated, without -rotated",
			change: func(t *testing.T, dir string, files map[string][]string) {
				rotate(files, ".gz", ".zst")
			},
			want: []string{first + "." + stamp(1) + ".1.zst: a file no shard owns", "missing input line", "12 stray files"},
		},
		{
			name:  "rotated, out of order",
			flags: []string{"-rotated"},
			change: func(t *testing.T, dir string, files map[string][]string) {
				rotate(files, ".gz", ".zst")
				a, b := first+"."+stamp(1)+".1.zst", first+"."+stamp(1)+".10"
				files[a], files[b] = files[b], files[a]
			},
			want: []string{"not in input order"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			input := filepath.Join(dir, "input.log")
			write(t, dir, map[string][]string{"input.log": msgs})
			out := filepath.Join(dir, "out")
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			pattern := cmp.Or(tt.pattern, "shard-%03d.log")
			files := route(msgs, pattern, tt.seed)
			if tt.change != nil {
				tt.change(t, out, files)
			}
			write(t, out, files)
			var stdout, stderr bytes.Buffer
			code := run(append(append([]string{}, tt.flags...), input, fmt.Sprint(shards), out), &stdout, &stderr)
			got := stdout.String()
			t.Logf("exit status %d, output:\n%s", code, got)
			if wantCode := map[bool]int{true: 0, false: 1}[tt.ok]; code != wantCode {
				t.Errorf("exit status %d, want %d; output:\n%s%s", code, wantCode, got, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			if lines := strings.Split(strings.TrimSpace(got), "\n"); !strings.HasPrefix(lines[len(lines)-1], "check: 200 messages, 4 shards, ") {
				t.Errorf("last line is not the summary:\n%s", got)
			}
		})
	}
}

// rotate moves each shard's records into three rotated files, the first
// two at the same time (so one has counter .1), and the rest into a
// fourth (counter .10: later than .1, though it sorts before .2 as a
// string), leaving the last fifth in the current file. The first is
// compressed with the suffix first, the second with second.
func rotate(files map[string][]string, first, second string) {
	for name, recs := range maps.Clone(files) {
		n := len(recs) / 5
		files[name+"."+stamp(1)+first] = recs[:n]
		files[name+"."+stamp(1)+".1"+second] = recs[n : 2*n]
		files[name+"."+stamp(1)+".10"] = recs[2*n : 4*n]
		files[name] = recs[4*n:]
	}
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "input.log")
	write(t, dir, map[string][]string{"input.log": {"a"}})
	for _, args := range [][]string{
		{},
		{input, "4"},
		{input, "0", dir},
		{"-pattern", "shard.log", input, "4", dir},
		{filepath.Join(dir, "none"), "4", dir},
		{input, "4", filepath.Join(dir, "none")},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("check %q: exit status %d, stderr %q; want 2 and a message", args, code, stderr.String())
		}
	}
	// Flags may follow the arguments, as check.py's did.
	var stdout, stderr bytes.Buffer
	write(t, dir, map[string][]string{shardOf("a"): {"a"}})
	if code := run([]string{input, "4", dir, "-unordered"}, &stdout, &stderr); code != 1 || !strings.Contains(stdout.String(), "input.log: a file no shard owns") {
		t.Errorf("flags after the arguments: exit status %d, output:\n%s%s", code, stdout.String(), stderr.String())
	}
}

func TestSortRotated(t *testing.T) {
	want := []string{
		"f." + stamp(1),
		"f." + stamp(1) + ".1.zst",
		"f." + stamp(1) + ".2",
		"f." + stamp(1) + ".10.gz",
		"f." + stamp(2) + ".gz",
	}
	names := append([]string{"f." + stamp(1) + ".1", "f." + stamp(2)}, want...) // originals of compressed copies
	slices.Reverse(names)
	var rs []rotatedName
	for _, name := range names {
		r, ok := parseRotated(name)
		if !ok || r.file != "f" {
			t.Fatalf("parseRotated(%q) = %+v, %v", name, r, ok)
		}
		rs = append(rs, r)
	}
	var got []string
	for _, r := range sortRotated(rs) {
		got = append(got, r.name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("sorted:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, name := range []string{"f", "f.log", "f.20261125T100000Z", "f." + stamp(1)[1:], "f.x" + stamp(1)[1:]} {
		if r, ok := parseRotated(name); ok {
			t.Errorf("parseRotated(%q) = %+v, want not rotated", name, r)
		}
	}
}

func TestGiveUp(t *testing.T) {
	dir := t.TempDir()
	msgs := testInput()
	input := filepath.Join(dir, "input.log")
	write(t, dir, map[string][]string{"input.log": msgs})
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, out, route(msgs, "shard-%03d.log", 1))
	rep, err := check(input, shards, out, options{pattern: "shard-%03d.log", maxPending: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	rep.write(&b)
	t.Logf("output:\n%s", b.String())
	for _, w := range []string{"gave up at input line ", "more than 4 KiB of records out of place", "where input line 1 ", ", gave up\n"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("output lacks %q", w)
		}
	}
	if rep.ok() {
		t.Error("ok")
	}
}

func TestInputFraming(t *testing.T) {
	// An empty line is a message, and so is a last line without '\n'.
	dir := t.TempDir()
	input := filepath.Join(dir, "input.log")
	if err := os.WriteFile(input, []byte("a\n\nb"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, out, route([]string{"a", "", "b"}, "shard-%03d.log", 0))
	var stdout, stderr bytes.Buffer
	if code := run([]string{input, fmt.Sprint(shards), out}, &stdout, &stderr); code != 0 || stdout.String() != "check: 3 messages, 4 shards, 0 shards wrong\n" {
		t.Errorf("exit status %d, output:\n%s%s", code, stdout.String(), stderr.String())
	}
}
