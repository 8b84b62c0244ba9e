package main

import (
	"bytes"
	"testing"
)

// The fast payloads are the reference's, and check finds each one's number.
func TestPayloads(t *testing.T) {
	for _, size := range []int{20, 63, 64, 65, 180, 1000} {
		tmpl := payload(0, size)
		got := make([]byte, size)
		for _, i := range []int{0, 1, 9, 10, 999999, 1000000, 1000001, 2999999, 1 << 40} {
			putPayload(got, tmpl, i)
			want := payload(i, size)
			if !bytes.Equal(got, want) {
				t.Fatalf("size %d message %d:\n got %q\nwant %q", size, i, got, want)
			}
			if size >= minFastSize {
				if n, ok := messageNumber(got); !ok || n != i {
					t.Fatalf("size %d: messageNumber(payload(%d)) = %d, %v", size, i, n, ok)
				}
			}
		}
	}
	all := payloads(1000, 180)
	seen := map[string]bool{}
	for i := range 1000 {
		seen[string(all[i*180:(i+1)*180])] = true
	}
	if len(seen) != 1000 {
		t.Fatalf("%d distinct payloads of 1000", len(seen))
	}
	if _, ok := messageNumber(bytes.Repeat([]byte("x"), 180)); ok {
		t.Fatal("messageNumber accepted a line that is no payload")
	}
}
