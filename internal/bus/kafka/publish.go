package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// Publish appends msgs to topic and returns nil once the broker acknowledged all of them
// from every in-sync replica (acks=all). It creates the topic on first use.
//
// It fails with an error wrapping bus.ErrUnavailable when the cluster cannot take the
// messages now: broker or network down, leader election, too few in-sync replicas, no
// acknowledgement within Config.WriteTimeout, or Config.MaxBuffered messages already
// waiting. When ctx ends first it returns an error wrapping ctx's. On any error some of
// the messages may still be stored (the producer may finish a batch it already sent), so
// the caller must not acknowledge any of them. Partition and Offset of msgs are ignored;
// keys and values are copied, so the caller may reuse their memory once Publish returns.
func (b *Bus) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.isClosed() {
		return ErrClosed
	}
	start := time.Now()
	size := 0
	for i := range msgs {
		n := len(msgs[i].Key) + len(msgs[i].Value)
		for _, h := range msgs[i].Headers {
			n += len(h.Key) + len(h.Value)
		}
		if n > b.cfg.BatchBytes {
			return fmt.Errorf("kafka bus: message %d is %d bytes, more than --kafka.batch-bytes %d", i, n, b.cfg.BatchBytes)
		}
		size += n
	}
	if len(msgs) > b.cfg.MaxBuffered {
		return fmt.Errorf("kafka bus: %d messages in one publish, more than --kafka.max-buffered %d", len(msgs), b.cfg.MaxBuffered)
	}
	if _, err := b.ensureTopic(ctx, topic); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("kafka bus: publish not confirmed: %w", ctx.Err())
		}
		b.m.errors.WithLabelValues(opPublish).Inc()
		return err
	}
	if len(msgs) == 0 {
		return nil
	}

	n := int64(len(msgs))
	if b.buffered.Add(n) > int64(b.cfg.MaxBuffered) {
		b.buffered.Add(-n)
		b.m.errors.WithLabelValues(opPublish).Inc()
		return errBufferFull
	}

	// The producer reads keys and values until the batch is final, possibly after this
	// Publish returned, so it gets copies, all in one allocation.
	p := &pendingPublish{done: make(chan struct{})}
	p.remaining.Store(n)
	buf := make([]byte, 0, size)
	kmsgs := make([]kafkago.Message, len(msgs))
	for i := range msgs {
		km := &kmsgs[i]
		km.Topic = topic
		km.WriterData = p
		if msgs[i].Key != nil {
			buf = append(buf, msgs[i].Key...)
			km.Key = buf[len(buf)-len(msgs[i].Key) : len(buf) : len(buf)]
		}
		if msgs[i].Value != nil {
			buf = append(buf, msgs[i].Value...)
			km.Value = buf[len(buf)-len(msgs[i].Value) : len(buf) : len(buf)]
		}
		if len(msgs[i].Headers) > 0 {
			km.Headers = make([]kafkago.Header, len(msgs[i].Headers))
			for j, h := range msgs[i].Headers {
				buf = append(buf, h.Value...)
				km.Headers[j] = kafkago.Header{Key: h.Key, Value: buf[len(buf)-len(h.Value) : len(buf) : len(buf)]}
			}
		}
	}

	// In asynchronous mode WriteMessages either queues every message (nil) or none (an
	// error: closed writer, metadata unavailable).
	if err := b.writer.WriteMessages(ctx, kmsgs...); err != nil {
		b.buffered.Add(-n)
		if ctx.Err() != nil {
			return fmt.Errorf("kafka bus: publish not confirmed: %w", ctx.Err())
		}
		b.m.errors.WithLabelValues(opPublish).Inc()
		if errors.Is(err, io.ErrClosedPipe) && b.isClosed() {
			return ErrClosed
		}
		return wrapErr(fmt.Sprintf("publish to %s", topic), err)
	}

	timer := time.NewTimer(b.cfg.WriteTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			b.m.errors.WithLabelValues(opPublish).Inc()
			return wrapErr(fmt.Sprintf("publish to %s", topic), p.err)
		}
		b.m.published.WithLabelValues(topic).Add(float64(n))
		b.m.publishSeconds.Observe(time.Since(start).Seconds())
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka bus: publish not confirmed: %w", ctx.Err())
	case <-timer.C:
		b.m.errors.WithLabelValues(opPublish).Inc()
		return fmt.Errorf("kafka bus: publish to %s not acknowledged within --kafka.write-timeout %v: %w", topic, b.cfg.WriteTimeout, bus.ErrUnavailable)
	}
}

// pendingPublish is one Publish call whose messages the producer holds.
type pendingPublish struct {
	remaining atomic.Int64
	err       error // first error of its batches; written before done is closed
	errOnce   sync.Once
	done      chan struct{} // closed when every message's batch is final
}

// completed is the producer's Completion callback: it runs once per batch, when the batch
// was acknowledged or finally failed.
func (b *Bus) completed(msgs []kafkago.Message, err error) {
	for i := range msgs {
		p, ok := msgs[i].WriterData.(*pendingPublish)
		if !ok {
			continue
		}
		if err != nil {
			p.errOnce.Do(func() { p.err = err })
		}
		if p.remaining.Add(-1) == 0 {
			close(p.done)
		}
	}
	b.buffered.Add(-int64(len(msgs)))
}

func (b *Bus) isClosed() bool { return b.closed.Load() }
