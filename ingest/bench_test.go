package ingest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardlog/shardlog/shard"
	"github.com/shardlog/shardlog/writer"
)

// BenchmarkStdinPipeline runs the whole stdin path in process: framing,
// routing and writing into real files, on lines shaped like the benchmark
// generator's (about 180 bytes).
func BenchmarkStdinPipeline(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	var input []byte
	for i := range 100_000 {
		input = fmt.Appendf(input, "2026-11-24T00:00:%02d.%06dZ INFO  api req=%016x user=u%05d latency_ms=%d msg=\"request completed for user after cache miss and retry of the upstream call\"\n",
			i%60, i, r.Uint64(), r.IntN(50000), r.IntN(3000))
	}
	for _, n := range []int{16, 1024} {
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			b.SetBytes(int64(len(input)))
			b.ReportAllocs()
			for b.Loop() {
				ws := make([]*writer.Writer, n)
				outs := make([]chan<- *writer.Batch, n)
				done := make(chan error, n)
				for k := range ws {
					w, err := writer.Open(k, filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k)), writer.Options{})
					if err != nil {
						b.Fatal(err)
					}
					ws[k], outs[k] = w, w.In()
					go func() { done <- w.Run() }()
				}
				rt, err := shard.New(shard.Config{Shards: n, MaxBatchBytes: 1 << 20, MaxDelay: 100 * time.Millisecond,
					BufferBytes: 32 << 20, MaxMessageBytes: 1 << 20}, outs)
				if err != nil {
					b.Fatal(err)
				}
				if err := NewLines(bytes.NewReader(input), 1<<20).Run(context.Background(), rt); err != nil {
					b.Fatal(err)
				}
				for _, w := range ws {
					w.CloseInput()
				}
				for range ws {
					if err := <-done; err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkCountRedelivered measures what telling a redelivered JetStream
// message costs per message (reading its reply subject), on a real
// message fetched from a real server, against the client's Metadata.
func BenchmarkCountRedelivered(b *testing.B) {
	_, js := jetStreamServer(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LOGS", Subjects: []string{"logs.>"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.Publish(ctx, "logs.x", []byte("a log line\n")); err != nil {
		b.Fatal(err)
	}
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	var m natsMsg
	for jm := range batch.Messages() {
		m = natsMsg{data: jm.Data(), subject: jm.Subject(), ack: jm}
	}
	if m.ack == nil {
		b.Fatalf("no message fetched: %v", batch.Error())
	}
	b.Run("countRedelivered", func(b *testing.B) {
		s := &NATS{}
		b.ReportAllocs()
		for b.Loop() {
			s.countRedelivered(&m)
		}
		if n := s.redelivered.Load(); n != 0 {
			b.Fatalf("a first delivery counted as redelivered %d times", n)
		}
	})
	// The client's Metadata, which countRedelivered does not use: the
	// baseline.
	b.Run("Metadata", func(b *testing.B) {
		jm := m.ack.(jetstream.Msg)
		b.ReportAllocs()
		for b.Loop() {
			if md, err := jm.Metadata(); err != nil || md.NumDelivered != 1 {
				b.Fatalf("metadata %+v, %v: want delivered once", md, err)
			}
		}
	})
}
