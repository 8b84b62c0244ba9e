package config

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// yamlLine matches the "line N: " that the YAML parser puts before some of
// its messages, and the "yaml: " before all of them.
var yamlLine = regexp.MustCompile(`^(yaml: )?(line \d+: )?`)

// yamlNotMap matches the decoding problem of a value where the document's
// keys belong.
var yamlNotMap = regexp.MustCompile("cannot unmarshal !!\\w+ `(.*)` into map\\[string\\]interface \\{\\}")

// yamlError rewords err, the YAML parser's error for data, so that it
// names the line of data where the problem is, always. The parser names
// none for a problem on the first line or for a byte that YAML does not
// allow, gives the line where the enclosing collection began for some
// problems within it, and lists decoding problems on lines of their own.
func yamlError(data []byte, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		// Decoding problems (a key twice, a list where keys belong) come
		// with correct line numbers: put them on one line.
		for i, e := range te.Errors {
			te.Errors[i] = strings.Replace(e, "cannot unmarshal !!seq into map[string]interface {}", "a list where keys belong", 1)
			te.Errors[i] = yamlNotMap.ReplaceAllString(te.Errors[i], "$1: not a key with a value (want key: value)")
		}
		return errors.New(strings.Join(te.Errors, "; "))
	}
	problem := yamlLine.ReplaceAllString(err.Error(), "")
	if line := badCharLine(data); line > 0 {
		return fmt.Errorf("line %d: %s", line, problem)
	}
	if line := problemLine(data, problem); line > 0 {
		return fmt.Errorf("line %d: %s", line, problem)
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

// badCharLine returns the line of the first character that YAML does not
// allow in a document (invalid UTF-8, a control character other than tab,
// newline and carriage return), or 0 if there is none.
func badCharLine(data []byte) int {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		ok := r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0x7e || r == 0x85 ||
			r >= 0xa0 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= 0x10ffff
		if !ok || r == utf8.RuneError && size == 1 {
			return bytes.Count(data[:i], []byte("\n")) + 1
		}
		i += size
	}
	return 0
}

// problemLine returns the line at which data first fails to parse with
// problem: the smallest n such that its first n lines do, found by
// bisection (the parser reads a document from the start, so a prefix
// that holds the problem fails with it). It returns 0 if no prefix fails
// so.
func problemLine(data []byte, problem string) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	failsAt := func(n int) bool {
		var doc any
		err := yaml.Unmarshal(bytes.Join(lines[:n], nil), &doc)
		return err != nil && yamlLine.ReplaceAllString(err.Error(), "") == problem
	}
	if !failsAt(len(lines)) {
		return 0
	}
	lo, hi := 0, len(lines) // failsAt(hi); lo fails otherwise or is 0
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if failsAt(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}
