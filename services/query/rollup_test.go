package query

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/sketch"
	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
)

func visitorsOf(ids ...uint64) []byte {
	s := sketch.New()
	for _, id := range ids {
		s.Add(id)
	}
	return s.Binary()
}

func hrow(g store.Granularity, dim string, bucket time.Time, value string, shard int32, a store.Aggregate) store.Row {
	return store.Row{RowKey: store.RowKey{Site: "r.test", Granularity: g, Dimension: dim, Bucket: bucket.Unix(), Value: value, Shard: shard}, Aggregate: a, Offset: 7}
}

// rollupFixture is hand-built rows over two days and two shards.
func rollupFixture(t *testing.T) *memstore.Store {
	d1, d2 := at("2026-03-09 00:00:00"), at("2026-03-10 00:00:00")
	outside := at("2026-03-11 00:00:00")
	rows := []store.Row{
		// totals, day rows
		hrow(store.Day, "", d1, "", 0, store.Aggregate{Pageviews: 10, Events: 1, Visits: 4, Bounces: 2, DurationMS: 40_000, Visitors: visitorsOf(1, 2, 3)}),
		hrow(store.Day, "", d1, "", 1, store.Aggregate{Pageviews: 5, Visits: 1, Bounces: 1, Visitors: visitorsOf(3, 4)}),
		hrow(store.Day, "", d2, "", 0, store.Aggregate{Pageviews: 3, Events: 2, Visits: 2, DurationMS: 60_000, Visitors: visitorsOf(1, 5)}),
		hrow(store.Day, "", outside, "", 0, store.Aggregate{Pageviews: 1000, Visits: 1000, Visitors: visitorsOf(99)}),
		// totals, hour rows (used for time:hour)
		hrow(store.Hour, "", d1.Add(9*time.Hour), "", 0, store.Aggregate{Pageviews: 10, Events: 1, Visits: 4, Bounces: 2, DurationMS: 40_000, Visitors: visitorsOf(1, 2, 3)}),
		hrow(store.Hour, "", d1.Add(9*time.Hour), "", 1, store.Aggregate{Pageviews: 5, Visits: 1, Bounces: 1, Visitors: visitorsOf(3, 4)}),
		hrow(store.Hour, "", d2.Add(23*time.Hour), "", 0, store.Aggregate{Pageviews: 3, Events: 2, Visits: 2, DurationMS: 60_000, Visitors: visitorsOf(1, 5)}),
		// pages, day rows
		hrow(store.Day, "event:page", d1, "/", 0, store.Aggregate{Pageviews: 6, Visits: 4, Bounces: 2, DurationMS: 40_000, Visitors: visitorsOf(1, 2, 3)}),
		hrow(store.Day, "event:page", d1, "/", 1, store.Aggregate{Pageviews: 5, Visits: 1, Bounces: 1, Visitors: visitorsOf(3, 4)}),
		hrow(store.Day, "event:page", d1, "/docs", 0, store.Aggregate{Pageviews: 4, Events: 1, Visits: 2, DurationMS: 30_000, Visitors: visitorsOf(1, 2)}),
		hrow(store.Day, "event:page", d2, "/docs", 0, store.Aggregate{Pageviews: 3, Events: 2, Visits: 2, DurationMS: 60_000, Visitors: visitorsOf(1, 5)}),
		// sources, day rows
		hrow(store.Day, "visit:source", d1, "Google", 0, store.Aggregate{Pageviews: 8, Visits: 3, Bounces: 1, DurationMS: 40_000, Visitors: visitorsOf(1, 2)}),
		hrow(store.Day, "visit:source", d1, "", 0, store.Aggregate{Pageviews: 2, Events: 1, Visits: 1, Bounces: 1, Visitors: visitorsOf(3)}),
		hrow(store.Day, "visit:source", d1, "Bing", 1, store.Aggregate{Pageviews: 5, Visits: 1, Bounces: 1, Visitors: visitorsOf(3, 4)}),
		hrow(store.Day, "visit:source", d2, "Google", 0, store.Aggregate{Pageviews: 3, Events: 2, Visits: 2, DurationMS: 60_000, Visitors: visitorsOf(1, 5)}),
	}
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	if err := st.WriteRows(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRollupAnswers(t *testing.T) {
	svc := newTestService(t, rollupFixture(t))
	rng := `"date_range":["2026-03-09","2026-03-10"]`
	cases := []struct {
		name, query string
		gran        string
		want        [][]any
	}{
		{"totals merge shards and days", `{"metrics":` + allMetrics + `,` + rng + `}`, "day",
			// visitors {1..5}; visits 7; pageviews 18; events 3; bounces 3/7; 100 s / 7; 18/7
			[][]any{{"5", "7", "18", "3", "42.86", "14", "2.57"}}},
		{"days", `{"metrics":["visitors","visits","pageviews"],` + rng + `,"dimensions":["time:day"]}`, "day",
			[][]any{{"2026-03-09", "4", "5", "15"}, {"2026-03-10", "2", "2", "3"}}},
		{"one week holds both days", `{"metrics":["visitors","visits"],` + rng + `,"dimensions":["time:week"]}`, "day",
			[][]any{{"2026-03-09", "5", "7"}}},
		{"month", `{"metrics":["visitors"],` + rng + `,"dimensions":["time:month"]}`, "day",
			[][]any{{"2026-03-01", "5"}}},
		{"hours read hour rows", `{"metrics":["visitors","pageviews"],` + rng + `,"dimensions":["time:hour"]}`, "hour",
			[][]any{{"2026-03-09 09:00:00", "4", "15"}, {"2026-03-10 23:00:00", "2", "3"}}},
		{"top pages", `{"metrics":["visitors","pageviews","bounce_rate"],` + rng + `,"dimensions":["event:page"]}`, "day",
			[][]any{{"/", "4", "11", "60"}, {"/docs", "3", "7", "0"}}},
		{"limit and offset", `{"metrics":["pageviews"],` + rng + `,"dimensions":["event:page"],"limit":1,"offset":1}`, "day",
			[][]any{{"/docs", "7"}}},
		{"order by dimension", `{"metrics":["pageviews"],` + rng + `,"dimensions":["event:page"],"order_by":[["event:page","desc"]]}`, "day",
			[][]any{{"/docs", "7"}, {"/", "11"}}},
		{"pages by day", `{"metrics":["pageviews"],` + rng + `,"dimensions":["time:day","event:page"]}`, "day",
			[][]any{{"2026-03-09", "/", "11"}, {"2026-03-09", "/docs", "4"}, {"2026-03-10", "/docs", "3"}}},
		{"filter on the broken-down dimension", `{"metrics":["visits"],` + rng + `,"dimensions":["visit:source"],"filters":[["is_not","visit:source",[""]]]}`, "day",
			[][]any{{"Google", "5"}, {"Bing", "1"}}},
		{"visit filter without breakdown adds up values", `{"metrics":["visitors","visits","pageviews"],` + rng + `,"filters":[["is","visit:source",["Google","Bing"]]]}`, "day",
			[][]any{{"5", "6", "16"}}},
		{"single page filter reads one value", `{"metrics":["visitors","visits"],` + rng + `,"filters":[["is","event:page",["/docs"]]],"dimensions":["time:day"]}`, "day",
			[][]any{{"2026-03-09", "2", "2"}, {"2026-03-10", "2", "2"}}},
		{"empty range", `{"metrics":["visitors","visits","bounce_rate"],"date_range":["2026-01-01","2026-01-31"]}`, "day",
			[][]any{{"0", "0", "0"}}},
		{"empty breakdown", `{"metrics":["visitors"],"date_range":["2026-01-01","2026-01-31"],"dimensions":["event:page"]}`, "day",
			[][]any{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := svc.query(t, `{"site_id":"r.test",`+c.query[1:])
			if r.Meta.Path != PathRollup || r.Meta.Granularity != c.gran {
				t.Errorf("path %q granularity %q (%s), want rollup %s", r.Meta.Path, r.Meta.Granularity, r.Meta.PathReason, c.gran)
			}
			if got := rowsOf(r); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestEmptyBucketsAndTimeLabels(t *testing.T) {
	svc := newTestService(t, rollupFixture(t))
	r := svc.query(t, `{"site_id":"r.test","metrics":["pageviews","bounce_rate"],"date_range":["2026-03-08","2026-03-11"],"dimensions":["time:day"],
		"include":{"time_labels":true,"empty_buckets":true}}`)
	want := [][]any{{"2026-03-08", "0", "0"}, {"2026-03-09", "15", "60"}, {"2026-03-10", "3", "0"}, {"2026-03-11", "1000", "0"}}
	if got := rowsOf(r); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	if got := r.Meta.TimeLabels; !reflect.DeepEqual(got, []string{"2026-03-08", "2026-03-09", "2026-03-10", "2026-03-11"}) {
		t.Errorf("time labels %v", got)
	}
	// without empty_buckets, days without data are left out (as Plausible does)
	r = svc.query(t, `{"site_id":"r.test","metrics":["pageviews"],"date_range":["2026-03-08","2026-03-10"],"dimensions":["time:day"]}`)
	if got := rowsOf(r); !reflect.DeepEqual(got, [][]any{{"2026-03-09", "15"}, {"2026-03-10", "3"}}) {
		t.Errorf("got %v", got)
	}
}

func TestCorruptSketchIsAServerError(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	r := hrow(store.Day, "", at("2026-03-09 00:00:00"), "", 0, store.Aggregate{Pageviews: 1, Visitors: []byte{0xff, 1}})
	if err := st.WriteRows(context.Background(), []store.Row{r}); err != nil {
		t.Fatal(err)
	}
	svc := newTestService(t, st)
	w := svc.post(`{"site_id":"r.test","metrics":["visitors"],"date_range":"7d"}`)
	if w.Code != 500 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	// pageviews alone never read the sketch
	if w := svc.post(`{"site_id":"r.test","metrics":["pageviews"],"date_range":"7d"}`); w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
}

func TestPlanner(t *testing.T) {
	cases := []struct {
		query string
		path  string
		gran  store.Granularity
		dim   string
	}{
		{`{"metrics":["visitors"],"date_range":"30d"}`, PathRollup, store.Day, ""},
		{`{"metrics":["visitors"],"date_range":"day","dimensions":["time:hour"]}`, PathRollup, store.Hour, ""},
		{`{"metrics":["visitors"],"date_range":"realtime"}`, PathRollup, store.Minute, ""},
		{`{"metrics":["visitors"],"date_range":"realtime","dimensions":["time:hour"]}`, PathRollup, store.Minute, ""},
		{`{"metrics":["visitors"],"date_range":"day","dimensions":["time:minute"]}`, PathRollup, store.Minute, ""},
		{`{"metrics":["visitors"],"date_range":["2026-03-01T10:00:00Z","2026-03-01T12:00:00Z"],"dimensions":["event:page"]}`, PathRollup, store.Hour, "event:page"},
		{`{"metrics":["visitors"],"date_range":"7d","dimensions":["time:week","visit:country"]}`, PathRollup, store.Day, "visit:country"},
		{`{"metrics":["visitors"],"date_range":"7d","filters":[["contains","visit:source",["oo"]]]}`, PathRollup, store.Day, "visit:source"},
		{`{"metrics":["pageviews","visitors"],"date_range":"7d","filters":[["contains","event:page",["/blog"]]]}`, PathRollup, store.Day, "event:page"},
		{`{"metrics":["visits"],"date_range":"7d","filters":[["contains","event:page",["/blog"]]]}`, PathScan, 0, ""},
		{`{"metrics":["visits"],"date_range":"7d","filters":[["is","event:page",["/a"]]]}`, PathRollup, store.Day, "event:page"},
		{`{"metrics":["visits"],"date_range":"7d","filters":[["is","event:page",["/a"],{"case_sensitive":false}]]}`, PathScan, 0, ""},
		{`{"metrics":["visits"],"date_range":"7d","dimensions":["event:page"],"filters":[["is","visit:source",["Google"]]]}`, PathScan, 0, ""},
		{`{"metrics":["visits"],"date_range":"7d","dimensions":["event:page","visit:source"]}`, PathScan, 0, ""},
		{`{"metrics":["visits"],"date_range":"7d","dimensions":["visit:city"]}`, PathScan, 0, ""},
		{`{"metrics":["visits"],"date_range":"7d","filters":[["is","visit:city",["Berlin"]]]}`, PathScan, 0, ""},
		{`{"metrics":["visits"],"date_range":"realtime","dimensions":["event:page"]}`, PathScan, 0, ""},
		{`{"metrics":["visits"],"date_range":"7d","filters":[["is","visit:source",["a"]],["is","visit:device",["Mobile"]]]}`, PathScan, 0, ""},
	}
	for _, c := range cases {
		q, err := ParseQuery([]byte(`{"site_id":"x",`+c.query[1:]), testNow, DefaultConfig())
		if err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		p := makePlan(q, false)
		if p.path != c.path || p.gran != c.gran || p.dimension != c.dim {
			t.Errorf("%s: plan %s %s %q (%s), want %s %s %q", c.query, p.path, p.gran, p.dimension, p.reason, c.path, c.gran, c.dim)
		}
		if p.path == PathScan && p.reason == "" {
			t.Errorf("%s: scan without a reason", c.query)
		}
	}
}
