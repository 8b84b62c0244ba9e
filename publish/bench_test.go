package publish

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardlog/shardlog/writer"
)

// benchBatchBytes is the size of a batch in the benchmarks: the default
// batch.max_bytes.
const benchBatchBytes = 256 << 10

// benchStream creates, on a new in-process server with file storage, the
// stream the benchmarks publish to. It keeps the last 256 MiB (older
// messages are discarded), so that a long run does not fill the disk.
func benchStream(b *testing.B) jetstream.JetStream {
	srv := natsServer(b, 0, b.TempDir(), 0)
	js := connect(b, srv)
	createStream(b, js, func(c *jetstream.StreamConfig) { c.MaxBytes = 256 << 20 })
	return js
}

// BenchmarkPublish publishes batches of 256 KiB, each of 2048 records of
// 128 bytes in pages of 8 KiB as the router cuts them, round robin over
// the shards, to an in-process server with file storage.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			js := benchStream(b)
			p, stop := newPublisher(b, js, Options{Shards: n, Window: DefaultWindow})
			// Enough batches that every shard's queue can be full while
			// some are in flight; each comes home and goes out again.
			const queued = 16
			home := make(chan *writer.Batch, n*(queued+1))
			page := make([]byte, 8<<10)
			for i := range page {
				page[i] = 'a' + byte(i%26)
				if i%128 == 127 {
					page[i] = '\n'
				}
			}
			free := make([]*writer.Batch, 0, n*(queued+1))
			for range cap(free) {
				bt := writer.NewBatch(home)
				for range benchBatchBytes / len(page) {
					bt.Bufs = append(bt.Bufs, page)
				}
				bt.Records, bt.Bytes = benchBatchBytes/128, benchBatchBytes
				free = append(free, bt)
			}
			b.SetBytes(benchBatchBytes)
			b.ReportAllocs()
			b.ResetTimer()
			sent, back := 0, 0
			for sent < b.N {
				var bt *writer.Batch
				if len(free) > 0 {
					bt, free = free[len(free)-1], free[:len(free)-1]
				} else {
					bt = <-home
					back++
					if bt.Err != nil {
						b.Fatal(bt.Err)
					}
				}
				bt.Shard = sent % n
				p.In(bt.Shard) <- bt
				sent++
			}
			for back < sent {
				if bt := <-home; bt.Err != nil {
					b.Fatal(bt.Err)
				}
				back++
			}
			b.StopTimer()
			if err := stop(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkPublishAsyncBaseline is what the server takes from a plain
// nats.go loop of PublishAsync with messages of the same size and the same
// window (64 unacknowledged): the server's ingest limit here, against
// which BenchmarkPublish is measured (docs/BENCHMARKS.md).
func BenchmarkPublishAsyncBaseline(b *testing.B) {
	srv := natsServer(b, 0, b.TempDir(), 0)
	nc := connect(b, srv).Conn()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(DefaultWindow))
	if err != nil {
		b.Fatal(err)
	}
	createStream(b, js, func(c *jetstream.StreamConfig) { c.MaxBytes = 256 << 20 })
	msg := make([]byte, benchBatchBytes)
	for i := range msg {
		msg[i] = 'a' + byte(i%26)
		if i%128 == 127 {
			msg[i] = '\n'
		}
	}
	b.SetBytes(benchBatchBytes)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := js.PublishAsync(testPrefix+".0", msg, jetstream.WithMsgID(fmt.Sprint("base-", i))); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	b.StopTimer()
}
