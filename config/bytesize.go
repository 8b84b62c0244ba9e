package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes. In configuration it is an integer, or an
// integer with one of the units B, KiB, MiB, GiB or TiB (powers of 1024),
// spelled exactly so: 1MB or 10k, which could mean powers of 1000, are
// refused rather than guessed.
type ByteSize int64

var byteSizeType = reflect.TypeFor[ByteSize]()

// errNoSize is returned for an unparseable size.
var errNoSize = errors.New("want a byte count such as 65536, 64KiB or 1MiB (units: B, KiB, MiB, GiB, TiB)")

// ParseByteSize parses "65536", "64KiB", "1MiB" and the like.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '-' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = strings.TrimSpace(t[:i]), strings.TrimSpace(t[i:])
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, errNoSize)
	}
	var shift uint
	switch unit {
	case "", "B":
	case "KiB":
		shift = 10
	case "MiB":
		shift = 20
	case "GiB":
		shift = 30
	case "TiB":
		shift = 40
	default:
		return 0, fmt.Errorf("%q: unit %q: %w", s, unit, errNoSize)
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
