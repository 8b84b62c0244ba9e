// Command latency measures shardlog's latency under a steady load: the
// time from a line being written into shardlog's standard input to that
// line being readable in its shard file.
//
//	go run ./bench/latency -rate 100000 -duration 5s [-n 16] [-args "--batch-max-delay 20ms"]
//
// It starts "shardlog run -n N -d DIR ARGS...", writes lines into its
// standard input at a fixed rate (every millisecond, the lines due by then
// in one write), and polls the shard files for what was appended. Each line
// carries its sequence number and its send time, taken just before the
// write that carries it; the time it is first read back minus its send
// time is its latency. Lines sent during the warm-up are checked but not
// measured. The figures include up to one poll interval of read-back
// delay.
//
// It prints one line (here for -rate 100000 -duration 2s), or with -json
// one JSON object:
//
//	n=16 rate=100000/s lines=200000 achieved=99993/s p50=50.27ms p90=91.24ms p99=100.91ms max=102.85ms lost=0 dup=0 cpu_self=0.39s cpu_shardlog=0.35s
//
// achieved is the rate the writer kept (lines over the time to the end of
// the last write). When it fell behind the schedule by more than a tenth
// of a second's lines after the warm-up, the line ends in "behind=LINES"
// (the largest lag; the writer catches up 20 ms of lines per write at
// most, and stops at -duration regardless), and the latencies are those
// of what it achieved, not of the rate asked for. cpu_self is the CPU
// time this program used (writer and poller), cpu_shardlog shardlog's.
// It exits 1 if shardlog failed or any line was lost, duplicated or
// malformed ("bad=").
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// tick is how often the writer writes the lines due.
const tick = time.Millisecond

// Line layout: "seq=SSSSSSSSSSSS sent=TTTTTTTTTTTTTTTTTTT BODY\n", with
// the sequence number and the send time (nanoseconds since the start) as
// fixed-width decimals, so the writer can fill in the time just before the
// write and the reader can parse a line without searching it.
const (
	seqOff    = len("seq=")
	seqLen    = 12
	sentOff   = seqOff + seqLen + len(" sent=")
	sentLen   = 19
	headerLen = sentOff + sentLen + len(" ")
	// minSize is the shortest line -size allows: the header and '\n'.
	minSize = headerLen + 1
)

func main() {
	bin := flag.String("bin", "bin/shardlog", "path to the shardlog binary")
	n := flag.Int("n", 16, "number of shards")
	rate := flag.Int("rate", 100_000, "lines per second")
	duration := flag.Duration("duration", 5*time.Second, "how long to write, warm-up included")
	warmup := flag.Duration("warmup", 500*time.Millisecond, "first part of the run excluded from the statistics")
	size := flag.Int("size", 180, "line size in bytes, '\\n' included")
	poll := flag.Duration("poll", 200*time.Microsecond, "read-back poll interval (the pause between passes over the files)")
	args := flag.String("args", "", "extra shardlog arguments, split on spaces")
	dir := flag.String("dir", "", "output directory (default: a fresh temporary directory, removed after)")
	asJSON := flag.Bool("json", false, "print the result as one JSON object")
	verbose := flag.Bool("v", false, "pass shardlog's standard error through")
	flag.Parse()

	cfg := config{
		bin: *bin, n: *n, rate: *rate, duration: *duration, warmup: *warmup,
		size: *size, poll: *poll, args: strings.Fields(*args), dir: *dir, verbose: *verbose,
	}
	res, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
	if *asJSON {
		b, err := json.Marshal(res)
		if err != nil {
			fmt.Fprintln(os.Stderr, "latency:", err)
			os.Exit(1)
		}
		fmt.Println(string(b))
	} else {
		fmt.Println(res.String())
	}
	if res.Lost > 0 || res.Dup > 0 || res.Bad > 0 {
		os.Exit(1)
	}
}

// config is one run's settings.
type config struct {
	bin      string
	n        int
	rate     int
	duration time.Duration
	warmup   time.Duration
	size     int
	poll     time.Duration
	args     []string
	dir      string
	verbose  bool
}

// result is one run's figures. Latencies are in milliseconds.
type result struct {
	N          int      `json:"n"`
	Rate       int      `json:"rate"`
	Size       int      `json:"size"`
	DurationS  float64  `json:"duration_s"`
	WarmupS    float64  `json:"warmup_s"`
	PollUS     float64  `json:"poll_us"`
	Args       []string `json:"args"`
	Lines      int64    `json:"lines"`
	Achieved   float64  `json:"achieved"`
	FellBehind bool     `json:"fell_behind"`
	MaxLag     int64    `json:"max_lag"`
	Samples    int      `json:"samples"`
	P50        float64  `json:"p50_ms"`
	P90        float64  `json:"p90_ms"`
	P99        float64  `json:"p99_ms"`
	Max        float64  `json:"max_ms"`
	Lost       int64    `json:"lost"`
	Dup        int64    `json:"dup"`
	Bad        int64    `json:"bad"`
	// CPU time used by this program (writer and reader) and by shardlog.
	CPUSelfS     float64 `json:"cpu_self_s"`
	CPUShardlogS float64 `json:"cpu_shardlog_s"`
}

// String formats r as one line of key=value fields.
func (r result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "n=%d rate=%d/s lines=%d achieved=%.0f/s p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms lost=%d dup=%d cpu_self=%.2fs cpu_shardlog=%.2fs",
		r.N, r.Rate, r.Lines, r.Achieved, r.P50, r.P90, r.P99, r.Max, r.Lost, r.Dup, r.CPUSelfS, r.CPUShardlogS)
	if r.Bad > 0 {
		fmt.Fprintf(&b, " bad=%d", r.Bad)
	}
	if r.FellBehind {
		fmt.Fprintf(&b, " behind=%d", r.MaxLag)
	}
	return b.String()
}

// run starts shardlog, feeds it at cfg.rate for cfg.duration while reading
// its files back, and returns the figures.
func run(cfg config) (result, error) {
	switch {
	case cfg.n < 1:
		return result{}, fmt.Errorf("-n %d: want at least 1", cfg.n)
	case cfg.rate < 1:
		return result{}, fmt.Errorf("-rate %d: want at least 1", cfg.rate)
	case cfg.size < minSize:
		return result{}, fmt.Errorf("-size %d: want at least %d", cfg.size, minSize)
	case cfg.warmup < 0 || cfg.duration <= cfg.warmup:
		return result{}, fmt.Errorf("-duration %v: want more than the warm-up (%v)", cfg.duration, cfg.warmup)
	}
	dir := cfg.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "shardlog-latency-")
		if err != nil {
			return result{}, fmt.Errorf("create temporary directory: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return result{}, fmt.Errorf("create %s: %w", dir, err)
	}

	total := totalLines(cfg.rate, cfg.duration)
	rd := newReader(dir, filePattern(cfg.args), cfg.n, cfg.size, total, cfg.warmup)
	// Files left by an earlier run are read from their current end.
	if err := rd.openExisting(); err != nil {
		return result{}, err
	}
	defer rd.close()

	pr, pw, err := os.Pipe()
	if err != nil {
		return result{}, fmt.Errorf("create pipe: %w", err)
	}
	cmd := exec.Command(cfg.bin, append([]string{"run", "-n", fmt.Sprint(cfg.n), "-d", dir}, cfg.args...)...)
	cmd.Stdin = pr
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if cfg.verbose {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return result{}, fmt.Errorf("start %s: %w", cfg.bin, err)
	}
	pr.Close()

	start := time.Now()
	rd.start = start
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- rd.run(stop, cfg.poll) }()

	ws, werr := writeLines(pw, start, cfg.rate, cfg.duration, cfg.warmup, cfg.size)
	if err := pw.Close(); err != nil && werr == nil {
		werr = fmt.Errorf("close shardlog's stdin: %w", err)
	}
	cerr := cmd.Wait()
	close(stop)
	rerr := <-done
	if cerr != nil {
		return result{}, fmt.Errorf("%s: %w\n%s", cfg.bin, cerr, bytes.TrimSpace(stderr.Bytes()))
	}
	if werr != nil {
		return result{}, werr
	}
	if rerr != nil {
		return result{}, rerr
	}

	cpu := selfCPU() // before the sort, which is not part of the run
	lost, dup, extra := rd.tally(ws.sent)
	p := summarize(rd.samples)
	return result{
		N: cfg.n, Rate: cfg.rate, Size: cfg.size,
		DurationS: cfg.duration.Seconds(), WarmupS: cfg.warmup.Seconds(),
		PollUS: float64(cfg.poll) / float64(time.Microsecond), Args: cfg.args,
		Lines:      ws.sent,
		Achieved:   achieved(ws),
		FellBehind: ws.maxLag > int64(cfg.rate/10),
		MaxLag:     ws.maxLag,
		Samples:    len(rd.samples),
		P50:        ms(p.p50), P90: ms(p.p90), P99: ms(p.p99), Max: ms(p.max),
		Lost: lost, Dup: dup, Bad: rd.bad + extra,
		CPUSelfS:     cpu.Seconds(),
		CPUShardlogS: (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds(),
	}, nil
}

// totalLines returns how many lines a run at rate lines/s sends in d.
func totalLines(rate int, d time.Duration) int64 {
	return int64(float64(rate) * d.Seconds())
}

// filePattern returns the shard file name pattern shardlog is given in
// args (--file-pattern), or its default.
func filePattern(args []string) string {
	p := "shard-%03d.log"
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--file-pattern="); ok {
			p = v
		} else if a == "--file-pattern" && i+1 < len(args) {
			p = args[i+1]
		}
	}
	return p
}

// achieved returns the rate ws kept, in lines per second.
func achieved(ws writeStats) float64 {
	if ws.sent == 0 {
		return 0
	}
	return float64(ws.sent) / ws.elapsed.Seconds()
}

// selfCPU returns the user and system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ms converts microseconds to milliseconds.
func ms(us int32) float64 { return float64(us) / 1000 }

// sleep suspends the calling goroutine for d, holding its thread and P.
// time.Sleep waits whole milliseconds on Linux when the process is
// otherwise idle, and syscall.Nanosleep hands the P off and back at
// every call, which costs several times the CPU of this raw nanosleep
// when the reader wakes thousands of times a second.
func sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	ts := syscall.NsecToTimespec(int64(d))
	for {
		_, _, errno := syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&ts)), 0)
		if errno != syscall.EINTR {
			return
		}
	}
}

// writeStats is what the writer did.
type writeStats struct {
	sent    int64         // lines written
	elapsed time.Duration // from the start to the end of the last write
	maxLag  int64         // most lines due but not yet written, after the warm-up
}

// writeLines writes lines into w at rate lines/s from start until d has
// passed: every tick, the lines due by then, in one Write. The send time
// in each line is taken just before that Write. If the writer falls
// behind, it catches up at most 20 ms of lines per write, and stops at d
// regardless.
func writeLines(w io.Writer, start time.Time, rate int, d, warmup time.Duration, size int) (writeStats, error) {
	total := totalLines(rate, d)
	chunk := max(int64(rate/50), 1)
	bodies := makeBodies(1024, size-headerLen-1)
	buf := make([]byte, 0, chunk*int64(size))
	var ws writeStats
	var digits [sentLen]byte
	for k := int64(1); ; k++ {
		el := time.Since(start)
		due := min(total, int64(float64(rate)*el.Seconds()))
		if n := min(due-ws.sent, chunk); n > 0 {
			buf = buf[:0]
			for seq := ws.sent; seq < ws.sent+n; seq++ {
				buf = appendLine(buf, uint64(seq), 0, bodies[seq%int64(len(bodies))])
			}
			putDigits(digits[:], uint64(time.Since(start)))
			for off := 0; off < len(buf); off += size {
				copy(buf[off+sentOff:], digits[:])
			}
			if _, err := w.Write(buf); err != nil {
				return ws, fmt.Errorf("write to shardlog's stdin: %w", err)
			}
			ws.sent += n
			ws.elapsed = time.Since(start)
		}
		if el >= warmup {
			ws.maxLag = max(ws.maxLag, due-ws.sent)
		}
		if el >= d {
			return ws, nil
		}
		next := time.Duration(k) * tick
		if now := time.Since(start); now > next {
			k = int64(now / tick) // late: skip the ticks missed
			continue
		}
		sleep(next - time.Since(start))
	}
}

// appendLine appends to dst the line with sequence number seq, send time
// sent and body, ending in '\n'.
func appendLine(dst []byte, seq uint64, sent int64, body []byte) []byte {
	dst = append(dst, "seq="...)
	dst = append(dst, make([]byte, seqLen)...)
	putDigits(dst[len(dst)-seqLen:], seq)
	dst = append(dst, " sent="...)
	dst = append(dst, make([]byte, sentLen)...)
	putDigits(dst[len(dst)-sentLen:], uint64(sent))
	dst = append(dst, ' ')
	dst = append(dst, body...)
	return append(dst, '\n')
}

// putDigits writes v into dst in decimal, right-aligned and zero-padded;
// higher digits that do not fit are dropped.
func putDigits(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// parseLine returns the sequence number and send time of line, given
// without its '\n', and whether it has the layout appendLine writes.
func parseLine(line []byte) (seq uint64, sent int64, ok bool) {
	if len(line) < headerLen || string(line[:seqOff]) != "seq=" ||
		string(line[seqOff+seqLen:sentOff]) != " sent=" || line[headerLen-1] != ' ' {
		return 0, 0, false
	}
	seq, ok1 := parseDigits(line[seqOff : seqOff+seqLen])
	t, ok2 := parseDigits(line[sentOff : sentOff+sentLen])
	if !ok1 || !ok2 || t > math.MaxInt64 {
		return 0, 0, false
	}
	return seq, int64(t), true
}

// parseDigits parses b, all decimal digits, as an unsigned integer.
func parseDigits(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// makeBodies returns n log-like texts of length size each (after the
// header a line reads like a request log), deterministic.
func makeBodies(n, size int) [][]byte {
	levels := []string{"INFO", "INFO", "INFO", "WARN", "DEBUG", "ERROR"}
	paths := []string{"/api/v1/orders", "/api/v1/users", "/health", "/api/v2/search", "/static/app.js"}
	statuses := []int{200, 200, 200, 404, 500}
	x := uint64(88172645463325252)
	bodies := make([][]byte, n)
	for i := range bodies {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b := fmt.Appendf(nil, "2026-11-25T%02d:%02d:%02d.%06dZ %-5s svc=api-%d req=%016x user=u%05d method=GET path=%s status=%d bytes=%d dur_ms=%d msg=\"request completed\"",
			i/3600%24, i/60%60, i%60, x>>20%1000000, levels[x%6], x>>8%8, x, x>>16%50000, paths[x>>24%5],
			statuses[x>>32%5], x>>40%65536, x>>48%1000)
		for len(b) < size {
			b = fmt.Appendf(b, " trace=%016x", x*uint64(len(b)+1))
		}
		bodies[i] = b[:size]
	}
	return bodies
}

// percentiles are latency percentiles in microseconds.
type percentiles struct{ p50, p90, p99, max int32 }

// summarize sorts samples and returns their percentiles.
func summarize(samples []int32) percentiles {
	slices.Sort(samples)
	return percentiles{
		p50: percentile(samples, 50),
		p90: percentile(samples, 90),
		p99: percentile(samples, 99),
		max: percentile(samples, 100),
	}
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value not less than p percent of the
// values. It returns 0 for no values.
func percentile(sorted []int32, p float64) int32 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// maxCarry is the longest partial line the reader holds between reads;
// anything longer is counted as malformed and dropped.
const maxCarry = 64 << 10

// shardFile is a shard file the reader has open.
type shardFile struct {
	path  string
	f     *os.File
	carry []byte // the partial last line of the previous read
}

// reader reads the shard files back and records each line it sees. Only
// its own goroutine touches it while it runs.
type reader struct {
	dir     string
	pattern string
	size    int
	warmup  int64 // nanoseconds; lines sent earlier are not measured
	start   time.Time
	files   []*shardFile // nil until the file exists
	buf     []byte
	counts  []uint8 // times each sequence number was seen, saturating
	samples []int32 // latencies in microseconds
	bad     int64   // malformed lines and unknown sequence numbers
}

// newReader returns a reader for n shard files named by pattern in dir,
// of lines of size bytes with sequence numbers below total.
func newReader(dir, pattern string, n, size int, total int64, warmup time.Duration) *reader {
	return &reader{
		dir: dir, pattern: pattern, size: size, warmup: int64(warmup),
		files:   make([]*shardFile, n),
		buf:     make([]byte, 1<<20),
		counts:  make([]uint8, total),
		samples: make([]int32, 0, total),
	}
}

// openExisting opens the shard files already there and skips to their end.
func (r *reader) openExisting() error {
	if err := r.openMissing(); err != nil {
		return err
	}
	for _, sf := range r.files {
		if sf == nil {
			continue
		}
		if _, err := sf.f.Seek(0, io.SeekEnd); err != nil {
			return fmt.Errorf("seek %s: %w", sf.path, err)
		}
	}
	return nil
}

// openMissing opens the shard files that are not open yet and exist now.
func (r *reader) openMissing() error {
	for i, sf := range r.files {
		if sf != nil {
			continue
		}
		path := filepath.Join(r.dir, fmt.Sprintf(r.pattern, i))
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		r.files[i] = &shardFile{path: path, f: f}
	}
	return nil
}

// run polls the shard files every poll until stop is closed, then reads
// them one last time and returns.
func (r *reader) run(stop <-chan struct{}, poll time.Duration) error {
	for {
		final := false
		select {
		case <-stop:
			final = true
		default:
		}
		if err := r.openMissing(); err != nil {
			return err
		}
		for _, sf := range r.files {
			if sf == nil {
				continue
			}
			if err := r.drain(sf); err != nil {
				return err
			}
		}
		if final {
			for _, sf := range r.files {
				if sf != nil && len(sf.carry) > 0 {
					r.bad++ // a last line without '\n'
				}
			}
			return nil
		}
		sleep(poll)
	}
}

// drain reads what was appended to sf since the last call and records
// every complete line in it.
func (r *reader) drain(sf *shardFile) error {
	for {
		k := copy(r.buf, sf.carry)
		m, err := sf.f.Read(r.buf[k:])
		if m > 0 {
			now := int64(time.Since(r.start))
			rest := r.consume(r.buf[:k+m], now)
			if len(rest) > maxCarry {
				r.bad++
				rest = nil
			}
			sf.carry = append(sf.carry[:0], rest...)
		}
		if err == io.EOF || err == nil && k+m < len(r.buf) {
			return nil // a short read of a regular file: at its end for now
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", sf.path, err)
		}
	}
}

// consume records each complete line of data, read at now (nanoseconds
// since the start), and returns the partial line after the last '\n'.
func (r *reader) consume(data []byte, now int64) []byte {
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return data
		}
		r.record(data[:i], now)
		data = data[i+1:]
	}
}

// record counts line, read at now, and measures its latency if it was
// sent after the warm-up.
func (r *reader) record(line []byte, now int64) {
	seq, sent, ok := parseLine(line)
	if !ok || len(line) != r.size-1 || seq >= uint64(len(r.counts)) {
		r.bad++
		return
	}
	if r.counts[seq] < math.MaxUint8 {
		r.counts[seq]++
	}
	if sent >= r.warmup {
		us := max(now-sent, 0) / 1000
		r.samples = append(r.samples, int32(min(us, math.MaxInt32)))
	}
}

// tally returns how many of the sent lines were never seen, how many extra
// times lines were seen, and how many lines were seen that were not sent.
func (r *reader) tally(sent int64) (lost, dup, extra int64) {
	for seq, c := range r.counts {
		switch {
		case c == 0 && int64(seq) < sent:
			lost++
		case c > 0 && int64(seq) >= sent:
			extra++
		}
		if c > 1 {
			dup += int64(c) - 1
		}
	}
	return lost, dup, extra
}

// close closes the files r opened.
func (r *reader) close() {
	for _, sf := range r.files {
		if sf != nil {
			sf.f.Close()
		}
	}
}
