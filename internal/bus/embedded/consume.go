package embedded

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

type groupID struct{ topic, group string }

// group is one consumer group on one topic: its committed positions and live members.
type group struct {
	b    *Bus
	t    *topic
	name string

	mu          sync.Mutex
	committed   []int64 // per partition
	committedAt []int64 // Unix ms of the last commit per partition, 0 if never
	members     []*member
	slots       []slot // per partition
}

// slot is the ownership state of one partition within a group.
type slot struct {
	holder   *member // member the partition is assigned to, nil if none
	run      *claim  // the running handler, nil if none (the holder's returned on its own)
	revoking bool    // run's ctx was cancelled because the partition moves
}

type member struct {
	id     uint64
	ctx    context.Context
	cancel context.CancelCauseFunc
	h      bus.Handler
	wg     sync.WaitGroup // running handlers
}

func (b *Bus) group(t *topic, name string) *group {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.groupLocked(t, name)
}

func (b *Bus) groupLocked(t *topic, name string) *group {
	id := groupID{t.name, name}
	if g := b.groups[id]; g != nil {
		return g
	}
	n := len(t.parts)
	g := &group{b: b, t: t, name: name, committed: make([]int64, n), committedAt: make([]int64, n), slots: make([]slot, n)}
	b.groups[id] = g
	return g
}

// Consume joins group on topic and runs h once per partition assigned to this member,
// each in its own goroutine, until ctx ends (it returns ctx.Err()), a handler fails (it
// returns that error) or the bus closes (ErrClosed). It returns only after all of this
// member's handlers have returned.
//
// A handler that returns nil while its partition is still assigned leaves the partition
// idle with this member until the next rebalance; it is not called again for it.
// A handler's error counts as a failure unless its ctx was cancelled and the error is
// context.Canceled or context.DeadlineExceeded.
func (b *Bus) Consume(ctx context.Context, topicName, groupName string, h bus.Handler) error {
	if h == nil {
		return errors.New("bus: Consume needs a handler")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validateGroup(groupName); err != nil {
		return err
	}
	t, err := b.topic(topicName)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.consumers.Add(1)
	b.memberSeq++
	id := b.memberSeq
	b.mu.Unlock()
	defer b.consumers.Done()

	g := b.group(t, groupName)
	mctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	m := &member{id: id, ctx: mctx, cancel: cancel, h: h}

	g.mu.Lock()
	g.members = append(g.members, m)
	g.reconcileLocked()
	g.mu.Unlock()
	b.log.Debug("consumer joined", "topic", t.name, "group", groupName, "member", id)

	select {
	case <-mctx.Done():
	case <-b.closing:
		cancel(ErrClosed)
	}

	g.mu.Lock()
	for i, x := range g.members {
		if x == m {
			g.members = append(g.members[:i], g.members[i+1:]...)
			break
		}
	}
	g.reconcileLocked()
	g.mu.Unlock()
	m.wg.Wait()
	b.log.Debug("consumer left", "topic", t.name, "group", groupName, "member", id)

	if err := ctx.Err(); err != nil {
		return err
	}
	return context.Cause(mctx)
}

// owner is the member partition p is assigned to: range assignment in join order.
func (g *group) owner(p int) *member {
	if len(g.members) == 0 {
		return nil
	}
	return g.members[p*len(g.members)/len(g.slots)]
}

// reconcileLocked moves partitions towards the current assignment. A partition whose
// handler runs for another member is revoked first; it is handed over when that handler
// returns (see runClaim), so two handlers never hold one partition.
func (g *group) reconcileLocked() {
	for p := range g.slots {
		s := &g.slots[p]
		want := g.owner(p)
		if s.run != nil {
			if s.run.m != want && !s.revoking {
				s.revoking = true
				s.run.cancel()
			}
			continue
		}
		if s.holder == want {
			continue // unchanged, or the holder's handler returned on its own: leave it idle
		}
		s.holder = want
		if want != nil {
			g.startLocked(p, want)
		}
	}
}

func (g *group) startLocked(p int, m *member) {
	ctx, cancel := context.WithCancel(m.ctx)
	c := &claim{g: g, part: g.t.parts[p], m: m, ctx: ctx, cancel: cancel, next: g.committed[p]}
	c.active.Store(true)
	g.slots[p].run = c
	m.wg.Add(1)
	go g.runClaim(p, c)
}

func (g *group) runClaim(p int, c *claim) {
	defer c.m.wg.Done()
	err := c.m.h(c.ctx, c)
	c.active.Store(false)
	revoked := c.ctx.Err() != nil
	c.cancel()
	if err != nil && !(revoked && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))) {
		c.m.cancel(fmt.Errorf("bus: handler of %s/%d (group %s): %w", g.t.name, p, g.name, err))
	}
	g.mu.Lock()
	s := &g.slots[p]
	s.run = nil
	if s.revoking {
		s.revoking = false
		s.holder = nil
	}
	g.reconcileLocked()
	g.mu.Unlock()
}

// claim implements bus.Claim for one handler run.
type claim struct {
	g      *group
	part   *partition
	m      *member
	ctx    context.Context
	cancel context.CancelFunc
	active atomic.Bool

	fetchMu  sync.Mutex
	next     int64 // offset of the next message Fetch returns
	commitMu sync.Mutex
}

// closedChan makes Fetch look again at once.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

var errRevoked = errors.New("bus: claim is no longer held (its handler returned)")

func (c *claim) Topic() string  { return c.g.t.name }
func (c *claim) Partition() int { return c.part.id }

func (c *claim) Committed() int64 {
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	return c.g.committed[c.part.id]
}

// SetOffset moves the read position. Offsets before the first message retention kept
// are allowed (reading continues at the first kept one); offsets past the end are not.
func (c *claim) SetOffset(offset int64) error {
	if !c.active.Load() {
		return errRevoked
	}
	_, tail := c.part.bounds()
	if offset < 0 || offset > tail {
		return fmt.Errorf("bus: SetOffset(%d) on %s/%d: out of range [0, %d]", offset, c.part.topic, c.part.id, tail)
	}
	c.fetchMu.Lock()
	c.next = offset
	c.fetchMu.Unlock()
	return nil
}

// Fetch waits until a message at the read position exists, then returns up to max of them.
// It returns ctx's error when ctx ends first, the claim's when the partition is revoked
// (even if ctx is unrelated), and ErrClosed when the bus closes. The messages' keys, values
// and headers may be shared with other consumers of the topic (see recent.go): read them,
// do not modify them.
func (c *claim) Fetch(ctx context.Context, max int) ([]bus.Message, error) {
	if max < 1 {
		return nil, fmt.Errorf("bus: Fetch(max=%d): max must be at least 1", max)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := c.ctx.Err(); err != nil {
			return nil, err
		}
		if !c.active.Load() {
			return nil, errRevoked
		}
		msgs, notify, err := c.fetchNow(max)
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, c.ctx.Err()
		case <-c.g.b.closing:
			return nil, ErrClosed
		}
	}
}

// fetchNow returns the messages available at the read position, or none and a channel
// closed when more arrive.
func (c *claim) fetchNow(max int) ([]bus.Message, <-chan struct{}, error) {
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	low, tail, notify := c.part.state()
	if c.next >= tail {
		return nil, notify, nil
	}
	from := max64(c.next, low)
	to := min(tail, from+int64(max))
	if msgs := c.part.recentRange(from, to); msgs != nil {
		c.next = to
		return msgs, nil, nil
	}
	msgs, err := c.read(from, to)
	if err != nil {
		return nil, nil, err
	}
	if len(msgs) == 0 {
		// Nothing in [from, to) although it lies below the tail. Only retention removes
		// messages, and it moves low before deleting: if low moved past from meanwhile,
		// try again from there; otherwise this is a real gap.
		if low, _ := c.part.bounds(); low > from {
			return nil, closedChan, nil
		}
		return nil, nil, fmt.Errorf("bus: %s/%d: messages from offset %d are missing", c.part.topic, c.part.id, from)
	}
	c.next = msgs[len(msgs)-1].Offset + 1
	return msgs, nil, nil
}

// read returns the stored messages with offsets in [from, to).
func (c *claim) read(from, to int64) ([]bus.Message, error) {
	p := c.part
	var msgs []bus.Message
	err := c.g.b.withDB(func(db *pebble.DB) error {
		it, err := db.NewIter(&pebble.IterOptions{
			LowerBound: appendMsgKey(nil, p.topic, p.id, from),
			UpperBound: appendMsgKey(nil, p.topic, p.id, to),
		})
		if err != nil {
			return err
		}
		msgs = make([]bus.Message, 0, to-from)
		var buf []byte
		for ok := it.First(); ok; ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				it.Close()
				return err
			}
			_, key, value, headers, err := decodeRecord(v)
			if err != nil {
				it.Close()
				return fmt.Errorf("%w at %s/%d offset %d", err, p.topic, p.id, msgKeyOffset(it.Key()))
			}
			// One allocation for the keys and values of many messages; the iterator's
			// memory is reused after Next. A block holds up to 64 KiB, or what the rest of
			// the range needs if messages like this one fill it, so that fetching a few
			// small messages does not allocate 64 KiB.
			if n := len(key) + len(value); cap(buf)-len(buf) < n {
				left := to - msgKeyOffset(it.Key())
				buf = make([]byte, 0, max(n, int(min(64<<10, left*int64(n+n/4)))))
			}
			start := len(buf)
			buf = append(buf, key...)
			buf = append(buf, value...)
			msg := bus.Message{
				Key:       buf[start : start+len(key) : start+len(key)],
				Value:     buf[start+len(key) : len(buf) : len(buf)],
				Partition: p.id,
				Offset:    msgKeyOffset(it.Key()),
			}
			if len(key) == 0 {
				msg.Key = nil
			}
			if len(headers) > 0 {
				// Header values alias the iterator's memory, reused after Next.
				for i := range headers {
					headers[i].Value = append([]byte(nil), headers[i].Value...)
				}
				msg.Headers = headers
			}
			msgs = append(msgs, msg)
		}
		return it.Close()
	})
	return msgs, err
}

// Commit durably records next as the group's position on this partition.
func (c *claim) Commit(ctx context.Context, next int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !c.active.Load() {
		return errRevoked
	}
	_, tail := c.part.bounds()
	if next < 0 || next > tail {
		return fmt.Errorf("bus: Commit(%d) on %s/%d: out of range [0, %d]", next, c.part.topic, c.part.id, tail)
	}
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	g := c.g
	now := g.b.now().UnixMilli()
	if err := g.b.withDB(func(db *pebble.DB) error {
		return db.Set(commitKey(g.t.name, g.name, c.part.id), encodeCommit(next, now), pebble.Sync)
	}); err != nil {
		return fmt.Errorf("bus: commit %s/%d (group %s): %w", g.t.name, c.part.id, g.name, err)
	}
	g.mu.Lock()
	g.committed[c.part.id] = next
	g.committedAt[c.part.id] = now
	g.mu.Unlock()
	g.b.m.commits.WithLabelValues(g.t.name, g.name).Inc()
	return nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
