package cluster

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// InstanceBucket is the key-value bucket in which every running instance
// of a member keeps an entry, key "<cluster>.<member>.<instance id>", the
// value an Instance in JSON. Each entry carries a time to live of a few
// heartbeats (nats-server 2.11 per-message TTL), so that the entry of an
// instance that died without removing it disappears by itself.
const InstanceBucket = "shardlog_instances"

// instanceMarkerTTL is how long the bucket keeps the marker of an entry
// removed or expired: long enough for a watcher to see it, short enough
// that markers of past instances do not pile up.
const instanceMarkerTTL = time.Minute

// Instance is what a running instance of a member says about itself in
// InstanceBucket.
type Instance struct {
	Cluster string `json:"cluster"`
	Member  string `json:"member"`
	// ID is random, made at start: two instances on one host (or a
	// restart with the same pid) are told apart.
	ID      string    `json:"id"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Version string    `json:"version,omitempty"`
	// Pin is the Nats-Pin-Id of the last message the instance received,
	// and PinSeen when it first saw that pin: the instance whose Pin is
	// the consumer's pinned client id is the member's active one.
	Pin     string    `json:"pin_id,omitempty"`
	PinSeen time.Time `json:"pin_seen,omitzero"`
	// Heartbeat is how often the instance refreshes its entry, and TTL
	// how long the entry lives after the last refresh.
	Heartbeat string `json:"heartbeat"`
	TTL       string `json:"ttl"`
}

// Key returns the key of in's entry in InstanceBucket.
func (in Instance) Key() string { return InstanceKey(in.Cluster, in.Member, in.ID) }

// InstanceKey returns the key of an instance's entry in InstanceBucket.
func InstanceKey(cluster, member, id string) string { return cluster + "." + member + "." + id }

// NewInstanceID returns a random instance id: 16 hexadecimal digits.
func NewInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// Heartbeat returns how often an instance of a member whose durable has
// pinned TTL pinnedTTL refreshes its entry (half the pinned TTL, from 1s
// to 10s: cluster show follows a takeover about as fast as the server
// makes it), and the entry's time to live: three heartbeats, in whole
// seconds (the server's unit), so that one lost refresh does not drop a
// live instance.
func Heartbeat(pinnedTTL time.Duration) (every, ttl time.Duration) {
	every = min(max(pinnedTTL/2, time.Second), 10*time.Second)
	ttl = (3*every + time.Second - 1).Truncate(time.Second)
	return every, ttl
}

// DecodeInstance decodes the entry stored under key, and checks that it
// is the entry of the instance the key names.
func DecodeInstance(key string, value []byte) (Instance, error) {
	var in Instance
	if err := json.Unmarshal(value, &in); err != nil {
		return in, fmt.Errorf("instance %s in bucket %s: %w", key, InstanceBucket, err)
	}
	if in.Key() != key {
		return in, fmt.Errorf("instance %s in bucket %s: entry names cluster %q, member %q, id %q",
			key, InstanceBucket, in.Cluster, in.Member, in.ID)
	}
	return in, nil
}

// Pin is the state of a member's pinned priority group: the id of the
// pinned client, and since when it is pinned; an empty ID: none pinned.
type Pin struct {
	ID    string
	Since time.Time
}

// Select returns, of the instances of one member, the active one (the one
// whose last seen pin is pin.ID, which holds the server's pin; nil if
// none does) and the others, the standbys, in the order given.
func Select(instances []Instance, pin Pin) (active *Instance, standbys []Instance) {
	for i := range instances {
		if active == nil && pin.ID != "" && instances[i].Pin == pin.ID {
			active = &instances[i]
			continue
		}
		standbys = append(standbys, instances[i])
	}
	return active, standbys
}

// instanceBucket returns InstanceBucket, creating it (memory storage: its
// entries live for seconds; replicas as given; per-key time to live) if
// create is set and it does not exist.
func instanceBucket(ctx context.Context, js jetstream.JetStream, replicas int, create bool) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, InstanceBucket)
	if err == nil {
		return kv, nil
	}
	if !create || !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("key-value bucket %s: %w", InstanceBucket, err)
	}
	kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         InstanceBucket,
		Description:    "shardlog member instances, each refreshed every heartbeat",
		History:        1,
		Storage:        jetstream.MemoryStorage,
		Replicas:       replicas,
		LimitMarkerTTL: instanceMarkerTTL,
	})
	if errors.Is(err, jetstream.ErrBucketExists) { // created meanwhile
		kv, err = js.KeyValue(ctx, InstanceBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("create key-value bucket %s: %w", InstanceBucket, err)
	}
	return kv, nil
}

// Instances returns the live instances of cluster name's members (those
// whose entries have not expired), sorted by member, then by start. An
// entry that does not decode is left out and reported in skipped; a
// missing bucket means no instances.
func Instances(ctx context.Context, js jetstream.JetStream, name string) (instances []Instance, skipped []error, err error) {
	kv, err := instanceBucket(ctx, js, 0, false)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	w, err := kv.Watch(ctx, name+".>", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, nil, fmt.Errorf("cluster %s: read bucket %s: %w", name, InstanceBucket, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("cluster %s: read bucket %s: %w", name, InstanceBucket, ctx.Err())
		case e := <-w.Updates():
			if e == nil { // every entry there is was delivered
				slices.SortFunc(instances, func(a, b Instance) int {
					return cmp.Or(strings.Compare(a.Member, b.Member), a.Started.Compare(b.Started),
						strings.Compare(a.Host, b.Host), cmp.Compare(a.PID, b.PID), strings.Compare(a.ID, b.ID))
				})
				return instances, skipped, nil
			}
			in, err := DecodeInstance(e.Key(), e.Value())
			if err != nil {
				skipped = append(skipped, err)
				continue
			}
			instances = append(instances, in)
		}
	}
}

// deleteInstances removes the entries of cluster name's instances. A
// missing bucket is not an error. An instance still running writes its
// entry again at its next heartbeat, which expires once it stops.
func deleteInstances(ctx context.Context, js jetstream.JetStream, name string) error {
	kv, err := instanceBucket(ctx, js, 0, false)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster %s: %w", name, err)
	}
	keys, err := kv.ListKeysFiltered(ctx, name+".>")
	if err != nil {
		return fmt.Errorf("cluster %s: list its instances in bucket %s: %w", name, InstanceBucket, err)
	}
	var errs []error
	for key := range keys.Keys() {
		if err := kv.Purge(ctx, key, jetstream.PurgeTTL(instanceMarkerTTL)); err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: delete instance %s from bucket %s: %w", name, key, InstanceBucket, err))
		}
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("cluster %s: list its instances in bucket %s: %w", name, InstanceBucket, err))
	}
	return errors.Join(errs...)
}

// Pinned returns the pin of priority group group of durable on stream: the
// client the server delivers to. A durable that does not exist (no
// instance ever started) has none.
func Pinned(ctx context.Context, js jetstream.JetStream, stream, durable, group string) (Pin, error) {
	c, err := js.Consumer(ctx, stream, durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return Pin{}, nil
	}
	if err != nil {
		return Pin{}, fmt.Errorf("durable %q on stream %q: %w", durable, stream, err)
	}
	for _, g := range c.CachedInfo().PriorityGroups {
		if g.Group == group {
			return Pin{ID: g.PinnedClientID, Since: g.PinnedTS}, nil
		}
	}
	return Pin{}, nil
}

// Presence keeps one instance's entry in InstanceBucket while the
// instance runs: Register writes it, Run refreshes it every heartbeat and
// as soon as the instance sees a new pin, and removes it when it stops.
// A failure to write is logged (once, until it succeeds again) and the
// writes back off, never more: an instance that cannot register still
// writes its logs.
type Presence struct {
	js         jetstream.JetStream
	replicas   int
	every, ttl time.Duration
	log        *slog.Logger
	changed    chan struct{} // a new pin to write now; buffered, 1

	mu    sync.Mutex
	entry Instance

	// Only the goroutine that writes (Register, then Run) uses these.
	kv       jetstream.KeyValue
	failures int  // writes failed in a row
	written  bool // a write succeeded once: there is an entry to remove
}

// NewPresence returns the presence of a new instance of member of
// cluster l, whose durable has pinned TTL pinnedTTL, writing through js.
// The bucket is made, when missing, with l's replicas.
func NewPresence(js jetstream.JetStream, l *Layout, member string, pinnedTTL time.Duration, version string, log *slog.Logger) *Presence {
	every, ttl := Heartbeat(pinnedTTL)
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return &Presence{
		js: js, replicas: l.Replicas, every: every, ttl: ttl, log: log, changed: make(chan struct{}, 1),
		entry: Instance{
			Cluster: l.Name, Member: member, ID: NewInstanceID(), Host: host, PID: os.Getpid(),
			Started: time.Now().UTC().Truncate(time.Second), Version: version,
			Heartbeat: every.String(), TTL: ttl.String(),
		},
	}
}

// Entry returns the instance's entry as it stands.
func (p *Presence) Entry() Instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.entry
}

// SawPin notes that the instance received a message pinned with id: if
// it is a new pin, the entry is written again at once (by Run), so that
// cluster show names the new active instance without waiting for a
// heartbeat. Safe to call from any goroutine; it never blocks.
func (p *Presence) SawPin(id string) {
	p.mu.Lock()
	same := p.entry.Pin == id
	if !same {
		p.entry.Pin, p.entry.PinSeen = id, time.Now().UTC()
	}
	p.mu.Unlock()
	if !same {
		select {
		case p.changed <- struct{}{}:
		default: // a write is due already
		}
	}
}

// Register writes the entry once, so that it is there before the
// instance reports itself ready. Call it before Run, from the same
// goroutine or one that hands over to Run's.
func (p *Presence) Register(ctx context.Context) { p.put(ctx) }

// Run refreshes the entry every heartbeat, and when SawPin saw a new pin,
// until ctx is done; then it removes the entry (within a few seconds) and
// returns.
func (p *Presence) Run(ctx context.Context) {
	t := time.NewTimer(p.next())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			p.remove()
			return
		case <-t.C:
		case <-p.changed:
		}
		p.put(ctx)
		t.Reset(p.next())
	}
}

// maxRetryWait bounds the wait between writes that fail.
const maxRetryWait = time.Minute

// next returns the wait before the next write: a heartbeat, or after
// failed writes twice as long per failure, up to maxRetryWait, so that a
// write the server refuses (for want of a permission, which the
// connection logs too) is not tried every few seconds.
func (p *Presence) next() time.Duration {
	d := p.every
	for i := 0; i < p.failures && d < maxRetryWait; i++ {
		d *= 2
	}
	return min(d, maxRetryWait)
}

// put writes the entry with its time to live: the publish a key-value
// Put makes, with a Nats-TTL header (Put itself cannot set one).
func (p *Presence) put(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(p.every, 2*time.Second))
	defer cancel()
	e := p.Entry()
	err := func() error {
		value, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if p.kv == nil {
			if p.kv, err = instanceBucket(ctx, p.js, p.replicas, true); err != nil {
				return err
			}
		}
		msg := &nats.Msg{Subject: "$KV." + InstanceBucket + "." + e.Key(), Data: value}
		if _, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgTTL(p.ttl)); err != nil {
			p.kv = nil // the bucket may be gone: look it up (or make it) again
			return fmt.Errorf("write %s to bucket %s: %w", e.Key(), InstanceBucket, err)
		}
		return nil
	}()
	switch {
	case err == nil:
		p.written = true
		if p.failures > 0 {
			p.failures = 0
			p.log.Info("registered this instance for cluster show again", "cluster", e.Cluster, "member", e.Member, "bucket", InstanceBucket)
		}
	case errors.Is(err, context.Canceled):
		// Stopping: not worth a warning.
	default:
		if p.failures++; p.failures == 1 {
			p.log.Warn("could not register this instance for cluster show; it goes on writing, and retries, backing off to every "+maxRetryWait.String(),
				"cluster", e.Cluster, "member", e.Member, "bucket", InstanceBucket, "err", err)
		}
	}
}

// remove removes the entry, leaving a marker that expires too.
func (p *Presence) remove() {
	if !p.written {
		return // nothing to remove
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key := p.Entry().Key()
	kv, err := p.kv, error(nil)
	if kv == nil { // the last write failed: the entry may be there still
		if kv, err = instanceBucket(ctx, p.js, 0, false); errors.Is(err, jetstream.ErrBucketNotFound) {
			return // nothing to remove
		}
	}
	if err == nil {
		err = kv.Purge(ctx, key, jetstream.PurgeTTL(instanceMarkerTTL))
	}
	if err != nil {
		p.log.Warn("could not remove this instance's entry; it expires by itself", "bucket", InstanceBucket,
			"key", key, "ttl", p.ttl, "err", err)
	}
}
