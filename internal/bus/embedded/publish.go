package embedded

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// Limits of one write round (one synced batch). A round takes whatever is queued when
// the previous one finishes, up to these bounds, so latency stays bounded under load.
const (
	maxRoundRequests = 8192
	maxRoundBytes    = 16 << 20
	maxGatherWait    = 500 * time.Microsecond
)

// publishReq is one Publish call waiting for the writer.
type publishReq struct {
	t     *topic
	msgs  []bus.Message
	bytes int
	done  chan error // buffered; the writer sends exactly once, withdrawn or not

	// Guarded by Bus.buildMu.
	copied    bool // the writer has copied msgs into a batch
	withdrawn bool // the caller gave up before that; the writer skips the request
}

// publishReqs keeps requests, with their done channels, for reuse: a request and its
// buffered channel were three allocations per Publish call. A request goes back only once
// its caller has received the writer's answer; after that the writer no longer touches it.
// One whose caller gave up waiting is left to the garbage collector, since the writer still
// sends to it.
var publishReqs = sync.Pool{New: func() any { return &publishReq{done: make(chan error, 1)} }}

func getPublishReq(t *topic, msgs []bus.Message, bytes int) *publishReq {
	req := publishReqs.Get().(*publishReq)
	req.t, req.msgs, req.bytes = t, msgs, bytes
	return req
}

// putPublishReq returns req to the pool. Its done channel must be empty and no writer may
// hold it.
func putPublishReq(req *publishReq) {
	*req = publishReq{done: req.done}
	publishReqs.Put(req)
}

// Publish durably appends msgs to topic: it returns nil once all of them are fsynced.
// When ctx ends first it returns ctx's error; the messages may or may not be stored.
// After Close it returns ErrClosed (wrapping bus.ErrUnavailable). Partition and Offset of
// msgs are ignored.
func (b *Bus) Publish(ctx context.Context, topicName string, msgs ...bus.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	size := 0
	for i := range msgs {
		n := len(msgs[i].Key) + len(msgs[i].Value) + headersLen(msgs[i].Headers)
		if n > b.opts.MaxMessageBytes {
			return fmt.Errorf("bus: message %d is %d bytes, more than the limit of %d", i, n, b.opts.MaxMessageBytes)
		}
		size += recordLen(msgs[i].Key, msgs[i].Value, msgs[i].Headers) + 64
	}
	t, err := b.topic(topicName)
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	req := getPublishReq(t, msgs, size)

	b.pubMu.RLock()
	if b.pubClosed {
		b.pubMu.RUnlock()
		putPublishReq(req)
		return ErrClosed
	}
	select {
	case b.reqs <- req:
		b.pubMu.RUnlock()
	case <-ctx.Done():
		b.pubMu.RUnlock()
		putPublishReq(req)
		return ctx.Err()
	}

	select {
	case err := <-req.done:
		putPublishReq(req)
		if err == nil {
			b.m.publishSeconds.Observe(time.Since(start).Seconds())
		}
		return err
	case <-ctx.Done():
		// The caller may reuse msgs' buffers once we return: either withdraw the request
		// or, if the writer already copied it, leave it to be stored. Either way the
		// writer still answers req, so it does not go back to the pool.
		b.buildMu.Lock()
		if !req.copied {
			req.withdrawn = true
		}
		b.buildMu.Unlock()
		return fmt.Errorf("bus: publish not confirmed: %w", ctx.Err())
	}
}

// writeLoop is the single writer: it owns partition.next and performs the group commit.
//
// Publishers that were woken by one round come back within microseconds with their next
// message, but an fsync takes a millisecond or more; a writer that synced whatever it
// found at once would alternate between full and nearly empty rounds. So a round waits
// briefly (at most maxGatherWait) until as many requests are queued as the previous round
// carried. When load drops, the target drops with it after one round.
func (b *Bus) writeLoop() {
	defer close(b.writerDone)
	var (
		round   []*publishReq
		parts   []*partition
		scratch []byte
		seq     uint64
		target  = 1
		timer   = time.NewTimer(time.Hour)
	)
	timer.Stop()
	for {
		req, ok := <-b.reqs
		if !ok {
			return
		}
		round = append(round[:0], req)
		size := req.bytes
		open := true
		waiting := false
	gather:
		for len(round) < maxRoundRequests && size < maxRoundBytes {
			select {
			case r, ok := <-b.reqs:
				if !ok {
					open = false
					break gather
				}
				round = append(round, r)
				size += r.bytes
				continue
			default:
			}
			if len(round) >= target {
				break gather
			}
			if !waiting {
				waiting = true
				timer.Reset(maxGatherWait)
			}
			select {
			case r, ok := <-b.reqs:
				if !ok {
					open = false
					break gather
				}
				round = append(round, r)
				size += r.bytes
			case <-timer.C:
				waiting = false
				break gather
			}
		}
		if waiting {
			timer.Stop() // no drain needed: since Go 1.23 a stopped timer never delivers a stale value
		}
		target = len(round)
		seq++
		parts, scratch = b.writeRound(seq, round, parts[:0], scratch)
		clear(round)
		if !open {
			return
		}
	}
}

// writeRound stores one round of requests in one synced batch, publishes the new tails
// to consumers and answers every request.
func (b *Bus) writeRound(seq uint64, round []*publishReq, parts []*partition, scratch []byte) ([]*partition, []byte) {
	if b.broken != nil {
		err := fmt.Errorf("bus: log write failed earlier (%v): %w", b.broken, bus.ErrUnavailable)
		for _, r := range round {
			r.done <- err
		}
		return parts, scratch
	}
	batch := b.db.NewBatch()
	// Publish times never go backwards within a process; retention relies on their order.
	now := max(b.now().UnixMilli(), b.lastAt)
	b.lastAt = now
	count := 0
	b.buildMu.Lock()
	for _, r := range round {
		if r.withdrawn {
			continue
		}
		r.copied = true
		nparts := len(r.t.parts)
		for i := range r.msgs {
			m := &r.msgs[i]
			part := r.t.parts[PartitionFor(m.Key, nparts)]
			if part.touched != seq {
				part.touched = seq
				parts = append(parts, part)
			}
			scratch = appendMsgKey(scratch[:0], part.topic, part.id, part.next)
			klen := len(scratch)
			scratch = appendRecord(scratch, now, m.Key, m.Value, m.Headers)
			// Set copies key and value into the batch.
			_ = batch.Set(scratch[:klen], scratch[klen:], nil)
			part.stage(m, part.next)
			part.next++
			count++
		}
	}
	b.buildMu.Unlock()

	var err error
	if count > 0 {
		if b.beforeSyncCommit != nil {
			b.beforeSyncCommit()
		}
		err = batch.Commit(pebble.Sync)
	}
	batch.Close()
	if err != nil {
		// A failed synced commit leaves the WAL in an unknown state; stop writing rather
		// than risk reusing offsets.
		b.broken = err
		b.log.Error("bus log write failed; refusing further publishes", "err", err)
		for _, part := range parts {
			part.unstage()
		}
		err = fmt.Errorf("bus: write log: %v: %w", err, bus.ErrUnavailable)
		for _, r := range round {
			r.done <- err
		}
		return parts, scratch
	}
	for _, part := range parts {
		part.mu.Lock()
		part.tail = part.next
		part.publishStaged()
		close(part.notify)
		part.notify = make(chan struct{})
		part.mu.Unlock()
	}
	for _, r := range round {
		if !r.withdrawn {
			b.m.published.WithLabelValues(r.t.name).Add(float64(len(r.msgs)))
		}
		r.done <- nil
	}
	b.m.roundMessages.Observe(float64(count))
	clear(parts)
	return parts[:0], scratch
}
