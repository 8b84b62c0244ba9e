package config

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestEveryKeyDocumented checks that Keys, from which the man page lists
// the configuration keys, documents every key Load knows, with the flags
// that set it.
func TestEveryKeyDocumented(t *testing.T) {
	docs := Keys()
	if len(docs) != len(defaults) {
		t.Errorf("Keys lists %d keys, Load knows %d", len(docs), len(defaults))
	}
	byKey := map[string]KeyDoc{}
	for _, d := range docs {
		byKey[d.Key] = d
		if d.Meaning == "" {
			t.Errorf("key %s: no meaning: add it to keyMeanings", d.Key)
		}
		if d.Default == "" || d.Env != envName(d.Key) {
			t.Errorf("key %s: default %q, env %q", d.Key, d.Default, d.Env)
		}
	}
	for flag, key := range Flags {
		if !slices.Contains(byKey[key].Flags, "--"+flag) {
			t.Errorf("key %s: flags %q lack --%s", key, byKey[key].Flags, flag)
		}
	}
	if d := byKey["batch.max_delay"]; d.Default != "100ms" || !slices.Equal(d.Flags, []string{"--batch-max-delay"}) {
		t.Errorf("batch.max_delay: %+v", d)
	}
}

// TestREADMEKeyTable checks that README.md's table of keys lists every key
// Load knows, and no other.
func TestREADMEKeyTable(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "| key | flag | default | meaning |\n")
	if !ok {
		t.Fatal("README.md has no table of keys")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	inREADME := map[string]bool{}
	for _, row := range strings.Split(table, "\n")[1:] { // after |---|
		cells := strings.Split(row, "|")
		if len(cells) < 3 {
			t.Fatalf("row %q", row)
		}
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cells[1], -1) {
			inREADME[m[1]] = true
		}
	}
	for key := range defaults {
		if !inREADME[key] {
			t.Errorf("README's table lacks %s", key)
		}
	}
	for key := range inREADME {
		if _, ok := defaults[key]; !ok {
			t.Errorf("README's table has %s, which Load does not know", key)
		}
	}
}
