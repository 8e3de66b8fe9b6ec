package processor

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// engagement is what the tracker sends when a page is hidden: the page's visible time.
func engagement(vid uint64, at time.Duration, path string) *event.Event {
	e := custom(vid, at, event.EngagementName, path, false)
	e.EngagementMS = 1500
	return e
}

// An engagement event counts in no metric and no breakdown, never starts a visit, and
// makes its visit last until its time, which also keeps the visit open for 30 minutes more.
func TestEngagementOnlyExtendsItsVisit(t *testing.T) {
	st := newTestStore(t)
	reg := prometheus.NewRegistry()
	p, err := OpenPartition(context.Background(), testConfig(), Deps{Store: st, Log: quiet(), Metrics: reg}, 0)
	if err != nil {
		t.Fatal(err)
	}
	interactive := engagement(6, time.Minute, "/z")
	interactive.Interactive = true // from a sender that sets "i" anyway
	evs := []struct {
		e    *event.Event
		want bool
	}{
		{pv(1, 0, "/read"), true},
		{pv(4, 0, "/d"), true},
		{pv(5, 0, "/a"), true},
		{pv(6, 0, "/z"), true},
		{engagement(3, 0, "/y"), false}, // no visit to extend
		{interactive, true},             // still no interaction: visitor 6 bounces
		{engagement(1, 2*time.Minute, "/read"), true},
		{engagement(5, 25*time.Minute, "/a"), true},  // keeps visitor 5's visit open...
		{engagement(4, 31*time.Minute, "/d"), false}, // visitor 4's visit is over
		{pv(2, 50*time.Minute, "/x"), true},
		{pv(5, 50*time.Minute, "/b"), true},           // ...so this joins it
		{engagement(2, 70*time.Minute, "/x"), true},   // in the next hour
		{engagement(2, 40*time.Minute, "/x"), true},   // before the visit began: joins at its start
		{engagement(2, 10*time.Minute, "/x"), false},  // long before it: no visit of its own
		{engagement(7, 120*time.Minute, "/q"), false}, // moves the watermark, counts nowhere
	}
	for i, c := range evs {
		if got := p.Apply(int64(i), c.e); got != c.want {
			t.Errorf("event %d (visitor %d at %s): Apply = %v, want %v", i, c.e.VisitorID, time.UnixMilli(c.e.Time).UTC().Format(time.TimeOnly), got, c.want)
		}
	}
	flush(t, p)
	if s := p.Stats(); s.EngagementDropped != 4 || s.Processed != 11 {
		t.Errorf("stats %+v; want 4 engagement events dropped, 11 processed", s)
	}
	if got := metricValue(t, reg, "glimpse_processor_engagement_dropped_total"); got != 4 {
		t.Errorf("glimpse_processor_engagement_dropped_total = %v, want 4", got)
	}

	// durations: 2 min (1), 20 min (2), 0 (4), 50 min (5), 1 min (6)
	dur := (2 + 20 + 0 + 50 + 1) * int64(time.Minute/time.Millisecond)
	got := st.dump(t, false)
	wantRows(t, got, map[store.RowKey]agg{
		key(store.Day, "", 0, ""):                   {Pageviews: 6, Visits: 5, Bounces: 4, DurationMS: dur, Visitors: 5},
		key(store.Hour, "", 0, ""):                  {Pageviews: 6, Visits: 5, Bounces: 4, DurationMS: dur, Visitors: 5},
		key(store.Hour, "", 70*time.Minute, ""):     {}, // visitor 2's engagement: no counts, no visitor
		key(store.Minute, "", 2*time.Minute, ""):    {},
		key(store.Hour, dims.Name, 0, "engagement"): {},
		key(store.Hour, dims.Name, 0, "pageview"):   {Pageviews: 6, Visits: 5, Bounces: 4, DurationMS: dur, Visitors: 5},
		key(store.Hour, dims.Page, 0, "/read"):      {Pageviews: 1, Visits: 1, Bounces: 1, DurationMS: 2 * 60_000, Visitors: 1},
		key(store.Hour, dims.Page, 0, "/y"):         {},
		key(store.Hour, dims.ExitPage, 0, "/b"):     {Pageviews: 2, Visits: 1, DurationMS: 50 * 60_000, Visitors: 1},
		key(store.Hour, dims.EntryPage, 0, "/x"):    {Pageviews: 1, Visits: 1, Bounces: 1, DurationMS: 20 * 60_000, Visitors: 1},
		key(store.Hour, dims.EntryPage, 0, "/z"):    {Pageviews: 1, Visits: 1, Bounces: 1, DurationMS: 60_000, Visitors: 1},
		key(store.Day, dims.Source, 0, ""):          {Pageviews: 6, Visits: 5, Bounces: 4, DurationMS: dur, Visitors: 5},
		key(store.Minute, "", 120*time.Minute, ""):  {},
	})
	for k, a := range got {
		if k.Dimension == dims.Name && k.Value == event.EngagementName || a.Events != 0 {
			t.Errorf("row %s %s %q counts engagement: %v", k.Granularity, k.Dimension, k.Value, a)
		}
	}

	// the scan path sees the kept engagement events (clamped to their visit's start) and
	// computes the same rows from them
	var kept int
	for _, se := range st.storedEvents(t, site) {
		e := decodeStored(t, se)
		if e.IsEngagement() {
			kept++
			if se.Time < se.SessionStart {
				t.Errorf("engagement stored before its visit: %+v", se)
			}
		}
	}
	if kept != 5 {
		t.Errorf("%d engagement events stored, want 5", kept)
	}
	diffRows(t, "rollups vs stored events", got, scanOracle(t, st.storedEvents(t, site)))
}

// withEngagement adds an engagement event after about a third of the page views, up to 45
// minutes later: most extend their visit, some come after it ended and count nowhere (or
// join the visitor's next visit), a few claim to be interactive.
func withEngagement(evs []*event.Event, seed uint64) []*event.Event {
	rng := rand.New(rand.NewPCG(seed, 3))
	out := slices.Clone(evs)
	for _, e := range evs {
		if !e.IsPageview() || rng.IntN(3) != 0 {
			continue
		}
		g := *e
		g.Name, g.Props, g.EngagementMS = event.EngagementName, nil, 1+rng.Int64N(600_000)
		g.Interactive = rng.IntN(10) == 0
		g.Time += rng.Int64N(int64(45 * time.Minute / time.Millisecond))
		out = append(out, &g)
	}
	slices.SortStableFunc(out, func(a, b *event.Event) int { return cmp.Compare(a.Time, b.Time) })
	return out
}

func TestEngagementMatchesTheDefinitions(t *testing.T) {
	evs := withEngagement(synthetic(9, 100, 2*24*time.Hour), 9)
	st := newTestStore(t)
	parts := applyAll(t, st, testConfig(), evs, 2, 89)
	var dropped int64
	for _, p := range parts {
		dropped += p.Stats().EngagementDropped
	}
	if dropped == 0 {
		t.Fatal("no engagement event came after its visit")
	}
	diffRows(t, "rollups", st.dump(t, false), oracle(evs))
}

// With engagement events, resends and events out of order, the scan path (stored events
// grouped by SessionID) still computes the rows.
func TestEngagementAndResendsAgreeWithStoredEvents(t *testing.T) {
	evs, _ := withResends(withIDs(withEngagement(synthetic(10, 60, 40*time.Hour), 10)), 10)
	rng := rand.New(rand.NewPCG(10, 10))
	for _, e := range evs {
		if rng.IntN(15) == 0 {
			e.Time -= rng.Int64N(int64(20 * time.Minute / time.Millisecond)) // collector skew
		}
	}
	for i := range evs {
		if j := i + 1; j < len(evs) && rng.IntN(8) == 0 {
			evs[i], evs[j] = evs[j], evs[i]
		}
	}
	st := newTestStore(t)
	parts := applyAll(t, st, testConfig(), evs, 2, 97)
	var s Stats
	for _, p := range parts {
		ps := p.Stats()
		s.Duplicates += ps.Duplicates
		s.EngagementDropped += ps.EngagementDropped
	}
	if s.Duplicates == 0 || s.EngagementDropped == 0 {
		t.Fatalf("stats %+v: the stream should have both", s)
	}
	stored := append(st.storedEvents(t, site), st.storedEvents(t, "other.test")...)
	diffRows(t, "rollups vs stored events", st.dump(t, false), scanOracle(t, stored))
}
