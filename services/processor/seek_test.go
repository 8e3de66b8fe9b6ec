package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// flakyClaim answers SetOffset with bus.ErrUnavailable a number of times, as a Kafka claim
// does while a restarted broker does not answer yet.
type flakyClaim struct {
	*fakeClaim
	failures, calls int
}

func (c *flakyClaim) SetOffset(o int64) error {
	c.calls++
	if c.calls <= c.failures {
		return fmt.Errorf("kafka bus: SetOffset(%d): %w (unexpected EOF)", o, bus.ErrUnavailable)
	}
	return c.fakeClaim.SetOffset(o)
}

func TestSeekWaitsOutAnUnavailableBus(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RetryMin, cfg.RetryMax = time.Millisecond, 5*time.Millisecond
	p := &Processor{cfg: cfg}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	msgs := make([]bus.Message, 5)

	c := &flakyClaim{fakeClaim: newFakeClaim(0, msgs), failures: 3}
	if err := p.seek(context.Background(), log, c, 3); err != nil {
		t.Fatalf("seek after 3 unavailable answers = %v, want nil", err)
	}
	if c.calls != 4 || c.next != 3 {
		t.Fatalf("seek made %d calls and left the claim at %d, want 4 calls and offset 3", c.calls, c.next)
	}

	// An offset the partition does not have is an error at once, not something to wait out.
	c = &flakyClaim{fakeClaim: newFakeClaim(0, msgs)}
	if err := p.seek(context.Background(), log, c, 99); err == nil || c.calls != 1 {
		t.Fatalf("seek to a missing offset = %v after %d calls, want an error after 1", err, c.calls)
	}

	// A claim revoked while the bus is away ends the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c = &flakyClaim{fakeClaim: newFakeClaim(0, msgs), failures: 1 << 30}
	if err := p.seek(ctx, log, c, 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("seek with a cancelled context = %v, want the context's error", err)
	}
}
