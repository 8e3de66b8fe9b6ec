package processor

import (
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

const (
	min29 = 29 * time.Minute
	min31 = 31 * time.Minute
)

func TestVisitEndsAfter30MinutesOfEventTime(t *testing.T) {
	st := newTestStore(t)
	run(t, st,
		pv(1, 0, "/"), pv(2, 0, "/"),
		pv(1, min29, "/a"), // same visit: 29 minutes
		pv(2, min31, "/a"), // new visit: 31 minutes
	)
	got := st.dump(t, false)
	wantRows(t, got, map[store.RowKey]agg{
		key(store.Day, "", 0, ""): {Pageviews: 4, Visits: 3, Bounces: 2, DurationMS: min29.Milliseconds(), Visitors: 2},
		// the second visit of visitor 2 starts at 10:31
		key(store.Minute, "", min31, ""): {Pageviews: 1, Visits: 1, Bounces: 1, Visitors: 1},
		key(store.Minute, "", min29, ""): {Pageviews: 1, Visitors: 1},
		key(store.Minute, "", 0, ""):     {Pageviews: 2, Visits: 2, Bounces: 1, DurationMS: min29.Milliseconds(), Visitors: 2},
	})
}

func TestVisitJoinsAtExactly30Minutes(t *testing.T) {
	st := newTestStore(t)
	run(t, st, pv(1, 0, "/"), pv(1, 30*time.Minute, "/a"), pv(1, 60*time.Minute+time.Millisecond, "/b"))
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		key(store.Day, "", 0, ""): {Pageviews: 3, Visits: 2, Bounces: 1, DurationMS: (30 * time.Minute).Milliseconds(), Visitors: 1},
	})
}

func TestBounces(t *testing.T) {
	st := newTestStore(t)
	run(t, st,
		pv(1, 0, "/one"),                                                  // one page view: bounce
		pv(2, 0, "/two"), custom(2, time.Minute, "Scroll", "/two", false), // non-interactive event: still a bounce
		pv(3, 0, "/three"), custom(3, time.Minute, "Signup", "/three", true), // interactive: engaged
		pv(4, 0, "/four"), pv(4, time.Minute, "/four"), // two page views (of the same page)
		custom(5, 0, "Scroll", "/five", false),                              // no page view at all: not a bounce
		custom(6, 0, "Scroll", "/six", false), pv(6, 2*time.Minute, "/six"), // ... until its single page view
	)
	got := st.dump(t, false)
	wantRows(t, got, map[store.RowKey]agg{
		key(store.Day, "", 0, ""): {Pageviews: 6, Events: 4, Visits: 6, Bounces: 3, DurationMS: 5 * 60_000, Visitors: 6},
		// the bounce rate of a page is the share of the visits viewing it that bounced
		key(store.Hour, dims.Page, 0, "/two"):   {Pageviews: 1, Events: 1, Visits: 1, Bounces: 1, DurationMS: 60_000, Visitors: 1},
		key(store.Hour, dims.Page, 0, "/three"): {Pageviews: 1, Events: 1, Visits: 1, DurationMS: 60_000, Visitors: 1},
		key(store.Hour, dims.Page, 0, "/four"):  {Pageviews: 2, Visits: 1, DurationMS: 60_000, Visitors: 1},
		key(store.Hour, dims.Page, 0, "/five"):  {Events: 1, Visits: 1, Visitors: 1},
		key(store.Hour, dims.Page, 0, "/six"):   {Pageviews: 1, Events: 1, Visits: 1, Bounces: 1, DurationMS: 120_000, Visitors: 1},
		key(store.Hour, dims.Name, 0, "Scroll"): {Events: 3, Visits: 3, Bounces: 2, DurationMS: 180_000, Visitors: 3},
		key(store.Hour, dims.Name, 0, "Signup"): {Events: 1, Visits: 1, DurationMS: 60_000, Visitors: 1},
		// a visit is counted once under a value however many of its events have it
		key(store.Hour, dims.Name, 0, "pageview"): {Pageviews: 6, Visits: 5, Bounces: 3, DurationMS: 300_000, Visitors: 5},
	})
}

func TestDurationGrowsAndStaysAtTheStartBucket(t *testing.T) {
	st := newTestStore(t)
	p := open(t, st, 0)
	p.Apply(0, pv(1, 50*time.Minute, "/"))
	p.Apply(1, pv(1, 65*time.Minute, "/a"))
	flush(t, p)
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		key(store.Hour, "", 0, ""): {Pageviews: 1, Visits: 1, DurationMS: 15 * 60_000, Visitors: 1},
	})
	p.Apply(2, custom(1, 80*time.Minute, "Play", "/a", true))
	flush(t, p)
	got := st.dump(t, false)
	wantRows(t, got, map[store.RowKey]agg{
		key(store.Hour, "", 0, ""):                  {Pageviews: 1, Visits: 1, DurationMS: 30 * 60_000, Visitors: 1},
		key(store.Hour, "", time.Hour, ""):          {Pageviews: 1, Events: 1, Visitors: 1},
		key(store.Minute, "", 50*time.Minute, ""):   {Pageviews: 1, Visits: 1, DurationMS: 30 * 60_000, Visitors: 1},
		key(store.Hour, dims.Page, time.Hour, "/a"): {Pageviews: 1, Events: 1, Visitors: 1},
		// the visit counts under /a at its start bucket (10:00), with its whole duration
		key(store.Hour, dims.Page, 0, "/a"): {Visits: 1, DurationMS: 30 * 60_000},
		key(store.Hour, dims.Page, 0, "/"):  {Pageviews: 1, Visits: 1, DurationMS: 30 * 60_000, Visitors: 1},
	})
}

func TestEntryAndExitPages(t *testing.T) {
	st := newTestStore(t)
	p := open(t, st, 0)
	p.Apply(0, pv(1, 0, "/a"))
	p.Apply(1, pv(2, 0, "/a"))
	flush(t, p)
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		key(store.Hour, dims.ExitPage, 0, "/a"): {Pageviews: 2, Visits: 2, Bounces: 2, Visitors: 2},
	})

	// visitor 1 moves on: its exit page moves with it, visits, page views and visitor
	p.Apply(2, pv(1, time.Minute, "/b"))
	p.Apply(3, pv(1, 2*time.Minute, "/c"))
	flush(t, p)
	got := st.dump(t, false)
	wantRows(t, got, map[store.RowKey]agg{
		key(store.Hour, dims.ExitPage, 0, "/a"):  {Pageviews: 1, Visits: 1, Bounces: 1, Visitors: 1},
		key(store.Hour, dims.ExitPage, 0, "/b"):  {},
		key(store.Hour, dims.ExitPage, 0, "/c"):  {Pageviews: 3, Visits: 1, DurationMS: 120_000, Visitors: 1},
		key(store.Day, dims.ExitPage, 0, "/c"):   {Pageviews: 3, Visits: 1, DurationMS: 120_000, Visitors: 1},
		key(store.Hour, dims.EntryPage, 0, "/a"): {Pageviews: 4, Visits: 2, Bounces: 1, DurationMS: 120_000, Visitors: 2},
		key(store.Hour, dims.EntryPage, 0, "/c"): {},
	})

	// the visit ends; its exit page stays /c, and a new visit starts on /c
	p.Apply(4, pv(1, 3*time.Hour, "/c"))
	flush(t, p)
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		key(store.Day, dims.ExitPage, 0, "/c"):            {Pageviews: 4, Visits: 2, Bounces: 1, DurationMS: 120_000, Visitors: 1},
		key(store.Hour, dims.ExitPage, 0, "/c"):           {Pageviews: 3, Visits: 1, DurationMS: 120_000, Visitors: 1},
		key(store.Hour, dims.ExitPage, 3*time.Hour, "/c"): {Pageviews: 1, Visits: 1, Bounces: 1, Visitors: 1},
	})
}

func TestExitPageMovesAcrossHours(t *testing.T) {
	st := newTestStore(t)
	run(t, st,
		pv(1, 59*time.Minute, "/a"),
		custom(1, 61*time.Minute, "Scroll", "/a", false),
		pv(1, 70*time.Minute, "/b"),
	)
	got := st.dump(t, false)
	wantRows(t, got, map[store.RowKey]agg{
		key(store.Hour, dims.ExitPage, 0, "/a"):          {},
		key(store.Hour, dims.ExitPage, time.Hour, "/a"):  {},
		key(store.Hour, dims.ExitPage, 0, "/b"):          {Pageviews: 1, Visits: 1, DurationMS: 11 * 60_000, Visitors: 1},
		key(store.Hour, dims.ExitPage, time.Hour, "/b"):  {Pageviews: 1, Events: 1, Visitors: 1},
		key(store.Hour, dims.EntryPage, time.Hour, "/a"): {Pageviews: 1, Events: 1, Visitors: 1},
		key(store.Day, dims.ExitPage, 0, "/b"):           {Pageviews: 2, Events: 1, Visits: 1, DurationMS: 11 * 60_000, Visitors: 1},
	})
}

func TestEntryPageOfAVisitThatStartsWithACustomEvent(t *testing.T) {
	st := newTestStore(t)
	p := open(t, st, 0)
	p.Apply(0, custom(1, 0, "Outbound", "/x", true))
	flush(t, p)
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		key(store.Hour, dims.EntryPage, 0, ""): {Events: 1, Visits: 1, Visitors: 1},
		key(store.Hour, dims.ExitPage, 0, ""):  {Events: 1, Visits: 1, Visitors: 1},
	})
	p.Apply(1, pv(1, time.Minute, "/landing"))
	flush(t, p)
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		key(store.Hour, dims.EntryPage, 0, ""):         {},
		key(store.Hour, dims.EntryPage, 0, "/landing"): {Pageviews: 1, Events: 1, Visits: 1, DurationMS: 60_000, Visitors: 1},
		key(store.Hour, dims.ExitPage, 0, "/landing"):  {Pageviews: 1, Events: 1, Visits: 1, DurationMS: 60_000, Visitors: 1},
	})
}

func TestVisitAttributesComeFromTheFirstEvent(t *testing.T) {
	st := newTestStore(t)
	run(t, st,
		withAttrs(pv(1, 0, "/"), "Google", "Mobile", "DE"),
		withAttrs(pv(1, time.Minute, "/a"), "example.com", "Desktop", "FR"),
	)
	got := st.dump(t, false)
	wantRows(t, got, map[store.RowKey]agg{
		key(store.Hour, dims.Source, 0, "Google"):      {Pageviews: 2, Visits: 1, DurationMS: 60_000, Visitors: 1},
		key(store.Hour, dims.Source, 0, "example.com"): {},
		key(store.Day, dims.Device, 0, "Mobile"):       {Pageviews: 2, Visits: 1, DurationMS: 60_000, Visitors: 1},
		key(store.Day, dims.Country, 0, "DE"):          {Pageviews: 2, Visits: 1, DurationMS: 60_000, Visitors: 1},
	})
	// stored events carry the visit's attributes, its id and its start
	evs := st.storedEvents(t, site)
	if len(evs) != 2 {
		t.Fatalf("%d stored events", len(evs))
	}
	id := SessionID(site, 1, ms(0))
	for _, se := range evs {
		e := decodeStored(t, se)
		if e.Source != "Google" || e.Device != "Mobile" || e.Country != "DE" {
			t.Errorf("stored event %d lacks the visit attributes: %+v", se.Offset, e)
		}
		if se.SessionID != id || se.SessionStart != ms(0) || se.Time != e.Time || se.Site != site {
			t.Errorf("stored event %d: session %d start %d time %d, want %d %d", se.Offset, se.SessionID, se.SessionStart, se.Time, id, ms(0))
		}
	}
}

func TestPropsRows(t *testing.T) {
	st := newTestStore(t)
	e1 := custom(1, 0, "Signup", "/", true)
	e1.Props = map[string]string{"plan": "pro", "ab": "b"}
	e2 := custom(1, time.Minute, "Signup", "/", true)
	e2.Props = map[string]string{"plan": "pro"}
	e3 := custom(2, time.Minute, "Signup", "/", true)
	e3.Props = map[string]string{"plan": "free"}
	run(t, st, e1, e2, e3)
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		key(store.Hour, "event:props:plan", 0, "pro"):   {Events: 2, Visits: 1, DurationMS: 60_000, Visitors: 1},
		key(store.Day, "event:props:plan", 0, "free"):   {Events: 1, Visits: 1, Visitors: 1},
		key(store.Hour, "event:props:ab", 0, "b"):       {Events: 1, Visits: 1, DurationMS: 60_000, Visitors: 1},
		key(store.Minute, "event:props:plan", 0, "pro"): {},
	})
}

func TestSessionIDIsStable(t *testing.T) {
	a := SessionID(site, 42, 1000)
	if a != SessionID(site, 42, 1000) || a == SessionID(site, 42, 1001) || a == SessionID(site, 43, 1000) || a == SessionID("b.test", 42, 1000) {
		t.Fatal("SessionID is not a function of site, visitor and start")
	}
}
