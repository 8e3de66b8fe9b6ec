package processor

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

// A partition that releases its rows between bursts of events keeps counting exactly: the
// rows are read back from the store when the next burst touches them.
func TestReleasedRowsAreReloaded(t *testing.T) {
	evs := synthetic(7, 80, 2*24*time.Hour)
	want := oracle(evs)
	st := newTestStore(t)
	const shards = 2
	parts := make([]*Partition, shards)
	for i := range parts {
		p, err := OpenPartition(context.Background(), testConfig(), Deps{Store: st, Log: quiet()}, int32(i))
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = p
	}
	released := 0
	for i, e := range evs {
		p := parts[e.VisitorID%shards]
		p.Apply(p.Next(), e)
		if i%150 != 149 {
			continue
		}
		for _, p := range parts {
			flush(t, p)
			if p.CachedRows() == 0 {
				continue
			}
			p.ReleaseRows()
			if n := p.CachedRows(); n != 0 {
				t.Fatalf("%d rows cached after ReleaseRows on a flushed partition", n)
			}
			released++
		}
	}
	for _, p := range parts {
		flush(t, p)
	}
	if released == 0 {
		t.Fatal("no rows were ever released: the test exercises nothing")
	}
	diffRows(t, "rollups", st.dump(t, false), want)
}

// Rows that are not in the store yet (changed since the last flush) stay.
func TestReleaseRowsKeepsUnflushedRows(t *testing.T) {
	st := newTestStore(t)
	p := run(t, st, pv(1, 0, "/a"), pv(2, time.Minute, "/b"))
	p.Apply(p.Next(), pv(3, 2*time.Minute, "/c"))
	if err := p.Resolve(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := p.CachedRows()
	p.ReleaseRows()
	after := p.CachedRows()
	if after == 0 || after >= before {
		t.Fatalf("cached rows %d → %d: want the changed rows kept and the others dropped", before, after)
	}
	flush(t, p)
	p.ReleaseRows()
	if n := p.CachedRows(); n != 0 {
		t.Fatalf("%d rows cached after a flush and ReleaseRows", n)
	}
	got := st.dump(t, false)
	wantRows(t, got, oracle([]*event.Event{pv(1, 0, "/a"), pv(2, time.Minute, "/b"), pv(3, 2*time.Minute, "/c")}))
}

func TestIdleLongEnough(t *testing.T) {
	for _, c := range []struct {
		idle, flush time.Duration
		want        bool
	}{
		{0, time.Second, false},
		{4 * time.Second, time.Second, false},
		{5 * time.Second, time.Second, true},
		{20 * time.Second, 5 * time.Second, false}, // fewer than 5 flush intervals
		{25 * time.Second, 5 * time.Second, true},
	} {
		if got := idleLongEnough(c.idle, c.flush); got != c.want {
			t.Errorf("idleLongEnough(%s, %s) = %v, want %v", c.idle, c.flush, got, c.want)
		}
	}
}

// A processor whose partition stops receiving events releases the partition's rows, and
// counts the next events exactly.
func TestIdleProcessorReleasesRows(t *testing.T) {
	evs := synthetic(8, 30, 12*time.Hour)
	half := len(evs) / 2
	c := newFakeClaim(0, messages(t, evs[:half]...))
	st := newTestStore(t)
	reg := prometheus.NewRegistry()
	// Every reading of the clock is a second later: idle seconds pass in a few loops.
	var clock atomic.Int64
	p, err := New(testConfig(), Deps{Bus: &fakeBus{claims: []*fakeClaim{c}}, Store: st, Log: quiet(), Metrics: reg,
		Now: func() time.Time { return base.Add(time.Duration(clock.Add(1)) * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, p)
	cachedRows := func() float64 { return metricValue(t, reg, "glimpse_processor_cached_rows") }
	waitFor(t, "half the events", func() bool { return c.Committed() == int64(half) })
	waitFor(t, "the rows released", func() bool { return cachedRows() == 0 })

	c.append(encode(t, evs[half:]...)...)
	waitFor(t, "every event", func() bool { return c.Committed() == int64(len(evs)) })
	waitFor(t, "the rows released again", func() bool { return cachedRows() == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	diffRows(t, "rollups", st.dump(t, false), oracle(evs))
}
