package processor

import (
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

func TestMinuteBoundary(t *testing.T) {
	st := newTestStore(t)
	run(t, st,
		pv(1, time.Minute-time.Millisecond, "/"), // 10:00:59.999
		pv(2, time.Minute, "/"),                  // 10:01:00.000
	)
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		key(store.Minute, "", 0, ""):           {Pageviews: 1, Visits: 1, Bounces: 1, Visitors: 1},
		key(store.Minute, "", time.Minute, ""): {Pageviews: 1, Visits: 1, Bounces: 1, Visitors: 1},
		key(store.Hour, "", 0, ""):             {Pageviews: 2, Visits: 2, Bounces: 2, Visitors: 2},
	})
}

func TestVisitAcrossMidnightBelongsToItsStartDay(t *testing.T) {
	st := newTestStore(t)
	late := 13*time.Hour + 50*time.Minute // 23:50
	run(t, st,
		withAttrs(pv(1, late, "/a"), "Google", "Mobile", "DE"),
		pv(1, late+20*time.Minute, "/b"), // 00:10 the next day
	)
	dur := (20 * time.Minute).Milliseconds()
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		// visits, bounces, durations: the bucket of the start
		key(store.Day, "", late, ""):                   {Pageviews: 1, Visits: 1, DurationMS: dur, Visitors: 1},
		key(store.Day, "", late+20*time.Minute, ""):    {Pageviews: 1, Visitors: 1},
		key(store.Hour, "", late, ""):                  {Pageviews: 1, Visits: 1, DurationMS: dur, Visitors: 1},
		key(store.Minute, "", late, ""):                {Pageviews: 1, Visits: 1, DurationMS: dur, Visitors: 1},
		key(store.Minute, "", late+20*time.Minute, ""): {Pageviews: 1, Visitors: 1},
		// page views, events, visitors: the bucket of each event
		key(store.Day, dims.Source, late, "Google"):                {Pageviews: 1, Visits: 1, DurationMS: dur, Visitors: 1},
		key(store.Day, dims.Source, late+20*time.Minute, "Google"): {Pageviews: 1, Visitors: 1},
		// the visit counts under /b at its start day although /b was viewed the next day
		key(store.Day, dims.Page, late, "/b"):                    {Visits: 1, DurationMS: dur},
		key(store.Day, dims.Page, late+20*time.Minute, "/b"):     {Pageviews: 1, Visitors: 1},
		key(store.Day, dims.ExitPage, late, "/b"):                {Pageviews: 1, Visits: 1, DurationMS: dur, Visitors: 1},
		key(store.Day, dims.ExitPage, late+20*time.Minute, "/b"): {Pageviews: 1, Visitors: 1},
	})
}

func TestHourRowsHoldEveryRolledDimension(t *testing.T) {
	st := newTestStore(t)
	e := &event.Event{Site: site, VisitorID: 9, Time: ms(0), Name: event.PageviewName, Hostname: site, Path: "/p",
		Referrer: "news.ycombinator.com/item", Source: "Hacker News", UTMSource: "hn", UTMMedium: "social", UTMCampaign: "launch",
		Browser: "Firefox", OS: "Linux", Device: "Desktop", Country: "NZ"}
	run(t, st, e)
	got := st.dump(t, false)
	one := agg{Pageviews: 1, Visits: 1, Bounces: 1, Visitors: 1}
	for _, d := range dims.Rolled {
		var v string
		if dims.IsEvent(d) {
			v, _ = dims.EventValue(d, e)
		} else {
			v, _ = dims.VisitValue(d, &dims.Visit{EntryPage: "/p", ExitPage: "/p", First: e})
		}
		for _, g := range []store.Granularity{store.Hour, store.Day} {
			if a := got[key(g, d, 0, v)]; a != one {
				t.Errorf("%s %s %q: %v", g, d, v, a)
			}
		}
		if a := got[key(store.Minute, d, 0, v)]; a != (agg{}) {
			t.Errorf("minute rows hold only totals, found %s: %v", d, a)
		}
	}
}

func TestRowsCarryShardAndOffset(t *testing.T) {
	st := newTestStore(t)
	p := open(t, st, 3)
	p.Apply(10, pv(1, 0, "/"))
	p.Apply(11, pv(1, time.Minute, "/"))
	flush(t, p)
	for _, r := range st.rawRows(t) {
		if r.Shard != 3 || r.Offset != 11 {
			t.Fatalf("row %+v: shard %d offset %d, want 3 and 11", r.RowKey, r.Shard, r.Offset)
		}
	}
	for _, se := range st.storedEvents(t, site) {
		if se.Shard != 3 || (se.Offset != 10 && se.Offset != 11) {
			t.Fatalf("stored event shard %d offset %d", se.Shard, se.Offset)
		}
	}
}
