package config

import (
	"slices"
	"strings"
)

// nearest returns the known names nearest to the unknown one, or none
// when none is near enough to be a likely typo. Names are near when few
// edits (insertions, deletions, substitutions, swaps of neighbours) turn
// one into the other; failing that, the known names that end in
// suffix (when not empty) are returned: ".max_delay", for max_delay set
// at the top level where batch.max_delay was meant. Case is ignored.
func nearest(unknown string, known []string, suffix string) []string {
	u := strings.ToLower(unknown)
	best, bestDist := []string(nil), max(2, len(unknown)/5)+1
	for _, k := range known {
		if k == unknown {
			continue
		}
		d := editDistance(u, strings.ToLower(k))
		switch {
		case d < bestDist:
			best, bestDist = []string{k}, d
		case d == bestDist:
			best = append(best, k)
		}
	}
	if best == nil && suffix != "" {
		for _, k := range known {
			if strings.HasSuffix(strings.ToLower(k), strings.ToLower(suffix)) {
				best = append(best, k)
			}
		}
	}
	slices.Sort(best)
	return best
}

// didYouMean returns " (did you mean A?)", " (did you mean A or B?)" and
// so on for names, each with prefix, or "" for none.
func didYouMean(prefix string, names []string) string {
	if len(names) == 0 {
		return ""
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = prefix + n
	}
	if len(quoted) == 1 {
		return " (did you mean " + quoted[0] + "?)"
	}
	return " (did you mean " + strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1] + "?)"
}

// editDistance is the optimal string alignment distance between a and b:
// the fewest insertions, deletions, substitutions and swaps of adjacent
// bytes that turn a into b.
func editDistance(a, b string) int {
	// d[i][j] is the distance between a[:i] and b[:j]; three rows suffice.
	prev2, prev, cur := make([]int, len(b)+1), make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// knownKeys returns every configuration key and every section that holds
// keys (such as nats.jetstream), for suggestions.
func knownKeys() []string {
	var keys []string
	seen := map[string]bool{}
	for k := range defaults {
		keys = append(keys, k)
		for i := strings.Index(k, "."); i >= 0; i = nextDot(k, i) {
			if s := k[:i]; !seen[s] {
				seen[s] = true
				keys = append(keys, s)
			}
		}
	}
	return keys
}

// nextDot returns the index of the next '.' in k after i, or -1.
func nextDot(k string, i int) int {
	j := strings.Index(k[i+1:], ".")
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// envSuffixes returns the SHARDLOG_* variable of every configuration key,
// without its SHARDLOG_ prefix.
func envSuffixes() []string {
	names := make([]string, 0, len(defaults))
	for k := range defaults {
		names = append(names, strings.TrimPrefix(envName(k), envPrefix))
	}
	return names
}

// envPrefix begins every environment variable that sets a key.
const envPrefix = "SHARDLOG_"
