package readback

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/shardlog/shardlog/internal/murmur3ref"
	"github.com/shardlog/shardlog/writer"
)

// compress returns data compressed with c.
func compress(t testing.TB, c writer.Compression, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.WriteCloser
	switch c {
	case writer.CompressGzip:
		w = gzip.NewWriter(&b)
	case writer.CompressZstd:
		zw, err := zstd.NewWriter(&b, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		return data
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeFile(t testing.TB, path string, c writer.Compression, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, compress(t, c, data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readAll returns the records r reads to io.EOF, failing on another error.
func readAll(t *testing.T, r *Reader) []string {
	t.Helper()
	recs, err := readRecords(r)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// readRecords returns the records r reads, torn ones marked with a
// trailing "(torn)", and the error that ended them (nil for io.EOF).
func readRecords(r *Reader) ([]string, error) {
	var recs []string
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		s := string(rec.Data)
		if rec.Torn {
			s += "(torn)"
		}
		recs = append(recs, s)
	}
}

// TestReaderKinds reads one shard whose files are gzip, zstd and plain,
// through one Reader, in the order listed, with line numbers and offsets.
func TestReaderKinds(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "shard-000.log.20261203T100000.000000000Z.gz"), writer.CompressGzip, []byte("g1\ng2\n"))
	writeFile(t, filepath.Join(dir, "shard-000.log.20261203T110000.000000000Z.zst"), writer.CompressZstd, []byte("z1\n\nz3\n"))
	writeFile(t, filepath.Join(dir, "shard-000.log"), writer.CompressNone, []byte("p1\np2\n"))
	fs, err := ListShard(dir, testRouting(t, 1, "message"), 0)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(Options{})
	defer r.Close()
	type rec struct {
		file       int
		data       string
		line, off  int64
		more, torn bool
	}
	var got []rec
	for i, f := range fs {
		if _, err := r.Open(f); err != nil {
			t.Fatal(err)
		}
		for {
			x, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rec{i, string(x.Data), x.Line, x.Offset, x.More, x.Torn})
		}
	}
	want := []rec{{0, "g1", 1, 0, false, false}, {0, "g2", 2, 3, false, false},
		{1, "z1", 1, 0, false, false}, {1, "", 2, 3, false, false}, {1, "z3", 3, 4, false, false},
		{2, "p1", 1, 0, false, false}, {2, "p2", 2, 3, false, false}}
	if !slices.Equal(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

// TestReaderBroken checks truncated and corrupt compressed files and a
// torn tail: the whole records before the break are returned, then an
// error naming the file and the line of the record the break cut.
func TestReaderBroken(t *testing.T) {
	var content bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&content, "record %d %s\n", i, strings.Repeat("x", i%50))
	}
	all := strings.Split(strings.TrimSuffix(content.String(), "\n"), "\n")
	gz := compress(t, writer.CompressGzip, content.Bytes())
	zs := compress(t, writer.CompressZstd, content.Bytes())
	corrupt := func(b []byte) []byte {
		b = slices.Clone(b)
		for i := len(b) / 2; i < len(b)/2+64; i++ {
			b[i] ^= 0x55
		}
		return b
	}
	for _, tc := range []struct {
		name  string
		comp  writer.Compression
		data  []byte
		torn  string // the last record, torn; "" for none
		err   string // in the error; "" for none
		fewer bool   // fewer records than all come back
	}{
		{"gzip whole", writer.CompressGzip, gz, "", "", false},
		{"zstd whole", writer.CompressZstd, zs, "", "", false},
		{"gzip truncated", writer.CompressGzip, gz[:len(gz)/2], "", "unexpected EOF", true},
		{"zstd truncated", writer.CompressZstd, zs[:len(zs)/2], "", "unexpected EOF", true},
		{"gzip truncated in its trailer", writer.CompressGzip, gz[:len(gz)-4], "", "unexpected EOF", false},
		{"gzip corrupt", writer.CompressGzip, corrupt(gz), "", "broken at line", true},
		{"zstd corrupt", writer.CompressZstd, corrupt(zs), "", "broken at line", true},
		{"gzip empty", writer.CompressGzip, nil, "", "gzip header", true},
		{"gzip not gzip", writer.CompressGzip, []byte("plain text\n"), "", "gzip header", true},
		{"zstd not zstd", writer.CompressZstd, []byte("plain text\n"), "", "broken at line 1", true},
		{"plain torn tail", writer.CompressNone, []byte("a\nb\nhalf a rec"), "half a rec", "", true},
		{"zstd torn tail", writer.CompressZstd, compress(t, writer.CompressZstd, []byte("a\nhalf")), "half", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "shard-000.log.20261203T100000.000000000Z"+map[writer.Compression]string{
				writer.CompressGzip: ".gz", writer.CompressZstd: ".zst", writer.CompressNone: ""}[tc.comp])
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			fs, err := ListShard(filepath.Dir(path), testRouting(t, 1, "message"), 0)
			if err != nil || len(fs) != 1 {
				t.Fatalf("list: %v %v", names(fs), err)
			}
			r := NewReader(Options{})
			defer r.Close()
			if _, err := r.Open(fs[0]); err != nil {
				t.Fatal(err)
			}
			recs, err := readRecords(r)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), path)) {
				t.Fatalf("error %v, want one naming %s and %q", err, path, tc.err)
			}
			// A break names the line of the record it cut, which does not
			// come back: every record before it is whole.
			var se *StreamError
			if err != nil && (!errors.As(err, &se) || se.Line != int64(len(recs))+1) {
				t.Errorf("error %#v does not give the line after the %d records read", err, len(recs))
			}
			if err != nil && len(recs) > 0 && strings.HasSuffix(recs[len(recs)-1], "(torn)") {
				t.Errorf("the part of a record before the break came back as a record: %q", recs[len(recs)-1])
			}
			if tc.torn != "" && (len(recs) == 0 || recs[len(recs)-1] != tc.torn+"(torn)") {
				t.Errorf("last record %q, want %q torn", recs[len(recs)-1:], tc.torn)
			}
			if !tc.fewer && len(recs) != len(all) {
				t.Errorf("%d records, want %d", len(recs), len(all))
			}
			if tc.fewer && len(recs) >= len(all) {
				t.Errorf("%d records from a broken file of %d", len(recs), len(all))
			}
			// The whole records returned are the file's first ones,
			// except after corruption, which may garble what comes before
			// the checksum that finds it.
			if tc.comp != writer.CompressNone && !strings.Contains(tc.name, "corrupt") && tc.torn == "" {
				for i, rec := range recs {
					if strings.HasSuffix(rec, "(torn)") {
						break
					}
					if rec != all[i] {
						t.Fatalf("record %d: %q, want %q", i, rec, all[i])
					}
				}
			}
		})
	}
}

// TestReaderLongRecords checks that a record longer than MaxRecord comes
// back in pieces, with the same line, and the records after it whole.
func TestReaderLongRecords(t *testing.T) {
	long := strings.Repeat("L", 2500)
	data := "a\n" + long + "\n" + strings.Repeat("M", 1000) + "\nb\n" + long
	r := NewReader(Options{MaxRecord: 1000})
	defer r.Close()
	if err := r.Reset(strings.NewReader(data), "test", writer.CompressNone); err != nil {
		t.Fatal(err)
	}
	type piece struct {
		n          int
		line       int64
		more, torn bool
	}
	var got []piece
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, piece{len(rec.Data), rec.Line, rec.More, rec.Torn})
	}
	want := []piece{{1, 1, false, false}, {1000, 2, true, false}, {1000, 2, true, false}, {500, 2, false, false},
		{1000, 3, false, false}, {1, 4, false, false}, {1000, 5, true, false}, {1000, 5, true, false}, {500, 5, false, true}}
	if !slices.Equal(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

// TestReaderMemory reads a large zstd file, and a plain one made of one
// huge record, with a small MaxRecord: the memory allocated must not grow
// with the file's size.
func TestReaderMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 64 MiB")
	}
	dir := t.TempDir()
	var content bytes.Buffer
	for i := 0; content.Len() < 32<<20; i++ {
		fmt.Fprintf(&content, `{"user":"u%d","msg":"%s"}`+"\n", i%1000, strings.Repeat("m", i%200))
	}
	zpath := filepath.Join(dir, "big.zst")
	writeFile(t, zpath, writer.CompressZstd, content.Bytes())
	ppath := filepath.Join(dir, "huge-record")
	writeFile(t, ppath, writer.CompressNone, bytes.Repeat([]byte("x"), 32<<20))
	content = bytes.Buffer{}
	for _, tc := range []struct {
		path string
		comp writer.Compression
		recs int
	}{{zpath, writer.CompressZstd, 0}, {ppath, writer.CompressNone, (32 << 20) / (64 << 10)}} {
		r := NewReader(Options{MaxRecord: 64 << 10})
		f, err := os.Open(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := r.Reset(f, tc.path, tc.comp); err != nil {
			t.Fatal(err)
		}
		n, bytesRead := 0, 0
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
			bytesRead += len(rec.Data)
		}
		runtime.ReadMemStats(&after)
		r.Close()
		f.Close()
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %d records, %d bytes, %d bytes allocated", filepath.Base(tc.path), n, bytesRead, alloc)
		if bytesRead < 31<<20 || tc.recs > 0 && n != tc.recs {
			t.Errorf("%s: read %d records, %d bytes", tc.path, n, bytesRead)
		}
		if alloc > 16<<20 {
			t.Errorf("%s: %d MiB allocated reading 32 MiB: memory grows with the file", tc.path, alloc>>20)
		}
	}
}

// TestShardOf checks the shard of keys against the reference murmur3.
func TestShardOf(t *testing.T) {
	r, err := NewRouting(writer.Routing{Shards: 7, Seed: 42, Key: "message", FilePattern: "s%d"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		key := []byte(fmt.Sprintf("key-%d", i))
		if got, want := r.ShardOf(key), int(murmur3ref.Sum32(key, 42)%7); got != want {
			t.Fatalf("ShardOf(%s) = %d, want %d", key, got, want)
		}
	}
}
