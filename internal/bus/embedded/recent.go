package embedded

import (
	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// A consumer that keeps up asks for messages a few milliseconds after they were written.
// Reading them back from Pebble costs an iterator, a seek and a copy per Fetch, for bytes
// the writer had in hand a moment earlier; so every partition keeps its newest messages in
// memory as well (recentLog), and Fetch serves them from there when the whole range asked
// for is still held. The log in Pebble stays the only source of truth: a message enters
// recent only after the synced commit that made it durable, in the same critical section
// that moves the tail, and a consumer that lags (or starts after a restart) reads Pebble.
const (
	// recentMaxBytes bounds the keys and values one partition keeps in memory; with the
	// default 8 partitions, 2 MiB in all, a second or more of beacons at full speed.
	recentMaxBytes = 256 << 10
	// arenaChunk is the size of the blocks the writer copies small messages into, so that
	// a round costs a few allocations rather than one per message.
	arenaChunk = 32 << 10
)

// recentLog holds copies of the messages with offsets [from, from+len(msgs)), in order. The
// bytes of a held message are never written again, so Fetch hands them out without copying.
type recentLog struct {
	msgs  []bus.Message
	from  int64
	bytes int
}

// stage copies m, stored at offset off, for recent. Writer goroutine only; publishStaged
// or unstage follows once the round's commit is known.
func (p *partition) stage(m *bus.Message, off int64) {
	n := len(m.Key) + len(m.Value)
	var buf []byte
	if n > arenaChunk/4 {
		buf = make([]byte, n) // large: its own block, so it does not waste a chunk
	} else {
		if cap(p.arena)-len(p.arena) < n {
			p.arena = make([]byte, 0, arenaChunk)
		}
		start := len(p.arena)
		p.arena = p.arena[:start+n]
		buf = p.arena[start : start+n : start+n]
	}
	copy(buf, m.Key)
	copy(buf[len(m.Key):], m.Value)
	msg := bus.Message{
		Key:       buf[:len(m.Key):len(m.Key)],
		Value:     buf[len(m.Key):],
		Partition: p.id,
		Offset:    off,
	}
	if len(m.Key) == 0 {
		msg.Key = nil
	}
	if len(m.Headers) > 0 {
		msg.Headers = make([]bus.Header, len(m.Headers))
		for i, h := range m.Headers {
			msg.Headers[i] = bus.Header{Key: h.Key, Value: append([]byte(nil), h.Value...)}
		}
	}
	p.staged = append(p.staged, msg)
}

// publishStaged moves the staged messages of a durable round into recent. The caller holds
// p.mu and has just moved the tail past them.
func (p *partition) publishStaged() {
	p.recent.add(p.staged)
	clear(p.staged) // drop the references: recent holds its own copies of the headers
	p.staged = p.staged[:0]
}

// unstage forgets the staged messages of a round whose commit failed.
func (p *partition) unstage() {
	clear(p.staged)
	p.staged = p.staged[:0]
}

// add appends msgs, which continue the held offsets, and drops the oldest messages while
// more than recentMaxBytes are held.
func (r *recentLog) add(msgs []bus.Message) {
	if len(msgs) == 0 {
		return
	}
	if len(r.msgs) == 0 || r.from+int64(len(r.msgs)) != msgs[0].Offset {
		// Nothing held, or not contiguous with what is (cannot happen while offsets are
		// dense; starting over keeps the invariant regardless).
		clear(r.msgs)
		r.msgs, r.from, r.bytes = r.msgs[:0], msgs[0].Offset, 0
	}
	for i := range msgs {
		r.bytes += len(msgs[i].Key) + len(msgs[i].Value)
	}
	r.msgs = append(r.msgs, msgs...)
	if r.bytes <= recentMaxBytes {
		return
	}
	// Drop from the front until at most half the budget is held, into a new array so the
	// dropped messages' memory can be collected; this runs once per half budget, not per
	// message.
	drop := 0
	for drop < len(r.msgs) && r.bytes > recentMaxBytes/2 {
		r.bytes -= len(r.msgs[drop].Key) + len(r.msgs[drop].Value)
		drop++
	}
	kept := make([]bus.Message, len(r.msgs)-drop, max(2*(len(r.msgs)-drop), 64))
	copy(kept, r.msgs[drop:])
	r.msgs, r.from = kept, r.from+int64(drop)
}

// rangeOf returns the held messages with offsets [from, to), or nil unless all of them are
// held. The slice is the caller's; the messages' bytes are shared and must not be modified.
func (r *recentLog) rangeOf(from, to int64) []bus.Message {
	if from < r.from || to > r.from+int64(len(r.msgs)) || from >= to {
		return nil
	}
	out := make([]bus.Message, to-from)
	copy(out, r.msgs[from-r.from:to-r.from])
	return out
}

// recentRange returns the messages [from, to) from memory, or nil when they are not all
// held there.
func (p *partition) recentRange(from, to int64) []bus.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.recent.rangeOf(from, to)
}
