package query

import (
	"context"
	"log/slog"
	"reflect"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
	"github.com/glimpse-analytics/glimpse/services/processor"
)

// Engagement events only extend their visit (docs/metrics.md). The processor writes the
// rollups and stores the events; both paths must give the same answers from them.
//
//	A  visitor 1: 10:00 /, engagement 10:02                       (bounce, 2 min)
//	B  visitor 2: 11:00 /blog → 11:01 /pricing, engagement 11:20  (20 min)
//	C  visitor 3: engagement 12:00 alone                          (no visit: dropped)
//	D  visitor 4: 23:50 /docs, engagement 00:05 the next day      (bounce, 15 min)
//	E  visitor 5: 13:00 Signup on /pricing, engagement 13:10      (no page view, 10 min)
func TestEngagementOnBothPaths(t *testing.T) {
	ev := func(vid uint64, ts, name, path string) *event.Event {
		e := &event.Event{Site: "e.test", VisitorID: vid, Time: at(ts).UnixMilli(), Name: name, Hostname: "e.test", Path: path, Source: "Google"}
		if name == event.EngagementName {
			e.EngagementMS = 60_000
		} else {
			e.Interactive = true
		}
		return e
	}
	evs := []*event.Event{
		ev(1, "2026-03-10 10:00:00", "pageview", "/"),
		ev(1, "2026-03-10 10:02:00", "engagement", "/"),
		ev(2, "2026-03-10 11:00:00", "pageview", "/blog"),
		ev(2, "2026-03-10 11:01:00", "pageview", "/pricing"),
		ev(2, "2026-03-10 11:20:00", "engagement", "/pricing"),
		ev(3, "2026-03-10 12:00:00", "engagement", "/x"),
		ev(5, "2026-03-10 13:00:00", "Signup", "/pricing"),
		ev(5, "2026-03-10 13:10:00", "engagement", "/pricing"),
		ev(4, "2026-03-10 23:50:00", "pageview", "/docs"),
		ev(4, "2026-03-11 00:05:00", "engagement", "/docs"),
	}
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	p, err := processor.OpenPartition(ctx, processor.DefaultConfig(), processor.Deps{Store: st, Log: slog.New(slog.DiscardHandler)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		p.Apply(int64(i), e)
	}
	if _, err := p.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.EngagementDropped != 1 {
		t.Fatalf("processor stats %+v", s)
	}

	rollup := newTestService(t, st)
	scan := newTestService(t, st, func(c *Config) { c.ForceScan = true })
	day := `"date_range":["2026-03-10","2026-03-10"]`
	cases := []struct {
		query string
		want  [][]any // nil: only compare the paths
	}{
		// visits A B D E; page views 1+2+1; the Signup; bounces A D;
		// duration (120+1200+900+600)/4 = 705 s
		{`{"site_id":"e.test","metrics":` + allMetrics + `,` + day + `}`, [][]any{{"4", "4", "4", "1", "50", "705", "1"}}},
		{`{"site_id":"e.test","metrics":["visitors","visits","pageviews","events","visit_duration"],` + day + `,"dimensions":["event:name"]}`,
			[][]any{{"pageview", "3", "3", "4", "0", "740"}, {"Signup", "1", "1", "0", "1", "600"}}},
		{`{"site_id":"e.test","metrics":["visits","pageviews","events","visit_duration"],` + day + `,"dimensions":["event:page"]}`, nil},
		{`{"site_id":"e.test","metrics":["visitors","visits","pageviews","events","visit_duration"],` + day + `,"dimensions":["time:hour"]}`, nil},
		{`{"site_id":"e.test","metrics":["visits","events"],` + day + `,"filters":[["is","event:name",["engagement"]]]}`, [][]any{{"0", "0"}}},
		{`{"site_id":"e.test","metrics":["visitors"],"date_range":["2026-03-11","2026-03-11"]}`, [][]any{{"0"}}},
	}
	for _, c := range cases {
		a, b := rowsOf(rollup.query(t, c.query)), rowsOf(scan.query(t, c.query))
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s\nrollup %v\nscan   %v", c.query, a, b)
		}
		if c.want != nil && !reflect.DeepEqual(b, c.want) {
			t.Errorf("%s\n got %v\nwant %v", c.query, b, c.want)
		}
	}

	// the exit page is that of the last page view, engagement or not; the rollup row of the
	// exit page B moved away from holds nothing and is not listed
	q := `{"site_id":"e.test","metrics":["visits","bounce_rate","visit_duration"],` + day + `,"dimensions":["visit:exit_page"]}`
	for _, s := range []testService{rollup, scan} {
		if got, want := rowsOf(s.query(t, q)), [][]any{{"", "1", "0", "600"}, {"/", "1", "100", "120"}, {"/docs", "1", "100", "900"}, {"/pricing", "1", "0", "1200"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s\n got %v\nwant %v", q, got, want)
		}
	}

	// only the scan path can answer this one: an event filter with a breakdown
	q = `{"site_id":"e.test","metrics":["visits","pageviews","events","visit_duration"],` + day +
		`,"filters":[["is","event:page",["/pricing"]]],"dimensions":["visit:source"]}`
	r := rollup.query(t, q)
	if r.Meta.Path != PathScan {
		t.Fatalf("answered from %s", r.Meta.Path)
	}
	if got, want := rowsOf(r), [][]any{{"Google", "2", "1", "1", "900"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("%s\n got %v\nwant %v", q, got, want)
	}
}
