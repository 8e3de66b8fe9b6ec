package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// joinGroupBackoff is how long a member waits before rejoining its group after an error
// (coordinator unreachable, member evicted). kafka-go's default of 5s would add those
// seconds to every recovery.
const joinGroupBackoff = time.Second

// consumer is one running Consume call.
type consumer struct {
	b     *Bus
	topic string
	group string
	ctx   context.Context // ends when Consume's ctx ends, a handler fails or the bus closes
	stop  context.CancelCauseFunc
}

// Consume joins consumer group `group` on topic and calls h once per partition assigned
// to this member in each generation of the group, each in its own goroutine. When the
// group rebalances (a member joins or leaves) or ctx ends, every handler's ctx is
// cancelled, and the member rejoins (or leaves) only after all of them returned.
//
// Consume returns ctx.Err() once ctx is done, the error of a handler that failed (an error
// other than its ctx's after revocation), or ErrClosed when the bus closes, always after
// every handler returned. Broker outages do not end it: the member rejoins when the
// cluster is back.
//
// A handler that returns nil while it still holds its partition leaves the partition idle
// until the next rebalance.
func (b *Bus) Consume(ctx context.Context, topic, group string, h bus.Handler) error {
	if h == nil {
		return errors.New("kafka bus: Consume needs a handler")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validateGroup(group); err != nil {
		return err
	}
	if err := b.awaitTopic(ctx, topic); err != nil {
		return err
	}

	mctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	c := &consumer{b: b, topic: topic, group: group, ctx: mctx, stop: stop}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return ErrClosed
	}
	b.consumers[c] = struct{}{}
	b.running.Add(1)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.consumers, c)
		b.mu.Unlock()
		b.running.Done()
	}()

	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:      group,
		Brokers: b.cfg.Brokers,
		Dialer:  b.dialer,
		Topics:  []string{topic},
		// Offered in this order; every member of a Glimpse fleet offers the same.
		GroupBalancers:    []kafkago.GroupBalancer{kafkago.RangeGroupBalancer{}, kafkago.RoundRobinGroupBalancer{}},
		HeartbeatInterval: b.cfg.HeartbeatInterval,
		SessionTimeout:    b.cfg.SessionTimeout,
		RebalanceTimeout:  b.cfg.RebalanceTimeout,
		JoinGroupBackoff:  joinGroupBackoff,
		StartOffset:       kafkago.FirstOffset,
		Timeout:           b.cfg.RequestTimeout,
		Logger:            printfLogger{log: b.log, level: slog.LevelDebug - 4, prefix: "kafka group " + group + ": "},
		ErrorLogger:       printfLogger{log: b.log, level: slog.LevelDebug, prefix: "kafka group " + group + ": "},
	})
	if err != nil {
		return fmt.Errorf("kafka bus: consumer group %s: %w", group, err)
	}
	log := b.log.With("topic", topic, "group", group)

	var (
		handlers   sync.WaitGroup
		lastWarn   time.Time
		suppressed int
	)
	for {
		gen, err := cg.Next(mctx)
		if err != nil {
			if mctx.Err() != nil || errors.Is(err, kafkago.ErrGroupClosed) {
				break
			}
			if errors.Is(err, kafkago.RebalanceInProgress) {
				log.Debug("rebalance in progress; rejoining", "err", err)
				continue
			}
			b.m.errors.WithLabelValues(opGroup).Inc()
			if time.Since(lastWarn) >= 10*time.Second {
				log.Warn("consumer group error; rejoining", "err", err, "suppressed", suppressed)
				lastWarn, suppressed = time.Now(), 0
			} else {
				suppressed++
			}
			continue
		}
		// Handlers of the previous generation have returned (kafka-go waits for them
		// before it hands out the next one); this also covers one started too late.
		handlers.Wait()
		b.m.rebalances.WithLabelValues(topic, group).Inc()
		assigned := gen.Assignments[topic]
		parts := make([]int, 0, len(assigned))
		for _, pa := range assigned {
			parts = append(parts, pa.ID)
		}
		slices.Sort(parts)
		log.Info("joined consumer group generation", "generation", gen.ID, "member", gen.MemberID, "partitions", parts)
		for _, pa := range assigned {
			handlers.Add(1)
			gen.Start(func(gctx context.Context) {
				defer handlers.Done()
				c.runClaim(gctx, gen, pa, h)
			})
		}
	}

	// Leave the group: this ends the current generation (its handlers' ctx is already
	// cancelled) and, once they returned, tells the coordinator, so the other members
	// take over at once instead of after the session timeout.
	left := make(chan struct{})
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		_ = cg.Close()
		close(left)
	}()
	handlers.Wait()
	select {
	case <-left:
	case <-time.After(b.cfg.RequestTimeout):
		// Still waiting for a rebalance that began before we left; Close waits for it.
		log.Debug("still leaving the consumer group; continuing in the background")
	}
	log.Debug("left consumer group")
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.Cause(mctx)
}

// awaitTopic creates topic if needed, retrying while the cluster is unavailable.
func (b *Bus) awaitTopic(ctx context.Context, topic string) error {
	backoff := 100 * time.Millisecond
	for {
		_, err := b.ensureTopic(ctx, topic)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrClosed) || !unavailable(err) {
			return err
		}
		b.log.Warn("cannot reach the topic to consume; retrying", "topic", topic, "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-b.closing:
			return ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// runClaim runs the handler of one assigned partition for one generation.
func (c *consumer) runClaim(gctx context.Context, gen *kafkago.Generation, pa kafkago.PartitionAssignment, h bus.Handler) {
	if gctx.Err() != nil {
		return // the generation ended before this partition started
	}
	hctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	stop := context.AfterFunc(gctx, cancel)
	defer stop()

	committed := pa.Offset
	if committed < 0 {
		committed = 0 // FirstOffset: nothing committed yet
	}
	cl := &claim{b: c.b, gen: gen, topic: c.topic, group: c.group, partition: pa.ID, ctx: hctx, next: committed}
	cl.committed.Store(committed)
	cl.hwm.Store(-1)
	cl.active.Store(true)
	c.b.addClaim(cl)
	err := h(hctx, cl)
	cl.active.Store(false)
	c.b.removeClaim(cl)
	revoked := hctx.Err() != nil
	if err != nil && !(revoked && isCtxErr(err)) {
		c.stop(fmt.Errorf("kafka bus: handler of %s/%d (group %s): %w", c.topic, pa.ID, c.group, err))
	}
	// kafka-go ends the generation as soon as one of its functions returns, so this one
	// returns only when the generation ends (rebalance, or the member leaving).
	<-gctx.Done()
}

func (b *Bus) addClaim(cl *claim) {
	b.mu.Lock()
	b.claims[cl] = struct{}{}
	b.mu.Unlock()
}

func (b *Bus) removeClaim(cl *claim) {
	b.mu.Lock()
	delete(b.claims, cl)
	b.mu.Unlock()
}

func (b *Bus) activeClaims() []*claim {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*claim, 0, len(b.claims))
	for cl := range b.claims {
		out = append(out, cl)
	}
	return out
}
