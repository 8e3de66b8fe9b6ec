// Package bustest is the conformance suite every bus.Bus implementation passes: the
// embedded Pebble log runs it in its unit tests, the Kafka bus against a real broker.
//
// A test plugs an implementation in with a Factory:
//
//	func TestConformance(t *testing.T) {
//		bustest.Run(t, func(tb testing.TB) bustest.Open {
//			dir := tb.TempDir() // backing data of one subtest
//			return func(tb testing.TB) bus.Bus {
//				b, err := embedded.Open(dir, embedded.Options{Partitions: 4})
//				if err != nil {
//					tb.Fatal(err)
//				}
//				return b
//			}
//		}, bustest.Options{})
//	}
//
// For Kafka, the Factory returns an Open that connects a new client to the same broker;
// the suite makes a unique topic and group name for every subtest, so one broker serves
// every run, and Options.RebalanceTimeout gives group rebalances their seconds.
package bustest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// Open opens a new client of the bus under test on the backing data its Factory prepared
// (the same directory, the same broker). The suite closes every client it opens, and
// closes one before opening the next on the same data when it checks durability; it
// never holds two clients of one Factory call open at once.
type Open func(tb testing.TB) bus.Bus

// Factory prepares the backing data of one subtest and returns how to open clients on it.
// Topics must get at least 2 partitions (4 or more recommended).
type Factory func(tb testing.TB) Open

// Options tune the suite to the engine under test.
type Options struct {
	// Timeout bounds each wait for messages to be delivered or for a call to return
	// (default 10s).
	Timeout time.Duration
	// RebalanceTimeout bounds each wait for a group to settle after a member joins or
	// leaves, and for Consume to return after its ctx ends (default 10s; Kafka needs
	// its session and rebalance timeouts plus some margin).
	RebalanceTimeout time.Duration
	// Messages is how many messages each subtest publishes (default 120). Keep it modest:
	// the point is behaviour, not load.
	Messages int
	// Prefix starts every topic and group name the suite makes (default "bustest").
	Prefix string
}

func (o *Options) setDefaults() {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.RebalanceTimeout <= 0 {
		o.RebalanceTimeout = 10 * time.Second
	}
	if o.Messages <= 0 {
		o.Messages = 120
	}
	if o.Messages < 16 {
		o.Messages = 16
	}
	if o.Prefix == "" {
		o.Prefix = "bustest"
	}
}

// Run runs the suite; each case is a subtest with its own backing data, topic and groups.
func Run(t *testing.T, f Factory, opts Options) {
	opts.setDefaults()
	cases := []struct {
		name string
		fn   func(e *env)
	}{
		{"PublishConsume", testPublishConsume},
		{"SameKeySamePartitionInOrder", testKeyOrder},
		{"Partitions", testPartitions},
		{"CommitSurvivesReopen", testCommitReopen},
		{"SetOffsetReplays", testSetOffsetReplay},
		{"GroupMembersSplitPartitions", testGroupSplit},
		{"LeavingMemberHandsOver", testMemberLeaves},
		{"GroupsAreIndependent", testTwoGroups},
		{"PublishCancelledContext", testPublishCancelled},
		{"FetchWaitsAndHonoursContext", testFetchContext},
		{"ConcurrentPublishers", testConcurrentPublishers},
		{"HandlerErrorEndsConsume", testHandlerError},
		{"PublishAfterClose", testPublishAfterClose},
		{"HeadersRoundTrip", testHeaders},
		{"DeadLetter", testDeadLetter},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(&env{t: t, open: f(t), opts: opts})
		})
	}
}

// Publish, then consume everything: keys and values preserved, each message once,
// offsets dense from 0 in every partition.
func testPublishConsume(e *env) {
	b := e.client()
	topic, group := e.name("t"), e.name("g")
	n := e.partitions(b, topic)
	msgs := make([]bus.Message, e.opts.Messages)
	for i := range msgs {
		msgs[i] = msg("pc", i, fmt.Sprintf("visitor-%03d", i%37))
	}
	msgs[3].Key = nil                                       // no key
	msgs[4].Value = append(msgs[4].Value, 0, 0xff, 0, '\n') // binary value
	e.publishMixed(b, topic, msgs)
	tr := e.drain(b, topic, group, len(msgs), false)
	tr.checkAll(msgs, true)
	tr.checkDense(n, nil)
	total := 0
	for _, offs := range tr.offsets() {
		total += len(offs)
	}
	if total != len(msgs) {
		e.t.Errorf("%d offsets delivered, %d messages published", total, len(msgs))
	}
}

// Concurrent publishers each write a few keys in sequence; every key's messages are in
// one partition, in the order its publisher wrote them.
func testKeyOrder(e *env) {
	b := e.client()
	topic, group := e.name("t"), e.name("g")
	n := e.needPartitions(b, topic, 2)
	const publishers, keysEach = 4, 3
	perKey := max(e.opts.Messages/(publishers*keysEach), 4)
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		all []bus.Message
	)
	for w := 0; w < publishers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []bus.Message
			for s := 0; s < perKey; s++ {
				var batch []bus.Message
				for k := 0; k < keysEach; k++ {
					key := fmt.Sprintf("site.example/w%d-k%d", w, k)
					batch = append(batch, bus.Message{Key: []byte(key), Value: fmt.Appendf(nil, "%s#%04d", key, s)})
				}
				// Alternate single-message and multi-message publishes; a multi-message
				// publish may hold several messages of one key.
				if s%2 == 0 {
					batch = append(batch, bus.Message{Key: batch[0].Key, Value: fmt.Appendf(nil, "%s#%04d+", batch[0].Key, s)})
					if err := b.Publish(e.ctx(e.opts.Timeout), topic, batch...); err != nil {
						e.t.Errorf("Publish: %v", err)
						return
					}
				} else {
					for _, m := range batch {
						if err := b.Publish(e.ctx(e.opts.Timeout), topic, m); err != nil {
							e.t.Errorf("Publish: %v", err)
							return
						}
					}
				}
				mine = append(mine, batch...)
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	if e.t.Failed() {
		return
	}
	tr := e.drain(b, topic, group, len(all), false)
	tr.checkAll(all, true)
	tr.checkDense(n, nil)

	partitionOf := map[string]int{}
	lastValue := map[string]string{}
	lastOffset := map[string]int64{}
	byOffset := tr.inPartitionOrder()
	for _, m := range byOffset {
		key := string(m.Key)
		if p, ok := partitionOf[key]; ok && p != m.Partition {
			e.t.Errorf("key %q in partitions %d and %d", key, p, m.Partition)
		}
		partitionOf[key] = m.Partition
		if prev, ok := lastValue[key]; ok && !(string(m.Value) > prev) {
			e.t.Errorf("key %q: %q at offset %d comes after %q at offset %d, out of publish order", key, m.Value, m.Offset, prev, lastOffset[key])
		}
		lastValue[key], lastOffset[key] = string(m.Value), m.Offset
	}
	used := map[int]bool{}
	for _, p := range partitionOf {
		used[p] = true
	}
	if n > 1 && len(used) < 2 {
		e.t.Errorf("%d keys all landed in one partition of %d", len(partitionOf), n)
	}
}

// inPartitionOrder returns the first delivery of every message, sorted by (partition, offset).
func (tr *tracker) inPartitionOrder() []bus.Message {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []bus.Message
	for _, s := range tr.byValue {
		out = append(out, s[0].msg)
	}
	sortMessages(out)
	return out
}

func sortMessages(msgs []bus.Message) {
	sort.Slice(msgs, func(i, j int) bool {
		if msgs[i].Partition != msgs[j].Partition {
			return msgs[i].Partition < msgs[j].Partition
		}
		return msgs[i].Offset < msgs[j].Offset
	})
}

// Partitions creates a topic, answers the same every time and after a reopen.
func testPartitions(e *env) {
	b := e.client()
	topic := e.name("t")
	n := e.partitions(b, topic)
	if again := e.partitions(b, topic); again != n {
		e.t.Errorf("Partitions changed from %d to %d", n, again)
	}
	e.publish(b, topic, msg("p", 0, "k"))
	e.closeClient(b)
	b = e.client()
	if again := e.partitions(b, topic); again != n {
		e.t.Errorf("after reopen, Partitions = %d, want %d", again, n)
	}
	other := e.partitions(b, e.name("t"))
	if other < 1 {
		e.t.Errorf("Partitions of a new topic = %d", other)
	}
}

// partitionCounts consumes topic once with a throwaway group and returns the number of
// messages per partition.
func (e *env) partitionCounts(b bus.Bus, topic string, total int) map[int]int64 {
	e.t.Helper()
	tr := e.drain(b, topic, e.name("probe"), total, false)
	counts := map[int]int64{}
	for p, offs := range tr.offsets() {
		counts[p] = int64(len(offs))
	}
	return counts
}

// Commit half of every partition, reopen the bus: Committed() returns the commit,
// consumption resumes there, messages published before the reopen are all there and new
// ones continue the offsets.
func testCommitReopen(e *env) {
	b := e.client()
	topic, group := e.name("t"), e.name("g")
	n := e.needPartitions(b, topic, 2)
	msgs := make([]bus.Message, e.opts.Messages)
	for i := range msgs {
		msgs[i] = msg("cr", i, fmt.Sprintf("k%02d", i%29))
	}
	e.publishMixed(b, topic, msgs)
	counts := e.partitionCounts(b, topic, len(msgs))
	half := map[int]int64{}
	for p, c := range counts {
		half[p] = c / 2
	}

	// First session: read at least half of each partition, commit exactly half.
	var mu sync.Mutex
	committed := map[int]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, topic, group, func(ctx context.Context, c bus.Claim) error {
			p := c.Partition()
			if got := c.Committed(); got != 0 {
				e.t.Errorf("fresh group: Committed() on partition %d = %d, want 0", p, got)
			}
			var next int64
			for next < half[p] {
				ms, err := c.Fetch(ctx, 5)
				if err != nil {
					if ctx.Err() == nil {
						e.t.Errorf("Fetch on partition %d: %v", p, err)
					}
					return ctx.Err()
				}
				next = ms[len(ms)-1].Offset + 1
			}
			if err := c.Commit(ctx, half[p]); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				e.t.Errorf("Commit(%d) on partition %d: %v", half[p], p, err)
			}
			mu.Lock()
			committed[p] = true
			mu.Unlock()
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	e.waitUntil(e.opts.Timeout+e.opts.RebalanceTimeout, "commits on every partition", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(committed) == n
	})
	cancel()
	waitConsume(e, done)
	e.closeClient(b)

	// Second session on a new client: resume at the commits.
	b = e.client()
	if got := e.partitions(b, topic); got != n {
		e.t.Fatalf("after reopen, Partitions = %d, want %d", got, n)
	}
	tr := newTracker(e.t, topic)
	m := e.join(b, tr, group, "resumed", true)
	rest := 0
	for p, c := range counts {
		rest += int(c - half[p])
	}
	e.waitUntil(e.opts.Timeout+e.opts.RebalanceTimeout, "the uncommitted half", func() bool { return tr.distinct() >= rest })
	// Publish more after the reopen; offsets continue where they were.
	more := make([]bus.Message, 20)
	for i := range more {
		more[i] = msg("cr-more", i, fmt.Sprintf("k%02d", i%29))
	}
	e.publishMixed(b, topic, more)
	e.waitUntil(e.opts.Timeout, "the messages published after reopen", func() bool { return tr.distinct() >= rest+len(more) })
	m.stop()

	var wantSeen []bus.Message
	tr.mu.Lock()
	firstAt := map[int]int64{}
	for _, s := range tr.order {
		if o, ok := firstAt[s.msg.Partition]; !ok || s.msg.Offset < o {
			firstAt[s.msg.Partition] = s.msg.Offset
		}
	}
	tr.mu.Unlock()
	for p, c := range counts {
		if c > half[p] && firstAt[p] != half[p] {
			e.t.Errorf("partition %d: resumed at offset %d, committed %d", p, firstAt[p], half[p])
		}
	}
	// The member's handler checks that reads start at Committed(), so the resumed reads
	// also prove Committed() survived the reopen. Check the message contents too.
	seenByValue := map[string]bool{}
	tr.mu.Lock()
	for v := range tr.byValue {
		seenByValue[v] = true
	}
	tr.mu.Unlock()
	all := append(append([]bus.Message(nil), msgs...), more...)
	tr.checkDense(n, half)
	for _, m := range all {
		if seenByValue[string(m.Value)] {
			wantSeen = append(wantSeen, m)
		}
	}
	if len(wantSeen) != rest+len(more) {
		e.t.Errorf("resumed session saw %d messages, want %d (the uncommitted half plus the new ones)", len(wantSeen), rest+len(more))
	}
	tr.checkAll(wantSeen, true)
	for _, m := range more {
		s := tr.byValue[string(m.Value)]
		if len(s) > 0 && s[0].msg.Offset < counts[s[0].msg.Partition] {
			e.t.Errorf("message published after reopen got offset %d on partition %d, which held %d messages", s[0].msg.Offset, s[0].msg.Partition, counts[s[0].msg.Partition])
		}
	}
}

func waitConsume(e *env, done <-chan error) {
	e.t.Helper()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			e.t.Errorf("Consume returned %v, want nil or context.Canceled", err)
		}
	case <-time.After(e.opts.RebalanceTimeout):
		e.t.Fatalf("Consume did not return within %v of its ctx being cancelled", e.opts.RebalanceTimeout)
	}
}

// After committing everything, SetOffset rewinds: a replay from 0 and from the middle
// returns the same messages at the same offsets.
func testSetOffsetReplay(e *env) {
	b := e.client()
	topic, group := e.name("t"), e.name("g")
	n := e.needPartitions(b, topic, 2)
	msgs := make([]bus.Message, e.opts.Messages)
	for i := range msgs {
		msgs[i] = msg("so", i, fmt.Sprintf("k%02d", i%23))
	}
	e.publishMixed(b, topic, msgs)
	first := e.drain(b, topic, group, len(msgs), true)
	first.checkAll(msgs, true)
	original := map[int][]bus.Message{}
	for _, m := range first.inPartitionOrder() {
		original[m.Partition] = append(original[m.Partition], m)
	}

	var mu sync.Mutex
	replayed := map[int]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, topic, group, func(ctx context.Context, c bus.Claim) error {
			p := c.Partition()
			want := original[p]
			if got := c.Committed(); got != int64(len(want)) {
				e.t.Errorf("partition %d: Committed() = %d after committing every message, want %d", p, got, len(want))
			}
			for _, from := range []int64{0, int64(len(want) / 2)} {
				if len(want) == 0 {
					break
				}
				if err := c.SetOffset(from); err != nil {
					e.t.Errorf("SetOffset(%d) on partition %d: %v", from, p, err)
					return nil
				}
				var got []bus.Message
				for int64(len(got)) < int64(len(want))-from {
					ms, err := c.Fetch(ctx, 7)
					if err != nil {
						if ctx.Err() == nil {
							e.t.Errorf("replay Fetch on partition %d: %v", p, err)
						}
						return ctx.Err()
					}
					got = append(got, ms...)
				}
				for i, m := range got {
					w := want[from+int64(i)]
					if m.Offset != w.Offset || !bytes.Equal(m.Key, w.Key) || !bytes.Equal(m.Value, w.Value) {
						e.t.Errorf("partition %d replay from %d: got %d %q=%q, want %d %q=%q", p, from, m.Offset, m.Key, m.Value, w.Offset, w.Key, w.Value)
						break
					}
				}
			}
			mu.Lock()
			replayed[p] = true
			mu.Unlock()
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	e.waitUntil(e.opts.Timeout+e.opts.RebalanceTimeout, "replays on every partition", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(replayed) == n
	})
	cancel()
	waitConsume(e, done)
}

// A second member takes over part of the partitions (the first member's handlers for them
// see their ctx cancelled); the two never hold one partition at once and together cover
// all, and messages published meanwhile are all delivered.
func testGroupSplit(e *env) {
	b := e.client()
	topic, group := e.name("t"), e.name("g")
	n := e.needPartitions(b, topic, 2)
	tr := newTracker(e.t, topic)
	a := e.join(b, tr, group, "a", true)
	e.waitUntil(e.opts.RebalanceTimeout, "member a to hold every partition", func() bool { return tr.holdsExactly(n, "a") })
	startedBefore, _ := a.counts()
	bm := e.join(b, tr, group, "b", true)
	e.waitUntil(e.opts.RebalanceTimeout, "members a and b to split the partitions", func() bool { return tr.holdsExactly(n, "a", "b") })
	if _, returned := a.counts(); returned == 0 {
		e.t.Errorf("member a kept all its %d handlers running although b took partitions", startedBefore)
	}

	msgs := make([]bus.Message, e.opts.Messages)
	for i := range msgs {
		msgs[i] = msg("gs", i, fmt.Sprintf("k%03d", i))
	}
	e.publishMixed(b, topic, msgs)
	e.waitUntil(e.opts.Timeout, "all messages across both members", func() bool { return tr.distinct() >= len(msgs) })
	tr.checkAll(msgs, false)
	// Each member only received messages of partitions it held.
	bySender := map[string]map[int]bool{}
	tr.mu.Lock()
	for _, s := range tr.order {
		if bySender[s.member] == nil {
			bySender[s.member] = map[int]bool{}
		}
		bySender[s.member][s.msg.Partition] = true
	}
	tr.mu.Unlock()
	for p := range bySender["a"] {
		if bySender["b"][p] {
			// Allowed only if the partition moved, which it must not once settled.
			e.t.Errorf("partition %d delivered to both members after the group settled", p)
		}
	}
	bm.stop()
	a.stop()
}

// A member leaves: its handlers' ctx is cancelled, its partitions move to the remaining
// member, which resumes at the commits: every message is delivered (at least once).
func testMemberLeaves(e *env) {
	b := e.client()
	topic, group := e.name("t"), e.name("g")
	n := e.needPartitions(b, topic, 2)
	tr := newTracker(e.t, topic)
	a := e.join(b, tr, group, "a", true)
	e.waitUntil(e.opts.RebalanceTimeout, "member a to hold every partition", func() bool { return tr.holdsExactly(n, "a") })
	bm := e.join(b, tr, group, "b", true)
	e.waitUntil(e.opts.RebalanceTimeout, "members a and b to split the partitions", func() bool { return tr.holdsExactly(n, "a", "b") })

	half := e.opts.Messages / 2
	msgs := make([]bus.Message, e.opts.Messages)
	for i := range msgs {
		msgs[i] = msg("ml", i, fmt.Sprintf("k%03d", i%41))
	}
	e.publishMixed(b, topic, msgs[:half])
	e.waitUntil(e.opts.Timeout, "the first half across both members", func() bool { return tr.distinct() >= half })
	bStarted, _ := bm.counts()
	bm.stop() // checks its handlers returned, which they only do when their ctx ends
	if bStarted == 0 {
		e.t.Errorf("member b never got a partition")
	}
	e.waitUntil(e.opts.RebalanceTimeout, "member a to take every partition back", func() bool { return tr.holdsExactly(n, "a") })
	e.publishMixed(b, topic, msgs[half:])
	e.waitUntil(e.opts.Timeout, "every message", func() bool { return tr.distinct() >= len(msgs) })
	a.stop()
	tr.checkAll(msgs, false)
	tr.checkDense(n, nil)
}

// Two groups each receive every message.
func testTwoGroups(e *env) {
	b := e.client()
	topic := e.name("t")
	n := e.partitions(b, topic)
	msgs := make([]bus.Message, e.opts.Messages)
	for i := range msgs {
		msgs[i] = msg("tg", i, fmt.Sprintf("k%02d", i%17))
	}
	e.publishMixed(b, topic, msgs)
	one := e.drain(b, topic, e.name("g1"), len(msgs), true)
	two := e.drain(b, topic, e.name("g2"), len(msgs), true)
	one.checkAll(msgs, true)
	two.checkAll(msgs, true)
	one.checkDense(n, nil)
	two.checkDense(n, nil)
}

// Publish with a cancelled or expired ctx returns the ctx's error.
func testPublishCancelled(e *env) {
	b := e.client()
	topic := e.name("t")
	e.partitions(b, topic)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Publish(ctx, topic, msg("pc", 0, "k")); !errors.Is(err, context.Canceled) {
		e.t.Errorf("Publish with a cancelled ctx = %v, want context.Canceled", err)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if err := b.Publish(ctx, topic, msg("pc", 1, "k")); !errors.Is(err, context.DeadlineExceeded) {
		e.t.Errorf("Publish with an expired ctx = %v, want context.DeadlineExceeded", err)
	}
	// The bus still works.
	e.publish(b, topic, msg("pc", 2, "k"))
}

// Fetch on an empty partition returns the ctx's error when the ctx ends, and returns a
// message published while it waits.
func testFetchContext(e *env) {
	b := e.client()
	topic, group := e.name("t"), e.name("g")
	n := e.partitions(b, topic)
	type result struct {
		p       int
		timeout error
		took    time.Duration
		got     []bus.Message
		err     error
	}
	results := make(chan result, n)
	waiting := make(chan int, n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, topic, group, func(ctx context.Context, c bus.Claim) error {
			r := result{p: c.Partition()}
			short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
			t0 := time.Now()
			ms, err := c.Fetch(short, 10)
			stop()
			r.took, r.timeout = time.Since(t0), err
			if len(ms) != 0 {
				r.timeout = fmt.Errorf("Fetch on an empty partition returned %d messages", len(ms))
			}
			select {
			case waiting <- r.p:
			case <-ctx.Done():
				return ctx.Err()
			}
			r.got, r.err = c.Fetch(ctx, 10)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			select {
			case results <- r:
			case <-ctx.Done():
			}
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	held := map[int]bool{}
	deadline := time.After(e.opts.RebalanceTimeout + e.opts.Timeout)
	for len(held) < n {
		select {
		case p := <-waiting:
			held[p] = true
		case <-deadline:
			e.t.Fatalf("only %d of %d handlers got past a Fetch with a 50ms timeout", len(held), n)
		}
	}
	// Every handler now waits in Fetch; a message to each partition wakes its Fetch.
	var msgs []bus.Message
	for i := 0; len(msgs) < 16*n && i < 100000; i++ {
		msgs = append(msgs, msg("fc", i, fmt.Sprintf("k%d", i)))
	}
	e.publish(b, topic, msgs...)
	got := 0
	for got < n {
		select {
		case r := <-results:
			got++
			if !errors.Is(r.timeout, context.DeadlineExceeded) {
				e.t.Errorf("partition %d: Fetch with an expiring ctx = %v, want context.DeadlineExceeded", r.p, r.timeout)
			}
			if r.took > e.opts.Timeout {
				e.t.Errorf("partition %d: Fetch took %v to notice its ctx ended", r.p, r.took)
			}
			if r.err != nil || len(r.got) == 0 {
				e.t.Errorf("partition %d: waiting Fetch = %d messages, %v", r.p, len(r.got), r.err)
			}
		case <-time.After(e.opts.Timeout):
			e.t.Fatalf("%d of %d waiting Fetch calls returned after a publish", got, n)
		}
	}
	cancel()
	waitConsume(e, done)
}

// Eight goroutines publish concurrently; every message is stored exactly once.
func testConcurrentPublishers(e *env) {
	b := e.client()
	topic, group := e.name("t"), e.name("g")
	n := e.partitions(b, topic)
	const publishers = 8
	each := max(e.opts.Messages/publishers, 4)
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		all []bus.Message
	)
	for w := 0; w < publishers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []bus.Message
			for i := 0; i < each; {
				batch := 1
				if i%5 == 4 {
					batch = 3
				}
				var ms []bus.Message
				for j := 0; j < batch && i < each; j++ {
					ms = append(ms, msg(fmt.Sprintf("cp%d", w), i, fmt.Sprintf("w%d-%d", w, i%13)))
					i++
				}
				if err := b.Publish(e.ctx(e.opts.Timeout), topic, ms...); err != nil {
					e.t.Errorf("publisher %d: %v", w, err)
					return
				}
				mine = append(mine, ms...)
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	if e.t.Failed() {
		return
	}
	tr := e.drain(b, topic, group, len(all), false)
	tr.checkAll(all, true)
	tr.checkDense(n, nil)
}

// A handler's error (not its ctx's) ends Consume with that error.
func testHandlerError(e *env) {
	b := e.client()
	topic, group := e.name("t"), e.name("g")
	e.partitions(b, topic)
	boom := errors.New("handler failed on purpose")
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(context.Background(), topic, group, func(ctx context.Context, c bus.Claim) error {
			return boom
		})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			e.t.Errorf("Consume = %v, want the handler's error", err)
		}
	case <-time.After(e.opts.RebalanceTimeout + e.opts.Timeout):
		e.t.Fatalf("Consume did not return after a handler failed")
	}
}

// After Close, Publish fails with bus.ErrUnavailable.
func testPublishAfterClose(e *env) {
	b := e.client()
	topic := e.name("t")
	e.publish(b, topic, msg("ac", 0, "k"))
	e.closeClient(b)
	err := b.Publish(e.ctx(e.opts.Timeout), topic, msg("ac", 1, "k"))
	if !errors.Is(err, bus.ErrUnavailable) {
		e.t.Errorf("Publish after Close = %v, want an error wrapping bus.ErrUnavailable", err)
	}
}
