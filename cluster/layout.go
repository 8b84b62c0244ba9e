// Package cluster holds the layout of a shardlog cluster: the JetStream
// stream that route instances publish batches to, the routing (N, seed,
// key, file pattern), and which member owns which shards. The layout is
// written once, when the cluster is created, as a JSON value in a NATS
// key-value bucket, so that every route instance and member reads the
// same one.
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/shard"
)

// Version is the version of the layout's JSON encoding. A layout of
// another version is refused rather than misread.
const Version = 1

// MaxReplicas is the most replicas JetStream keeps of a stream.
const MaxReplicas = 5

// maxNameBytes bounds a cluster's and a member's name; it leaves room in
// the names of the consumers and streams made from them.
const maxNameBytes = 64

// nameRE is what cluster and member names may hold: they name a stream, a
// key of the bucket and durable consumers, which take no '.', '*', '>',
// path separators or spaces.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Layout is a cluster's layout. It does not change once created: changing
// the members or their shards means a new cluster.
type Layout struct {
	// Version is the encoding's version, Version.
	Version int `json:"version"`
	// Name is the cluster's name, the key of the layout in Bucket.
	Name string `json:"name"`
	// Stream is the JetStream stream that holds the batches.
	Stream string `json:"stream"`
	// Prefix is the subjects' prefix: shard k's batches are published to
	// "<Prefix>.<k>".
	Prefix string `json:"prefix"`
	// N is the number of shards; Seed the murmur3 seed; Key the routing
	// key, as routing.key writes it (message, subject, header:<name>,
	// json:<field>); FilePattern names shard k's file.
	N           int    `json:"shards"`
	Seed        uint32 `json:"seed"`
	Key         string `json:"key"`
	FilePattern string `json:"file_pattern"`
	// Replicas is the stream's replica count.
	Replicas int `json:"replicas"`
	// Members are the members, in order, with the shards each owns.
	Members []Member `json:"members"`
}

// Member is a member of a cluster and the shards it owns.
type Member struct {
	// Name is the member's name, as run --member gives it.
	Name string `json:"name"`
	// Shards are the shards it owns, as ranges in ascending order.
	Shards []Range `json:"shards"`
}

// Range is the shards First to Last, both included. It is written in
// JSON as [first, last].
type Range struct{ First, Last int }

// MarshalJSON writes r as [first, last].
func (r Range) MarshalJSON() ([]byte, error) { return json.Marshal([2]int{r.First, r.Last}) }

// UnmarshalJSON reads r from [first, last].
func (r *Range) UnmarshalJSON(b []byte) error {
	var a [2]int
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("shard range %s: want [first, last]", b)
	}
	r.First, r.Last = a[0], a[1]
	return nil
}

// String writes r as "first-last", or "k" for a single shard.
func (r Range) String() string {
	if r.First == r.Last {
		return strconv.Itoa(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// Ranges writes rs as --assign does: "0-3+8-11".
func Ranges(rs []Range) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, "+")
}

// Subject returns the subject that shard k's batches are published to.
func (l *Layout) Subject(k int) string { return l.Prefix + "." + strconv.Itoa(k) }

// Subjects returns the stream's subjects, "<Prefix>.*".
func (l *Layout) Subjects() []string { return []string{l.Prefix + ".*"} }

// Member returns the name of the member that owns shard k, and false if
// k is not a shard of the cluster.
func (l *Layout) Member(k int) (string, bool) {
	for _, m := range l.Members {
		for _, r := range m.Shards {
			if k >= r.First && k <= r.Last {
				return m.Name, true
			}
		}
	}
	return "", false
}

// Shards returns the shards that member owns, in ascending order, and
// false if it is not a member.
func (l *Layout) Shards(member string) ([]int, bool) {
	for _, m := range l.Members {
		if m.Name != member {
			continue
		}
		var ks []int
		for _, r := range m.Shards {
			for k := r.First; k <= r.Last; k++ {
				ks = append(ks, k)
			}
		}
		return ks, true
	}
	return nil, false
}

// FileName returns the name of shard k's file.
func (l *Layout) FileName(k int) string { return fmt.Sprintf(l.FilePattern, k) }

// Shard returns the shard of a message whose routing key is key.
func (l *Layout) Shard(key []byte) int {
	return int(shard.Sum32(key, l.Seed) % uint32(l.N))
}

// CheckName checks a cluster's or a member's name; what says which it is
// ("cluster.name", "member").
func CheckName(what, name string) error {
	switch {
	case name == "":
		return &config.Error{Err: fmt.Errorf("%s: empty: give a name", what)}
	case len(name) > maxNameBytes:
		return &config.Error{Err: fmt.Errorf("%s: %q: longer than %d bytes", what, name, maxNameBytes)}
	case !nameRE.MatchString(name):
		return &config.Error{Err: fmt.Errorf("%s: %q: may hold only letters, digits, '-' and '_' (it names JetStream streams and consumers)", what, name)}
	}
	return nil
}

// CheckPrefix checks a subject prefix: tokens separated by '.', without
// wildcards or spaces, and not a system subject ($...).
func CheckPrefix(p string) error {
	bad := func(why string) error {
		return &config.Error{Err: fmt.Errorf("cluster.prefix: %q: %s", p, why)}
	}
	if p == "" {
		return bad("empty: give a subject prefix such as shardlog")
	}
	if strings.HasPrefix(p, "$") {
		return bad("subjects starting with $ are the server's own")
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" {
			return bad("has an empty token (a leading, trailing or doubled '.')")
		}
		if strings.ContainsAny(tok, "*> \t\r\n") {
			return bad("may not hold wildcards (* >) or spaces")
		}
	}
	return nil
}

// Validate checks l and returns a *config.Error naming the first problem:
// names, N, key, pattern, replicas, and that the members' shards are
// disjoint and complete (each shard owned by exactly one member).
func (l *Layout) Validate() error {
	if l.Version != Version {
		return &config.Error{Err: fmt.Errorf("layout version %d: this shardlog reads version %d", l.Version, Version)}
	}
	if err := CheckName("cluster.name", l.Name); err != nil {
		return err
	}
	if err := CheckName("stream", l.Stream); err != nil {
		return err
	}
	if err := CheckPrefix(l.Prefix); err != nil {
		return err
	}
	if l.N < 1 || l.N > config.MaxShards {
		return &config.Error{Err: fmt.Errorf("shards: %d: must be from 1 to %d", l.N, config.MaxShards)}
	}
	if l.Replicas < 1 || l.Replicas > MaxReplicas {
		return &config.Error{Err: fmt.Errorf("replicas: %d: must be from 1 to %d", l.Replicas, MaxReplicas)}
	}
	if _, err := shard.ParseKey(l.Key); err != nil {
		return &config.Error{Err: err}
	}
	if err := config.CheckFilePattern(l.FilePattern, l.N); err != nil {
		return err
	}
	return checkAssignment(l.N, l.Members)
}

// checkAssignment checks that members is not empty, that their names are
// valid and unique, and that each of the n shards is owned by exactly one
// of them.
func checkAssignment(n int, members []Member) error {
	if len(members) == 0 {
		return &config.Error{Err: errors.New("members: none: give at least one (--members a,b)")}
	}
	owner := make([]int, n) // 1 + the index of shard k's member; 0: none
	for i, m := range members {
		if err := CheckName("member", m.Name); err != nil {
			return err
		}
		if j := slices.IndexFunc(members[:i], func(o Member) bool { return o.Name == m.Name }); j >= 0 {
			return &config.Error{Err: fmt.Errorf("members: %s is named twice", m.Name)}
		}
		if len(m.Shards) == 0 {
			return &config.Error{Err: fmt.Errorf("member %s: owns no shards", m.Name)}
		}
		for _, r := range m.Shards {
			if r.First < 0 || r.Last >= n || r.First > r.Last {
				return &config.Error{Err: fmt.Errorf("member %s: shards %s: not shards of 0-%d", m.Name, r, n-1)}
			}
			for k := r.First; k <= r.Last; k++ {
				if o := owner[k]; o != 0 {
					return &config.Error{Err: fmt.Errorf("shard %d: assigned to both %s and %s", k, members[o-1].Name, m.Name)}
				}
				owner[k] = i + 1
			}
		}
	}
	if k := slices.Index(owner, 0); k >= 0 {
		names := make([]string, len(members))
		for i, m := range members {
			names[i] = m.Name
		}
		return &config.Error{Err: fmt.Errorf("shard %d: assigned to none of the members (%s)", k, strings.Join(names, ", "))}
	}
	return nil
}

// Balanced assigns n shards to the members in order, in contiguous ranges
// whose sizes differ by at most one, the larger ones first: 16 shards to
// a, b give a 0-7 and b 8-15; 10 to a, b, c give 0-3, 4-6 and 7-9.
func Balanced(n int, members []string) ([]Member, error) {
	if len(members) == 0 {
		return nil, &config.Error{Err: errors.New("members: none: give at least one (--members a,b)")}
	}
	if n < len(members) {
		return nil, &config.Error{Err: fmt.Errorf("shards: %d: fewer than the %d members: each member needs a shard", n, len(members))}
	}
	out := make([]Member, len(members))
	first := 0
	for i, name := range members {
		size := n / len(members)
		if i < n%len(members) {
			size++
		}
		out[i] = Member{Name: name, Shards: []Range{{first, first + size - 1}}}
		first += size
	}
	return out, nil
}

// ParseAssign parses an --assign value: comma-separated entries
// MEMBER=SHARDS, where SHARDS is one or more shard numbers or ranges
// (first-last) joined by '+': "a=0-7,b=8-15" or "a=0-3+8-11,b=4-7+12-15".
// A member may be named once. The members are returned in the order
// named, each with its ranges sorted. Errors name the offending entry.
// Whether the ranges are disjoint and complete is Validate's to check.
func ParseAssign(s string) ([]Member, error) {
	bad := func(entry, why string) error {
		return &config.Error{Err: fmt.Errorf("--assign: %q: %s", entry, why)}
	}
	if strings.TrimSpace(s) == "" {
		return nil, &config.Error{Err: errors.New("--assign: empty: give MEMBER=SHARDS,... such as a=0-7,b=8-15")}
	}
	var out []Member
	for _, entry := range strings.Split(s, ",") {
		name, list, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok {
			return nil, bad(entry, "want MEMBER=SHARDS, such as a=0-7 or a=0-3+8-11")
		}
		if err := CheckName("member", name); err != nil {
			return nil, bad(entry, err.Error())
		}
		if slices.ContainsFunc(out, func(m Member) bool { return m.Name == name }) {
			return nil, bad(entry, fmt.Sprintf("member %s is named twice: join its shards with '+' (a=0-3+8-11)", name))
		}
		m := Member{Name: name}
		for _, part := range strings.Split(list, "+") {
			r, err := parseRange(part)
			if err != nil {
				return nil, bad(entry, err.Error())
			}
			m.Shards = append(m.Shards, r)
		}
		slices.SortFunc(m.Shards, func(a, b Range) int { return a.First - b.First })
		out = append(out, m)
	}
	return out, nil
}

// ParseRanges parses shard ranges as Ranges writes them ("0-3+8-11"), as
// a member's directory records its shards.
func ParseRanges(s string) ([]Range, error) {
	var rs []Range
	for _, part := range strings.Split(s, "+") {
		r, err := parseRange(part)
		if err != nil {
			return nil, fmt.Errorf("shard ranges %q: %w", s, err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// InRanges reports whether shard k is in one of rs.
func InRanges(rs []Range, k int) bool {
	return slices.ContainsFunc(rs, func(r Range) bool { return r.First <= k && k <= r.Last })
}

// parseRange parses "k" or "first-last".
func parseRange(s string) (Range, error) {
	num := func(t string) (int, error) {
		k, err := strconv.Atoi(t)
		if err != nil || k < 0 {
			return 0, fmt.Errorf("%q is not a shard number", t)
		}
		return k, nil
	}
	if s == "" {
		return Range{}, errors.New("empty shard range")
	}
	a, b, isRange := strings.Cut(s, "-")
	first, err := num(a)
	if err != nil {
		return Range{}, err
	}
	if !isRange {
		return Range{first, first}, nil
	}
	last, err := num(b)
	if err != nil {
		return Range{}, err
	}
	if last < first {
		return Range{}, fmt.Errorf("range %q ends before it starts", s)
	}
	return Range{first, last}, nil
}

// Assign returns the members' assignment: Balanced over members when
// assign is empty, else assign parsed; when both members and assign are
// given, assign must name exactly the members, which keep their order.
func Assign(n int, members []string, assign string) ([]Member, error) {
	if assign == "" {
		return Balanced(n, members)
	}
	ms, err := ParseAssign(assign)
	if err != nil {
		return nil, err
	}
	if len(members) == 0 {
		return ms, nil
	}
	for _, m := range ms {
		if !slices.Contains(members, m.Name) {
			return nil, &config.Error{Err: fmt.Errorf("--assign: member %s is not one of --members (%s)", m.Name, strings.Join(members, ","))}
		}
	}
	ordered := make([]Member, 0, len(members))
	for _, name := range members {
		i := slices.IndexFunc(ms, func(m Member) bool { return m.Name == name })
		if i < 0 {
			return nil, &config.Error{Err: fmt.Errorf("--assign: gives member %s no shards", name)}
		}
		ordered = append(ordered, ms[i])
	}
	return ordered, nil
}
