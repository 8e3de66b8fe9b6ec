// Package embedded is the bus of `glimpse all`: a durable, partitioned log kept in its own
// Pebble database, with the same contract as Kafka (see package bus and docs/adr/0004).
//
//   - A topic's partition count is fixed when the topic is first used (Options.Partitions)
//     and stored; reopening with another count keeps the stored one.
//   - A message goes to partition PartitionFor(key, n), the same hash kafka-go's
//     kafka.Hash{} balancer uses.
//   - Publish returns once the messages are fsynced. One writer goroutine gathers every
//     pending Publish, assigns dense offsets per partition, writes one synced Pebble batch
//     and then wakes all of them (group commit), so many small concurrent publishes cost
//     one fsync per round instead of one each. Consumers only see messages once synced.
//   - Consumer groups live inside the process: concurrent Consume calls of one group split
//     the partitions by range (member i of m in join order gets the partitions p with
//     p*m/n == i). When a member joins or leaves, only partitions that change owner are
//     revoked: their handler's ctx is cancelled, the bus waits for it to return and only
//     then starts the new owner's handler, so a partition never has two handlers.
//     Committed positions are stored in the same database with a synced write.
//   - Retention: see Options.Retention.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/pebbleopts"
)

// Defaults of Options.
const (
	DefaultPartitions      = 8
	DefaultRetention       = 7 * 24 * time.Hour
	DefaultRetentionCheck  = 10 * time.Minute
	DefaultMaxMessageBytes = 1 << 20
	DefaultCloseTimeout    = 10 * time.Second
	DefaultCacheSize       = 16 << 20
	DefaultMemTableSize    = 16 << 20
	maxPartitions          = 1024
	// minMemTableSize keeps a memtable able to hold a few of the largest messages.
	minMemTableSize = 4 << 20
)

// Options configure Open. The zero value is usable.
type Options struct {
	// Partitions is the partition count given to a topic when it is first used (default 8).
	// Existing topics keep the count they were created with.
	Partitions int

	// Retention is how long messages are kept (default 7 days; negative keeps them forever).
	// A message older than Retention is deleted once every group that committed on its
	// partition within the last Retention has committed past it. A group that has not
	// committed for longer than Retention no longer holds messages back, like Kafka's
	// offsets.retention.minutes: a processor stopped for longer than Retention loses the
	// oldest messages, exactly as it would on Kafka. A consumer positioned before the
	// first kept message continues at the first kept one.
	Retention time.Duration

	// RetentionCheck is how often retention runs (default 10 minutes).
	RetentionCheck time.Duration

	// MaxMessageBytes bounds len(Key)+len(Value) of one message (default 1 MiB, Kafka's
	// default limit).
	MaxMessageBytes int

	// CloseTimeout bounds how long Close waits for running handlers to return after their
	// ctx is cancelled, before it closes the database under them (default 10s).
	CloseTimeout time.Duration

	// CacheSize is Pebble's block cache in bytes (default 16 MiB) and MemTableSize the size
	// of one memtable (default 16 MiB, at least 4 MiB). An idle bus keeps two memtables
	// (the one being written and a spare); writes stall once 32 MiB of them wait for
	// flushing, whatever their size. Built without cgo, cache and memtables live in the Go
	// heap, under the process's memory limit.
	CacheSize    int64
	MemTableSize uint64

	// MinSyncInterval is the least time between two syncs of the log (Pebble's
	// WALMinSyncInterval). Publishes that arrive while a write round waits for its sync
	// share the next round and its one sync; making a round wait up to this long, when the
	// previous sync was more recent than that, lets more of them share it. Under load that
	// saves CPU and disk operations per message for at most this much more latency; a lone
	// publish on an idle bus is not delayed. 0 syncs as soon as a round is written.
	MinSyncInterval time.Duration

	// Logger receives the bus's and Pebble's log lines (default slog.Default()).
	Logger *slog.Logger

	// Metrics registers the bus's metrics when non-nil; Close unregisters them.
	Metrics prometheus.Registerer
}

func (o *Options) setDefaults() {
	if o.Partitions <= 0 {
		o.Partitions = DefaultPartitions
	}
	if o.Partitions > maxPartitions {
		o.Partitions = maxPartitions
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.RetentionCheck <= 0 {
		o.RetentionCheck = DefaultRetentionCheck
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = DefaultCloseTimeout
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	o.MemTableSize = max(o.MemTableSize, minMemTableSize)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// ErrClosed is returned (wrapped with bus.ErrUnavailable) by every operation after Close.
var ErrClosed = fmt.Errorf("embedded bus closed: %w", bus.ErrUnavailable)

// Bus is the embedded bus. It implements bus.Bus.
type Bus struct {
	dir  string
	opts Options
	log  *slog.Logger
	db   *pebble.DB
	lock *pebble.Lock
	m    *metrics

	// dbMu lets Close wait for in-flight reads and commits; everything touching db outside
	// the writer holds it shared and checks dbClosed.
	dbMu     sync.RWMutex
	dbClosed bool

	// mu guards topics, groups, closed and consumers.Add.
	mu        sync.RWMutex
	topics    map[string]*topic
	groups    map[groupID]*group
	closed    bool
	consumers sync.WaitGroup
	memberSeq uint64

	// Publishing: Publish holds pubMu shared while it enqueues on reqs; Close takes it
	// exclusively to close reqs, after which the writer drains what is queued and exits.
	pubMu      sync.RWMutex
	pubClosed  bool
	reqs       chan *publishReq
	writerDone chan struct{}
	// buildMu is held by the writer while it copies requests into a batch, and by a
	// Publish whose ctx ended to withdraw its request; see Publish.
	buildMu sync.Mutex
	broken  error // set by the writer after a failed commit; writer-only
	lastAt  int64 // publish time of the last round, Unix ms; writer-only

	closing   chan struct{} // closed when Close begins: wakes Fetch, ends Consume
	bg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	now              func() time.Time // the clock of publish and commit times; tests replace it
	beforeSyncCommit func()           // test hook: runs in the writer before each synced commit
}

var _ bus.Bus = (*Bus)(nil)

type topic struct {
	name  string
	parts []*partition
}

type partition struct {
	topic string
	id    int

	next    int64  // next offset to assign; writer goroutine only
	touched uint64 // last write round that appended here; writer goroutine only

	// arena and staged are the writer's copies of the current round's messages, moved to
	// recent once the round is durable; writer goroutine only (see recent.go).
	arena  []byte
	staged []bus.Message

	mu     sync.Mutex
	tail   int64         // offsets below tail are durable and readable
	low    int64         // first offset retention kept
	notify chan struct{} // closed and replaced whenever tail moves
	recent recentLog     // the newest durable messages, served to consumers from memory
}

func (p *partition) state() (low, tail int64, notify <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.low, p.tail, p.notify
}

func (p *partition) bounds() (low, tail int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.low, p.tail
}

// Open opens (creating if needed) the bus stored in dir, for example <data-dir>/bus.
// Only one Bus may use a directory at a time; a second one, in this process or another,
// gets an error saying the directory is in use.
func Open(dir string, opts Options) (*Bus, error) {
	return openFS(dir, opts, vfs.Default)
}

// minSyncInterval is Options.MinSyncInterval as Pebble takes it (nil: no minimum).
func minSyncInterval(d time.Duration) func() time.Duration {
	if d <= 0 {
		return nil
	}
	return func() time.Duration { return d }
}

// openFS is Open on any file system; tests use Pebble's crash-simulating one.
func openFS(dir string, opts Options, fs vfs.FS) (*Bus, error) {
	opts.setDefaults()
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bus: create directory: %w", err)
	}
	lock, err := pebble.LockDirectory(dir, fs)
	if err != nil {
		return nil, fmt.Errorf("bus: directory %s is in use by another glimpse process (or another bus in this one); only one may use a data directory at a time: %w", dir, err)
	}
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{
		FS:                 fs,
		Lock:               lock,
		Cache:              cache,
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       opts.MemTableSize,
		WALMinSyncInterval: minSyncInterval(opts.MinSyncInterval),
		// Smaller memtables keep the default's room for a burst of publishes before
		// writes stall, in more memtables.
		MemTableStopWritesThreshold: pebbleopts.MemTableStopWrites(opts.MemTableSize),
		Logger:                      pebbleLogger{opts.Logger.With("component", "bus-pebble")},
	})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("bus: open %s: %w", dir, err)
	}
	b := &Bus{
		dir:        dir,
		opts:       opts,
		log:        opts.Logger.With("component", "bus"),
		db:         db,
		lock:       lock,
		topics:     map[string]*topic{},
		groups:     map[groupID]*group{},
		reqs:       make(chan *publishReq, 4096),
		writerDone: make(chan struct{}),
		closing:    make(chan struct{}),
		now:        time.Now,
	}
	if err := b.load(); err != nil {
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("bus: load %s: %w", dir, err)
	}
	b.m = newMetrics(b)
	if opts.Metrics != nil {
		if err := b.m.register(opts.Metrics); err != nil {
			db.Close()
			lock.Close()
			return nil, fmt.Errorf("bus: register metrics: %w", err)
		}
	}
	go b.writeLoop()
	if opts.Retention > 0 {
		b.bg.Add(1)
		go b.retentionLoop()
	}
	return b, nil
}

// load reads topics, partition bounds and committed positions.
func (b *Bus) load() error {
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixTopic), UpperBound: prefixEnd(prefixTopic)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		name := string(it.Key()[len(prefixTopic):])
		n, err := decodeCount(it.Value())
		if err != nil {
			it.Close()
			return fmt.Errorf("topic %s: %w", name, err)
		}
		if n != b.opts.Partitions {
			b.log.Info("topic keeps the partition count it was created with", "topic", name, "partitions", n, "configured", b.opts.Partitions)
		}
		b.topics[name] = &topic{name: name, parts: make([]*partition, n)}
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, t := range b.topics {
		for p := range t.parts {
			part := &partition{topic: t.name, id: p, notify: make(chan struct{})}
			if v, closer, err := b.db.Get(lowKey(t.name, p)); err == nil {
				if len(v) == 8 {
					part.low = int64(beUint64(v))
				}
				closer.Close()
			} else if !errors.Is(err, pebble.ErrNotFound) {
				return err
			}
			prefix := appendPartitionPrefix(nil, t.name, p)
			it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: appendPartitionPrefix(nil, t.name, p+1)})
			if err != nil {
				return err
			}
			part.tail = part.low
			if it.Last() {
				part.tail = max(part.low, msgKeyOffset(it.Key())+1)
			}
			if err := it.Close(); err != nil {
				return err
			}
			part.next = part.tail
			t.parts[p] = part
		}
	}
	it, err = b.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixCommit), UpperBound: prefixEnd(prefixCommit)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		tn, gn, p, ok := parseCommitKey(it.Key())
		t := b.topics[tn]
		if !ok || t == nil || p >= len(t.parts) {
			b.log.Warn("ignoring a commit record of an unknown topic or partition", "key", fmt.Sprintf("%q", it.Key()))
			continue
		}
		next, at, err := decodeCommit(it.Value())
		if err != nil {
			return err
		}
		g := b.groupLocked(t, gn)
		g.committed[p] = next
		g.committedAt[p] = at
	}
	return it.Error()
}

func prefixEnd(prefix string) []byte {
	end := []byte(prefix)
	end[len(end)-1]++
	return end
}

// topic returns the named topic, creating it with Options.Partitions if needed.
func (b *Bus) topic(name string) (*topic, error) {
	b.mu.RLock()
	t, closed := b.topics[name], b.closed
	b.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if t != nil {
		return t, nil
	}
	if err := validateTopic(name); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if t := b.topics[name]; t != nil {
		return t, nil
	}
	if b.closed {
		return nil, ErrClosed
	}
	n := b.opts.Partitions
	if err := b.withDB(func(db *pebble.DB) error {
		return db.Set(topicKey(name), encodeCount(n), pebble.Sync)
	}); err != nil {
		return nil, fmt.Errorf("bus: create topic %s: %w", name, err)
	}
	t = &topic{name: name, parts: make([]*partition, n)}
	for p := range t.parts {
		t.parts[p] = &partition{topic: name, id: p, notify: make(chan struct{})}
	}
	b.topics[name] = t
	b.log.Info("topic created", "topic", name, "partitions", n)
	return t, nil
}

// withDB runs fn unless the database is closed.
func (b *Bus) withDB(fn func(db *pebble.DB) error) error {
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.dbClosed {
		return ErrClosed
	}
	return fn(b.db)
}

// Partitions returns the partition count of topic, creating the topic if needed.
func (b *Bus) Partitions(ctx context.Context, topic string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t, err := b.topic(topic)
	if err != nil {
		return 0, err
	}
	return len(t.parts), nil
}

// Close stops taking publishes, waits until every queued one is stored, ends every Consume
// (their handlers' ctx is cancelled; Close waits up to Options.CloseTimeout for them to
// return) and closes the database. Consume returns ErrClosed. Close is idempotent.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.close() })
	return b.closeErr
}

func (b *Bus) close() error {
	b.pubMu.Lock()
	b.pubClosed = true
	close(b.reqs)
	b.pubMu.Unlock()
	<-b.writerDone

	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	close(b.closing)
	done := make(chan struct{})
	go func() {
		b.consumers.Wait()
		b.bg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(b.opts.CloseTimeout):
		b.log.Warn("closing the bus while consumer handlers still run; they did not return after their ctx was cancelled", "waited", b.opts.CloseTimeout)
	}

	b.dbMu.Lock()
	b.dbClosed = true
	err := b.db.Close()
	b.dbMu.Unlock()
	if lerr := b.lock.Close(); err == nil {
		err = lerr
	}
	if b.opts.Metrics != nil {
		b.m.unregister(b.opts.Metrics)
	}
	if err != nil {
		return fmt.Errorf("bus: close: %w", err)
	}
	return nil
}

func encodeCount(n int) []byte {
	return appendUvarint(nil, uint64(n))
}

func decodeCount(v []byte) (int, error) {
	n, w := uvarint(v)
	if w <= 0 || n == 0 || n > maxPartitions {
		return 0, errors.New("corrupt partition count")
	}
	return int(n), nil
}

// pebbleLogger routes Pebble's log lines to slog.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg)
	panic("pebble: " + msg)
}
