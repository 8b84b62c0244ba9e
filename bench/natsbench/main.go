// Command natsbench measures NATS ingest for docs/BENCHMARKS.md: it
// publishes log-like messages, and times a bare subscriber or consumer that
// discards them (the baseline), or shardlog writing them to files.
//
//	natsbench -url URL -mode pub      -msgs N [-size 180] [-subject S]
//	natsbench -url URL -mode sub      -msgs N [-subject S]        # bare core subscriber
//	natsbench -url URL -mode js-fill  -msgs N [-size 180] -stream S  # fill a stream
//	natsbench -url URL -mode js-sub   -msgs N -stream S           # bare durable pull consumer, acking
//	natsbench -url URL -mode js-delete -stream S                  # delete the stream (before core runs)
//	natsbench -mode files -msgs N -size 180 -dir D -n 16          # wait until shardlog wrote N records
//	          [-url URL -start sub [-subject S] | -url URL -start js -stream S -durable D]
//
// Each timing mode prints "MODE msgs=N seconds=S rate=R msgs/s".
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	url := flag.String("url", nats.DefaultURL, "NATS URL")
	mode := flag.String("mode", "pub", "pub, sub, js-fill, js-sub, js-delete or files")
	subject := flag.String("subject", "logs.bench", "subject")
	stream := flag.String("stream", "BENCH", "JetStream stream")
	msgs := flag.Int("msgs", 1_000_000, "messages")
	size := flag.Int("size", 180, "message size in bytes")
	dir := flag.String("dir", "", "shardlog's directory (files mode)")
	n := flag.Int("n", 16, "shardlog's shard count (files mode)")
	start := flag.String("start", "", "files mode: start the clock at the first message on -subject (sub),\n"+
		"or at the first delivery to JetStream consumer -durable on -stream (js), not at the first byte")
	durable := flag.String("durable", "", "shardlog's JetStream durable (files mode, -start js)")
	flag.Parse()

	switch *mode {
	case "files":
		files(*url, *start, *subject, *stream, *durable, *dir, *n, *msgs, *size)
		return
	}
	nc, err := nats.Connect(*url, nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	switch *mode {
	case "pub":
		start := time.Now()
		for i := range *msgs {
			if err := nc.Publish(*subject, payload(i, *size)); err != nil {
				log.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			log.Fatal(err)
		}
		report("pub", *msgs, time.Since(start))
	case "sub":
		report("sub", *msgs, subscribe(nc, *subject, *msgs))
	case "js-fill":
		fill(nc, *stream, *subject, *msgs, *size)
	case "js-sub":
		report("js-sub", *msgs, consume(nc, *stream, *msgs))
	case "js-delete":
		// A stream left on the subject would also store every core
		// message: delete it before core runs.
		js, err := jetstream.New(nc)
		if err != nil {
			log.Fatal(err)
		}
		if err := js.DeleteStream(context.Background(), *stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			log.Fatal(err)
		}
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
}

func report(mode string, msgs int, d time.Duration) {
	fmt.Printf("%s msgs=%d seconds=%.3f rate=%.0f msgs/s\n", mode, msgs, d.Seconds(), float64(msgs)/d.Seconds())
}

// payload returns message i: a log line of exactly size bytes, no newline.
func payload(i, size int) []byte {
	p := fmt.Appendf(make([]byte, 0, size), "2026-11-25T00:00:00.%06dZ INFO api req=%016x msg=\"", i%1000000, uint64(i)*0x9e3779b97f4a7c15)
	for len(p) < size-1 {
		p = append(p, "request completed "[len(p)%18])
	}
	return append(p[:size-1], '"')
}

// subscribe counts msgs messages and returns the time from the first to the last.
func subscribe(nc *nats.Conn, subject string, msgs int) time.Duration {
	done := make(chan struct{})
	var first time.Time
	count := 0
	sub, err := nc.Subscribe(subject, func(*nats.Msg) {
		if count == 0 {
			first = time.Now()
		}
		if count++; count == msgs {
			close(done)
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		log.Fatal(err)
	}
	// The server has our interest only once a round trip completes:
	// without it, a publisher started on "subscribed" may race the SUB.
	if err := nc.Flush(); err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(os.Stderr, "subscribed")
	<-done
	return time.Since(first)
}

// fill creates the stream afresh and publishes msgs messages into it.
func fill(nc *nats.Conn, stream, subject string, msgs, size int) {
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	_ = js.DeleteStream(ctx, stream)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subject}})
	if err != nil {
		log.Fatal(err)
	}
	for i := range msgs {
		if _, err := js.PublishAsync(subject, payload(i, size)); err != nil {
			log.Fatal(err)
		}
		if i%10000 == 9999 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	// A failed publish only fails its future: check that every message is
	// in the stream, or js-sub and files would wait forever.
	info, err := st.Info(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if info.State.Msgs != uint64(msgs) {
		log.Fatalf("stream %s holds %d messages, want %d", stream, info.State.Msgs, msgs)
	}
	fmt.Fprintf(os.Stderr, "js-fill stream=%s msgs=%d bytes=%d\n", stream, info.State.Msgs, info.State.Bytes)
}

// consume reads msgs messages with a durable pull consumer, acking each,
// and returns the time from the first to the last.
func consume(nc *nats.Conn, stream string, msgs int) time.Duration {
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(context.Background(), stream, jetstream.ConsumerConfig{
		Durable: "bare", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 65536})
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	var first time.Time
	count := 0
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if count == 0 {
			first = time.Now()
		}
		_ = m.Ack()
		if count++; count == msgs {
			close(done)
		}
	}, jetstream.PullMaxMessages(32768))
	if err != nil {
		log.Fatal(err)
	}
	<-done
	d := time.Since(first)
	cc.Stop()
	return d
}

// files waits until shardlog's files hold msgs records and reports the time
// to the last byte. By default the clock starts at the first byte. But
// shardlog writes in batches (up to batch.max_delay or batch.max_bytes per
// shard), so by the first byte it has received many records already, and
// that rate is too high. With -start, the clock starts when shardlog can
// receive the first message, as it does for sub and js-sub: with sub, at
// the first message published on the subject (ours, subscribed for just
// one message; "ready" on stderr says when to publish); with js, when the
// server first delivers to shardlog's durable. The time then includes the
// last batches' wait (up to batch.max_delay).
func files(url, start, subject, stream, durable, dir string, n, msgs, size int) {
	began := make(chan time.Time, 1)
	switch start {
	case "":
	case "sub":
		nc, err := nats.Connect(url)
		if err != nil {
			log.Fatal(err)
		}
		defer nc.Close()
		sub, err := nc.Subscribe(subject, func(*nats.Msg) {
			select {
			case began <- time.Now():
			default:
			}
		})
		if err != nil {
			log.Fatal(err)
		}
		if err := sub.AutoUnsubscribe(1); err != nil {
			log.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			log.Fatal(err)
		}
	case "js":
		nc, err := nats.Connect(url)
		if err != nil {
			log.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			for {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				info, err := js.Consumer(ctx, stream, durable)
				var ci *jetstream.ConsumerInfo
				if err == nil {
					ci, err = info.Info(ctx)
				}
				cancel()
				if err == nil && ci.Delivered.Consumer > 0 {
					began <- time.Now()
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	default:
		log.Fatalf("unknown -start %q", start)
	}
	fmt.Fprintln(os.Stderr, "ready")
	first, last, early := waitFiles(dir, n, int64(msgs)*int64(size+1))
	d := last.Sub(first)
	if start != "" {
		select {
		case t := <-began:
			d = last.Sub(t)
		default:
			log.Fatal("the files are complete but the start was never seen")
		}
	}
	// firstbyte_*: from the first byte, when early records were there already.
	fmt.Printf("files msgs=%d seconds=%.3f rate=%.0f msgs/s start=%s firstbyte_seconds=%.3f firstbyte_rate=%.0f early=%d\n",
		msgs, d.Seconds(), float64(msgs)/d.Seconds(), cmp.Or(start, "firstbyte"),
		last.Sub(first).Seconds(), float64(msgs)/last.Sub(first).Seconds(), early/int64(size+1))
}

// waitFiles waits until dir's n shard files hold want bytes, and returns
// when a poll first saw bytes, when the files were complete, and the bytes
// that first poll saw.
func waitFiles(dir string, n int, want int64) (first, last time.Time, early int64) {
	for {
		var total int64
		for k := range n {
			if fi, err := os.Stat(filepath.Join(dir, fmt.Sprintf("shard-%03d.log", k))); err == nil {
				total += fi.Size()
			}
		}
		if total > 0 && first.IsZero() {
			first, early = time.Now(), total
		}
		if total >= want {
			return first, time.Now(), early
		}
		time.Sleep(time.Millisecond)
	}
}
