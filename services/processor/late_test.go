package processor

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

func TestLateEventsAreDroppedAndCounted(t *testing.T) {
	st := newTestStore(t)
	reg := prometheus.NewRegistry()
	p, err := OpenPartition(context.Background(), testConfig(), Deps{Store: st, Log: quiet(), Metrics: reg}, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := 50 * time.Hour
	p.Apply(0, pv(1, now, "/"))
	if !p.Apply(1, pv(2, now-47*time.Hour, "/old")) {
		t.Error("an event 47h behind the watermark was dropped")
	}
	if p.Apply(2, pv(3, now-49*time.Hour, "/older")) {
		t.Error("an event 49h behind the watermark was counted")
	}
	flush(t, p)
	if s := p.Stats(); s.LateDropped != 1 || s.Processed != 2 {
		t.Errorf("stats %+v", s)
	}
	if v := metricValue(t, reg, "glimpse_processor_late_events_dropped_total"); v != 1 {
		t.Errorf("glimpse_processor_late_events_dropped_total = %v", v)
	}
	got := st.dump(t, false)
	wantRows(t, got, map[store.RowKey]agg{
		key(store.Hour, "", now-47*time.Hour, ""): {Pageviews: 1, Visits: 1, Bounces: 1, Visitors: 1},
		key(store.Hour, "", now-49*time.Hour, ""): {},
	})
	if n := len(st.storedEvents(t, site)); n != 2 {
		t.Errorf("%d stored events, want 2", n)
	}
	// a repeated offset is not counted twice
	if p.Apply(1, pv(2, now, "/")) {
		t.Error("a repeated offset was applied")
	}
}

func TestEventSlightlyBeforeItsVisitJoinsAtTheStart(t *testing.T) {
	st := newTestStore(t)
	run(t, st,
		pv(1, 10*time.Minute, "/a"),
		pv(1, 9*time.Minute, "/b"), // collector clock skew: a minute "before" the visit began
		pv(1, 12*time.Minute, "/c"),
	)
	got := st.dump(t, false)
	wantRows(t, got, map[store.RowKey]agg{
		key(store.Minute, "", 10*time.Minute, ""): {Pageviews: 2, Visits: 1, DurationMS: 120_000, Visitors: 1},
		key(store.Minute, "", 9*time.Minute, ""):  {},
		// equal times keep their order: /a then /b
		key(store.Hour, dims.EntryPage, 0, "/a"): {Pageviews: 3, Visits: 1, DurationMS: 120_000, Visitors: 1},
		key(store.Hour, dims.ExitPage, 0, "/c"):  {Pageviews: 3, Visits: 1, DurationMS: 120_000, Visitors: 1},
	})
	for _, se := range st.storedEvents(t, site) {
		if se.Time < se.SessionStart {
			t.Errorf("stored event at %d before its visit's start %d", se.Time, se.SessionStart)
		}
	}
}

func TestOutOfOrderPageviewsInsideAVisit(t *testing.T) {
	st := newTestStore(t)
	run(t, st,
		custom(1, 0, "Open", "/x", false),
		pv(1, 5*time.Minute, "/late-entry"),
		pv(1, 2*time.Minute, "/early"), // arrives after, happened before: it is the entry page
		pv(1, 4*time.Minute, "/mid"),   // not the exit: /late-entry is later
	)
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		key(store.Hour, dims.EntryPage, 0, "/early"):      {Pageviews: 3, Events: 1, Visits: 1, DurationMS: 300_000, Visitors: 1},
		key(store.Hour, dims.EntryPage, 0, "/late-entry"): {},
		key(store.Hour, dims.ExitPage, 0, "/late-entry"):  {Pageviews: 3, Events: 1, Visits: 1, DurationMS: 300_000, Visitors: 1},
	})
}

func TestEventWellBeforeTheOpenVisitIsAVisitOfItsOwn(t *testing.T) {
	st := newTestStore(t)
	run(t, st,
		pv(1, 3*time.Hour, "/now"),
		pv(1, time.Hour, "/delayed"), // two hours late, 2h before the open visit
		pv(1, 3*time.Hour+time.Minute, "/now2"),
	)
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		key(store.Day, "", 0, ""):                            {Pageviews: 3, Visits: 2, Bounces: 1, DurationMS: 60_000, Visitors: 1},
		key(store.Hour, "", time.Hour, ""):                   {Pageviews: 1, Visits: 1, Bounces: 1, Visitors: 1},
		key(store.Hour, dims.ExitPage, 3*time.Hour, "/now2"): {Pageviews: 2, Visits: 1, DurationMS: 60_000, Visitors: 1},
	})
}

func TestIdleVisitsAreEvictedByTheWatermark(t *testing.T) {
	st := newTestStore(t)
	p := open(t, st, 0)
	p.Apply(0, pv(1, 0, "/"))
	p.Apply(1, pv(2, 20*time.Minute, "/"))
	flush(t, p)
	if n := p.OpenSessions(); n != 2 {
		t.Fatalf("%d open sessions", n)
	}
	// 30 minutes + 1 minute grace after visitor 1's last event
	p.Apply(2, pv(3, 31*time.Minute+time.Millisecond, "/"))
	flush(t, p)
	if n := p.OpenSessions(); n != 2 {
		t.Fatalf("%d open sessions after the watermark passed visitor 1's visit, want 2", n)
	}
	// a delayed event of visitor 1 at 29 minutes cannot join the ended visit any more
	p.Apply(3, pv(1, 29*time.Minute, "/"))
	flush(t, p)
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		key(store.Hour, "", 0, ""): {Pageviews: 4, Visits: 4, Bounces: 4, Visitors: 3},
	})
}
