package ingest

import "testing"

func TestSubjectsIntersect(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"logs.a", "logs.a", true},
		{"logs.a", "logs.b", false},
		{"logs.>", "logs.a.b", true},
		{"logs.>", "logs", false},
		{"logs.*", "logs.a", true},
		{"logs.*", "logs.a.b", false},
		{"logs.*.x", "logs.a.*", true},
		{"logs.*.x", "logs.a.y", false},
		{">", "anything.at.all", true},
		{"*", "a.b", false},
		{"metrics.>", "logs.>", false},
		{"audit.a.b", "audit.*", false},
		{"a.b", "a.b.c", false},
		{"a.*.>", "a.b", false},
		{"a.*.>", "a.b.c", true},
	}
	for _, tc := range cases {
		for _, c := range [][2]string{{tc.a, tc.b}, {tc.b, tc.a}} {
			if got := subjectsIntersect(c[0], c[1]); got != tc.want {
				t.Errorf("subjectsIntersect(%q, %q) = %v, want %v", c[0], c[1], got, tc.want)
			}
		}
	}
}

func TestCheckCovered(t *testing.T) {
	cases := []struct {
		stream, subjects []string
		ok               bool
	}{
		{[]string{"logs.>"}, []string{"logs.a", "logs.>"}, true},
		{[]string{"logs.a", "logs.b"}, []string{"logs.>"}, true}, // reads the whole stream
		{[]string{"logs.>"}, []string{"logs.a", "audit.x"}, false},
		{nil, []string{"anything"}, true}, // a mirror: not checked
	}
	for _, tc := range cases {
		if err := checkCovered("S", tc.stream, tc.subjects); (err == nil) != tc.ok {
			t.Errorf("checkCovered(%v, %v) = %v, want ok=%v", tc.stream, tc.subjects, err, tc.ok)
		}
	}
}

func TestVersionAtLeast(t *testing.T) {
	cases := []struct {
		v    string
		want bool
	}{
		{"2.9.10", false},
		{"2.10.0", true},
		{"2.15.2", true},
		{"v2.10.1", true},
		{"2.11.0-beta.1", true},
		{"3.0.0", true},
		{"1.99.0", false},
		{"", false},
		{"junk", false},
	}
	for _, tc := range cases {
		if got := versionAtLeast(tc.v, 2, 10); got != tc.want {
			t.Errorf("versionAtLeast(%q, 2, 10) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

func TestSameSet(t *testing.T) {
	cases := []struct {
		a, b []string
		want bool
	}{
		{[]string{"a", "b"}, []string{"b", "a"}, true},
		{[]string{"a"}, []string{"a", "b"}, false},
		{nil, []string{"a"}, false},
		{nil, nil, true},
	}
	for _, tc := range cases {
		if got := sameSet(tc.a, tc.b); got != tc.want {
			t.Errorf("sameSet(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
