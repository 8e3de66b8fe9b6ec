package kafka

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// warnCounter counts log records at Warn and above.
type warnCounter struct {
	n    *atomic.Int64
	last *atomic.Value
}

func (h warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h warnCounter) Handle(_ context.Context, r slog.Record) error {
	h.n.Add(1)
	h.last.Store(r.Message)
	return nil
}
func (h warnCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h warnCounter) WithGroup(string) slog.Handler      { return h }

// TestIdleFetchIsQuiet fetches an idle partition the way the processor does — with
// deadlines that are often only a few milliseconds away (the time left until its next
// flush) — and checks that running out of time is not reported as a failed fetch: no
// warning, no fetch error counted, and Fetch returns soon after the deadline.
func TestIdleFetchIsQuiet(t *testing.T) {
	addr := testBroker(t)
	prefix := runPrefix + "-idle"
	t.Cleanup(func() { deleteTopics(t, addr, prefix) })
	var warns atomic.Int64
	var last atomic.Value
	cfg := testConfig(addr)
	cfg.Partitions = 1
	b := openTest(t, cfg, Options{Logger: slog.New(warnCounter{n: &warns, last: &last})})
	topic, group := prefix+"-t", prefix+"-g"
	ctx := context.Background()
	if err := b.Publish(ctx, topic, bus.Message{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}

	cctx, stop := context.WithCancel(ctx)
	defer stop()
	type result struct {
		polls, late int
		worst       time.Duration
		err         error
	}
	done := make(chan result, 2)
	go func() {
		var res result
		res.err = b.Consume(cctx, topic, group, func(ctx context.Context, c bus.Claim) error {
			if _, err := c.Fetch(ctx, 10); err != nil { // the one message
				return err
			}
			deadlines := []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond,
				8 * time.Millisecond, 13 * time.Millisecond, 40 * time.Millisecond, 150 * time.Millisecond}
			end := time.Now().Add(4 * time.Second)
			for i := 0; time.Now().Before(end); i++ {
				d := deadlines[i%len(deadlines)]
				fctx, cancel := context.WithTimeout(ctx, d)
				t0 := time.Now()
				msgs, err := c.Fetch(fctx, 10)
				cancel()
				if ctx.Err() != nil {
					return nil
				}
				if !errors.Is(err, context.DeadlineExceeded) || len(msgs) != 0 {
					return errors.New("an idle fetch must end with its ctx's deadline and nothing else")
				}
				res.polls++
				if over := time.Since(t0) - d; over > res.worst {
					res.worst = over
				}
			}
			done <- res
			<-ctx.Done()
			return nil
		})
		done <- res
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the consumer did not finish its idle polls within 60s")
	}
	stop()
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.polls == 0 {
		t.Fatal("no idle poll ran")
	}
	if n := warns.Load(); n > 0 {
		t.Errorf("%d warnings while polling an idle partition %d times; last: %v", n, res.polls, last.Load())
	}
	if v := counterValue(b.m.errors.WithLabelValues(opFetch)); v != 0 {
		t.Errorf("glimpse_bus_errors_total{op=fetch} = %v after %d idle polls, want 0", v, res.polls)
	}
	// A Fetch may end a round trip after its deadline, never much later.
	if res.worst > time.Second {
		t.Errorf("an idle Fetch returned %s after its deadline", res.worst)
	}
	t.Logf("%d idle polls; latest return after the deadline: %s", res.polls, res.worst)
}
