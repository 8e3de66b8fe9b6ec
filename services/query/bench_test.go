package query

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/sketch"
	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
)

// benchStore holds 30 days of day rollups over 8 shards: the totals and 200 pages, each row
// with a visitor sketch of 40 ids.
func benchStore(b *testing.B) *memstore.Store {
	const (
		days   = 30
		shards = 8
		pages  = 200
	)
	st := memstore.New()
	b.Cleanup(func() { st.Close() })
	first := testNow.Truncate(24*time.Hour).AddDate(0, 0, -(days - 1))
	var rows []store.Row
	id := uint64(0)
	sk := func() []byte {
		s := sketch.New()
		for range 40 {
			id++
			s.Add(id % 50_000)
		}
		return s.Binary()
	}
	for d := range days {
		bucket := first.AddDate(0, 0, d).Unix()
		for sh := range int32(shards) {
			rows = append(rows, store.Row{RowKey: store.RowKey{Site: "bench.test", Granularity: store.Day, Bucket: bucket, Shard: sh},
				Aggregate: store.Aggregate{Pageviews: 900, Visits: 300, Bounces: 120, DurationMS: 9_000_000, Visitors: sk()}})
			for p := range pages {
				rows = append(rows, store.Row{RowKey: store.RowKey{Site: "bench.test", Granularity: store.Day, Dimension: "event:page", Bucket: bucket, Value: fmt.Sprintf("/page/%d", p), Shard: sh},
					Aggregate: store.Aggregate{Pageviews: int64(1 + p%17), Visits: int64(1 + p%5), Bounces: int64(p % 2), DurationMS: 40_000, Visitors: sk()}})
			}
		}
	}
	if err := st.WriteRows(context.Background(), rows); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkDashboard30d answers what a dashboard asks for a 30-day view: the daily time
// series and the top pages, both from rollups.
func BenchmarkDashboard30d(b *testing.B) {
	svc := newTestService(b, benchStore(b))
	series, err := ParseQuery([]byte(`{"site_id":"bench.test","metrics":["visitors","visits","pageviews","bounce_rate","visit_duration"],"date_range":"30d","dimensions":["time:day"]}`), testNow, DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	top, err := ParseQuery([]byte(`{"site_id":"bench.test","metrics":["visitors","pageviews","bounce_rate"],"date_range":"30d","dimensions":["event:page"],"limit":10}`), testNow, DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	var rows int64
	for b.Loop() {
		for _, q := range []*Query{series, top} {
			r, err := svc.Execute(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			if r.Meta.Path != PathRollup || len(r.Results) == 0 {
				b.Fatalf("path %s, %d rows", r.Meta.Path, len(r.Results))
			}
			rows += r.Meta.RowsRead
		}
	}
	b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
}
