// Command check checks shard files against the input they were written
// from:
//
//	check [-seed S] [-pattern shard-%03d.log] [-unordered | -at-least-once] [-rotated] INPUT N OUTDIR
//
// Every message of INPUT (lines split on '\n'; a last line without one
// counts) must stand exactly once, as the message and a '\n', in the file of
// shard murmur3_32(message, S) mod N, in input order within each file, and
// no file in OUTDIR may hold anything else. The hash is
// internal/murmur3ref, written apart from the library shardlog routes
// with. Files whose names start with '.' (shardlog's own) are not looked at.
//
// With -unordered the order within a file does not matter. With
// -at-least-once (for inputs that redeliver, such as JetStream) a message
// may also stand more than once, in any order; the duplicates are counted.
// With -rotated a shard's records may also stand in its rotated files,
// <file>.<20060102T150405.000000000Z>[.<n>][.gz|.zst], read oldest first
// (by time, then n) before the current file; .tmp files are ignored, and
// where a rotated file and its compressed copy both exist only the copy is
// read.
//
// The input and the files are streamed side by side: memory holds only the
// records that are out of place (and, with -at-least-once, a hash of each
// message), and the check gives up once those reach 256 MiB.
//
// It exits 0 when all holds, 1 naming the first problems (file, line,
// what) otherwise, and 2 when it cannot check. The last line it prints is
// a summary, "check: M messages, N shards, K shards wrong", followed on
// failure by how many problems of each kind it found.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"flag"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/shardlog/shardlog/internal/murmur3ref"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run checks as the command line args ask, writing the report to stdout
// and usage errors to stderr, and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint("seed", 0, "murmur3 seed")
	pattern := fs.String("pattern", "shard-%03d.log", "file name, one integer verb")
	unordered := fs.Bool("unordered", false, "ignore the order within a file")
	atLeastOnce := fs.Bool("at-least-once", false, "allow duplicates, ignore the order")
	rotated := fs.Bool("rotated", false, "read rotated (and compressed) files too")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: check [-seed S] [-pattern P] [-unordered | -at-least-once] [-rotated] INPUT N OUTDIR")
		fs.PrintDefaults()
	}
	// Flags may come before, between or after the arguments.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) != 3 {
		fs.Usage()
		return 2
	}
	n, err := strconv.Atoi(pos[1])
	if err != nil || n < 1 {
		fmt.Fprintf(stderr, "check: N must be a positive integer, not %q\n", pos[1])
		return 2
	}
	if *seed > 1<<32-1 {
		fmt.Fprintf(stderr, "check: -seed %d does not fit in 32 bits\n", *seed)
		return 2
	}
	opt := options{
		seed:        uint32(*seed),
		pattern:     *pattern,
		unordered:   *unordered || *atLeastOnce,
		atLeastOnce: *atLeastOnce,
		rotated:     *rotated,
		maxPending:  maxPending,
	}
	rep, err := check(pos[0], n, pos[2], opt)
	if err != nil {
		fmt.Fprintln(stderr, "check:", err)
		return 2
	}
	rep.write(stdout)
	if !rep.ok() {
		return 1
	}
	return 0
}

// options are the command line's flags.
type options struct {
	seed        uint32
	pattern     string
	unordered   bool  // order within a file does not matter
	atLeastOnce bool  // duplicates are allowed (implies unordered)
	rotated     bool  // rotated files hold records too
	maxPending  int64 // bytes of records out of place held before giving up
}

// maxPending is how many bytes of records out of place the check holds
// before it gives up (options.maxPending).
const maxPending = 256 << 20

// maxShown is how many problems the report prints, at most
// maxShownPerShard of one shard.
const (
	maxShown         = 20
	maxShownPerShard = 5
)

// kind is a kind of problem. Problems of a shard are reported in this
// order.
type kind int

const (
	gaveUp     kind = iota // too much out of place to go on
	differs                // where a shard first differs, when the check gave up
	malformed              // a file is unreadable or does not end with '\n'
	missing                // an input message is in no file
	wrongShard             // a record is in another shard's file
	extra                  // a record is not in the input
	order                  // records are not in input order
	stray                  // a file no shard owns
	numKinds
)

// String returns how the summary names the kind.
func (k kind) String() string {
	switch k {
	case gaveUp:
		return "gave up"
	case differs:
		return "differ"
	case malformed:
		return "malformed"
	case missing:
		return "missing"
	case wrongShard:
		return "in the wrong shard"
	case extra:
		return "extra"
	case order:
		return "out of order"
	case stray:
		return "stray files"
	}
	return "kind " + strconv.Itoa(int(k))
}

// problem is one thing wrong, found in a shard (or, for a stray file,
// shard -1).
type problem struct {
	shard int
	kind  kind
	text  string // "file:line: what"
}

// position is where a record stands: its shard's file (an index into
// the shard's files) and its line in that file, from 1.
type position struct{ file, line int }

// want is an input message: its sequence number among its shard's
// messages, from 1, and its line in the input.
type want struct{ seq, line int }

// got is a record read from a shard's files: its sequence number among
// the shard's records, from 1, and where it stands.
type got struct {
	seq int
	pos position
}

// pair is a message matched with its record.
type pair struct {
	w  want
	g  got
	ok bool
}

// checker holds what the check has found so far.
type checker struct {
	opt      options
	n        int
	shards   []*shardState
	strays   []string
	pending  int64 // bytes of records out of place
	messages int
	seed     maphash.Seed
	dups     int
	problems []problem
}

// shardState follows one shard: the records read from its files against
// the input messages routed to it. Messages and records that match in
// lockstep are dropped at once; the others wait in pendWant and pendGot
// for their match.
type shardState struct {
	k            int
	r            *shardReader
	nWant, nGot  int
	pendWant     map[string][]want
	pendGot      map[string][]got
	lastW, lastP pair                // the matched pairs with the latest want, the latest record
	inversions   int                 // matches out of input order
	seen         map[uint64]struct{} // with -at-least-once: hashes of matched messages
	firstDiff    string              // the first record that differs from the message expected there
}

// check checks the files in dir against the file input, routed into n
// shards. Problems go into the report; an error means the check could not
// be made.
func check(input string, n int, dir string, opt options) (*report, error) {
	names, err := shardNames(opt.pattern, n)
	if err != nil {
		return nil, err
	}
	files, strays, err := listFiles(dir, names, opt.rotated)
	if err != nil {
		return nil, err
	}
	in, err := os.Open(input)
	if err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	defer in.Close()
	c := &checker{opt: opt, n: n, strays: strays, seed: maphash.MakeSeed()}
	for k := range n {
		s := &shardState{
			k:        k,
			r:        &shardReader{dir: dir, names: files[k], shard: k},
			pendWant: map[string][]want{},
			pendGot:  map[string][]got{},
		}
		if opt.atLeastOnce {
			s.seen = map[uint64]struct{}{}
		}
		c.shards = append(c.shards, s)
	}
	if err := c.compare(in); err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	return c.report(), nil
}

// shardNames returns the file names of the n shards.
func shardNames(pattern string, n int) ([]string, error) {
	names := make([]string, n)
	seen := make(map[string]bool, n)
	for k := range names {
		names[k] = fmt.Sprintf(pattern, k)
		if strings.Contains(names[k], "%!") || strings.ContainsRune(names[k], '/') || seen[names[k]] {
			return nil, fmt.Errorf("-pattern %q: want a file name with one integer verb, such as shard-%%03d.log", pattern)
		}
		seen[names[k]] = true
	}
	return names, nil
}

// listFiles returns, by shard, the names of the files in dir that hold
// its records, oldest first, and the names of regular files no shard owns.
// Rotated files count only with rotated.
func listFiles(dir string, names []string, rotated bool) (files [][]string, strays []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("list shard files: %w", err)
	}
	shard := make(map[string]int, len(names))
	for k, name := range names {
		shard[name] = k
	}
	current := make([]bool, len(names))
	rot := make([][]rotatedName, len(names))
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !e.Type().IsRegular() {
			continue
		}
		if k, ok := shard[name]; ok {
			current[k] = true
			continue
		}
		if r, ok := parseRotated(name); ok && rotated {
			if k, ok := shard[r.file]; ok {
				if !r.tmp {
					rot[k] = append(rot[k], r)
				}
				continue
			}
		}
		strays = append(strays, name)
	}
	files = make([][]string, len(names))
	for k := range names {
		for _, r := range sortRotated(rot[k]) {
			files[k] = append(files[k], r.name)
		}
		if current[k] {
			files[k] = append(files[k], names[k])
		}
	}
	slices.Sort(strays)
	return files, strays, nil
}

// stampLayout is the UTC time in a rotated file's name (as in writer).
const stampLayout = "20060102T150405.000000000Z"

// rotatedName is a rotated file's name, parsed:
// <file>.<stamp>[.<n>][.gz|.zst][.tmp].
type rotatedName struct {
	name       string // the whole name
	file       string // the name of the file it was rotated from
	base       string // name without the compression and .tmp suffixes
	stamp      time.Time
	counter    int  // n, 0 if none
	compressed bool // .gz or .zst
	tmp        bool // a compressed copy being written
}

// parseRotated parses name as a rotated file's name, with the grammar of
// writer's Archiver.parseRotated.
func parseRotated(name string) (rotatedName, bool) {
	r := rotatedName{name: name}
	s := name
	if t, ok := strings.CutSuffix(s, ".tmp"); ok {
		r.tmp, s = true, t
	}
	for _, suffix := range []string{".gz", ".zst"} {
		if t, ok := strings.CutSuffix(s, suffix); ok {
			r.compressed, s = true, t
			break
		}
	}
	r.base = s
	if i := strings.LastIndexByte(s, '.'); i >= 0 && i+1 < len(s) && strings.Trim(s[i+1:], "0123456789") == "" {
		c, err := strconv.Atoi(s[i+1:])
		if err != nil {
			return r, false
		}
		r.counter, s = c, s[:i]
	}
	if len(s) < len(stampLayout)+2 || s[len(s)-len(stampLayout)-1] != '.' {
		return r, false
	}
	t, err := time.Parse(stampLayout, s[len(s)-len(stampLayout):])
	if err != nil {
		return r, false
	}
	r.file, r.stamp = s[:len(s)-len(stampLayout)-1], t
	return r, true
}

// sortRotated sorts one shard's rotated files in the order they were
// written: by the time in their names, then by counter (numerically, so
// .10 comes after .9). Of a file and its compressed copy, which both stand
// for a moment while it is compressed, only the copy is kept.
func sortRotated(rs []rotatedName) []rotatedName {
	slices.SortFunc(rs, func(x, y rotatedName) int {
		if c := x.stamp.Compare(y.stamp); c != 0 {
			return c
		}
		if c := cmp.Compare(x.counter, y.counter); c != 0 {
			return c
		}
		if x.compressed != y.compressed {
			if x.compressed {
				return -1
			}
			return 1
		}
		return strings.Compare(x.name, y.name)
	})
	return slices.CompactFunc(rs, func(x, y rotatedName) bool { return x.base == y.base })
}

// compare reads the input and routes each message to its shard, where it
// is matched with the next record of the shard's files; then it reads the
// records left in the files.
func (c *checker) compare(in io.Reader) error {
	r := bufio.NewReaderSize(in, 1<<20)
	var long []byte
	for line := 1; ; line++ {
		m, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long[:0], m...)
			for err == bufio.ErrBufferFull {
				m, err = r.ReadSlice('\n')
				long = append(long, m...)
			}
			m = long
		}
		if err != nil && err != io.EOF {
			return err
		}
		if len(m) == 0 {
			break // the end, after a last '\n'
		}
		m = bytes.TrimSuffix(m, []byte{'\n'})
		c.messages++
		s := c.shards[murmur3ref.Sum32(m, c.opt.seed)%uint32(c.n)]
		s.nWant++
		w := want{seq: s.nWant, line: line}
		rec, pos, ok := s.r.read()
		if ok {
			s.nGot++
		}
		if ok && bytes.Equal(rec, m) {
			c.matched(s, m, w, got{seq: s.nGot, pos: pos})
		} else {
			if s.firstDiff == "" {
				s.firstDiff = c.describeDiff(s, m, w, rec, pos, ok)
			}
			c.wanted(s, m, w)
			if ok {
				c.gotten(s, rec, got{seq: s.nGot, pos: pos})
			}
			if c.pending > c.opt.maxPending {
				c.giveUp(line)
				return nil
			}
		}
		if err == io.EOF {
			break
		}
	}
	for _, s := range c.shards {
		for {
			rec, pos, ok := s.r.read()
			if !ok {
				break
			}
			s.nGot++
			c.gotten(s, rec, got{seq: s.nGot, pos: pos})
			if c.pending > c.opt.maxPending {
				c.giveUp(c.messages)
				return nil
			}
		}
	}
	return nil
}

// describeDiff describes where shard s first holds something other than
// the message m expected next.
func (c *checker) describeDiff(s *shardState, m []byte, w want, rec []byte, pos position, ok bool) string {
	if !ok {
		return fmt.Sprintf("%s: ends before input line %d %s", c.shardFile(s.k), w.line, quote(m))
	}
	return fmt.Sprintf("%s: holds %s where input line %d %s belongs", s.r.where(pos), quote(rec), w.line, quote(m))
}

// giveUp stops the check at input line line: too many records are out of
// place to hold them all. Each shard's first difference is reported.
func (c *checker) giveUp(line int) {
	c.problems = append(c.problems, problem{shard: -1, kind: gaveUp,
		text: fmt.Sprintf("gave up at input line %d: more than %d KiB of records out of place (a wrong N, seed or pattern?)", line, c.opt.maxPending>>10)})
	for _, s := range c.shards {
		if s.firstDiff != "" {
			c.problems = append(c.problems, problem{shard: s.k, kind: differs, text: s.firstDiff})
		}
	}
}

// entryCost is what a pending entry costs beyond its message's bytes.
const entryCost = 64

// wanted matches message m, expected in shard s as w, with a record read
// before, or holds it until its record comes.
func (c *checker) wanted(s *shardState, m []byte, w want) {
	if q := s.pendGot[string(m)]; len(q) > 0 {
		c.popGot(s, m, q)
		c.matched(s, m, w, q[0])
		return
	}
	if s.seen != nil {
		if _, ok := s.seen[maphash.Bytes(c.seed, m)]; ok {
			return // a message the input repeats: its record has been read
		}
	}
	if len(s.pendWant[string(m)]) == 0 {
		c.pending += int64(len(m))
	}
	s.pendWant[string(m)] = append(s.pendWant[string(m)], w)
	c.pending += entryCost
}

// gotten matches record rec, read from shard s as g, with a message routed
// there before, or holds it until its message comes.
func (c *checker) gotten(s *shardState, rec []byte, g got) {
	if q := s.pendWant[string(rec)]; len(q) > 0 {
		c.popWant(s, rec, q)
		c.matched(s, rec, q[0], g)
		return
	}
	if s.seen != nil {
		if _, ok := s.seen[maphash.Bytes(c.seed, rec)]; ok {
			c.dups++
			return
		}
	}
	if len(s.pendGot[string(rec)]) == 0 {
		c.pending += int64(len(rec))
	}
	s.pendGot[string(rec)] = append(s.pendGot[string(rec)], g)
	c.pending += entryCost
}

// popGot removes the first of the records q held for m.
func (c *checker) popGot(s *shardState, m []byte, q []got) {
	c.pending -= entryCost
	if len(q) == 1 {
		delete(s.pendGot, string(m))
		c.pending -= int64(len(m))
		return
	}
	s.pendGot[string(m)] = q[1:]
}

// popWant removes the first of the messages q held for rec.
func (c *checker) popWant(s *shardState, rec []byte, q []want) {
	c.pending -= entryCost
	if len(q) == 1 {
		delete(s.pendWant, string(rec))
		c.pending -= int64(len(rec))
		return
	}
	s.pendWant[string(rec)] = q[1:]
}

// matched notes that message m, expected as w, stands as record g. Each
// match is made when the later of the two is read, so one of them is the
// latest of its side: the match is out of input order exactly when an
// earlier match has a later record (w is the latest message) or a later
// message (g is the latest record).
func (c *checker) matched(s *shardState, m []byte, w want, g got) {
	if !c.opt.unordered {
		switch {
		case w.seq == s.nWant && s.lastP.ok && s.lastP.g.seq > g.seq:
			if s.inversions == 0 {
				c.problems = append(c.problems, problem{shard: s.k, kind: order,
					text: fmt.Sprintf("%s: input line %d stands before input line %d (%s): not in input order",
						s.r.where(g.pos), w.line, s.lastP.w.line, s.r.where(s.lastP.g.pos))})
			}
			s.inversions++
		case g.seq == s.nGot && s.lastW.ok && s.lastW.w.seq > w.seq:
			if s.inversions == 0 {
				c.problems = append(c.problems, problem{shard: s.k, kind: order,
					text: fmt.Sprintf("%s: input line %d stands after input line %d (%s): not in input order",
						s.r.where(g.pos), w.line, s.lastW.w.line, s.r.where(s.lastW.g.pos))})
			}
			s.inversions++
		}
	}
	if !s.lastW.ok || w.seq > s.lastW.w.seq {
		s.lastW = pair{w: w, g: g, ok: true}
	}
	if !s.lastP.ok || g.seq > s.lastP.g.seq {
		s.lastP = pair{w: w, g: g, ok: true}
	}
	if s.seen != nil {
		s.seen[maphash.Bytes(c.seed, m)] = struct{}{}
	}
}

// shardFile returns shard k's file name.
func (c *checker) shardFile(k int) string {
	return fmt.Sprintf(c.opt.pattern, k)
}

// held is a message or record still waiting for its match at the end.
type held struct {
	msg string
	w   want
	g   got
}

// report sorts out what is left unmatched, pairing a record in one shard
// with the message missing from another, and returns the report.
func (c *checker) report() *report {
	rep := &report{messages: c.messages, shards: c.n, atLeastOnce: c.opt.atLeastOnce, dups: c.dups}
	probs := c.problems
	if len(probs) > 0 && probs[0].kind == gaveUp {
		rep.add(probs, nil)
		return rep
	}
	extras := make([][]held, c.n)
	for _, s := range c.shards {
		for msg, q := range s.pendGot {
			for _, g := range q {
				if s.seen != nil {
					if _, ok := s.seen[maphash.String(c.seed, msg)]; ok {
						rep.dups++
						continue
					}
				}
				extras[s.k] = append(extras[s.k], held{msg: msg, g: g})
			}
		}
		slices.SortFunc(extras[s.k], func(x, y held) int { return cmp.Compare(x.g.seq, y.g.seq) })
	}
	var also []int // shards missing a record that another one holds
	for _, s := range c.shards {
		for _, e := range extras[s.k] {
			k := int(murmur3ref.Sum32([]byte(e.msg), c.opt.seed) % uint32(c.n))
			if q := c.shards[k].pendWant[e.msg]; k != s.k && len(q) > 0 {
				c.shards[k].pendWant[e.msg] = q[1:]
				also = append(also, k)
				probs = append(probs, problem{shard: s.k, kind: wrongShard,
					text: fmt.Sprintf("%s: input line %d belongs in %s: %s", s.r.where(e.g.pos), q[0].line, c.shardFile(k), quote([]byte(e.msg)))})
				continue
			}
			how := "not in the input, or once too often"
			if k != s.k {
				how = fmt.Sprintf("routed to %s, %s", c.shardFile(k), how)
			}
			probs = append(probs, problem{shard: s.k, kind: extra,
				text: fmt.Sprintf("%s: extra record (%s): %s", s.r.where(e.g.pos), how, quote([]byte(e.msg)))})
		}
	}
	for _, s := range c.shards {
		var miss []held
		for msg, q := range s.pendWant {
			if s.seen != nil {
				if _, ok := s.seen[maphash.String(c.seed, msg)]; ok {
					continue // the input repeats it; one record is enough
				}
			}
			for _, w := range q {
				miss = append(miss, held{msg: msg, w: w})
			}
		}
		slices.SortFunc(miss, func(x, y held) int { return cmp.Compare(x.w.line, y.w.line) })
		for _, m := range miss {
			probs = append(probs, problem{shard: s.k, kind: missing,
				text: fmt.Sprintf("%s: missing input line %d: %s", c.shardFile(s.k), m.w.line, quote([]byte(m.msg)))})
		}
		probs = append(probs, s.r.problems...)
		rep.inversions += s.inversions
	}
	for _, name := range c.strays {
		probs = append(probs, problem{shard: -1, kind: stray, text: name + ": a file no shard owns"})
	}
	rep.add(probs, also)
	rep.counts[order] = rep.inversions // every one, not only each shard's first
	return rep
}

// quote returns msg quoted, cut short if long.
func quote(msg []byte) string {
	const max = 72
	if len(msg) > max {
		return strconv.Quote(string(msg[:max])) + "..."
	}
	return strconv.Quote(string(msg))
}

// report is the outcome of a check.
type report struct {
	messages, shards int
	atLeastOnce      bool
	dups             int
	inversions       int
	problems         []problem // in the order add sorts them
	counts           [numKinds]int
	wrongShards      map[int]bool
}

// add adds problems to the report: the check giving up first, then stray
// files, then by shard and kind. Shards in also are wrong too.
func (r *report) add(probs []problem, also []int) {
	group := func(p problem) int {
		switch {
		case p.kind == gaveUp:
			return 0
		case p.shard < 0:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(probs, func(x, y problem) int {
		return cmp.Or(cmp.Compare(group(x), group(y)), cmp.Compare(x.shard, y.shard), cmp.Compare(x.kind, y.kind))
	})
	r.wrongShards = map[int]bool{}
	for _, p := range probs {
		r.counts[p.kind]++
		if p.shard >= 0 {
			r.wrongShards[p.shard] = true
		}
	}
	for _, k := range also {
		r.wrongShards[k] = true
	}
	r.problems = probs
}

// ok reports whether the check found nothing wrong.
func (r *report) ok() bool { return len(r.problems) == 0 }

// write prints the first problems and the summary line.
func (r *report) write(w io.Writer) {
	shown, perShard := 0, map[int]int{}
	for _, p := range r.problems {
		if shown == maxShown || perShard[p.shard] == maxShownPerShard {
			continue
		}
		fmt.Fprintln(w, p.text)
		shown++
		perShard[p.shard]++
	}
	if left := len(r.problems) - shown; left > 0 {
		fmt.Fprintf(w, "... and %d more problems\n", left)
	}
	sum := fmt.Sprintf("check: %d messages, %d shards, %d shards wrong", r.messages, r.shards, len(r.wrongShards))
	var parts []string
	for k := range numKinds {
		switch n := r.counts[k]; {
		case n == 0 || k == gaveUp:
		case n == 1 && k == stray:
			parts = append(parts, "1 stray file")
		default:
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	if len(parts) > 0 {
		sum += " (" + strings.Join(parts, ", ") + ")"
	}
	if r.counts[gaveUp] > 0 {
		sum += ", gave up"
	}
	if r.atLeastOnce {
		sum += fmt.Sprintf(", %d duplicates", r.dups)
	}
	fmt.Fprintln(w, sum)
}

// shardReader reads one shard's records from its files, oldest first,
// decompressing .gz and .zst files.
type shardReader struct {
	dir      string
	names    []string // the shard's files, oldest first
	next     int      // the next file to open
	cur      int      // the open file's index, while open
	f        *os.File
	dec      io.ReadCloser // the open file's decompressor, if any
	br       *bufio.Reader // nil while no file is open
	buf      *bufio.Reader // kept for the next file
	line     int
	long     []byte
	problems []problem
	shard    int
}

// read returns the next record, without its '\n', and where it stands,
// or false when the files are all read. The record is valid until the
// next call. What is wrong with a file goes into problems.
func (s *shardReader) read() ([]byte, position, bool) {
	for {
		if s.br == nil {
			if s.next == len(s.names) {
				return nil, position{}, false
			}
			s.open()
			continue
		}
		rec, err := s.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			s.long = append(s.long[:0], rec...)
			for err == bufio.ErrBufferFull {
				rec, err = s.br.ReadSlice('\n')
				s.long = append(s.long, rec...)
			}
			rec = s.long
		}
		switch {
		case err == nil:
			s.line++
			return rec[:len(rec)-1], position{file: s.cur, line: s.line}, true
		case err == io.EOF && len(rec) > 0:
			s.line++
			pos := position{file: s.cur, line: s.line}
			s.fault(fmt.Sprintf("%s: no newline at the end of the file", s.where(pos)))
			s.close()
			return rec, pos, true
		case err != io.EOF:
			s.fault(fmt.Sprintf("%s: read after line %d: %v", s.names[s.cur], s.line, err))
		}
		s.close()
	}
}

// open opens the next file, noting a problem if it cannot.
func (s *shardReader) open() {
	s.cur, s.line = s.next, 0
	s.next++
	name := s.names[s.cur]
	f, err := os.Open(filepath.Join(s.dir, name))
	if err != nil {
		s.fault(fmt.Sprintf("%s: %v", name, err))
		return
	}
	var src io.Reader = f
	switch {
	case strings.HasSuffix(name, ".gz"):
		z, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			s.fault(fmt.Sprintf("%s: decompress: %v", name, err))
			return
		}
		s.dec, src = z, z
	case strings.HasSuffix(name, ".zst"):
		z, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			f.Close()
			s.fault(fmt.Sprintf("%s: decompress: %v", name, err))
			return
		}
		s.dec = z.IOReadCloser()
		src = s.dec
	}
	if s.buf == nil {
		s.buf = bufio.NewReaderSize(src, 16<<10)
	} else {
		s.buf.Reset(src)
	}
	s.f, s.br = f, s.buf
}

// close closes the open file.
func (s *shardReader) close() {
	if s.dec != nil {
		s.dec.Close()
		s.dec = nil
	}
	s.f.Close()
	s.f, s.br = nil, nil
}

// fault notes a problem with one of the files.
func (s *shardReader) fault(text string) {
	s.problems = append(s.problems, problem{shard: s.shard, kind: malformed, text: text})
}

// where returns "file:line" for pos.
func (s *shardReader) where(pos position) string {
	return s.names[pos.file] + ":" + strconv.Itoa(pos.line)
}
