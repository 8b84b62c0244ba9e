package ingest

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// TestDelivered checks delivered against the client's own parser of
// JetStream acknowledgement subjects (Msg.Metadata), on both forms of the
// subject and on subjects that are not one.
func TestDelivered(t *testing.T) {
	for _, reply := range []string{
		"$JS.ACK.LOGS.shardlog.1.100.99.1764720000000000000.5",                  // 9 tokens
		"$JS.ACK.LOGS.shardlog.3.100.99.1764720000000000000.0",                  // delivered 3 times
		"$JS.ACK._.ACCHASH.LOGS.shardlog.2.100.99.1764720000000000000.5.r4nd0m", // 12 tokens
		"$JS.ACK.hub.ACCHASH.LOGS.shardlog.17.1.1.1764720000000000000.0",        // 11 tokens, a domain
		"$JS.ACK.hub.ACCHASH.LOGS.shardlog.4.1.1.1764720000000000000.0.r.s",     // 13 tokens
		"$JS.ACK.LOGS.shardlog.x.100.99.1764720000000000000.5",                  // not a number
		"$JS.ACK.LOGS.shardlog.2.100.99.1764720000000000000",                    // 8 tokens
		"$JS.ACK.A.B.LOGS.shardlog.2.100.99.1764720000000000000",                // 10 tokens
		"$JS.ACK.",
		"_INBOX.abc.def",
		"",
	} {
		var want uint64
		if md, err := (&nats.Msg{Reply: reply, Sub: &nats.Subscription{}}).Metadata(); err == nil {
			want = md.NumDelivered
		}
		if got := delivered(reply); got != want {
			t.Errorf("delivered(%q) = %d, want %d (as Msg.Metadata)", reply, got, want)
		}
	}
	if delivered("$JS.ACK.LOGS.shardlog.3.100.99.1764720000000000000.0") != 3 {
		t.Error("the oracle itself is wrong: want 3")
	}
}
