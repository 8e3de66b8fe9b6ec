package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Deps are the engines and telemetry the processor uses.
type Deps struct {
	Bus     bus.Bus
	Store   store.Store
	Log     *slog.Logger
	Metrics prometheus.Registerer // nil: metrics are kept but not exported
	Now     func() time.Time      // nil: time.Now
}

func (d Deps) withDefaults() Deps {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// Processor is the processor service (lifecycle.Service).
type Processor struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	m    *metrics

	// abort ends the final flushes of partitions when Stop's deadline passes.
	abortCtx context.Context
	abort    context.CancelFunc

	mu       sync.Mutex
	stopping bool
	cancel   context.CancelFunc // of the running Run
	done     chan struct{}      // closed when Run has returned
	closed   bool               // no more handlers may start
	handlers sync.WaitGroup

	// partitions is the topic's partition count found by Start; partitionsRecorded says
	// whether the store holds it for store.SealedThrough yet (recordPartitions).
	partitions         int
	partitionsRecorded atomic.Bool
}

// New returns a processor. It does nothing until Run.
func New(cfg Config, deps Deps) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Bus == nil || deps.Store == nil {
		return nil, errors.New("processor: a bus and a store are required")
	}
	deps = deps.withDefaults()
	p := &Processor{
		cfg:  cfg,
		deps: deps,
		log:  deps.Log,
		m:    newMetrics(deps.Metrics),
	}
	p.abortCtx, p.abort = context.WithCancel(context.Background())
	return p, nil
}

// Name implements lifecycle.Service.
func (p *Processor) Name() string { return "processor" }

// Start makes sure the topic exists.
func (p *Processor) Start(ctx context.Context) error {
	n, err := p.deps.Bus.Partitions(ctx, p.cfg.Topic)
	if err != nil {
		return fmt.Errorf("processor: topic %q: %w", p.cfg.Topic, err)
	}
	p.partitions = n
	p.recordPartitions(ctx)
	p.log.Info("processor ready", "topic", p.cfg.Topic, "group", p.cfg.Group, "partitions", n)
	return nil
}

// recordPartitions stores the topic's partition count for store.SealedThrough: days are
// sealed only once every partition of the group has recorded its seal. A store that does
// not answer at start is no reason not to start; the next checkpoint tries again.
func (p *Processor) recordPartitions(ctx context.Context) {
	if p.partitions <= 0 || p.partitionsRecorded.Load() {
		return
	}
	key := store.SealGroupKey(p.cfg.Topic, p.cfg.Group)
	if err := p.deps.Store.PutMeta(ctx, store.SealNamespace, key, store.EncodeSeal(int64(p.partitions))); err != nil {
		p.log.Warn("could not record the topic's partition count; finished days stay unmerged until a checkpoint records it", "err", err)
		return
	}
	p.partitionsRecorded.Store(true)
}

// Run consumes the topic until ctx is done (or Stop is called). Each claimed partition
// flushes, checkpoints and commits before Run returns. It returns an error only when a
// partition cannot go on (an event of an unknown wire version, an unusable checkpoint).
func (p *Processor) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.stopping || p.done != nil {
		p.mu.Unlock()
		return nil
	}
	runCtx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	p.done = make(chan struct{})
	p.mu.Unlock()
	defer close(p.done)

	err := p.deps.Bus.Consume(runCtx, p.cfg.Topic, p.cfg.Group, p.handle)
	cancel()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.handlers.Wait()
	if err != nil && runCtx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Stop ends Run, if it is running, and waits until every claimed partition has flushed,
// checkpointed and committed, or ctx ends (then the partitions give up without committing:
// a later replay counts what they held).
func (p *Processor) Stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopping = true
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		p.abort()
		<-done
		return fmt.Errorf("processor: partitions did not finish their final flush: %w", ctx.Err())
	}
}

// handle consumes one claimed partition.
func (p *Processor) handle(ctx context.Context, c bus.Claim) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.handlers.Add(1)
	p.mu.Unlock()
	defer p.handlers.Done()

	shard := int32(c.Partition())
	log := p.log.With("partition", shard)
	var part *Partition
	err := p.retry(ctx, log, "open partition", func(ctx context.Context) error {
		var err error
		part, err = openPartition(ctx, p.cfg, p.deps, p.m, shard)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // revoked before it began
		}
		return err
	}
	defer part.Close()
	if part.Resumed() {
		if committed := c.Committed(); committed != part.Next() {
			log.Info("checkpoint and committed bus offset differ; the checkpoint wins", "checkpoint", part.Next(), "committed", committed)
		}
		if err := p.seek(ctx, log, c, part.Next()); err != nil {
			if ctx.Err() != nil {
				return nil // revoked while the bus was away
			}
			return fmt.Errorf("processor: partition %d: seek to checkpoint %d: %w", shard, part.Next(), err)
		}
	} else {
		part.StartAt(c.Committed())
	}
	log.Info("partition claimed", "next", part.Next(), "resumed", part.Resumed())

	cs := &claimState{c: c, part: part, log: log, committed: c.Committed()}
	err = p.consume(ctx, cs)
	if ferr := p.finish(ctx, cs); ferr != nil && err == nil && ctx.Err() == nil {
		err = ferr
	}
	return err
}

// claimState is what the handler of one claimed partition keeps.
type claimState struct {
	c         bus.Claim
	part      *Partition
	log       *slog.Logger
	committed int64 // last position committed on the bus
}

// consume fetches and applies batches until ctx ends or a message cannot be read.
func (p *Processor) consume(ctx context.Context, cs *claimState) error {
	c, part, log := cs.c, cs.part, cs.log
	now := p.deps.Now()
	nextFlush := now.Add(p.cfg.FlushInterval)
	nextCheckpoint := now.Add(p.cfg.CheckpointInterval)
	fetchBackoff := p.cfg.RetryMin
	logged := 0
	lastEvent, released := now, false
	for {
		fctx, cancel := context.WithTimeout(ctx, max(nextFlush.Sub(p.deps.Now()), time.Millisecond))
		msgs, err := c.Fetch(fctx, p.cfg.MaxBatch)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			log.Warn("fetch failed; retrying", "err", err, "backoff", fetchBackoff)
			if sleep(ctx, fetchBackoff) != nil {
				return nil
			}
			fetchBackoff = min(2*fetchBackoff, p.cfg.RetryMax)
			continue
		}
		fetchBackoff = p.cfg.RetryMin
		for _, m := range msgs {
			if m.Offset < part.Next() {
				continue // already applied (a bus may redeliver after a seek)
			}
			ev, err := event.Decode(m.Value)
			if errors.Is(err, event.ErrUnknownVersion) {
				return fmt.Errorf("processor: partition %d offset %d: %w", c.Partition(), m.Offset, err)
			}
			if err != nil {
				// Set aside before skipping: the offset is committed only after the
				// dead-letter topic holds the message.
				if dlErr := p.deadLetter(ctx, cs, m, err); dlErr != nil {
					if ctx.Err() != nil {
						return nil
					}
					return dlErr
				}
				p.m.undecodable.Inc()
				if logged < 10 {
					log.Warn("skipping undecodable message", "offset", m.Offset, "err", err, "dead_letter", p.deadLetterTopic())
					logged++
				}
				part.Skip(m.Offset)
				continue
			}
			if len(ev.Props) > 0 {
				// Apply folds custom-property values against the day's values, which
				// may have to be read first; a failed read is retried here.
				prepare := func(ctx context.Context) error { return part.Prepare(ctx, ev) }
				if p.retry(ctx, log, "read custom-property values", prepare) != nil {
					return nil
				}
			}
			part.Apply(m.Offset, ev)
		}
		if len(msgs) > 0 {
			if p.retry(ctx, log, "load rollup rows", part.Resolve) != nil {
				return nil
			}
		}
		now := p.deps.Now()
		if len(msgs) > 0 {
			lastEvent, released = now, false
		}
		if now.Before(nextFlush) && !p.flushDueBySize(part) {
			continue
		}
		logged = 0
		if now.Before(nextCheckpoint) {
			if part.Dirty() && p.retry(ctx, log, "flush", part.Flush) != nil {
				return nil
			}
		} else {
			if p.checkpoint(ctx, cs) != nil {
				return nil
			}
			nextCheckpoint = now.Add(p.cfg.CheckpointInterval)
		}
		if !released && idleLongEnough(now.Sub(lastEvent), p.cfg.FlushInterval) && !part.Dirty() {
			part.ReleaseRows()
			released = true
		}
		nextFlush = p.deps.Now().Add(p.cfg.FlushInterval)
	}
}

// flushDueBySize reports whether part holds enough unwritten events to flush before its
// interval has passed (Config.FlushEvents).
func (p *Processor) flushDueBySize(part *Partition) bool {
	return p.cfg.FlushEvents > 0 && part.Unwritten() >= p.cfg.FlushEvents
}

// releaseRowsAfter is how long a partition receives no message before it releases its
// cached rows (Partition.ReleaseRows); at least releaseRowsFlushes flush intervals, so
// a partition is never idle between two flushes of steady traffic. Releasing early costs
// little: the next event reads back the few rows it touches, in one GetRows.
const (
	releaseRowsAfter   = 5 * time.Second
	releaseRowsFlushes = 5
)

func idleLongEnough(idle, flushInterval time.Duration) bool {
	return idle >= max(releaseRowsAfter, releaseRowsFlushes*flushInterval)
}

// deadLetter hands an undecodable message to the bus's dead-letter topic, when the bus has
// one, retrying while the bus is unavailable until it is stored or ctx ends (then it
// returns ctx's error and the message is read again by whoever holds the partition next).
// An error retrying cannot fix (the dead letter is too large for the bus) stops the
// partition rather than dropping the message.
func (p *Processor) deadLetter(ctx context.Context, cs *claimState, m bus.Message, reason error) error {
	dl, ok := p.deps.Bus.(bus.DeadLetterer)
	if !ok {
		return nil
	}
	backoff := p.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		err := dl.DeadLetter(ctx, p.cfg.Topic, m, reason.Error())
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, bus.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("processor: partition %d offset %d: cannot set an undecodable message aside on %s (the bus refused it for good, for example over a message size limit: fix that and restart; the message is kept): %w",
				cs.c.Partition(), m.Offset, dl.DeadLetterTopic(p.cfg.Topic), err)
		}
		if attempt == 1 || attempt%10 == 0 {
			cs.log.Warn("cannot set an undecodable message aside on the dead-letter topic; retrying without committing",
				"offset", m.Offset, "dead_letter", dl.DeadLetterTopic(p.cfg.Topic), "attempt", attempt, "backoff", backoff, "err", err)
		}
		if err := sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(2*backoff, p.cfg.RetryMax)
	}
}

// deadLetterTopic names where undecodable messages go, for log lines.
func (p *Processor) deadLetterTopic() string {
	if dl, ok := p.deps.Bus.(bus.DeadLetterer); ok {
		return dl.DeadLetterTopic(p.cfg.Topic)
	}
	return "none (the bus has no dead-letter topic)"
}

// checkpoint flushes, stores the checkpoint and then commits its position on the bus.
func (p *Processor) checkpoint(ctx context.Context, cs *claimState) error {
	var next int64
	if err := p.retry(ctx, cs.log, "checkpoint", func(ctx context.Context) error {
		var err error
		next, err = cs.part.Checkpoint(ctx)
		return err
	}); err != nil {
		return err
	}
	p.recordPartitions(ctx)
	if next == cs.committed {
		return nil
	}
	// The stored checkpoint is what a restart trusts; the bus position only follows it
	// (for lag monitoring and retention), so a failed commit is not retried here.
	if err := cs.c.Commit(ctx, next); err != nil {
		cs.log.Warn("commit failed; the next checkpoint commits again", "next", next, "err", err)
		return nil
	}
	cs.committed = next
	return nil
}

// finish is the last flush, checkpoint and commit of a partition, on a context of its own
// since the handler's ends when the partition is revoked.
func (p *Processor) finish(ctx context.Context, cs *claimState) error {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.StopTimeout)
	defer cancel()
	stop := context.AfterFunc(p.abortCtx, cancel)
	defer stop()
	t0 := time.Now()
	if err := p.checkpoint(fctx, cs); err != nil {
		cs.log.Error("final checkpoint failed; a replay will count what this partition held", "err", err)
		return err
	}
	cs.log.Info("partition released", "next", cs.part.Next(), "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// retry runs fn until it succeeds, backing off between attempts, or ctx ends. Errors
// that retrying cannot fix (an unusable checkpoint) are returned at once.
// seek moves claim c to the checkpoint's offset. Right after a broker restart the bus may
// not answer yet (the claim checks the offset against the end of the partition): that is
// waited out with the store retries' backoff, since the partition can do nothing else until
// it is positioned. Any other error — an offset the partition does not have — is returned.
func (p *Processor) seek(ctx context.Context, log *slog.Logger, c bus.Claim, offset int64) error {
	backoff := p.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		err := c.SetOffset(offset)
		if err == nil || !errors.Is(err, bus.ErrUnavailable) {
			return err
		}
		if attempt == 1 || attempt%10 == 0 {
			log.Warn("bus unavailable while seeking to the checkpoint; retrying", "offset", offset, "attempt", attempt, "backoff", backoff, "err", err)
		}
		if err := sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(2*backoff, p.cfg.RetryMax)
	}
}

func (p *Processor) retry(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	backoff := p.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			if attempt > 1 {
				log.Info("store is back", "op", what, "attempts", attempt)
			}
			return nil
		}
		if errors.Is(err, ErrCheckpoint) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.m.storeRetries.Inc()
		if attempt == 1 || attempt%10 == 0 {
			log.Warn("store operation failed; backing off without committing", "op", what, "attempt", attempt, "backoff", backoff, "err", err)
		}
		if err := sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(2*backoff, p.cfg.RetryMax)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
