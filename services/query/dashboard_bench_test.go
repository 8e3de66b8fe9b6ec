package query

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/sketch"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// dashboardRows builds the day rollup rows (totals and event:page) a processor writes for
// `events` events spread over 30 days, 8 shards and 200 pages, with the traffic shape of
// test/bench/bulkload: visits of one new visitor each, 40% bouncing, the others viewing
// 2–7 pages, pages picked with an exponential (Zipf-like) popularity. Sketches are made
// by internal/sketch the way the processor makes them, so their sizes are realistic: the
// totals rows and the top pages hold thousands of visitors per shard and day (dense
// sketches at 10M events), the long tail a handful.
func dashboardRows(events int) []store.Row {
	const (
		days   = 30
		shards = 8
		pages  = 200
	)
	rng := rand.New(rand.NewPCG(uint64(events), 7))
	first := testNow.Truncate(24*time.Hour).AddDate(0, 0, -(days - 1))
	paths := make([]string, pages)
	for i := range paths {
		paths[i] = fmt.Sprintf("/section-%d/page-%d", i%12, i)
	}
	zipf := func() int {
		for {
			if i := int(rng.ExpFloat64() * pages / 6); i < pages {
				return i
			}
		}
	}
	type agg struct {
		pv, visits, bounces, dur int64
		sk                       *sketch.Sketch
	}
	visitsPerShardDay := int(math.Round(float64(events) / 3.2 / days / shards))
	var rows []store.Row
	for d := range days {
		bucket := first.AddDate(0, 0, d).Unix()
		for sh := range int32(shards) {
			tot := agg{sk: sketch.New()}
			byPage := make([]agg, pages)
			for range visitsPerShardDay {
				vid := rng.Uint64()
				views := 1
				if rng.Float64() >= 0.4 {
					views = 2 + rng.IntN(6)
				}
				dur := int64(0)
				if views > 1 {
					dur = int64(views-1) * 95_000
				}
				tot.pv += int64(views)
				tot.visits++
				tot.dur += dur
				if views == 1 {
					tot.bounces++
				}
				tot.sk.Add(vid)
				var seen [8]int
				for i := range views {
					p := zipf()
					a := &byPage[p]
					if a.sk == nil {
						a.sk = sketch.New()
					}
					a.pv++
					a.sk.Add(vid)
					dup := false
					for _, q := range seen[:i] {
						dup = dup || q == p
					}
					seen[i] = p
					if !dup {
						a.visits++
						a.dur += dur
						if views == 1 {
							a.bounces++
						}
					}
				}
			}
			row := func(dim, value string, a *agg) store.Row {
				a.sk.Estimate() // compacts, as the processor does before writing
				return store.Row{
					RowKey: store.RowKey{Site: "bench.test", Granularity: store.Day, Dimension: dim, Bucket: bucket, Value: value, Shard: sh},
					Aggregate: store.Aggregate{Pageviews: a.pv, Visits: a.visits, Bounces: a.bounces, DurationMS: a.dur,
						Visitors: a.sk.Binary()},
					Offset: int64(d + 1),
				}
			}
			rows = append(rows, row(store.TotalsDimension, "", &tot))
			for p := range byPage {
				if byPage[p].sk != nil {
					rows = append(rows, row("event:page", paths[p], &byPage[p]))
				}
			}
		}
	}
	return rows
}

var (
	dashboardRowsMu    sync.Mutex
	dashboardRowsCache = map[int][]store.Row{}
)

// cachedDashboardRows builds dashboardRows once per size for all sub-benchmarks.
func cachedDashboardRows(events int) []store.Row {
	dashboardRowsMu.Lock()
	defer dashboardRowsMu.Unlock()
	if r, ok := dashboardRowsCache[events]; ok {
		return r
	}
	r := dashboardRows(events)
	dashboardRowsCache[events] = r
	return r
}

// BenchmarkDashboardRealistic answers the dashboard's 30-day daily time series and top
// pages over the rows of 1M and 10M events (see dashboardRows), on the in-memory store and
// on Pebble.
//
// cache=off reads every row of the 30 days each time (cold, no cache). cache=fill starts
// each round with an empty cache, so it reads every row and also keeps the past days: the
// first dashboard after a restart. cache=warm measures mostly cache hits: the 27 days that
// ended more than 48h before the clock come from the cache (filled by an untimed round)
// and only the last 3 days are read from the store; buckets-cached/op says how many.
func BenchmarkDashboardRealistic(b *testing.B) {
	for _, events := range []int{1_000_000, 10_000_000} {
		rows := cachedDashboardRows(events)
		var sketchBytes int
		for _, r := range rows {
			sketchBytes += len(r.Visitors)
		}
		for _, c := range benchEngines() {
			engine, cache := c[0], c[1]
			b.Run(fmt.Sprintf("events=%dM/store=%s/cache=%s", events/1_000_000, engine, cache), func(b *testing.B) {
				st := openEngine(b, engine, rows)
				svc := newTestService(b, st, benchCacheConfig(cache))
				benchDashboard(b, svc, len(rows), sketchBytes, cache)
				benchCacheMetrics(b, svc)
			})
		}
	}
}

// cpuTime is the CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchDashboard times the two queries; with cache=warm after one untimed round that fills
// the cache, with cache=fill on an empty cache each time.
func benchDashboard(b *testing.B, svc testService, nrows, sketchBytes int, cache string) {
	series, err := ParseQuery([]byte(`{"site_id":"bench.test","metrics":["visitors","pageviews","visits","bounce_rate"],"date_range":"30d","dimensions":["time:day"]}`), testNow, DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	top, err := ParseQuery([]byte(`{"site_id":"bench.test","metrics":["visitors","pageviews"],"date_range":"30d","dimensions":["event:page"],"limit":10}`), testNow, DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if cache == "warm" {
		for _, q := range []*Query{series, top} {
			if _, err := svc.Execute(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var rowsRead, cached int64
	for b.Loop() {
		benchEmptyCache(svc, cache)
		for _, q := range []*Query{series, top} {
			r, err := svc.Execute(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			if r.Meta.Path != PathRollup || len(r.Results) == 0 {
				b.Fatalf("path %s, %d rows", r.Meta.Path, len(r.Results))
			}
			rowsRead += r.Meta.RowsRead
			cached += benchBucketsCached(r)
		}
	}
	// CPU time (all threads, GC included) says more than wall time on a busy machine.
	b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(rowsRead)/float64(b.N), "rows/op")
	b.ReportMetric(float64(cached)/float64(b.N), "buckets-cached/op")
	b.ReportMetric(float64(nrows), "stored-rows")
	b.ReportMetric(float64(sketchBytes)/(1<<20), "sketch-MiB")
}
