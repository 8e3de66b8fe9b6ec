package embedded

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

func TestRecentLogKeepsTheNewestWithinItsBudget(t *testing.T) {
	var r recentLog
	value := bytes.Repeat([]byte("v"), 1000)
	var off int64
	for round := 0; round < 100; round++ {
		var msgs []bus.Message
		for i := 0; i < 10; i++ {
			msgs = append(msgs, bus.Message{Key: []byte("k"), Value: value, Offset: off})
			off++
		}
		r.add(msgs)
		if r.bytes > recentMaxBytes {
			t.Fatalf("round %d: holds %d bytes, budget %d", round, r.bytes, recentMaxBytes)
		}
		if r.from+int64(len(r.msgs)) != off {
			t.Fatalf("round %d: holds [%d, %d), want it to end at %d", round, r.from, r.from+int64(len(r.msgs)), off)
		}
		for i, m := range r.msgs {
			if m.Offset != r.from+int64(i) {
				t.Fatalf("round %d: message %d has offset %d, want %d", round, i, m.Offset, r.from+int64(i))
			}
		}
	}
	if r.from == 0 {
		t.Fatal("1000 messages of 1 kB never dropped the oldest")
	}
	if got := r.rangeOf(off-5, off); len(got) != 5 || got[0].Offset != off-5 {
		t.Errorf("rangeOf the newest 5 = %d messages", len(got))
	}
	if got := r.rangeOf(r.from-1, off); got != nil {
		t.Errorf("rangeOf a range that starts before the held messages = %d messages, want nil", len(got))
	}
	if got := r.rangeOf(off-1, off+1); got != nil {
		t.Errorf("rangeOf a range past the held messages = %d messages, want nil", len(got))
	}
	r.add([]bus.Message{{Offset: off + 10}}) // a gap: starts over
	if r.from != off+10 || len(r.msgs) != 1 {
		t.Errorf("after a gap holds [%d, +%d), want only offset %d", r.from, len(r.msgs), off+10)
	}
}

// A consumer that keeps up is served from memory, a consumer that starts late from the log,
// and both see exactly what was published, even when the publisher reuses its buffers.
func TestFetchFromMemoryAndFromTheLogAgree(t *testing.T) {
	b := openT(t, t.TempDir(), Options{Partitions: 1})
	defer b.Close()
	ctx := context.Background()
	const topic = "recent"
	want := map[int64]string{}
	buf := make([]byte, 0, 64)
	var next int64
	publish := func(n int) {
		for i := 0; i < n; i++ {
			buf = fmt.Appendf(buf[:0], "value %d %s", next, bytes.Repeat([]byte("x"), int(next%300)))
			want[next] = string(buf)
			var headers []bus.Header
			if next%7 == 0 {
				headers = []bus.Header{{Key: "h", Value: []byte(fmt.Sprint(next))}}
			}
			if err := b.Publish(ctx, topic, bus.Message{Key: []byte("k"), Value: buf, Headers: headers}); err != nil {
				t.Error(err)
				return
			}
			copy(buf, "overwritten by the publisher")
			next++
		}
	}
	// check runs in a handler's goroutine: it reports with t.Errorf, never t.Fatal.
	check := func(name string, msgs []bus.Message, from int64) {
		for i, m := range msgs {
			off := from + int64(i)
			if m.Offset != off || string(m.Value) != want[off] || string(m.Key) != "k" {
				t.Errorf("%s: message %d = offset %d %q, want offset %d %q", name, i, m.Offset, m.Value, off, want[off])
				return
			}
			if (off%7 == 0) != (len(m.Headers) == 1) || (off%7 == 0 && string(m.Headers[0].Value) != fmt.Sprint(off)) {
				t.Errorf("%s: offset %d has headers %v", name, off, m.Headers)
				return
			}
		}
	}

	publish(50)
	// fetchAll runs in a handler's goroutine too.
	fetchAll := func(c bus.Claim, n int) []bus.Message {
		var got []bus.Message
		for len(got) < n {
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			msgs, err := c.Fetch(fctx, n-len(got))
			cancel()
			if err != nil {
				t.Error(err)
				return got
			}
			got = append(got, msgs...)
		}
		return got
	}
	done := make(chan error, 1)
	cctx, stop := context.WithCancel(ctx)
	go func() {
		done <- b.Consume(cctx, topic, "g", func(hctx context.Context, c bus.Claim) error {
			check("keeping up", fetchAll(c, 50), 0)
			publish(2000) // more than memory holds: the oldest of them are only in the log
			check("keeping up", fetchAll(c, 2000), 50)
			if c.(*claim).part.recent.from == 0 {
				t.Error("memory still holds offset 0 after 2000 more messages")
			}
			stop()
			return nil
		})
	}()
	<-done

	// A second group starts at offset 0: the oldest come from the log, the newest from memory.
	cctx, stop = context.WithCancel(ctx)
	defer stop()
	go func() {
		done <- b.Consume(cctx, topic, "late", func(hctx context.Context, c bus.Claim) error {
			check("late", fetchAll(c, int(next)), 0)
			stop()
			return nil
		})
	}()
	<-done
}
