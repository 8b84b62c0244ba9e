package cluster

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jetStream starts a real nats-server with JetStream in this process, on
// a random loopback port with its store in a temporary directory, and
// returns a JetStream context connected to it.
func jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT,
		NoSigs: true, NoLog: true, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// storedKeys returns the keys Bucket holds (none if it does not exist).
func storedKeys(t *testing.T, ctx context.Context, js jetstream.JetStream) []string {
	t.Helper()
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestCreateReadDelete checks the round trip: Create makes the stream as
// documented and stores the layout, Read returns it, Pending counts the
// messages of each member's shards, and Delete removes stream and layout.
func TestCreateReadDelete(t *testing.T) {
	js, ctx := jetStream(t), testContext(t)
	l := layout(t, 16, "a", "b")
	l.Prefix, l.Seed, l.Key = "app.logs", 42, "json:user"
	if err := Create(ctx, js, l); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if cfg.Retention != jetstream.WorkQueuePolicy || cfg.Storage != jetstream.FileStorage ||
		!slices.Equal(cfg.Subjects, []string{"app.logs.*"}) || cfg.Replicas != 1 || cfg.Duplicates != 2*time.Minute {
		t.Errorf("stream config: retention %v, storage %v, subjects %v, replicas %d, duplicates %s",
			cfg.Retention, cfg.Storage, cfg.Subjects, cfg.Replicas, cfg.Duplicates)
	}
	got, err := Read(ctx, js, "logs")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, l) {
		t.Errorf("Read = %+v, want %+v", got, l)
	}

	for _, k := range []int{3, 3, 7, 12} {
		if _, err := js.Publish(ctx, l.Subject(k), []byte("x\n")); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := Pending(ctx, js, got)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pending, []uint64{3, 1}) {
		t.Errorf("Pending = %v, want [3 1] (a: shards 3, 3, 7; b: 12)", pending)
	}

	if err := Delete(ctx, js, "logs"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, "logs"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream after Delete: %v", err)
	}
	if _, err := Read(ctx, js, "logs"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Read after Delete: %v", err)
	}
	if keys := storedKeys(t, ctx, js); len(keys) != 0 {
		t.Errorf("bucket keys after Delete: %v", keys)
	}
	if err := Delete(ctx, js, "logs"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "cluster logs") {
		t.Errorf("Delete again: %v", err)
	}
	// Deleted, the name may be used again.
	if err := Create(ctx, js, l); err != nil {
		t.Errorf("Create after Delete: %v", err)
	}
}

// TestReadMissing checks that Read names a cluster that was never
// created, with or without a bucket.
func TestReadMissing(t *testing.T) {
	js, ctx := jetStream(t), testContext(t)
	if _, err := Read(ctx, js, "nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "cluster nope") {
		t.Errorf("Read without a bucket: %v", err)
	}
	if err := Create(ctx, js, layout(t, 4, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(ctx, js, "nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "cluster nope") {
		t.Errorf("Read with a bucket: %v", err)
	}
}

// TestCreateRefused checks that Create changes nothing when the cluster
// exists, when its stream's name is taken, or when its subjects overlap
// another stream's: the stored layouts and the streams stay as they were.
func TestCreateRefused(t *testing.T) {
	cases := []struct {
		name   string
		before func(t *testing.T, ctx context.Context, js jetstream.JetStream)
		second func(l *Layout)
		want   string
	}{
		{"same cluster again", func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
			if err := Create(ctx, js, layout(t, 16, "a", "b")); err != nil {
				t.Fatal(err)
			}
		}, func(l *Layout) { l.Prefix = "other" }, "cluster logs: exists already"},
		{"stream name taken", func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "logs", Subjects: []string{"mine.>"}}); err != nil {
				t.Fatal(err)
			}
		}, func(l *Layout) {}, "stream logs exists already"},
		{"same stream config taken", func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
			if _, err := js.CreateStream(ctx, layout(t, 16, "a", "b").StreamConfig()); err != nil {
				t.Fatal(err)
			}
		}, func(l *Layout) {}, "stream logs exists already"},
		{"subjects overlap", func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "other", Subjects: []string{"shardlog.>"}}); err != nil {
				t.Fatal(err)
			}
		}, func(l *Layout) {}, "subjects shardlog.*"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			js, ctx := jetStream(t), testContext(t)
			tc.before(t, ctx, js)
			keysBefore := storedKeys(t, ctx, js)
			var layoutBefore *Layout
			if len(keysBefore) > 0 {
				var err error
				if layoutBefore, err = Read(ctx, js, "logs"); err != nil {
					t.Fatal(err)
				}
			}
			streamsBefore := streams(t, ctx, js)

			l := layout(t, 16, "b", "a")
			tc.second(l)
			err := Create(ctx, js, l)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Create: %v, want an error with %q", err, tc.want)
			}
			if keys := storedKeys(t, ctx, js); !slices.Equal(keys, keysBefore) {
				t.Errorf("bucket keys %v, before %v", keys, keysBefore)
			}
			if layoutBefore != nil {
				if got, err := Read(ctx, js, "logs"); err != nil || !reflect.DeepEqual(got, layoutBefore) {
					t.Errorf("layout after a refused Create: %+v, %v; want %+v", got, err, layoutBefore)
				}
			}
			if s := streams(t, ctx, js); !reflect.DeepEqual(s, streamsBefore) {
				t.Errorf("streams %v, before %v", s, streamsBefore)
			}
		})
	}
}

// streams returns each stream's name and subjects.
func streams(t *testing.T, ctx context.Context, js jetstream.JetStream) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	l := js.ListStreams(ctx)
	for info := range l.Info() {
		out[info.Config.Name] = info.Config.Subjects
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
