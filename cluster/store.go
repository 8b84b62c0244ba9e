package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket that holds the layouts, one key per
// cluster (its name), the value the layout in JSON.
const Bucket = "shardlog_clusters"

// DuplicateWindow is the stream's window for Nats-Msg-Id: a batch
// published again within it (a retry) is stored once.
const DuplicateWindow = 2 * time.Minute

// ErrExists is returned by Create for a cluster whose layout, or whose
// stream, exists already.
var ErrExists = errors.New("exists already")

// ErrNotFound is returned by Read and Delete for a cluster that has no
// layout.
var ErrNotFound = errors.New("no such cluster")

// StreamConfig returns the configuration of l's stream: file storage,
// subjects "<prefix>.*", l.Replicas replicas, work-queue retention (a
// batch leaves the stream once a member has written it, and the server
// refuses consumers whose filters overlap), and DuplicateWindow.
func (l *Layout) StreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        l.Stream,
		Description: "shardlog cluster " + l.Name,
		Subjects:    l.Subjects(),
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    l.Replicas,
		Duplicates:  DuplicateWindow,
	}
}

// bucket returns the layouts' bucket, creating it (file storage, one
// revision per key, replicas as given) if it does not exist.
func bucket(ctx context.Context, js jetstream.JetStream, replicas int, create bool) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err == nil {
		return kv, nil
	}
	if !create || !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("key-value bucket %s: %w", Bucket, err)
	}
	kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "shardlog cluster layouts",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if errors.Is(err, jetstream.ErrBucketExists) { // created meanwhile
		kv, err = js.KeyValue(ctx, Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("create key-value bucket %s: %w", Bucket, err)
	}
	return kv, nil
}

// Create creates l's stream and then writes l to Bucket under its name,
// once: if the cluster's layout or its stream exists already it returns
// an error wrapping ErrExists and changes nothing, and if the stream
// cannot be created (its subjects overlap another stream's, say) nothing
// is written. Call l.Validate first.
func Create(ctx context.Context, js jetstream.JetStream, l *Layout) error {
	value, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encode cluster %s: %w", l.Name, err)
	}
	// Nothing is made, not even the bucket, before the checks pass.
	switch _, err := Read(ctx, js, l.Name); {
	case err == nil:
		return fmt.Errorf("cluster %s: %w (its layout is in bucket %s; delete it first)", l.Name, ErrExists, Bucket)
	case !errors.Is(err, ErrNotFound):
		return err
	}
	switch _, err := js.Stream(ctx, l.Stream); {
	case err == nil:
		return fmt.Errorf("cluster %s: stream %s %w: delete it or choose another cluster name", l.Name, l.Stream, ErrExists)
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("cluster %s: look up stream %s: %w", l.Name, l.Stream, err)
	}
	if _, err := js.CreateStream(ctx, l.StreamConfig()); err != nil {
		if strings.Contains(err.Error(), "overlap") {
			return fmt.Errorf("cluster %s: create stream %s: subjects %s: %w (give the cluster its own --prefix)",
				l.Name, l.Stream, strings.Join(l.Subjects(), ","), err)
		}
		return fmt.Errorf("cluster %s: create stream %s: %w", l.Name, l.Stream, err)
	}
	kv, err := bucket(ctx, js, l.Replicas, true)
	if err == nil {
		_, err = kv.Create(ctx, l.Name, value)
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			// Another create of the same cluster won the race; the
			// stream, made with the same name, is its.
			return fmt.Errorf("cluster %s: %w (created meanwhile by another process)", l.Name, ErrExists)
		}
		// Leave nothing half made: the stream was made just now, by us.
		if derr := js.DeleteStream(ctx, l.Stream); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete stream %s again: %w", l.Stream, derr))
		}
		return fmt.Errorf("cluster %s: write layout to bucket %s: %w", l.Name, Bucket, err)
	}
	return nil
}

// Read reads cluster name's layout from Bucket, and checks it. A missing
// cluster (or bucket) is an error wrapping ErrNotFound.
func Read(ctx context.Context, js jetstream.JetStream, name string) (*Layout, error) {
	kv, err := bucket(ctx, js, 0, false)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("cluster %s: %w (no bucket %s)", name, ErrNotFound, Bucket)
	}
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("cluster %s: %w in bucket %s", name, ErrNotFound, Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster %s: read bucket %s: %w", name, Bucket, err)
	}
	return Decode(name, e.Value())
}

// Decode decodes and checks the layout stored under name.
func Decode(name string, value []byte) (*Layout, error) {
	var l Layout
	if err := json.Unmarshal(value, &l); err != nil {
		return nil, fmt.Errorf("cluster %s: layout in bucket %s: %w", name, Bucket, err)
	}
	if err := l.Validate(); err != nil {
		// A stored layout that does not check is not the command
		// line's fault: report it as it is, without config.Error.
		return nil, fmt.Errorf("cluster %s: layout in bucket %s: %s", name, Bucket, err)
	}
	if l.Name != name {
		return nil, fmt.Errorf("cluster %s: layout in bucket %s names cluster %q", name, Bucket, l.Name)
	}
	return &l, nil
}

// Delete deletes cluster name's stream, then the entries of its
// instances in InstanceBucket, and then its layout. A missing
// layout is an error wrapping ErrNotFound, and nothing is deleted; a
// stream already gone is not an error.
func Delete(ctx context.Context, js jetstream.JetStream, name string) error {
	l, err := Read(ctx, js, name)
	if err != nil {
		return err
	}
	if err := js.DeleteStream(ctx, l.Stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("cluster %s: delete stream %s: %w", name, l.Stream, err)
	}
	if err := deleteInstances(ctx, js, name); err != nil {
		return err
	}
	kv, err := bucket(ctx, js, 0, false)
	if err != nil {
		return err
	}
	if err := kv.Delete(ctx, name); err != nil {
		return fmt.Errorf("cluster %s: delete its layout from bucket %s: %w", name, Bucket, err)
	}
	return nil
}

// Pending returns the messages the stream holds for each member of l, in
// the order of l.Members.
func Pending(ctx context.Context, js jetstream.JetStream, l *Layout) ([]uint64, error) {
	s, err := js.Stream(ctx, l.Stream)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: stream %s: %w", l.Name, l.Stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(l.Prefix+".*"))
	if err != nil {
		return nil, fmt.Errorf("cluster %s: stream %s info: %w", l.Name, l.Stream, err)
	}
	index := make(map[string]int, len(l.Members))
	for i, m := range l.Members {
		index[m.Name] = i
	}
	out := make([]uint64, len(l.Members))
	for subject, n := range info.State.Subjects {
		k, ok := l.shardOf(subject)
		if !ok {
			continue
		}
		if m, ok := l.Member(k); ok {
			out[index[m]] += n
		}
	}
	return out, nil
}

// shardOf returns the shard whose subject is subject.
func (l *Layout) shardOf(subject string) (int, bool) {
	rest, ok := strings.CutPrefix(subject, l.Prefix+".")
	if !ok {
		return 0, false
	}
	var k int
	if _, err := fmt.Sscanf(rest, "%d", &k); err != nil || l.Subject(k) != subject {
		return 0, false
	}
	return k, true
}
