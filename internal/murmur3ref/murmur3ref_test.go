package murmur3ref

import "testing"

func TestVectors(t *testing.T) {
	for _, v := range Vectors() {
		if got := Sum32([]byte(v.Data), v.Seed); got != v.Want {
			t.Errorf("Sum32(%q, %#x) = %#x, want %#x", v.Data, v.Seed, got, v.Want)
		}
	}
}
