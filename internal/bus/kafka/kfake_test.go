package kafka

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/bus/bustest"
)

// kfakeCluster starts an in-process Kafka-protocol cluster (franz-go's kfake) for the
// test. It runs kafka-go's producer, fetches and classic consumer groups like a broker
// does, without Java; it never replaces the tests against a real broker.
func kfakeCluster(tb testing.TB) string {
	tb.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// The conformance suite always runs, against kfake; TestConformance runs it against a
// real broker.
func TestConformanceKfake(t *testing.T) {
	bustest.Run(t, func(tb testing.TB) bustest.Open {
		addr := kfakeCluster(tb)
		return func(tb testing.TB) bus.Bus {
			b, err := New(testConfig(addr), Options{Logger: testLogger()})
			if err != nil {
				tb.Fatal(err)
			}
			return b
		}
	}, bustest.Options{Timeout: 20 * time.Second, RebalanceTimeout: 30 * time.Second})
}

// Beyond MaxBuffered messages waiting for their ack, Publish fails at once with
// bus.ErrUnavailable; a single publish larger than the bound is a permanent error.
func TestBufferFullFailsFast(t *testing.T) {
	cfg := testConfig(kfakeCluster(t))
	cfg.MaxBuffered = 3
	cfg.BatchTimeout = 300 * time.Millisecond // keeps the first publish waiting
	b := openTest(t, cfg, Options{})
	ctx := context.Background()
	topic := "buffer-full"
	if _, err := b.Partitions(ctx, topic); err != nil {
		t.Fatal(err)
	}
	msg := func(v string) bus.Message { return bus.Message{Key: []byte("same-key"), Value: []byte(v)} }
	done := make(chan error, 1)
	go func() { done <- b.Publish(ctx, topic, msg("1"), msg("2")) }()
	waitUntil(t, 5*time.Second, "two messages in flight", func() bool { return b.buffered.Load() == 2 })

	start := time.Now()
	err := b.Publish(ctx, topic, msg("3"), msg("4"))
	if !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Publish beyond max-buffered = %v, want bus.ErrUnavailable", err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("Publish beyond max-buffered took %v, want an immediate failure", took)
	}
	if err := b.Publish(ctx, topic, msg("a"), msg("b"), msg("c"), msg("d")); err == nil || errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("one publish of more than max-buffered messages = %v, want a permanent error", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the waiting publish: %v", err)
	}
	if n := b.buffered.Load(); n != 0 {
		t.Errorf("%d messages still counted as buffered", n)
	}
	if err := b.Publish(ctx, topic, msg("5")); err != nil {
		t.Errorf("Publish once the buffer drained: %v", err)
	}
}

// A handler that returns nil while it still holds its partition leaves the partition idle
// until the next rebalance: the generation goes on (no rejoin churn) and the handler is
// not called again for it.
func TestHandlerReturningEarlyKeepsGeneration(t *testing.T) {
	b := openTest(t, testConfig(kfakeCluster(t)), Options{})
	ctx := context.Background()
	topic, group := "early", "early-group"
	n, err := b.Partitions(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(cctx, topic, group, func(ctx context.Context, c bus.Claim) error {
			calls.Add(1)
			return nil
		})
	}()
	waitUntil(t, 10*time.Second, "every partition's handler", func() bool { return calls.Load() == int64(n) })
	time.Sleep(3 * b.cfg.HeartbeatInterval)
	if got := calls.Load(); got != int64(n) {
		t.Errorf("handlers called %d times for %d partitions: the generation ended when they returned", got, n)
	}
	if got := counterValue(b.m.rebalances.WithLabelValues(topic, group)); got != 1 {
		t.Errorf("%v generations joined, want 1", got)
	}
	stop()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Consume = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Consume did not return after its ctx was cancelled")
	}
}

// kafka-go reports a ListOffsets round trip that failed on the wire (a pooled connection a
// broker restart closed) as the partition's error code -1, UNKNOWN_SERVER_ERROR. Seeking
// then must say "unavailable", which callers retry, and not fail for good: a processor
// resuming from its checkpoint right after a broker restart stopped on exactly this.
func TestSetOffsetAfterLostListOffsetsIsUnavailable(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cfg := testConfig(cluster.ListenAddrs()[0])
	cfg.Partitions = 1
	b := openTest(t, cfg, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	topic := "lost-list-offsets"
	if err := b.Publish(ctx, topic, bus.Message{Key: []byte("k"), Value: []byte("1")}, bus.Message{Key: []byte("k"), Value: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	claims := make(chan bus.Claim, 1)
	go func() {
		_ = b.Consume(ctx, topic, topic+"-group", func(ctx context.Context, c bus.Claim) error {
			claims <- c
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	var c bus.Claim
	select {
	case c = <-claims:
	case <-time.After(20 * time.Second):
		t.Fatal("no partition claimed")
	}

	cluster.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		return nil, errors.New("connection dropped"), true // closes the client's connection
	})
	err = c.SetOffset(2)
	if err == nil {
		t.Fatal("SetOffset succeeded although its ListOffsets request was dropped")
	}
	if !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("SetOffset after a dropped ListOffsets = %v, want bus.ErrUnavailable", err)
	}
	if err := c.SetOffset(2); err != nil {
		t.Fatalf("SetOffset once the broker answers again: %v", err)
	}
}
