package bustest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// env is the backing data of one subtest plus the names the suite made for it.
type env struct {
	t    *testing.T
	open Open
	opts Options
	seq  atomic.Int64
}

var nameSeq atomic.Int64

// name returns a topic or group name unique to this run and subtest. It uses only
// characters every Kafka version accepts, without '.' or '_' (Kafka treats them alike).
func (e *env) name(kind string) string {
	sub := e.t.Name()
	if i := strings.LastIndexByte(sub, '/'); i >= 0 {
		sub = sub[i+1:]
	}
	var sb strings.Builder
	for _, r := range strings.ToLower(sub) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			sb.WriteRune(r)
		}
	}
	sub = sb.String()
	if len(sub) > 40 {
		sub = sub[:40]
	}
	return fmt.Sprintf("%s-%s-%s-%x-%d", e.opts.Prefix, sub, kind, time.Now().UnixNano(), nameSeq.Add(1))
}

// client is one opened bus.Bus; the suite closes it exactly once.
type client struct {
	bus.Bus
	once sync.Once
	err  error
}

func (c *client) close() error {
	c.once.Do(func() { c.err = c.Bus.Close() })
	return c.err
}

func (e *env) client() *client {
	e.t.Helper()
	c := &client{Bus: e.open(e.t)}
	e.t.Cleanup(func() {
		if err := c.close(); err != nil {
			e.t.Errorf("Close: %v", err)
		}
	})
	return c
}

// closeClient closes c and fails the test on error.
func (e *env) closeClient(c *client) {
	e.t.Helper()
	if err := c.close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
}

func (e *env) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) partitions(b bus.Bus, topic string) int {
	e.t.Helper()
	n, err := b.Partitions(e.ctx(e.opts.Timeout), topic)
	if err != nil {
		e.t.Fatalf("Partitions(%s): %v", topic, err)
	}
	if n < 1 {
		e.t.Fatalf("Partitions(%s) = %d, want at least 1", topic, n)
	}
	return n
}

func (e *env) needPartitions(b bus.Bus, topic string, least int) int {
	e.t.Helper()
	n := e.partitions(b, topic)
	if n < least {
		e.t.Fatalf("this test needs topics with at least %d partitions, the bus gives %d: configure the factory for more", least, n)
	}
	return n
}

// msg returns the i-th test message of a batch tagged tag. Values are unique per tag.
func msg(tag string, i int, key string) bus.Message {
	return bus.Message{Key: []byte(key), Value: fmt.Appendf(nil, "%s-%06d", tag, i)}
}

func (e *env) publish(b bus.Bus, topic string, msgs ...bus.Message) {
	e.t.Helper()
	if err := b.Publish(e.ctx(e.opts.Timeout), topic, msgs...); err != nil {
		e.t.Fatalf("Publish(%s, %d messages): %v", topic, len(msgs), err)
	}
}

// publishMixed publishes msgs partly one per call and partly in batches of 7, in order.
func (e *env) publishMixed(b bus.Bus, topic string, msgs []bus.Message) {
	e.t.Helper()
	half := len(msgs) / 2
	for i := 0; i < half; i++ {
		e.publish(b, topic, msgs[i])
	}
	for i := half; i < len(msgs); i += 7 {
		e.publish(b, topic, msgs[i:min(i+7, len(msgs))]...)
	}
}

// waitUntil polls cond until it holds or d passes.
func (e *env) waitUntil(d time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// seenMsg is one delivery observed by a group member.
type seenMsg struct {
	msg    bus.Message
	member string
}

// tracker watches all members of one group on one topic: which handler holds which
// partition, and every delivery. Two handlers holding a partition at once is an error.
type tracker struct {
	t     *testing.T
	topic string

	mu      sync.Mutex
	holder  map[int]string // partition → member whose handler runs now
	byValue map[string][]seenMsg
	order   []seenMsg // in delivery order
}

func newTracker(t *testing.T, topic string) *tracker {
	return &tracker{t: t, topic: topic, holder: map[int]string{}, byValue: map[string][]seenMsg{}}
}

func (tr *tracker) enter(member string, p int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if other, ok := tr.holder[p]; ok {
		tr.t.Errorf("partition %d handed to %s while %s's handler for it still runs", p, member, other)
	}
	tr.holder[p] = member
}

func (tr *tracker) leave(member string, p int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.holder[p] == member {
		delete(tr.holder, p)
	}
}

func (tr *tracker) record(member string, msgs []bus.Message) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, m := range msgs {
		s := seenMsg{msg: m, member: member}
		tr.byValue[string(m.Value)] = append(tr.byValue[string(m.Value)], s)
		tr.order = append(tr.order, s)
	}
}

// distinct is the number of distinct values delivered.
func (tr *tracker) distinct() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.byValue)
}

// held returns partition → member for the handlers running now.
func (tr *tracker) held() map[int]string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make(map[int]string, len(tr.holder))
	for p, m := range tr.holder {
		out[p] = m
	}
	return out
}

// holdsAll reports whether the given members together run handlers for all n
// partitions, each member for at least one, and nobody else for any.
func (tr *tracker) holdsExactly(n int, members ...string) bool {
	h := tr.held()
	if len(h) != n {
		return false
	}
	count := map[string]int{}
	for _, m := range h {
		count[m]++
	}
	for _, m := range members {
		if count[m] == 0 {
			return false
		}
	}
	return len(count) == len(members)
}

// checkAll verifies every published message was delivered with its key, and, when
// exactlyOnce, exactly once.
func (tr *tracker) checkAll(published []bus.Message, exactlyOnce bool) {
	tr.t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, m := range published {
		got := tr.byValue[string(m.Value)]
		if len(got) == 0 {
			tr.t.Errorf("message %q (key %q) was never delivered", m.Value, m.Key)
			continue
		}
		if exactlyOnce && len(got) > 1 {
			tr.t.Errorf("message %q delivered %d times", m.Value, len(got))
		}
		for _, s := range got {
			if !bytes.Equal(s.msg.Key, m.Key) {
				tr.t.Errorf("message %q delivered with key %q, published with %q", m.Value, s.msg.Key, m.Key)
			}
			if s.msg.Partition != got[0].msg.Partition || s.msg.Offset != got[0].msg.Offset {
				tr.t.Errorf("message %q delivered at %d/%d and at %d/%d", m.Value, got[0].msg.Partition, got[0].msg.Offset, s.msg.Partition, s.msg.Offset)
			}
		}
	}
	if len(tr.byValue) != len(published) {
		tr.t.Errorf("%d distinct messages delivered, %d published", len(tr.byValue), len(published))
	}
}

// offsets returns, per partition, the sorted distinct offsets delivered.
func (tr *tracker) offsets() map[int][]int64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	set := map[int]map[int64]bool{}
	for _, s := range tr.order {
		if set[s.msg.Partition] == nil {
			set[s.msg.Partition] = map[int64]bool{}
		}
		set[s.msg.Partition][s.msg.Offset] = true
	}
	out := map[int][]int64{}
	for p, offs := range set {
		for o := range offs {
			out[p] = append(out[p], o)
		}
		sort.Slice(out[p], func(i, j int) bool { return out[p][i] < out[p][j] })
	}
	return out
}

// checkDense verifies the offsets of each partition are exactly from, from+1, ... .
func (tr *tracker) checkDense(n int, from map[int]int64) {
	tr.t.Helper()
	for p, offs := range tr.offsets() {
		if p < 0 || p >= n {
			tr.t.Errorf("message delivered from partition %d, topic has %d", p, n)
			continue
		}
		start := from[p]
		for i, o := range offs {
			if o != start+int64(i) {
				tr.t.Errorf("partition %d: offsets %v are not dense from %d", p, abbreviate(offs), start)
				break
			}
		}
	}
}

func abbreviate(offs []int64) string {
	if len(offs) <= 12 {
		return fmt.Sprint(offs)
	}
	return fmt.Sprintf("%v … %v", offs[:6], offs[len(offs)-6:])
}

// member is one Consume call of a group, driven by the suite's standard handler: it fetches
// in a loop, checks what it gets, records it and, when commit is set, commits after each
// fetch.
type member struct {
	e      *env
	name   string
	tr     *tracker
	commit bool
	batch  int

	cancel context.CancelFunc
	done   chan struct{} // closed when Consume returned, with its error in err
	err    error

	mu       sync.Mutex
	started  int // handler calls
	returned int // handler returns
}

func (e *env) join(b bus.Bus, tr *tracker, group, name string, commit bool) *member {
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{e: e, name: name, tr: tr, commit: commit, batch: 16, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		m.err = b.Consume(ctx, tr.topic, group, m.handle)
	}()
	e.t.Cleanup(func() {
		cancel()
		select {
		case <-m.done:
		case <-time.After(e.opts.RebalanceTimeout):
		}
	})
	return m
}

func (m *member) handle(ctx context.Context, c bus.Claim) error {
	t := m.e.t
	p := c.Partition()
	m.tr.enter(m.name, p)
	m.mu.Lock()
	m.started++
	m.mu.Unlock()
	defer func() {
		m.tr.leave(m.name, p)
		m.mu.Lock()
		m.returned++
		m.mu.Unlock()
	}()
	if c.Topic() != m.tr.topic {
		t.Errorf("claim topic %q, want %q", c.Topic(), m.tr.topic)
	}
	next := c.Committed()
	if next < 0 {
		t.Errorf("partition %d: Committed() = %d", p, next)
	}
	for {
		msgs, err := c.Fetch(ctx, m.batch)
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("%s: Fetch on partition %d failed while the claim's ctx is live: %v", m.name, p, err)
			}
			return ctx.Err()
		}
		if len(msgs) == 0 || len(msgs) > m.batch {
			t.Errorf("Fetch(max=%d) returned %d messages", m.batch, len(msgs))
		}
		for _, msg := range msgs {
			if msg.Partition != p {
				t.Errorf("Fetch on partition %d returned a message of partition %d", p, msg.Partition)
			}
			if msg.Offset != next {
				t.Errorf("%s: partition %d: got offset %d, want %d (reads start at Committed() and continue densely)", m.name, p, msg.Offset, next)
			}
			next = msg.Offset + 1
		}
		// Commit before recording, so a test that saw every message knows they are
		// committed too.
		if m.commit {
			if err := c.Commit(ctx, next); err != nil && ctx.Err() == nil {
				t.Errorf("Commit(%d) on partition %d: %v", next, p, err)
			}
		}
		m.tr.record(m.name, msgs)
	}
}

// stop ends the member's Consume and checks it returned cleanly with no handler left.
func (m *member) stop() {
	m.e.t.Helper()
	m.cancel()
	select {
	case <-m.done:
		if m.err != nil && !errors.Is(m.err, context.Canceled) {
			m.e.t.Errorf("%s: Consume returned %v after its ctx was cancelled, want nil or context.Canceled", m.name, m.err)
		}
	case <-time.After(m.e.opts.RebalanceTimeout):
		m.e.t.Fatalf("%s: Consume did not return within %v of its ctx being cancelled", m.name, m.e.opts.RebalanceTimeout)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started != m.returned {
		m.e.t.Errorf("%s: Consume returned while %d of its handlers still run", m.name, m.started-m.returned)
	}
}

func (m *member) counts() (started, returned int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.started, m.returned
}

// drain consumes topic as a fresh single member of group until want distinct messages
// arrived, and returns what it saw.
func (e *env) drain(b bus.Bus, topic, group string, want int, commit bool) *tracker {
	e.t.Helper()
	tr := newTracker(e.t, topic)
	m := e.join(b, tr, group, "drain", commit)
	e.waitUntil(e.opts.Timeout, fmt.Sprintf("%d messages on %s", want, topic), func() bool { return tr.distinct() >= want })
	m.stop()
	return tr
}
