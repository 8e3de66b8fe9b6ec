package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

func TestErrorClassification(t *testing.T) {
	dialRefused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"already unavailable", fmt.Errorf("x: %w", bus.ErrUnavailable), true},
		{"connection refused", dialRefused, true},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"broken pipe", syscall.EPIPE, true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"closed connection", net.ErrClosed, true},
		{"i/o timeout", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, true},
		{"dns", &net.DNSError{Err: "no such host", Name: "kafka-0", IsNotFound: true}, true},
		{"own deadline", context.DeadlineExceeded, true},
		{"not leader", kafkago.NotLeaderForPartition, true},
		{"leader not available", kafkago.LeaderNotAvailable, true},
		{"request timed out", kafkago.RequestTimedOut, true},
		{"not enough replicas", kafkago.NotEnoughReplicas, true},
		{"not enough replicas after append", kafkago.NotEnoughReplicasAfterAppend, true},
		{"broker not available", kafkago.BrokerNotAvailable, true},
		{"coordinator moving", kafkago.NotCoordinatorForGroup, true},
		{"rebalance in progress", kafkago.RebalanceInProgress, true},
		{"no leader in client metadata", fmt.Errorf("fetch: %w", protocol.NewErrNoLeader("t", 3)), true},
		{"topic unknown to client metadata", protocol.NewErrNoTopic("t"), true},
		{"message too large", kafkago.MessageSizeTooLarge, false},
		{"topic authorization", kafkago.TopicAuthorizationFailed, false},
		{"invalid topic", kafkago.InvalidTopic, false},
		{"invalid replication factor", kafkago.InvalidReplicationFactor, false},
		{"plain error", errors.New("boom"), false},
		{"caller cancelled", context.Canceled, false},
		{"all write errors unavailable", kafkago.WriteErrors{kafkago.NotLeaderForPartition, nil, dialRefused}, true},
		{"one write error permanent", kafkago.WriteErrors{kafkago.NotLeaderForPartition, kafkago.MessageSizeTooLarge}, false},
		{"no write error", kafkago.WriteErrors{nil, nil}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := unavailable(c.err); got != c.want {
				t.Errorf("unavailable(%v) = %v, want %v", c.err, got, c.want)
			}
			if c.err == nil {
				return
			}
			w := wrapErr("publish to t", c.err)
			if got := errors.Is(w, bus.ErrUnavailable); got != c.want {
				t.Errorf("wrapErr(%v) wraps bus.ErrUnavailable = %v, want %v", c.err, got, c.want)
			}
			if !errors.Is(w, c.err) && !errors.As(w, new(kafkago.WriteErrors)) {
				t.Errorf("wrapErr(%v) lost the cause: %v", c.err, w)
			}
		})
	}
	if !errors.Is(ErrClosed, bus.ErrUnavailable) || !errors.Is(errBufferFull, bus.ErrUnavailable) {
		t.Errorf("ErrClosed and the buffer-full error must wrap bus.ErrUnavailable")
	}
}

// closedPort returns a local address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Without a reachable broker, New still succeeds (the process may start before Kafka),
// and every call fails with bus.ErrUnavailable in bounded time.
func TestUnreachableBroker(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Brokers = []string{closedPort(t)}
	cfg.WriteTimeout = 500 * time.Millisecond
	cfg.RequestTimeout = 500 * time.Millisecond
	cfg.DialTimeout = 200 * time.Millisecond
	b := openTest(t, cfg, Options{})
	ctx := context.Background()

	start := time.Now()
	err := b.Publish(ctx, "glimpse-events", bus.Message{Key: []byte("k"), Value: []byte("v")})
	if !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Publish without a broker = %v, want an error wrapping bus.ErrUnavailable", err)
	}
	t.Logf("Publish without a broker: %v after %v", err, time.Since(start))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Publish without a broker took %v", took)
	}
	if _, err := b.Partitions(ctx, "glimpse-events"); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Partitions without a broker = %v, want an error wrapping bus.ErrUnavailable", err)
	}

	// Consume waits for the cluster and honours its ctx meanwhile.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err = b.Consume(cctx, "glimpse-events", "processors", func(context.Context, bus.Claim) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Consume without a broker = %v, want its ctx's error", err)
	}

	// A cancelled ctx wins over everything else.
	cancelled, cancel2 := context.WithCancel(ctx)
	cancel2()
	if err := b.Publish(cancelled, "glimpse-events", bus.Message{Value: []byte("v")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled ctx = %v", err)
	}

	if err := b.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := b.Publish(ctx, "glimpse-events", bus.Message{Value: []byte("v")}); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Publish after Close = %v, want bus.ErrUnavailable", err)
	}
	if err := b.Consume(ctx, "glimpse-events", "processors", func(context.Context, bus.Claim) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Consume after Close = %v, want ErrClosed", err)
	}
	if _, err := b.Partitions(ctx, "glimpse-events"); !errors.Is(err, ErrClosed) {
		t.Errorf("Partitions after Close = %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestInvalidNames(t *testing.T) {
	b := openTest(t, DefaultConfig(), Options{})
	ctx := context.Background()
	for _, topic := range []string{"", ".", "..", "with space", "slash/topic", string(make([]byte, 250))} {
		if _, err := b.Partitions(ctx, topic); err == nil || errors.Is(err, bus.ErrUnavailable) {
			t.Errorf("Partitions(%q) = %v, want a permanent error", topic, err)
		}
	}
	if err := b.Consume(ctx, "glimpse-events", "", func(context.Context, bus.Claim) error { return nil }); err == nil {
		t.Errorf("Consume with an empty group accepted")
	}
	if err := b.Consume(ctx, "glimpse-events", "g", nil); err == nil {
		t.Errorf("Consume without a handler accepted")
	}
	if err := b.Publish(ctx, "glimpse-events", bus.Message{Value: make([]byte, DefaultBatchBytes+1)}); err == nil || errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Publish of a message larger than the batch limit = %v, want a permanent error", err)
	}
}
