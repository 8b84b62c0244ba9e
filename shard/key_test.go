package shard

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestParseKey(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"", "message", true}, {"message", "message", true}, {"subject", "subject", true},
		{"header:X-Tenant", "header:X-Tenant", true}, {"json:user", "json:user", true},
		{"json:", "", false}, {"header:", "", false}, {"body", "", false}, {"Subject", "", false},
	}
	for _, tc := range cases {
		k, err := ParseKey(tc.in)
		if (err == nil) != tc.ok || (tc.ok && k.String() != tc.want) {
			t.Errorf("ParseKey(%q) = %v, %v; want %q ok=%v", tc.in, k, err, tc.want, tc.ok)
		}
	}
}

func TestJSONField(t *testing.T) {
	cases := []struct {
		msg, field, want string
		ok               bool
	}{
		{`{"user":"alice","n":1}`, "user", "alice", true},
		{` { "user" : "alice" } `, "user", "alice", true},
		{`{"n":1,"user":"bob"}`, "user", "bob", true},
		{`{"n":-1.5e3,"user":"bob"}`, "n", "-1.5e3", true},
		{`{"a":{"user":"nested"},"user":"top"}`, "user", "top", true},
		{`{"a":["x","}",{"b":"]"}],"user":"after"}`, "user", "after", true},
		{`{"user":"a\"b"}`, "user", `a"b`, true},
		{`{"user":"\u00e9t\u00e9"}`, "user", "été", true},
		{`{"us\u0065r":"escaped key"}`, "user", "escaped key", true},
		{`{"user":{"id":7}}`, "user", `{"id":7}`, true},
		{`{"user":[1,2]}`, "user", `[1,2]`, true},
		{`{"user":true}`, "user", "true", true},
		{`{"user":null}`, "user", "null", true},
		{`{"user":""}`, "user", "", true},
		{`{"user":"x"`, "user", "x", true}, // read only as far as the field
		{`{"other":"x"}`, "user", "", false},
		{`{}`, "user", "", false},
		{`["user","x"]`, "user", "", false},
		{`plain text user=alice`, "user", "", false},
		{``, "user", "", false},
		{`{"user"`, "user", "", false},
		{`{"user":`, "user", "", false},
		{`{"user":"unterminated`, "user", "", false},
		{`{"a":1 "user":"x"}`, "user", "", false},
		{"{\"a\":\"\xff\xfe\",\"user\":\"bin\x00ary\"}", "user", "bin\x00ary", true},
	}
	for _, tc := range cases {
		got, ok := JSONField([]byte(tc.msg), tc.field)
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("JSONField(%q, %q) = %q, %v; want %q, %v", tc.msg, tc.field, got, ok, tc.want, tc.ok)
		}
	}
}

func TestKeyExtract(t *testing.T) {
	meta := &Meta{Subject: "logs.api", Header: map[string][]string{"X-Tenant": {"acme", "other"}, "Empty": {""}}}
	msg := []byte(`{"user":"alice"}`)
	cases := []struct {
		key  string
		meta *Meta
		want string
		ok   bool
	}{
		{"message", meta, `{"user":"alice"}`, true},
		{"subject", meta, "logs.api", true},
		{"subject", nil, `{"user":"alice"}`, false},
		{"header:X-Tenant", meta, "acme", true},
		{"header:x-tenant", meta, "acme", true},
		{"header:Empty", meta, `{"user":"alice"}`, false},
		{"header:Missing", meta, `{"user":"alice"}`, false},
		{"header:X-Tenant", nil, `{"user":"alice"}`, false},
		{"json:user", nil, "alice", true},
		{"json:missing", nil, `{"user":"alice"}`, false},
	}
	for _, tc := range cases {
		k, err := ParseKey(tc.key)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := k.extract(msg, tc.meta)
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("%s: extract = %q, %v; want %q, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

func BenchmarkJSONField(b *testing.B) {
	msg := []byte(`{"ts":"2026-11-24T00:00:00.123456Z","level":"info","service":"api","req":"9f86d081884c7d65","user":"u04217","latency_ms":125,"msg":"request completed"}`)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := JSONField(msg, "user"); !ok {
			b.Fatal("no user")
		}
	}
}

// FuzzJSONField holds JSONField to encoding/json on valid JSON objects with
// distinct top-level keys (encoding/json keeps the last of duplicates,
// JSONField the first) and valid UTF-8 (which encoding/json would rewrite).
func FuzzJSONField(f *testing.F) {
	f.Add([]byte(`{"user":"alice","n":1}`), "user")
	f.Add([]byte(`{"a":{"user":"x"},"user":[1,"]"]}`), "user")
	f.Add([]byte(`{"u\u0073er":"\u00e9\n"}`), "user")
	f.Fuzz(func(t *testing.T, msg []byte, field string) {
		var obj map[string]json.RawMessage
		if !utf8.Valid(msg) || json.Unmarshal(msg, &obj) != nil || obj == nil || !distinctKeys(msg) {
			return
		}
		got, ok := JSONField(msg, field)
		raw, want := obj[field]
		if ok != want {
			t.Fatalf("JSONField(%q, %q) found=%v, encoding/json found=%v", msg, field, ok, want)
		}
		if !ok {
			return
		}
		wantVal := []byte(raw)
		var s string
		if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
			wantVal = []byte(s)
		}
		if string(got) != string(wantVal) {
			t.Fatalf("JSONField(%q, %q) = %q, encoding/json %q", msg, field, got, wantVal)
		}
	})
}

// distinctKeys reports whether the JSON object msg has no repeated
// top-level key.
func distinctKeys(msg []byte) bool {
	d := json.NewDecoder(bytes.NewReader(msg))
	seen := map[string]bool{}
	depth := 0
	expectKey := false
	for {
		tok, err := d.Token()
		if err != nil {
			return true
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
			} else {
				depth--
			}
			expectKey = depth == 1 // a key follows the top object's opening or a nested value
			continue
		case string:
			if depth == 1 && expectKey {
				if seen[v] {
					return false
				}
				seen[v] = true
				expectKey = false
				continue
			}
		}
		if depth == 1 {
			expectKey = true
		}
	}
}
