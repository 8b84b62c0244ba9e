package shard

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/shardlog/shardlog/writer"
)

// Meta is what a source knows about a message besides its bytes: where keys
// other than the message come from, and what to acknowledge once the
// message is written. Stdin messages have none.
type Meta struct {
	// Subject is the NATS subject the message came on.
	Subject string
	// Header holds the NATS headers of the message.
	Header map[string][]string
	// Ack, if set, is acknowledged once the record is written.
	Ack Acker
}

// Acker is acknowledged once the record it came with is in its file, such
// as a JetStream message.
type Acker = writer.Acker

// SplitAck returns an Acker that acknowledges a once it has itself been
// acknowledged n times: for a message cut into n records, which may land
// in different batches. Only the router's owner calls Ack, so no lock.
func SplitAck(a Acker, n int) Acker {
	if n <= 1 {
		return a
	}
	return &splitAck{a: a, left: n}
}

type splitAck struct {
	a    Acker
	left int
}

func (s *splitAck) Ack() error {
	if s.left--; s.left > 0 {
		return nil
	}
	return s.a.Ack()
}

// The routing.key forms.
const (
	KeyMessage = "message"
	KeySubject = "subject"
	keyHeader  = "header:"
	keyJSON    = "json:"
)

// KeyForms returns the forms of routing.key: the names, and the prefixes
// to which a header or field name is added.
func KeyForms() []string { return []string{KeyMessage, KeySubject, keyHeader, keyJSON} }

type keyKind int

const (
	kindMessage keyKind = iota
	kindSubject
	kindHeader
	kindJSON
)

// Key says which part of a message is hashed to choose its shard. The zero
// Key hashes the whole message. Where a message lacks the key (no such
// header, not a JSON object, no such field, or no subject), the whole
// message is hashed instead, and the router counts it.
type Key struct {
	kind keyKind
	name string // header or field name
}

// ParseKey parses a routing.key value: "message", "subject",
// "header:<name>" or "json:<field>".
func ParseKey(s string) (Key, error) {
	switch {
	case s == "" || s == KeyMessage:
		return Key{}, nil
	case s == KeySubject:
		return Key{kind: kindSubject}, nil
	case strings.HasPrefix(s, keyHeader) && len(s) > len(keyHeader):
		return Key{kind: kindHeader, name: s[len(keyHeader):]}, nil
	case strings.HasPrefix(s, keyJSON) && len(s) > len(keyJSON):
		return Key{kind: kindJSON, name: s[len(keyJSON):]}, nil
	}
	return Key{}, fmt.Errorf("routing.key %q: want message, subject, header:<name> or json:<field>", s)
}

// String returns the key as it is written in configuration.
func (k Key) String() string {
	switch k.kind {
	case kindSubject:
		return KeySubject
	case kindHeader:
		return keyHeader + k.name
	case kindJSON:
		return keyJSON + k.name
	}
	return KeyMessage
}

// NeedsNATS reports whether the key only exists on NATS messages.
func (k Key) NeedsNATS() bool { return k.kind == kindSubject || k.kind == kindHeader }

// Of returns the key of msg as the router takes it from a message that
// came without NATS metadata, such as a record read back from a file: the
// whole message, or the JSON field's value. It reports false when the key
// is missing and the whole message stands in for it, as it does for a
// subject or header key, which records do not hold.
func (k Key) Of(msg []byte) ([]byte, bool) { return k.extract(msg, nil) }

// extract returns the bytes to hash for msg, and false when the key is
// missing and the whole message stands in for it.
func (k Key) extract(msg []byte, meta *Meta) ([]byte, bool) {
	switch k.kind {
	case kindSubject:
		if meta != nil && meta.Subject != "" {
			return []byte(meta.Subject), true
		}
	case kindHeader:
		if meta != nil {
			if v := headerValue(meta.Header, k.name); v != "" {
				return []byte(v), true
			}
		}
	case kindJSON:
		if v, ok := JSONField(msg, k.name); ok {
			return v, true
		}
	default:
		return msg, true
	}
	return msg, false
}

// headerValue returns the first value of header name, matched as NATS
// does: exactly first, then in canonical MIME form.
func headerValue(h map[string][]string, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && strings.EqualFold(k, name) {
			return v[0]
		}
	}
	return ""
}

// JSONField returns the value of the top-level field name of the JSON
// object msg: a string's contents (unescaped), or any other value's JSON
// text as it stands. It reports false when msg is not a JSON object or
// has no such field. It reads only as far as the field.
func JSONField(msg []byte, name string) ([]byte, bool) {
	s := scanner{b: msg}
	if !s.skipSpace() || s.b[s.i] != '{' {
		return nil, false
	}
	s.i++
	for {
		if !s.skipSpace() {
			return nil, false
		}
		if s.b[s.i] == '}' {
			return nil, false
		}
		if s.b[s.i] != '"' {
			return nil, false
		}
		key, ok := s.str()
		if !ok || !s.skipSpace() || s.b[s.i] != ':' {
			return nil, false
		}
		s.i++
		if !s.skipSpace() {
			return nil, false
		}
		start := s.i
		if !s.value() {
			return nil, false
		}
		if string(unquote(key)) == name {
			v := s.b[start:s.i]
			if v[0] == '"' {
				return unquote(v), true
			}
			return v, true
		}
		if !s.skipSpace() {
			return nil, false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		default:
			return nil, false
		}
	}
}

// scanner walks JSON text without building values.
type scanner struct {
	b []byte
	i int
}

// skipSpace skips whitespace and reports whether any input is left.
func (s *scanner) skipSpace() bool {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return true
		}
	}
	return false
}

// str skips the string at s.i and returns it with its quotes.
func (s *scanner) str() ([]byte, bool) {
	start := s.i
	for s.i++; s.i < len(s.b); s.i++ {
		switch s.b[s.i] {
		case '\\':
			s.i++
		case '"':
			s.i++
			return s.b[start:s.i], true
		}
	}
	return nil, false
}

// value skips one JSON value at s.i.
func (s *scanner) value() bool {
	switch s.b[s.i] {
	case '"':
		_, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	}
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return s.i > start
		}
		s.i++
	}
	return false // a top-level object must be closed
}

// unquote returns the contents of the quoted JSON string q, unescaped.
// The common case, no escapes, costs no allocation.
func unquote(q []byte) []byte {
	inner := q[1 : len(q)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			if json.Unmarshal(q, &s) != nil {
				return inner
			}
			return []byte(s)
		}
	}
	return inner
}
