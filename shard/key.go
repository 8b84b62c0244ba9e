package shard

import (
	"fmt"
	"strings"
)

// Meta is what a source knows about a message besides its bytes, for keys
// that are not taken from the message itself. Stdin messages have none.
type Meta struct {
	// Subject is the NATS subject the message came on.
	Subject string
	// Header holds the NATS headers of the message.
	Header map[string][]string
}

// Key says which part of a message is hashed to choose its shard. The zero
// Key hashes the whole message.
type Key struct {
	spec string
}

// KeyMessage hashes the whole message: the default.
const KeyMessage = "message"

// ParseKey parses a routing.key value. Only "message" is supported so far;
// "subject", "header:<name>" and "json:<field>" come with NATS input.
func ParseKey(s string) (Key, error) {
	switch {
	case s == "" || s == KeyMessage:
		return Key{}, nil
	case s == "subject", strings.HasPrefix(s, "header:"), strings.HasPrefix(s, "json:"):
		return Key{}, fmt.Errorf("routing.key %q: not supported yet; only %q is", s, KeyMessage)
	}
	return Key{}, fmt.Errorf("routing.key %q: want %q", s, KeyMessage)
}

// String returns the key as it is written in configuration.
func (k Key) String() string {
	if k.spec == "" {
		return KeyMessage
	}
	return k.spec
}

// extract returns the bytes to hash for msg, and false when the key is
// missing and the whole message stands in for it.
func (k Key) extract(msg []byte, _ *Meta) ([]byte, bool) {
	return msg, true
}
