package writer

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestBatchOfManyPages: a batch of more buffers than one writev takes
// (maxIOV), its records spanning buffers, is appended whole and in order,
// and rotation (between batches) puts each such batch whole in one file.
func TestBatchOfManyPages(t *testing.T) {
	for _, pages := range []int{1, maxIOV - 1, maxIOV, maxIOV + 1, 3*maxIOV + 7} {
		t.Run(fmt.Sprintf("pages=%d", pages), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "shard-000.log")
			var rot rotations
			w, err := Open(0, path, Options{RotateBytes: 1, Rotated: rot.add})
			if err != nil {
				t.Fatal(err)
			}
			stop := run(w)
			home := make(chan *Batch, 1)
			var want [][]byte
			for round := range 2 {
				b, data := pagedBatch(home, round, pages)
				want = append(want, data)
				w.In() <- b
				if got := <-home; got.Err != nil {
					t.Fatal(got.Err)
				}
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			paths := rot.get()
			if len(paths) != 2 {
				t.Fatalf("%d rotations, want one after each batch", len(paths))
			}
			for i, p := range paths {
				got, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want[i]) {
					t.Errorf("batch %d: file holds %d bytes, want %d", i, len(got), len(want[i]))
				}
			}
			if st := w.Stats(); st.Batches != 2 || st.Bytes != int64(len(want[0])+len(want[1])) {
				t.Errorf("stats %+v, want 2 batches of %d bytes", st, len(want[0])+len(want[1]))
			}
		})
	}
}

// pagedBatch returns a batch of records cut into pages of 64 bytes, as a
// router cuts them (a record may span two pages), and its bytes.
func pagedBatch(home chan<- *Batch, round, pages int) (*Batch, []byte) {
	const pageSize = 64
	var data []byte
	b := NewBatch(home)
	for i := 0; len(data)+100 < pages*pageSize; i++ {
		data = fmt.Appendf(data, "round %d record %d of a batch of many pages\n", round, i)
		b.Records++
	}
	// The last record fills the last page exactly: pages buffers.
	data = fmt.Appendf(data, "round %d last record ", round)
	data = append(data, bytes.Repeat([]byte("x"), pages*pageSize-len(data)-1)...)
	data = append(data, '\n')
	b.Records++
	for off := 0; off < len(data); off += pageSize {
		b.Bufs = append(b.Bufs, data[off:min(off+pageSize, len(data))])
	}
	b.Bytes = len(data)
	if len(b.Bufs) != pages {
		panic(fmt.Sprintf("pagedBatch: %d pages, want %d", len(b.Bufs), pages))
	}
	return b, data
}
