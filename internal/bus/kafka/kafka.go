// Package kafka is the bus of the fleet: bus.Bus on Apache Kafka through
// github.com/segmentio/kafka-go (see package bus and docs/adr/0006-kafka-bus.md).
//
//   - Publish goes through one shared kafka.Writer with acks=all and the kafka.Hash{}
//     balancer (32-bit FNV-1a of the key, the embedded bus's PartitionFor), and returns
//     only once the broker acknowledged every message. Batches wait at most
//     Config.BatchTimeout (milliseconds, not kafka-go's default second). Publish is
//     bounded by Config.WriteTimeout and by Config.MaxBuffered waiting messages; both,
//     and every broker or network failure worth retrying later, fail with an error
//     wrapping bus.ErrUnavailable.
//   - The first Publish, Consume or Partitions of a topic creates it when it is missing,
//     with Config.Partitions and Config.ReplicationFactor. An existing topic is used as is.
//   - Consume joins a Kafka consumer group (kafka-go's ConsumerGroup and Generation). Each
//     generation runs the handler once per assigned partition. A rebalance ends the
//     generation: the handlers' ctx is cancelled and the member rejoins only after all of
//     them returned, so a partition never has two handlers in one process, and across
//     processes the coordinator hands a partition over only after its old owner rejoined
//     (eager rebalancing). Commits made while a handler finishes still belong to the
//     ending generation and are accepted.
//   - A claim reads its partition with fetch requests of its own, from Committed() or from
//     the offset given to SetOffset, so the processor can seek to its store checkpoint.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	meta "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// metadataTTL is how long the client trusts its cached cluster metadata (the transport
// refreshes after a random time below it). It bounds how long a leader change goes
// unnoticed by the producer and the fetchers.
const metadataTTL = 3 * time.Second

// Options are the process-level dependencies of the bus.
type Options struct {
	// Logger receives the bus's log lines (default slog.Default()).
	Logger *slog.Logger
	// Metrics registers the bus's metrics when non-nil; Close unregisters them.
	Metrics prometheus.Registerer
}

// Bus is the Kafka bus. It implements bus.Bus.
type Bus struct {
	cfg  Config
	log  *slog.Logger
	m    *metrics
	reg  prometheus.Registerer
	addr net.Addr

	transport *kafkago.Transport
	client    *kafkago.Client // requests bounded by RequestTimeout
	fetcher   *kafkago.Client // fetches, bounded by their own ctx and FetchMaxWait
	writer    *kafkago.Writer
	dialer    *kafkago.Dialer // consumer group coordinator connections

	buffered atomic.Int64 // messages of Publish calls waiting for their ack

	closed atomic.Bool

	topicsMu sync.RWMutex
	topics   map[string]*topicEntry

	deadLetterTopics sync.Map // dead-letter topics announced in the log

	// mu guards consumers and claims, and orders Close after a Consume registering.
	mu        sync.Mutex
	consumers map[*consumer]struct{}
	claims    map[*claim]struct{}

	running   sync.WaitGroup // Consume calls
	bg        sync.WaitGroup // topic provisioning, group leaves that outlive their Consume
	closing   chan struct{}  // closed when Close begins
	closeOnce sync.Once
	closeErr  error
}

var _ bus.Bus = (*Bus)(nil)

// topicEntry is a topic whose provisioning began; done is closed when n or err is set.
type topicEntry struct {
	done chan struct{}
	n    int
	err  error
}

// New returns a bus on the brokers of cfg. It does not contact them: the first Publish,
// Consume or Partitions does, so a process can start while Kafka is still coming up.
func New(cfg Config, opts Options) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	compression, _ := parseCompression(cfg.Compression)
	log := opts.Logger.With("component", "bus", "engine", "kafka")
	netDialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	transport := &kafkago.Transport{
		Dial:        netDialer.DialContext,
		DialTimeout: cfg.DialTimeout,
		IdleTimeout: 30 * time.Second,
		MetadataTTL: metadataTTL,
		ClientID:    cfg.ClientID,
	}
	addr := kafkago.TCP(cfg.Brokers...)
	b := &Bus{
		cfg:       cfg,
		log:       log,
		reg:       opts.Metrics,
		addr:      addr,
		transport: transport,
		client:    &kafkago.Client{Addr: addr, Transport: transport, Timeout: cfg.RequestTimeout},
		fetcher:   &kafkago.Client{Addr: addr, Transport: transport},
		dialer: &kafkago.Dialer{
			ClientID:  cfg.ClientID,
			Timeout:   cfg.DialTimeout,
			DualStack: true,
			KeepAlive: 30 * time.Second,
		},
		topics:    map[string]*topicEntry{},
		consumers: map[*consumer]struct{}{},
		claims:    map[*claim]struct{}{},
		closing:   make(chan struct{}),
	}
	b.writer = &kafkago.Writer{
		Addr:     addr,
		Balancer: &kafkago.Hash{},
		// Writes are bounded by WriteTimeout per Publish; a batch is retried within that
		// time on leader elections and broken connections.
		MaxAttempts:     10,
		WriteBackoffMin: 50 * time.Millisecond,
		WriteBackoffMax: 500 * time.Millisecond,
		BatchSize:       cfg.BatchSize,
		BatchBytes:      int64(cfg.BatchBytes),
		BatchTimeout:    cfg.BatchTimeout,
		ReadTimeout:     cfg.RequestTimeout,
		WriteTimeout:    cfg.WriteTimeout,
		RequiredAcks:    kafkago.RequireAll,
		Compression:     compression,
		ErrorLogger:     printfLogger{log: log, level: slog.LevelDebug, prefix: "kafka writer: "},
		Transport:       transport,
		// Asynchronous: WriteMessages only batches, and Completion reports each batch's
		// outcome, once it is final, to the Publish calls waiting for it. A message stays
		// counted against MaxBuffered until then, even when its Publish gave up waiting,
		// so the producer's queue is bounded during an outage.
		Async:      true,
		Completion: b.completed,
		// Topics are created by the bus with the configured partitions, never by the
		// broker's auto-creation with its defaults.
		AllowAutoTopicCreation: false,
	}
	b.m = newMetrics(b)
	if opts.Metrics != nil {
		if err := b.m.register(opts.Metrics); err != nil {
			return nil, fmt.Errorf("kafka bus: register metrics: %w", err)
		}
	}
	return b, nil
}

// Partitions returns the partition count of topic, creating the topic if needed.
func (b *Bus) Partitions(ctx context.Context, topic string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return b.ensureTopic(ctx, topic)
}

// ensureTopic returns the partition count of topic, creating the topic first if it does
// not exist. The answer is cached: partition counts of a live topic only grow by an
// operator's hand, and the bus would not route keys differently before a restart anyway.
func (b *Bus) ensureTopic(ctx context.Context, topic string) (int, error) {
	if b.closed.Load() {
		return 0, ErrClosed
	}
	b.topicsMu.RLock()
	e := b.topics[topic]
	b.topicsMu.RUnlock()
	if e == nil {
		if err := validateTopic(topic); err != nil {
			return 0, err
		}
		b.topicsMu.Lock()
		if b.closed.Load() {
			b.topicsMu.Unlock()
			return 0, ErrClosed
		}
		if e = b.topics[topic]; e == nil {
			e = &topicEntry{done: make(chan struct{})}
			b.topics[topic] = e
			b.bg.Add(1)
			go b.provisionEntry(topic, e)
		}
		b.topicsMu.Unlock()
	}
	select {
	case <-e.done:
		return e.n, e.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// provisionEntry provisions topic in the background, so that callers whose ctx ends do
// not abandon it half done; callers wait for e.done.
func (b *Bus) provisionEntry(topic string, e *topicEntry) {
	defer b.bg.Done()
	e.n, e.err = b.provision(topic)
	if e.err != nil {
		b.m.errors.WithLabelValues(opCreateTopic).Inc()
		b.topicsMu.Lock()
		delete(b.topics, topic) // the next call tries again
		b.topicsMu.Unlock()
	}
	close(e.done)
}

// provision finds or creates topic and waits until every partition has a leader.
func (b *Bus) provision(topic string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*b.cfg.RequestTimeout)
	defer cancel()
	stop := context.AfterFunc(closingCtx{b.closing}, cancel)
	defer stop()

	if n, err := b.readyPartitions(ctx, topic); err == nil && n > 0 {
		b.noteExisting(topic, n)
		return n, nil
	}
	tc := kafkago.TopicConfig{Topic: topic, NumPartitions: b.cfg.Partitions, ReplicationFactor: b.cfg.ReplicationFactor}
	if b.cfg.MinInsyncReplicas > 0 {
		tc.ConfigEntries = append(tc.ConfigEntries, kafkago.ConfigEntry{ConfigName: "min.insync.replicas", ConfigValue: fmt.Sprint(b.cfg.MinInsyncReplicas)})
	}
	res, err := b.client.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{tc}})
	if err != nil {
		return 0, wrapErr(fmt.Sprintf("create topic %s", topic), err)
	}
	created := false
	switch terr := res.Errors[topic]; {
	case terr == nil:
		created = true
	case errors.Is(terr, kafkago.TopicAlreadyExists):
		// Created meanwhile by another process: use it as it is.
	case errors.Is(terr, kafkago.InvalidReplicationFactor):
		return 0, fmt.Errorf("kafka bus: create topic %s with replication factor %d: %w (the cluster has fewer brokers; lower --kafka.replication-factor)", topic, b.cfg.ReplicationFactor, terr)
	default:
		return 0, wrapErr(fmt.Sprintf("create topic %s", topic), terr)
	}
	// A topic created by another process since the client's last metadata refresh is not
	// in its cache yet: ask the cluster. The topic exists now, so the auto-creation flag
	// only makes the transport fetch and cache its metadata; it creates nothing.
	if _, err := b.transport.RoundTrip(ctx, b.addr, &meta.Request{TopicNames: []string{topic}, AllowAutoTopicCreation: true}); err != nil {
		return 0, wrapErr(fmt.Sprintf("read metadata of topic %s", topic), err)
	}
	backoff := 20 * time.Millisecond
	for {
		n, err := b.readyPartitions(ctx, topic)
		if err == nil && n > 0 {
			if created {
				b.log.Info(fmt.Sprintf("created topic %s with %d partitions", topic, n), "topic", topic, "partitions", n, "replication_factor", b.cfg.ReplicationFactor)
			} else {
				b.noteExisting(topic, n)
			}
			return n, nil
		}
		if err == nil {
			err = kafkago.LeaderNotAvailable
		}
		select {
		case <-ctx.Done():
			return 0, wrapErr(fmt.Sprintf("wait for the partitions of topic %s", topic), fmt.Errorf("%w (last: %v)", ctx.Err(), err))
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func (b *Bus) noteExisting(topic string, n int) {
	if n != b.cfg.Partitions {
		b.log.Info("using existing topic; it keeps its partition count", "topic", topic, "partitions", n, "configured", b.cfg.Partitions)
		return
	}
	b.log.Debug("using existing topic", "topic", topic, "partitions", n)
}

// readyPartitions returns the partition count of topic from the client's metadata, or an
// error when the topic is unknown or a partition has no leader yet.
func (b *Bus) readyPartitions(ctx context.Context, topic string) (int, error) {
	md, err := b.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, err
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return 0, t.Error
		}
		for _, p := range t.Partitions {
			if p.Error != nil {
				return 0, p.Error
			}
		}
		return len(t.Partitions), nil
	}
	return 0, kafkago.UnknownTopicOrPartition
}

// Close flushes the producer, ends every Consume (their handlers' ctx is cancelled and each
// member leaves its group) and closes the connections. Consume returns ErrClosed, and
// every later call fails with ErrClosed, which wraps bus.ErrUnavailable. Close is
// idempotent.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.close() })
	return b.closeErr
}

func (b *Bus) close() error {
	// Under both locks, so that no provisioning or Consume starts after the waits below.
	b.topicsMu.Lock()
	b.mu.Lock()
	b.closed.Store(true)
	consumers := make([]*consumer, 0, len(b.consumers))
	for c := range b.consumers {
		consumers = append(consumers, c)
	}
	b.mu.Unlock()
	b.topicsMu.Unlock()
	close(b.closing)

	// Flush what is batched and wait for the acks. A Publish is bounded by WriteTimeout,
	// so a longer wait would only be kafka-go retrying batches nobody waits for.
	flushed := make(chan struct{})
	go func() {
		_ = b.writer.Close()
		close(flushed)
	}()
	var errs []error
	select {
	case <-flushed:
	case <-time.After(b.cfg.WriteTimeout):
		errs = append(errs, fmt.Errorf("kafka bus: the producer did not flush within %v", b.cfg.WriteTimeout))
	}

	for _, c := range consumers {
		c.stop(ErrClosed)
	}
	done := make(chan struct{})
	go func() {
		b.running.Wait()
		b.bg.Wait()
		close(done)
	}()
	wait := b.cfg.RebalanceTimeout + b.cfg.RequestTimeout
	select {
	case <-done:
	case <-time.After(wait):
		b.log.Warn("closing the bus while consumer handlers still run or groups are still being left", "waited", wait)
	}
	b.transport.CloseIdleConnections()
	if b.reg != nil {
		b.m.unregister(b.reg)
	}
	return errors.Join(errs...)
}

// closingCtx adapts a channel to a context for context.AfterFunc.
type closingCtx struct{ ch <-chan struct{} }

func (c closingCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c closingCtx) Done() <-chan struct{}       { return c.ch }
func (c closingCtx) Value(any) any               { return nil }
func (c closingCtx) Err() error {
	select {
	case <-c.ch:
		return context.Canceled
	default:
		return nil
	}
}

// printfLogger adapts slog to kafka-go's Printf logger.
type printfLogger struct {
	log    *slog.Logger
	level  slog.Level
	prefix string
}

func (l printfLogger) Printf(format string, args ...any) {
	if !l.log.Enabled(context.Background(), l.level) {
		return
	}
	l.log.Log(context.Background(), l.level, l.prefix+fmt.Sprintf(format, args...))
}

// maxNameLen is Kafka's limit on topic names.
const maxNameLen = 249

// validateTopic accepts the names Kafka accepts.
func validateTopic(topic string) error {
	if topic == "" || topic == "." || topic == ".." || len(topic) > maxNameLen {
		return fmt.Errorf("kafka bus: invalid topic name %q: 1 to %d characters, not \".\" or \"..\"", topic, maxNameLen)
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("kafka bus: invalid topic name %q: only ASCII letters, digits, '.', '_' and '-' are allowed", topic)
		}
	}
	return nil
}

func validateGroup(group string) error {
	if group == "" || len(group) > maxNameLen {
		return fmt.Errorf("kafka bus: invalid group name %q: 1 to %d bytes", group, maxNameLen)
	}
	return nil
}
