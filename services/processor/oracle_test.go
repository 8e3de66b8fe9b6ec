package processor

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// applyAll feeds evs to shards partitions (by visitor id, as the bus key does) and flushes
// every flushEvery events.
func applyAll(t *testing.T, st *testStore, cfg Config, evs []*event.Event, shards int, flushEvery int) []*Partition {
	t.Helper()
	parts := make([]*Partition, shards)
	for i := range parts {
		p, err := OpenPartition(context.Background(), cfg, Deps{Store: st, Log: quiet()}, int32(i))
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = p
	}
	for i, e := range evs {
		p := parts[e.VisitorID%uint64(shards)]
		p.Apply(p.Next(), e)
		if i%flushEvery == flushEvery-1 {
			flush(t, p)
		}
	}
	for _, p := range parts {
		flush(t, p)
	}
	return parts
}

// The rows the processor writes incrementally equal what the definitions give for the
// complete data, visitors included, on every granularity and rolled-up dimension.
func TestRollupsMatchTheDefinitions(t *testing.T) {
	evs := synthetic(1, 120, 2*24*time.Hour)
	want := oracle(evs)
	t.Logf("%d events, %d rows", len(evs), len(want))

	t.Run("one shard", func(t *testing.T) {
		st := newTestStore(t)
		applyAll(t, st, testConfig(), evs, 1, 500)
		diffRows(t, "rollups", st.dump(t, false), want)
	})
	t.Run("three shards", func(t *testing.T) {
		st := newTestStore(t)
		applyAll(t, st, testConfig(), evs, 3, 101)
		diffRows(t, "rollups", st.dump(t, false), want)
	})
	t.Run("tiny cache and short lateness", func(t *testing.T) {
		// rows are evicted all the time and reloaded from the store when touched again
		cfg := testConfig()
		cfg.MaxCachedRows = 50
		cfg.Lateness = time.Hour
		st := newTestStore(t)
		parts := applyAll(t, st, cfg, evs, 2, 97)
		diffRows(t, "rollups", st.dump(t, false), want)
		for _, p := range parts {
			if s := p.Stats(); s.LateDropped != 0 {
				t.Errorf("late events in a time-ordered stream: %+v", s)
			}
		}
	})
}

// Every stored event is one the processor counted, with its visit's attributes, id and
// start, so the scan path sees the same visits.
func TestStoredEventsDescribeTheVisits(t *testing.T) {
	evs := synthetic(2, 40, 24*time.Hour)
	st := newTestStore(t)
	applyAll(t, st, testConfig(), evs, 2, 100)
	stored := append(st.storedEvents(t, site), st.storedEvents(t, "other.test")...)
	if len(stored) != len(evs) {
		t.Fatalf("%d stored events for %d events", len(stored), len(evs))
	}
	type visit struct {
		start int64
		first *event.Event
	}
	visits := map[uint64]*visit{}
	for _, se := range stored {
		e := decodeStored(t, se)
		if se.Time != e.Time || se.Site != e.Site || se.Time < se.SessionStart || se.Time-se.SessionStart > 24*3600*1000 {
			t.Fatalf("stored event %+v does not match its payload %+v", se, e)
		}
		if se.SessionID != SessionID(e.Site, e.VisitorID, se.SessionStart) {
			t.Fatalf("stored event at offset %d has session id %d", se.Offset, se.SessionID)
		}
		v := visits[se.SessionID]
		if v == nil {
			visits[se.SessionID] = &visit{start: se.SessionStart, first: e}
			continue
		}
		if v.start != se.SessionStart || v.first.Source != e.Source || v.first.Device != e.Device || v.first.Country != e.Country {
			t.Fatalf("events of one visit disagree on its start or attributes: %+v vs %+v", v.first, e)
		}
	}
	var want int64
	for k, a := range oracle(evs) {
		if k.Granularity == store.Day && k.Dimension == store.TotalsDimension {
			want += a.Visits
		}
	}
	if int64(len(visits)) != want {
		t.Errorf("%d visits among stored events, the definitions give %d", len(visits), want)
	}
}

// Rollups and stored events tell the same story even when events arrive out of order, a
// little before their visit began, hours late or too late: what the query engine computes
// by scanning stored events (grouped by SessionID) equals the rows.
func TestRollupsAgreeWithStoredEvents(t *testing.T) {
	evs := synthetic(4, 60, 60*time.Hour)
	rng := rand.New(rand.NewPCG(4, 4))
	for _, e := range evs {
		switch rng.IntN(15) {
		case 0:
			e.Time -= rng.Int64N(int64(20 * time.Minute / time.Millisecond)) // collector skew
		case 1:
			e.Time -= rng.Int64N(int64(60 * time.Hour / time.Millisecond)) // delayed, some too late
		}
	}
	for i := range evs {
		if j := i + 1; j < len(evs) && rng.IntN(8) == 0 {
			evs[i], evs[j] = evs[j], evs[i]
		}
	}
	st := newTestStore(t)
	parts := applyAll(t, st, testConfig(), evs, 2, 113)
	var late int64
	for _, p := range parts {
		late += p.Stats().LateDropped
	}
	stored := append(st.storedEvents(t, site), st.storedEvents(t, "other.test")...)
	if late == 0 || int64(len(stored))+late != int64(len(evs)) {
		t.Fatalf("%d events: %d stored, %d dropped as late", len(evs), len(stored), late)
	}
	diffRows(t, "rollups vs stored events", st.dump(t, false), scanOracle(t, stored))
}
