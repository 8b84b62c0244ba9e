package cluster

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/shardlog/shardlog/config"
)

// layout returns a valid layout of n shards over members, balanced.
func layout(t *testing.T, n int, members ...string) *Layout {
	t.Helper()
	ms, err := Balanced(n, members)
	if err != nil {
		t.Fatal(err)
	}
	return &Layout{Version: Version, Name: "logs", Stream: "logs", Prefix: "shardlog", N: n,
		Key: "message", FilePattern: "shard-%03d.log", Replicas: 1, Members: ms}
}

// TestBalanced checks the default assignment: contiguous ranges in member
// order, sizes differing by at most one, the larger first.
func TestBalanced(t *testing.T) {
	cases := []struct {
		n       int
		members []string
		want    string
	}{
		{16, []string{"a", "b"}, "a=0-7,b=8-15"},
		{10, []string{"a", "b", "c"}, "a=0-3,b=4-6,c=7-9"},
		{1, []string{"only"}, "only=0"},
		{3, []string{"a", "b", "c"}, "a=0,b=1,c=2"},
		{65536, []string{"x", "y", "z"}, "x=0-21845,y=21846-43690,z=43691-65535"},
		{5, []string{"b", "a"}, "b=0-2,a=3-4"},
	}
	for _, tc := range cases {
		ms, err := Balanced(tc.n, tc.members)
		if err != nil {
			t.Fatalf("Balanced(%d, %v): %v", tc.n, tc.members, err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.Name+"="+Ranges(m.Shards))
		}
		if s := strings.Join(got, ","); s != tc.want {
			t.Errorf("Balanced(%d, %v) = %s, want %s", tc.n, tc.members, s, tc.want)
		}
	}
	if _, err := Balanced(2, []string{"a", "b", "c"}); err == nil || !strings.Contains(err.Error(), "shards: 2: fewer than the 3 members") {
		t.Errorf("2 shards, 3 members: %v", err)
	}
}

// TestLayoutValidate checks that Validate refuses each kind of bad
// layout with a configuration error naming what is wrong, and accepts
// good ones.
func TestLayoutValidate(t *testing.T) {
	r := func(a, b int) Range { return Range{a, b} }
	cases := []struct {
		name   string
		change func(l *Layout)
		want   string // "" for valid
	}{
		{"balanced", func(l *Layout) {}, ""},
		{"interleaved", func(l *Layout) {
			l.Members = []Member{{"a", []Range{r(0, 3), r(8, 11)}}, {"b", []Range{r(4, 7), r(12, 15)}}}
		}, ""},
		{"overlap", func(l *Layout) {
			l.Members = []Member{{"a", []Range{r(0, 8)}}, {"b", []Range{r(8, 15)}}}
		}, "shard 8: assigned to both a and b"},
		{"gap", func(l *Layout) {
			l.Members = []Member{{"a", []Range{r(0, 6)}}, {"b", []Range{r(8, 15)}}}
		}, "shard 7: assigned to none of the members (a, b)"},
		{"beyond N", func(l *Layout) {
			l.Members = []Member{{"a", []Range{r(0, 7)}}, {"b", []Range{r(8, 16)}}}
		}, "member b: shards 8-16: not shards of 0-15"},
		{"backwards range", func(l *Layout) { l.Members[1].Shards = []Range{r(15, 8)} }, "member b: shards 15-8"},
		{"no members", func(l *Layout) { l.Members = nil }, "members: none"},
		{"member without shards", func(l *Layout) { l.Members = append(l.Members, Member{Name: "c"}) }, "member c: owns no shards"},
		{"member twice", func(l *Layout) { l.Members[1].Name = "a" }, "members: a is named twice"},
		{"member with a dot", func(l *Layout) { l.Members[1].Name = "b.1" }, `member: "b.1": may hold only`},
		{"member with a space", func(l *Layout) { l.Members[1].Name = "b 1" }, `member: "b 1"`},
		{"member too long", func(l *Layout) { l.Members[1].Name = strings.Repeat("b", 65) }, "longer than 64 bytes"},
		{"empty member name", func(l *Layout) { l.Members[1].Name = "" }, "member: empty"},
		{"N 0", func(l *Layout) { l.N = 0 }, "shards: 0: must be from 1 to 65536"},
		{"N too big", func(l *Layout) { l.N = 65537 }, "shards: 65537"},
		{"cluster name with *", func(l *Layout) { l.Name = "lo*gs" }, `cluster.name: "lo*gs"`},
		{"prefix empty", func(l *Layout) { l.Prefix = "" }, "cluster.prefix: \"\": empty"},
		{"prefix wildcard", func(l *Layout) { l.Prefix = "logs.>" }, `cluster.prefix: "logs.>": may not hold wildcards`},
		{"prefix empty token", func(l *Layout) { l.Prefix = "logs..x" }, "empty token"},
		{"prefix system", func(l *Layout) { l.Prefix = "$JS" }, "the server's own"},
		{"prefix two tokens", func(l *Layout) { l.Prefix = "app.logs" }, ""},
		{"replicas 0", func(l *Layout) { l.Replicas = 0 }, "replicas: 0: must be from 1 to 5"},
		{"replicas 6", func(l *Layout) { l.Replicas = 6 }, "replicas: 6"},
		{"bad key", func(l *Layout) { l.Key = "bogus" }, "bogus"},
		{"json key", func(l *Layout) { l.Key = "json:user" }, ""},
		{"bad pattern", func(l *Layout) { l.FilePattern = "shard.log" }, `file_pattern: "shard.log"`},
		{"version", func(l *Layout) { l.Version = 2 }, "layout version 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := layout(t, 16, "a", "b")
			tc.change(l)
			err := l.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error with %q", err, tc.want)
			}
			if !errors.As(err, new(*config.Error)) {
				t.Errorf("Validate: %v is not a *config.Error (exit 2)", err)
			}
		})
	}
}

// TestParseAssign checks --assign's syntax, and that each error names the
// entry at fault.
func TestParseAssign(t *testing.T) {
	cases := []struct {
		in, want, err string
	}{
		{in: "a=0-7,b=8-15", want: "a=0-7,b=8-15"},
		{in: "a=8-11+0-3,b=4-7+12-15", want: "a=0-3+8-11,b=4-7+12-15"},
		{in: " a=0 , b=1-1 ", want: "a=0,b=1"},
		{in: "", err: "--assign: empty"},
		{in: "a=0-7,b", err: `--assign: "b": want MEMBER=SHARDS`},
		{in: "a=0-7,b=8-x", err: `--assign: "b=8-x": "x" is not a shard number`},
		{in: "a=0-7,b=-3", err: `--assign: "b=-3": "" is not a shard number`},
		{in: "a=7-0", err: `--assign: "a=7-0": range "7-0" ends before it starts`},
		{in: "a=0-3++4", err: `--assign: "a=0-3++4": empty shard range`},
		{in: "a=", err: `--assign: "a=": empty shard range`},
		{in: "a.b=0", err: `--assign: "a.b=0": member: "a.b"`},
		{in: "=0", err: `--assign: "=0": member: empty`},
		{in: "a=0-3,a=4-7", err: `--assign: "a=4-7": member a is named twice`},
		{in: "a=0x10", err: `--assign: "a=0x10": "0x10" is not a shard number`},
		{in: "a=1 - 3", err: `"1 " is not a shard number`},
	}
	for _, tc := range cases {
		ms, err := ParseAssign(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseAssign(%q): %v, want an error with %q", tc.in, err, tc.err)
			} else if !errors.As(err, new(*config.Error)) {
				t.Errorf("ParseAssign(%q): %v is not a *config.Error", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAssign(%q): %v", tc.in, err)
			continue
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.Name+"="+Ranges(m.Shards))
		}
		if s := strings.Join(got, ","); s != tc.want {
			t.Errorf("ParseAssign(%q) = %s, want %s", tc.in, s, tc.want)
		}
	}
}

// TestAssign checks how --members and --assign combine.
func TestAssign(t *testing.T) {
	cases := []struct {
		name    string
		members []string
		assign  string
		want    string
		err     string
	}{
		{"balanced", []string{"a", "b"}, "", "a=0-7,b=8-15", ""},
		{"assign alone", nil, "b=0-3,a=4-15", "b=0-3,a=4-15", ""},
		{"members order kept", []string{"a", "b"}, "b=0-3,a=4-15", "a=4-15,b=0-3", ""},
		{"assign names a stranger", []string{"a", "b"}, "a=0-7,c=8-15", "", "--assign: member c is not one of --members (a,b)"},
		{"assign leaves a member out", []string{"a", "b", "c"}, "a=0-7,b=8-15", "", "--assign: gives member c no shards"},
	}
	for _, tc := range cases {
		ms, err := Assign(16, tc.members, tc.assign)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.Name+"="+Ranges(m.Shards))
		}
		if s := strings.Join(got, ","); s != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, s, tc.want)
		}
	}
}

// TestLayoutLookups checks Subject, Member, Shards and FileName.
func TestLayoutLookups(t *testing.T) {
	l := layout(t, 10, "a", "b", "c")
	l.Prefix = "app.logs"
	if s := l.Subject(3); s != "app.logs.3" {
		t.Errorf("Subject(3) = %q", s)
	}
	for k, want := range []string{"a", "a", "a", "a", "b", "b", "b", "c", "c", "c"} {
		if m, ok := l.Member(k); !ok || m != want {
			t.Errorf("Member(%d) = %q, %v; want %q", k, m, ok, want)
		}
	}
	if m, ok := l.Member(10); ok {
		t.Errorf("Member(10) = %q, true; want none", m)
	}
	if ks, ok := l.Shards("b"); !ok || !reflect.DeepEqual(ks, []int{4, 5, 6}) {
		t.Errorf("Shards(b) = %v, %v", ks, ok)
	}
	if _, ok := l.Shards("d"); ok {
		t.Error("Shards(d): a member")
	}
	if f := l.FileName(7); f != "shard-007.log" {
		t.Errorf("FileName(7) = %q", f)
	}
	if k, ok := l.shardOf("app.logs.7"); !ok || k != 7 {
		t.Errorf("shardOf(app.logs.7) = %d, %v", k, ok)
	}
	for _, s := range []string{"app.logs.07", "app.logs.x", "app.other.7", "app.logs.7.1"} {
		if k, ok := l.shardOf(s); ok {
			t.Errorf("shardOf(%s) = %d, true", s, k)
		}
	}
}

// TestLayoutJSON checks the stored form: stable field names, a version,
// ranges as [first, last]; and that Decode reads it back and checks it.
func TestLayoutJSON(t *testing.T) {
	l := layout(t, 16, "a", "b")
	l.Seed = 7
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":1,"name":"logs","stream":"logs","prefix":"shardlog","shards":16,"seed":7,"key":"message",` +
		`"file_pattern":"shard-%03d.log","replicas":1,"members":[{"name":"a","shards":[[0,7]]},{"name":"b","shards":[[8,15]]}]}`
	if string(b) != want {
		t.Errorf("JSON:\n%s\nwant\n%s", b, want)
	}
	got, err := Decode("logs", b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, l) {
		t.Errorf("Decode = %+v, want %+v", got, l)
	}
	for _, tc := range []struct{ name, value, want string }{
		{"logs", strings.Replace(want, "[8,15]", "[9,15]", 1), "shard 8: assigned to none"},
		{"other", want, `names cluster "logs"`},
		{"logs", `{"version":1,`, "unexpected end"},
		{"logs", strings.Replace(want, "[[0,7]]", `["0-7"]`, 1), "want [first, last]"},
	} {
		_, err := Decode(tc.name, []byte(tc.value))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%s, %s): %v, want an error with %q", tc.name, tc.value, err, tc.want)
		}
		if errors.As(err, new(*config.Error)) {
			t.Errorf("Decode: %v: a stored layout's fault is not a configuration error", err)
		}
	}
}

func TestParseRanges(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // Ranges of the result, or the error
		in3  bool   // InRanges(result, 3)
	}{
		{"0-7", "0-7", true},
		{"0-3+8-11", "0-3+8-11", true},
		{"4+6-9", "4+6-9", false},
		{"3", "3", true},
		{"", `shard ranges "": empty shard range`, false},
		{"0-x", `shard ranges "0-x": "x" is not a shard number`, false},
		{"5-2", `shard ranges "5-2": range "5-2" ends before it starts`, false},
	} {
		rs, err := ParseRanges(tc.in)
		got := Ranges(rs)
		if err != nil {
			got = err.Error()
		}
		if got != tc.want || InRanges(rs, 3) != tc.in3 {
			t.Errorf("ParseRanges(%q) = %s, 3 in it: %v; want %s, %v", tc.in, got, InRanges(rs, 3), tc.want, tc.in3)
		}
	}
}
