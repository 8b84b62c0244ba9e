package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes. In configuration it is an integer or a
// string with a unit: B, KiB, MiB, GiB (powers of 1024; K, M, G and KB, MB,
// GB mean the same).
type ByteSize int64

var byteSizeType = reflect.TypeFor[ByteSize]()

// errNoSize is returned for an unparseable size.
var errNoSize = errors.New("want a byte count such as 65536, 64KiB or 1MiB")

// ParseByteSize parses "65536", "64KiB", "1MiB" and the like.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '-' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, errNoSize)
	}
	var shift uint
	switch unit {
	case "", "b":
	case "k", "kb", "kib":
		shift = 10
	case "m", "mb", "mib":
		shift = 20
	case "g", "gb", "gib":
		shift = 30
	default:
		return 0, fmt.Errorf("%q: %w", s, errNoSize)
	}
	if n > 0 && n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return ByteSize(n << shift), nil
}

// byteSizeHook decodes sizes given as strings with units.
func byteSizeHook(from, to reflect.Type, data any) (any, error) {
	if to != byteSizeType || from.Kind() != reflect.String {
		return data, nil
	}
	return ParseByteSize(data.(string))
}
