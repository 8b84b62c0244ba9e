package readback

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/shardlog/shardlog/writer"
)

// DefaultMaxRecord is the longest record a Reader returns whole unless told
// otherwise: max_message_bytes's default, so that every record shardlog
// writes with the default configuration comes back whole.
const DefaultMaxRecord = 1 << 20

// maxMaxRecord bounds Options.MaxRecord, and so a Reader's memory, however
// large max_message_bytes was (up to 1 GiB): longer records come back in
// pieces.
const maxMaxRecord = 64 << 20

// readSize is how much a Reader reads at a time beyond its longest record.
const readSize = 256 << 10

// MaxZstdWindow is the largest zstd window a Reader decodes: 64 MiB, far
// more than shardlog's compression uses (a few MiB). A file compressed
// with a larger one (zstd --long) is refused with an error rather than
// read with unbounded memory.
const MaxZstdWindow = 64 << 20

// Options configure a Reader.
type Options struct {
	// MaxRecord is the longest record returned whole, without its '\n'
	// (0: DefaultMaxRecord; at most 64 MiB). A longer one is returned in
	// pieces of MaxRecord bytes, each but the last with More set, so that
	// memory stays bounded whatever a file holds. Give max_message_bytes.
	MaxRecord int
	// ZstdConcurrency is how many goroutines decode a zstd stream (0: 2).
	ZstdConcurrency int
}

// Record is one record of a file.
type Record struct {
	// Data is the record without its '\n'. It is valid until the next
	// call of Next.
	Data []byte
	// Line is the record's line number in the file, from 1. Offset is
	// where its Data starts in the file's content (decompressed).
	Line, Offset int64
	// More says that the record is longer than Options.MaxRecord: Data
	// is a piece of it, and the next record returned, with the same Line,
	// goes on with it.
	More bool
	// Torn says that the file ended before the record's '\n': a record
	// torn by a crash, a write in progress, or the end of a broken
	// compressed stream.
	Torn bool
}

// StreamError says where reading a file failed: a truncated or corrupt
// compressed stream, or a read error. The records before Line were
// returned whole.
type StreamError struct {
	Path string
	// Line is the line in which the stream broke, and Offset how many
	// bytes of content were read before it.
	Line, Offset int64
	// Read is how many bytes of the file were read (decoders read ahead,
	// so the break is at or before it).
	Read int64
	Err  error
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("read %s: broken at line %d (after %d bytes of content, %d bytes of the file read): %v",
		e.Path, e.Line, e.Offset, e.Read, e.Err)
}

func (e *StreamError) Unwrap() error { return e.Err }

// Reader reads the records of one file at a time: Open a file, call Next
// until it returns an error (io.EOF at the end), then Open the next; Close
// when done. Its buffers and decoders are reused from file to file, so
// its memory is bounded by Options.MaxRecord and the decoders' windows,
// whatever the files' sizes. A Reader is used by one goroutine.
type Reader struct {
	opt  Options
	path string
	file *os.File
	raw  countReader
	gz   *gzip.Reader
	zd   *zstd.Decoder
	sp   splitter
}

// NewReader returns a Reader.
func NewReader(opt Options) *Reader {
	opt = opt.withDefaults()
	return &Reader{opt: opt, sp: newSplitter(opt.MaxRecord)}
}

// withDefaults returns o with its zero values set to the defaults, and
// MaxRecord within bounds.
func (o Options) withDefaults() Options {
	if o.MaxRecord <= 0 {
		o.MaxRecord = DefaultMaxRecord
	}
	o.MaxRecord = min(o.MaxRecord, maxMaxRecord)
	if o.ZstdConcurrency <= 0 {
		o.ZstdConcurrency = 2
	}
	return o
}

// Open starts reading f, closing the file read before. When f's name is
// gone but a compressed copy was listed with it, the copy is read. It
// returns the path opened (nil error), or an error naming f; an error
// wrapping fs.ErrNotExist means that the file was removed since it was
// listed (retention).
func (r *Reader) Open(f File) (string, error) {
	r.closeFile()
	h, path, comp, err := f.open()
	if err != nil {
		return path, fmt.Errorf("open shard %d file: %w", f.Shard, err)
	}
	if err := r.Reset(h, path, comp); err != nil {
		h.Close()
		return path, err
	}
	r.file = h
	return path, nil
}

// Reset starts reading src, named path in errors, compressed with comp,
// from its start. The Reader does not close src.
func (r *Reader) Reset(src io.Reader, path string, comp writer.Compression) error {
	r.closeFile()
	r.path = path
	r.raw = countReader{r: src}
	var in io.Reader = &r.raw
	switch comp {
	case writer.CompressNone, "":
	case writer.CompressGzip:
		if r.gz == nil {
			r.gz = new(gzip.Reader)
		}
		if err := r.gz.Reset(&r.raw); err != nil {
			if errors.Is(err, io.EOF) {
				// An empty file: no gzip stream at all.
				err = io.ErrUnexpectedEOF
			}
			r.sp.reset(eofReader{})
			r.sp.err = &StreamError{Path: path, Line: 1, Read: r.raw.n, Err: fmt.Errorf("gzip header: %w", err)}
			return nil
		}
		in = r.gz
	case writer.CompressZstd:
		if r.zd == nil {
			zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(r.opt.ZstdConcurrency), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(MaxZstdWindow))
			if err != nil {
				return fmt.Errorf("read %s: zstd decoder: %w", path, err)
			}
			r.zd = zd
		}
		if err := r.zd.Reset(&r.raw); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		in = r.zd
	default:
		return fmt.Errorf("read %s: unknown compression %q", path, comp)
	}
	r.sp.reset(in)
	return nil
}

// Next returns the next record. At the end of the file it returns io.EOF;
// where the file could not be read further (a truncated or corrupt
// compressed stream, a read error) a *StreamError naming the line of the
// record the break cut, once the whole records before it were returned.
// (The part of that record before the break is not returned: it is no
// record. Only pieces of a record longer than MaxRecord, each returned
// as it is read, may have come before it.)
func (r *Reader) Next() (Record, error) {
	rec, err := r.sp.next(false)
	if err != nil && !errors.Is(err, io.EOF) {
		var se *StreamError
		if !errors.As(err, &se) {
			err = &StreamError{Path: r.path, Line: r.sp.line, Offset: r.sp.off, Read: r.raw.n, Err: err}
			r.sp.err = err
		}
	}
	return rec, err
}

// Path returns the path of the file being read.
func (r *Reader) Path() string { return r.path }

// Close closes the file being read and releases the decoders.
func (r *Reader) Close() error {
	r.closeFile()
	if r.zd != nil {
		r.zd.Close()
		r.zd = nil
	}
	return nil
}

func (r *Reader) closeFile() {
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// splitter cuts a stream into records in a buffer of its own, which holds
// one longest record and a read's worth more.
type splitter struct {
	src  io.Reader
	max  int
	buf  []byte
	r, w int   // buf[r:w] is read and not yet returned
	err  error // the read error that ended the stream
	line int64 // the line of the next record
	off  int64 // the content offset of buf[r]
	cont bool  // the next record goes on with a piece returned before
}

func newSplitter(max int) splitter {
	return splitter{max: max, buf: make([]byte, max+readSize)}
}

func (s *splitter) reset(src io.Reader) {
	*s = splitter{src: src, max: s.max, buf: s.buf, line: 1}
}

// next returns the next record. When following (a file still written
// to), the end of the input is not the end of the stream: a last record
// without its '\n' is kept, and the next call reads on.
func (s *splitter) next(follow bool) (Record, error) {
	for {
		// A record of max bytes and its '\n' are whole; longer, a piece.
		if i := bytes.IndexByte(s.buf[s.r:min(s.w, s.r+s.max+1)], '\n'); i >= 0 {
			return s.take(i, i+1, false, false), nil
		}
		if s.w-s.r > s.max {
			return s.take(s.max, s.max, true, false), nil
		}
		if s.err != nil {
			if errors.Is(s.err, io.EOF) && follow {
				s.err = nil
				return Record{}, io.EOF
			}
			// The end of the file without a '\n' leaves a torn record.
			// A break (a corrupt or truncated compressed stream, a read
			// error) cuts the record it falls in: that part is no record,
			// and the error names its line.
			if s.w > s.r && errors.Is(s.err, io.EOF) {
				return s.take(s.w-s.r, s.w-s.r, false, true), nil
			}
			return Record{}, s.err
		}
		if s.r > 0 {
			s.w = copy(s.buf, s.buf[s.r:s.w])
			s.r = 0
		}
		n, err := s.src.Read(s.buf[s.w:])
		s.w += n
		if err != nil {
			s.err = err
		} else if n == 0 {
			s.err = io.ErrNoProgress
		}
	}
}

// take returns the next n bytes as a record and consumes used bytes.
func (s *splitter) take(n, used int, more, torn bool) Record {
	rec := Record{Data: s.buf[s.r : s.r+n], Line: s.line, Offset: s.off, More: more, Torn: torn}
	s.r += used
	s.off += int64(used)
	if !more {
		s.line++
	}
	return rec
}
