package bustest

import (
	"bytes"
	"strconv"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// Headers published with a message are consumed with it, in order.
func testHeaders(e *env) {
	b := e.client()
	topic, group := e.name("t"), e.name("g")
	msgs := []bus.Message{
		{Key: []byte("k1"), Value: []byte("with headers"), Headers: []bus.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte{0, 0xff}}, {Key: "empty"}}},
		{Key: []byte("k2"), Value: []byte("without")},
	}
	e.publish(b, topic, msgs...)
	tr := e.drain(b, topic, group, len(msgs), false)
	for _, m := range tr.inPartitionOrder() {
		switch string(m.Value) {
		case "with headers":
			if len(m.Headers) != 3 || m.Headers[0].Key != "a" || string(m.Headers[0].Value) != "1" ||
				m.Headers[1].Key != "b" || !bytes.Equal(m.Headers[1].Value, []byte{0, 0xff}) ||
				m.Headers[2].Key != "empty" || len(m.Headers[2].Value) != 0 {
				e.t.Errorf("headers read back as %+v", m.Headers)
			}
		case "without":
			if len(m.Headers) != 0 {
				e.t.Errorf("a message published without headers came back with %+v", m.Headers)
			}
		}
	}
}

// A bus that implements bus.DeadLetterer stores a dead letter with the message's key and
// value and headers naming the reason and the source; the source topic is unchanged.
func testDeadLetter(e *env) {
	b := e.client()
	dl, ok := b.Bus.(bus.DeadLetterer)
	if !ok {
		e.t.Skip("the bus has no dead-letter topic")
	}
	topic := e.name("t")
	e.publish(b, topic, bus.Message{Key: []byte("visitor"), Value: []byte("\x01not json")})
	src := e.drain(b, topic, e.name("g"), 1, false).inPartitionOrder()[0]
	if err := dl.DeadLetter(e.ctx(e.opts.Timeout), topic, src, "event: malformed body"); err != nil {
		e.t.Fatalf("DeadLetter: %v", err)
	}
	dlq := dl.DeadLetterTopic(topic)
	if dlq == topic || dlq == "" {
		e.t.Fatalf("DeadLetterTopic(%q) = %q", topic, dlq)
	}
	got := e.drain(b, dlq, e.name("g"), 1, false).inPartitionOrder()
	if len(got) != 1 {
		e.t.Fatalf("%d dead letters, want 1", len(got))
	}
	m := got[0]
	if string(m.Key) != "visitor" || string(m.Value) != "\x01not json" {
		e.t.Errorf("dead letter %q=%q, want the message's key and value", m.Key, m.Value)
	}
	want := map[string]string{
		bus.HeaderDeadLetterReason: "event: malformed body",
		bus.HeaderSourceTopic:      topic,
		bus.HeaderSourcePartition:  strconv.Itoa(src.Partition),
		bus.HeaderSourceOffset:     strconv.FormatInt(src.Offset, 10),
	}
	for k, v := range want {
		if got, ok := bus.HeaderValue(m.Headers, k); !ok || string(got) != v {
			e.t.Errorf("header %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	if n := e.partitions(b, topic); n < 1 {
		e.t.Errorf("source topic has %d partitions", n)
	}
}
