package main

import (
	"testing"

	"github.com/shardlog/shardlog/readback"
	"github.com/shardlog/shardlog/writer"
)

// TestMayHold checks that grep's shortcut never skips a record whose key
// is asked for: whenever a record's key (as the router takes it) is one
// of the keys, mayHold says it may hold it; and that it does skip records
// that cannot.
func TestMayHold(t *testing.T) {
	records := []string{
		`{"user":"u42","x":1}`,
		`{"user":"u\u0034\u0032","x":2}`, // u42, spelled with escapes
		`{"user":"u420"}`,
		`{"user":42}`,
		`{"x":"u42"}`, // no user field: the router takes the whole record
		`{"user":"u4\"2"}`,
		`u42`,
		`plain line with u42 inside`,
		`{"user":"\u00e9t\u00e9"}`,
		``,
	}
	keySets := [][]string{
		{"u42"}, {"42"}, {"u420"}, {`u4"2`}, {"été"}, {"u42", "u43"}, {"nobody"},
		{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "u42"}, // more than maxLiterals
	}
	skipped := 0
	for _, key := range []string{"json:user", "message"} {
		rt, err := readback.NewRouting(writer.Routing{Shards: 4, Key: key, FilePattern: "shard-%03d.log"})
		if err != nil {
			t.Fatal(err)
		}
		for _, keys := range keySets {
			ks := keySet{set: map[string]struct{}{}}
			for _, k := range keys {
				ks.set[k] = struct{}{}
				ks.lits = append(ks.lits, []byte(k))
			}
			for _, rec := range records {
				k, ok := rt.KeyOf([]byte(rec))
				_, want := ks.set[string(k)]
				may := ks.mayHold([]byte(rec))
				if ok && want && !may {
					t.Errorf("key %s, keys %q: record %s has key %q, but mayHold says it cannot", key, keys, rec, k)
				}
				if !may {
					skipped++
				}
			}
		}
	}
	if skipped == 0 {
		t.Error("mayHold never skipped a record")
	}
}
