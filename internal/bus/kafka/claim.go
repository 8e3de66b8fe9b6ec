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

// claim implements bus.Claim: one partition held by this member in one generation. It reads
// the partition with its own fetch requests to the partition's leader and commits through
// the generation, so commits carry the generation id and member id the coordinator checks.
type claim struct {
	b         *Bus
	gen       *kafkago.Generation
	topic     string
	group     string
	partition int
	ctx       context.Context // cancelled when the partition is revoked

	active    atomic.Bool  // false once the handler returned
	committed atomic.Int64 // the group's position, as fetched at assignment or committed since
	hwm       atomic.Int64 // high watermark of the last fetch response; -1 before the first
	hwmAt     atomic.Int64 // when hwm was learnt, Unix ns (for the lag metric's staleness)
	logStart  atomic.Int64 // first offset retention kept, as of the last fetch response

	fetching      sync.Mutex // serializes Fetch calls
	failingSince  time.Time  // first of the fetches failing in a row (zero: the last one worked); guarded by fetching
	lastFetchWarn time.Time  // when a failed fetch was last logged as a warning; guarded by fetching

	mu   sync.Mutex // guards next, buf and seek
	next int64      // offset of the next message Fetch returns
	buf  []bus.Message
	seek uint64 // bumped by SetOffset, so a fetch that raced with it is discarded

	committing sync.Mutex
}

var _ bus.Claim = (*claim)(nil)

func (cl *claim) Topic() string    { return cl.topic }
func (cl *claim) Partition() int   { return cl.partition }
func (cl *claim) Committed() int64 { return cl.committed.Load() }

// SetOffset moves the read position to offset, which must lie in [0, end of the partition].
// Offsets that retention already removed are allowed; Fetch then continues at the first
// message kept.
func (cl *claim) SetOffset(offset int64) error {
	if !cl.active.Load() {
		return errRevoked
	}
	if offset < 0 {
		return fmt.Errorf("kafka bus: SetOffset(%d) on %s/%d: negative offset", offset, cl.topic, cl.partition)
	}
	if offset > 0 && offset > cl.hwm.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), cl.b.cfg.RequestTimeout)
		_, end, err := cl.bounds(ctx)
		cancel()
		if err != nil {
			return wrapErr(fmt.Sprintf("SetOffset(%d) on %s/%d: read the end of the partition", offset, cl.topic, cl.partition), err)
		}
		if offset > end {
			return fmt.Errorf("kafka bus: SetOffset(%d) on %s/%d: out of range [0, %d]", offset, cl.topic, cl.partition, end)
		}
	}
	cl.mu.Lock()
	cl.next = offset
	cl.buf = nil
	cl.seek++
	cl.mu.Unlock()
	return nil
}

// fetchWarnAfter is how long fetches of a partition must keep failing before a warning is
// logged; shorter runs of failures are logged at debug level.
const fetchWarnAfter = 2 * time.Second

// Fetch returns up to max messages from the read position, waiting until at least one
// exists. It returns ctx's error when ctx ends first, and the claim's when the partition
// is revoked. While the partition's leader is unreachable it keeps retrying; errors a
// retry cannot fix are returned.
func (cl *claim) Fetch(ctx context.Context, max int) ([]bus.Message, error) {
	if max < 1 {
		return nil, fmt.Errorf("kafka bus: Fetch(max=%d): max must be at least 1", max)
	}
	cl.fetching.Lock()
	defer cl.fetching.Unlock()
	backoff := 50 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := cl.ctx.Err(); err != nil {
			return nil, err
		}
		if !cl.active.Load() {
			return nil, errRevoked
		}
		cl.mu.Lock()
		if len(cl.buf) > 0 {
			n := min(max, len(cl.buf))
			out := cl.buf[:n:n]
			cl.buf = cl.buf[n:]
			cl.next = out[n-1].Offset + 1
			cl.mu.Unlock()
			return out, nil
		}
		offset, seek := cl.next, cl.seek
		cl.mu.Unlock()

		msgs, jump, err := cl.fetchOnce(ctx, offset)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if cl.ctx.Err() != nil {
				return nil, cl.ctx.Err()
			}
			cl.b.m.errors.WithLabelValues(opFetch).Inc()
			if !unavailable(err) {
				return nil, fmt.Errorf("kafka bus: fetch %s/%d at offset %d: %w", cl.topic, cl.partition, offset, err)
			}
			// A failure that a retry soon fixes (a leader moving, a topic just created) is
			// no news; one that lasts is, at most once per 10s per partition, also across
			// Fetch calls (a caller that fetches with short deadlines calls again and again).
			if cl.failingSince.IsZero() {
				cl.failingSince = time.Now()
			}
			if time.Since(cl.failingSince) >= fetchWarnAfter && time.Since(cl.lastFetchWarn) >= 10*time.Second {
				cl.b.log.Warn("fetch failed; retrying", "topic", cl.topic, "partition", cl.partition, "offset", offset, "err", err)
				cl.lastFetchWarn = time.Now()
			} else {
				cl.b.log.Debug("fetch failed; retrying", "topic", cl.topic, "partition", cl.partition, "offset", offset, "err", err)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-cl.ctx.Done():
				return nil, cl.ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		cl.failingSince = time.Time{}
		cl.mu.Lock()
		if cl.seek == seek && cl.next == offset {
			switch {
			case jump > offset:
				cl.b.log.Info("offset no longer kept by retention; continuing at the first kept message",
					"topic", cl.topic, "partition", cl.partition, "offset", offset, "first", jump)
				cl.next = jump
			case len(msgs) > 0:
				cl.buf = msgs
			}
		}
		cl.mu.Unlock()
	}
}

// fetchOnce sends one fetch request for offset. It returns the messages from offset on
// (possibly none, when the broker's wait expired), or the first offset still kept when
// offset lies before it.
func (cl *claim) fetchOnce(ctx context.Context, offset int64) ([]bus.Message, int64, error) {
	cfg := &cl.b.cfg
	wait := cfg.FetchMaxWait
	if deadline, ok := ctx.Deadline(); ok {
		// The broker answers an empty long poll after `wait`: ask it to answer by ctx's
		// deadline. An idle partition is the normal case, not an error.
		wait = min(wait, time.Until(deadline))
	}
	wait = max(wait, time.Millisecond)
	// The request gets a deadline of its own, wait plus RequestTimeout, and not ctx's:
	// the broker's empty answer to a long poll that ends at ctx's deadline reaches us a
	// round trip after it, and a connection deadline at that very instant would fail the
	// read with an i/o timeout (and close the connection) on every idle poll that runs
	// to the end. So a Fetch may return up to a round trip after ctx's deadline. A
	// broker that never answers still cannot hold a connection forever; cancelling ctx
	// (rather than its deadline passing) and the claim's revocation end the request at
	// once.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait+cfg.RequestTimeout)
	defer cancel()
	stop := context.AfterFunc(cl.ctx, cancel)
	defer stop()
	stopCaller := context.AfterFunc(ctx, func() {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			cancel()
		}
	})
	defer stopCaller()
	res, err := cl.b.fetcher.Fetch(fctx, &kafkago.FetchRequest{
		Topic:     cl.topic,
		Partition: cl.partition,
		Offset:    offset,
		MinBytes:  int64(cfg.FetchMinBytes),
		MaxBytes:  int64(cfg.FetchMaxBytes),
		MaxWait:   wait,
	})
	if err != nil {
		return nil, 0, err
	}
	if res.Error == nil || !errors.Is(res.Error, kafkago.OffsetOutOfRange) {
		if res.HighWatermark >= 0 {
			cl.setEnd(res.HighWatermark)
		}
		if res.LogStartOffset > 0 {
			cl.logStart.Store(res.LogStartOffset)
		}
	}
	if res.Error != nil {
		if !errors.Is(res.Error, kafkago.OffsetOutOfRange) {
			return nil, 0, res.Error
		}
		first, end, err := cl.bounds(fctx)
		if err != nil {
			return nil, 0, err
		}
		cl.setEnd(end)
		cl.logStart.Store(first)
		if offset < first {
			return nil, first, nil
		}
		return nil, 0, fmt.Errorf("offset %d is past the end of the partition (%d): was the topic deleted and created again?", offset, end)
	}
	return readRecords(res.Records, cl.partition, offset)
}

// readRecords copies the records from offset on out of a fetch response; keys and values
// of many messages share one allocation.
func readRecords(rr kafkago.RecordReader, partition int, offset int64) ([]bus.Message, int64, error) {
	var (
		msgs []bus.Message
		buf  []byte
	)
	for {
		rec, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			return msgs, 0, nil
		}
		if err != nil {
			if len(msgs) > 0 {
				return msgs, 0, nil // keep what was read; the rest comes with the next fetch
			}
			return nil, 0, err
		}
		if rec.Offset < offset {
			// A compressed batch starts before the offset asked for.
			closeBytes(rec.Key)
			closeBytes(rec.Value)
			continue
		}
		klen, vlen := bytesLen(rec.Key), bytesLen(rec.Value)
		if cap(buf)-len(buf) < klen+vlen {
			buf = make([]byte, 0, max(64<<10, klen+vlen))
		}
		m := bus.Message{Partition: partition, Offset: rec.Offset}
		if rec.Key != nil {
			start := len(buf)
			buf = buf[:start+klen]
			if _, err := io.ReadFull(rec.Key, buf[start:]); err != nil {
				return nil, 0, err
			}
			m.Key = buf[start : start+klen : start+klen]
		}
		if rec.Value != nil {
			start := len(buf)
			buf = buf[:start+vlen]
			if _, err := io.ReadFull(rec.Value, buf[start:]); err != nil {
				return nil, 0, err
			}
			m.Value = buf[start : start+vlen : start+vlen]
		}
		closeBytes(rec.Key)
		closeBytes(rec.Value)
		if len(rec.Headers) > 0 {
			m.Headers = make([]bus.Header, len(rec.Headers))
			for i, h := range rec.Headers {
				m.Headers[i] = bus.Header{Key: h.Key, Value: append([]byte(nil), h.Value...)}
			}
		}
		msgs = append(msgs, m)
	}
}

func bytesLen(b kafkago.Bytes) int {
	if b == nil {
		return 0
	}
	return b.Len()
}

func closeBytes(b kafkago.Bytes) {
	if b != nil {
		_ = b.Close()
	}
}

// bounds returns the first offset kept and the end (high watermark) of the partition.
func (cl *claim) bounds(ctx context.Context) (first, end int64, err error) {
	res, err := cl.b.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{
		cl.topic: {kafkago.FirstOffsetOf(cl.partition), kafkago.LastOffsetOf(cl.partition)},
	}})
	if err != nil {
		cl.b.m.errors.WithLabelValues(opOffsets).Inc()
		return 0, 0, err
	}
	for _, po := range res.Topics[cl.topic] {
		if po.Partition != cl.partition {
			continue
		}
		if po.Error != nil {
			cl.b.m.errors.WithLabelValues(opOffsets).Inc()
			return 0, 0, listOffsetsErr(po.Error)
		}
		return po.FirstOffset, po.LastOffset, nil
	}
	return 0, 0, kafkago.UnknownTopicOrPartition
}

// listOffsetsErr classifies the error kafka-go reports for one partition of a ListOffsets
// answer. kafka-go sends a request per partition and offset and, when one of those round
// trips fails (a pooled connection that a broker restart closed, say), reports that
// partition with error code -1, UNKNOWN_SERVER_ERROR, in place of the network error: the
// broker never said it. Such a failure wants a retry, so Unknown counts as unavailable
// here; reading a partition's bounds again is harmless if the broker did mean it.
func listOffsetsErr(err error) error {
	if errors.Is(err, kafkago.Unknown) && !errors.Is(err, bus.ErrUnavailable) {
		return fmt.Errorf("list offsets failed (a lost connection or a broker error): %w (%w)", bus.ErrUnavailable, err)
	}
	return err
}

// setEnd records end as the partition's high watermark, as learnt just now.
func (cl *claim) setEnd(end int64) {
	cl.hwm.Store(end)
	cl.hwmAt.Store(time.Now().UnixNano())
}

// Commit records next as the group's position on this partition. It works until the
// handler returns, also after the partition was revoked: the coordinator accepts commits
// of the ending generation until this member rejoins. A commit that fails then (the member
// was evicted meanwhile) changes nothing; the processor's checkpoint in the store is what
// a restart trusts.
func (cl *claim) Commit(ctx context.Context, next int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !cl.active.Load() {
		return errRevoked
	}
	if next < 0 {
		return fmt.Errorf("kafka bus: Commit(%d) on %s/%d: negative offset", next, cl.topic, cl.partition)
	}
	if next > cl.hwm.Load() && next > cl.committed.Load() {
		bctx, cancel := context.WithTimeout(ctx, cl.b.cfg.RequestTimeout)
		_, end, err := cl.bounds(bctx)
		cancel()
		if err != nil {
			return wrapErr(fmt.Sprintf("Commit(%d) on %s/%d: read the end of the partition", next, cl.topic, cl.partition), err)
		}
		if next > end {
			return fmt.Errorf("kafka bus: Commit(%d) on %s/%d: out of range [0, %d]", next, cl.topic, cl.partition, end)
		}
	}
	cl.committing.Lock()
	defer cl.committing.Unlock()
	// kafka-go bounds the request by the coordinator timeout (RequestTimeout).
	if err := cl.gen.CommitOffsets(map[string]map[int]int64{cl.topic: {cl.partition: next}}); err != nil {
		cl.b.m.errors.WithLabelValues(opCommit).Inc()
		return wrapErr(fmt.Sprintf("commit %s/%d (group %s) at %d", cl.topic, cl.partition, cl.group, next), err)
	}
	cl.committed.Store(next)
	cl.b.m.commits.WithLabelValues(cl.topic, cl.group).Inc()
	return nil
}
