// Package readback reads a shard directory back: which files hold a
// shard's records, in the order they were written (List), the records of
// each file, decompressed as a stream in bounded memory (Reader), a
// shard's newest records, from the files rotated after a given one to the
// current file, and, following, those still being written (Tail), and
// which key a record has and which shard a key belongs to (Routing).
// shardlog grep, verify and reshard are built on it.
//
// A typical read of shard k, oldest record first:
//
//	rt, err := readback.NewRouting(record) // writer.ReadRouting(dir)
//	l, err := readback.List(dir, rt)
//	rd := readback.NewReader(readback.Options{})
//	defer rd.Close()
//	for _, f := range l.Shards[k] {
//		if _, err := rd.Open(f); err != nil { ... }
//		for {
//			rec, err := rd.Next() // io.EOF at the end, *StreamError if broken
//			...
//		}
//	}
//
// Reading back changes nothing in the directory and takes no lock: it
// may run while shardlog writes, rotates and compresses there.
package readback

import (
	"errors"
	"fmt"

	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

// ErrKeyNotInRecords is wrapped by NewRouting's error when the routing key
// is a NATS subject or header: records do not hold it, so a record's key,
// and so its shard, cannot be found again from the record.
var ErrKeyNotInRecords = errors.New("the key is not in the records")

// Routing is a directory's routing, ready to find keys in records and
// shards of keys: what writer.Routing records, parsed.
type Routing struct {
	writer.Routing
	key shard.Key
}

// NewRouting checks r and parses its key. It refuses (wrapping
// ErrKeyNotInRecords) a subject or header key, whose values are not in
// the records, and a routing without shards or file pattern.
func NewRouting(r writer.Routing) (Routing, error) {
	if r.Shards < 1 {
		return Routing{}, fmt.Errorf("shards: %d: must be at least 1", r.Shards)
	}
	if r.FilePattern == "" {
		return Routing{}, errors.New("file_pattern: empty")
	}
	k, err := shard.ParseKey(r.Key)
	if err != nil {
		return Routing{}, err
	}
	if k.NeedsNATS() {
		return Routing{}, fmt.Errorf("routing.key %s: %w: shardlog routed each record by its NATS %s, which its file does not keep, "+
			"so records cannot be matched to keys (only message and json:<field> keys can)", r.Key, ErrKeyNotInRecords, r.Key)
	}
	return Routing{Routing: r, key: k}, nil
}

// KeyOf returns rec's key, exactly as the router takes it: the whole
// record, or its JSON field's value. It reports false when the record has
// no such field: the router then routed it by the whole record, which is
// returned.
func (r Routing) KeyOf(rec []byte) ([]byte, bool) { return r.key.Of(rec) }

// ShardOf returns the shard of key: its murmur3 hash with the routing's
// seed, mod the routing's shards.
func (r Routing) ShardOf(key []byte) int {
	return int(shard.Sum32(key, r.Seed) % uint32(r.Shards))
}

// FileName returns the name of shard k's current file.
func (r Routing) FileName(k int) string { return fmt.Sprintf(r.FilePattern, k) }
