package processor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/bus/embedded"
	kafkabus "github.com/glimpse-analytics/glimpse/internal/bus/kafka"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// deadLetterBus is the in-memory bus with a dead-letter topic that refuses writes while
// down is set.
type deadLetterBus struct {
	*fakeBus
	down     atomic.Bool
	attempts atomic.Int32

	mu      sync.Mutex
	letters []bus.Message
	reasons []string
}

func (b *deadLetterBus) DeadLetterTopic(topic string) string { return topic + bus.DeadLetterSuffix }

func (b *deadLetterBus) DeadLetter(ctx context.Context, topic string, m bus.Message, reason string) error {
	b.attempts.Add(1)
	if b.down.Load() {
		return fmt.Errorf("dead-letter topic: %w", bus.ErrUnavailable)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.letters = append(b.letters, m)
	b.reasons = append(b.reasons, reason)
	return nil
}

// An undecodable message is committed past only once the dead-letter topic holds it.
func TestUndecodableMessageWaitsForTheDeadLetterTopic(t *testing.T) {
	good := encode(t, pv(1, 0, "/"), pv(2, 0, "/"))
	c := newFakeClaim(0, nil)
	c.append(good[0], []byte{event.Version, '{', 'x'}, good[1])
	b := &deadLetterBus{fakeBus: &fakeBus{claims: []*fakeClaim{c}}}
	b.down.Store(true)
	st := newTestStore(t)
	stop := start(t, newProcessor(t, b, st, nil))
	waitFor(t, "retries of the dead letter", func() bool { return b.attempts.Load() >= 3 })
	if got := c.Committed(); got > 1 {
		t.Fatalf("committed %d while the dead-letter topic refused the message at offset 1", got)
	}
	b.down.Store(false)
	waitFor(t, "a commit past every message", func() bool { return c.Committed() == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.letters) != 1 || b.letters[0].Offset != 1 || string(b.letters[0].Value) != string([]byte{event.Version, '{', 'x'}) || b.reasons[0] == "" {
		t.Fatalf("dead letters %+v (reasons %q), want the message at offset 1 with a reason", b.letters, b.reasons)
	}
	if a := st.dump(t, false)[key(store.Hour, "", 0, "")]; a.Visits != 2 {
		t.Errorf("hour totals %v, want the 2 valid events", a)
	}
}

// An event of an unknown wire version is not a dead letter: the processor stops.
func TestUnknownVersionIsNotADeadLetter(t *testing.T) {
	newer := append([]byte{event.Version + 1}, `{"site":"example.com"}`...)
	c := newFakeClaim(0, nil)
	c.append(newer)
	b := &deadLetterBus{fakeBus: &fakeBus{claims: []*fakeClaim{c}}}
	p := newProcessor(t, b, newTestStore(t), nil)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); !errors.Is(err, event.ErrUnknownVersion) {
		t.Fatalf("Run = %v, want ErrUnknownVersion", err)
	}
	if n := b.attempts.Load(); n != 0 {
		t.Fatalf("%d dead-letter attempts for an event of a newer version, want none", n)
	}
}

func TestDeadLettersOnTheEmbeddedBus(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, err := embedded.Open(t.TempDir(), embedded.Options{Partitions: 2, Logger: quiet(), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testDeadLetters(t, b, reg, "events", "processors")
}

// GLIMPSE_TEST_KAFKA=127.0.0.1:9092 runs it on a real broker, with topics of its own.
func TestDeadLettersOnKafka(t *testing.T) {
	addr := os.Getenv("GLIMPSE_TEST_KAFKA")
	if addr == "" {
		t.Skip("no Kafka broker: set GLIMPSE_TEST_KAFKA=127.0.0.1:9092")
	}
	prefix := fmt.Sprintf("glimpsetest%x-dlq", time.Now().UnixNano())
	cfg := kafkabus.DefaultConfig()
	cfg.Brokers = []string{addr}
	cfg.Partitions = 2
	reg := prometheus.NewRegistry()
	b, err := kafkabus.New(cfg, kafkabus.Options{Logger: quiet(), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = b.Close()
		deleteKafkaTopics(t, addr, prefix+"-events", prefix+"-events"+bus.DeadLetterSuffix)
	}()
	testDeadLetters(t, b, reg, prefix+"-events", prefix+"-processors")
}

// testDeadLetters publishes garbage among valid events, runs a processor, and checks that
// every valid event is counted and every piece of garbage is on the dead-letter topic
// with its metadata.
func testDeadLetters(t *testing.T, b bus.Bus, reg *prometheus.Registry, topic, group string) {
	ctx := context.Background()
	const valid, garbage = 20, 5
	var msgs []bus.Message
	sources := map[string]bool{}
	for i := 0; i < valid; i++ {
		e := pv(uint64(i+1), 0, "/")
		e.Site = site
		v, err := event.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, bus.Message{Key: e.Key(), Value: v})
		if i%4 == 0 && len(sources) < garbage {
			// The current wire version with a body that is not JSON: a message of another
			// version would stop the processor instead.
			g := string(event.Version) + fmt.Sprintf("not an event %d", len(sources))
			sources[g] = true
			msgs = append(msgs, bus.Message{Key: []byte("key of " + g), Value: []byte(g)})
		}
	}
	if err := b.Publish(ctx, topic, msgs...); err != nil {
		t.Fatal(err)
	}

	st := newTestStore(t)
	cfg := testConfig()
	cfg.Topic, cfg.Group = topic, group
	p, err := New(cfg, Deps{Bus: b, Store: st, Log: quiet(), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, p)
	deadline := time.Now().Add(60 * time.Second)
	for metricValue(t, reg, "glimpse_processor_events_processed_total") < valid || metricValue(t, reg, "glimpse_processor_undecodable_messages_total") < garbage {
		if time.Now().After(deadline) {
			t.Fatalf("processed %v events and %v undecodable messages within 60s, want %d and %d",
				metricValue(t, reg, "glimpse_processor_events_processed_total"), metricValue(t, reg, "glimpse_processor_undecodable_messages_total"), valid, garbage)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if a := st.dump(t, false)[key(store.Hour, "", 0, "")]; a.Visits != valid || a.Pageviews != valid {
		t.Errorf("hour totals %v, want %d visits and page views", a, valid)
	}
	if v := metricValue(t, reg, "glimpse_bus_dead_letters_total"); v != garbage {
		t.Errorf("glimpse_bus_dead_letters_total = %v, want %d", v, garbage)
	}

	// Read the dead-letter topic back.
	dlq := b.(bus.DeadLetterer).DeadLetterTopic(topic)
	var (
		mu   sync.Mutex
		seen []bus.Message
	)
	rctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		errc <- b.Consume(rctx, dlq, group+"-reader", func(ctx context.Context, c bus.Claim) error {
			for {
				got, err := c.Fetch(ctx, 100)
				if err != nil {
					return ctx.Err()
				}
				mu.Lock()
				seen = append(seen, got...)
				if len(seen) >= garbage {
					cancel()
				}
				mu.Unlock()
			}
		})
	}()
	select {
	case <-errc:
	case <-time.After(60 * time.Second):
		cancel()
		<-errc
		t.Fatalf("read %d dead letters within 60s, want %d", len(seen), garbage)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != garbage {
		t.Fatalf("%d dead letters, want %d", len(seen), garbage)
	}
	for _, m := range seen {
		if !sources[string(m.Value)] || string(m.Key) != "key of "+string(m.Value) {
			t.Errorf("dead letter %q (key %q) is not one of the garbage messages", m.Value, m.Key)
			continue
		}
		delete(sources, string(m.Value))
		h := func(k string) string {
			v, ok := bus.HeaderValue(m.Headers, k)
			if !ok {
				t.Errorf("dead letter %q lacks header %s (headers %v)", m.Value, k, m.Headers)
			}
			return string(v)
		}
		if h(bus.HeaderSourceTopic) != topic || h(bus.HeaderDeadLetterReason) == "" {
			t.Errorf("dead letter %q: headers %v", m.Value, m.Headers)
		}
		part, err1 := strconv.Atoi(h(bus.HeaderSourcePartition))
		off, err2 := strconv.ParseInt(h(bus.HeaderSourceOffset), 10, 64)
		if err1 != nil || err2 != nil || !pointsAt(t, b, topic, part, off, m.Value) {
			t.Errorf("dead letter %q: source partition %q offset %q do not hold it", m.Value, h(bus.HeaderSourcePartition), h(bus.HeaderSourceOffset))
		}
	}
}

// pointsAt reports whether the message at partition/offset of topic has value want.
func pointsAt(t *testing.T, b bus.Bus, topic string, partition int, offset int64, want []byte) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	found := false
	_ = b.Consume(ctx, topic, fmt.Sprintf("check-%d-%d-%d", partition, offset, time.Now().UnixNano()), func(hctx context.Context, c bus.Claim) error {
		if c.Partition() != partition {
			return nil // leaves the partition idle
		}
		defer cancel()
		if err := c.SetOffset(offset); err == nil {
			if got, err := c.Fetch(hctx, 1); err == nil && got[0].Offset == offset {
				found = string(got[0].Value) == string(want)
			}
		}
		return nil
	})
	return found
}

func deleteKafkaTopics(t *testing.T, addr string, topics ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	transport := &kafkago.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafkago.Client{Addr: kafkago.TCP(addr), Transport: transport}
	if _, err := client.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: topics}); err != nil {
		t.Logf("delete test topics %v: %v", topics, err)
	}
}
