package query

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
)

var cacheQueries = []string{
	`{"site_id":"a.test","metrics":["visitors","visits","pageviews","bounce_rate","visit_duration","views_per_visit","events"],"date_range":"month","dimensions":["time:day"]}`,
	`{"site_id":"a.test","metrics":["visitors","pageviews","bounce_rate"],"date_range":"month","dimensions":["event:page"]}`,
	`{"site_id":"a.test","metrics":["visitors","visits"],"date_range":"month","dimensions":["visit:source","time:week"]}`,
	`{"site_id":"a.test","metrics":["visitors","pageviews"],"date_range":"month","filters":[["contains","event:page",["/blog"]]]}`,
	`{"site_id":"a.test","metrics":["visitors","pageviews"],"date_range":"month","filters":[["is","event:page",["/docs"]]]}`,
	`{"site_id":"a.test","metrics":["visitors"],"date_range":["2026-03-01T00:00:00Z","2026-03-12T06:00:00Z"],"dimensions":["time:hour"]}`,
	`{"site_id":"a.test","metrics":["visitors","visits"],"date_range":"7d"}`,
}

// Answers from the cache of past buckets are the answers without it, on the first query
// (which fills it) and on later ones (which read it).
func TestCachedAnswersAreUncachedAnswers(t *testing.T) {
	st := buildStore(t, synthetic(11, 60), 4).load(t)
	plain := newTestService(t, st, func(c *Config) { c.CacheBytes = 0 })
	cached := newTestService(t, st)
	if cached.cache == nil || plain.cache != nil {
		t.Fatal("cache not set up as configured")
	}
	for round := range 3 {
		hit := 0
		for _, q := range cacheQueries {
			want := plain.query(t, q)
			got := cached.query(t, q)
			hit += got.Meta.BucketsCached
			if !reflect.DeepEqual(rowsOf(got), rowsOf(want)) {
				t.Errorf("round %d, %s:\ncached %v\nplain  %v", round, q, rowsOf(got), rowsOf(want))
			}
		}
		if round > 0 && hit == 0 {
			t.Errorf("round %d: no bucket came from the cache", round)
		}
	}
}

// Writing a row of a cached bucket drops it: the next answer has the new row.
func TestCacheInvalidatedByWrites(t *testing.T) {
	for _, engine := range []string{"mem", "pebble"} {
		t.Run(engine, func(t *testing.T) {
			st := openEngine(t, engine, nil)
			ctx := context.Background()
			old := at("2026-03-09 00:00:00") // sealed: more than 48h before testNow
			write := func(pv int64, shard int32) {
				t.Helper()
				r := hrow(store.Day, "event:page", old, "/a", shard, store.Aggregate{Pageviews: pv, Visitors: visitorsOf(uint64(pv))})
				if err := st.WriteRows(ctx, []store.Row{r}); err != nil {
					t.Fatal(err)
				}
			}
			write(1, 0)
			svc := newTestService(t, st)
			q := `{"site_id":"r.test","metrics":["pageviews","visitors"],"date_range":["2026-03-09","2026-03-09"],"dimensions":["event:page"]}`
			check := func(wantPV, wantVisitors string, wantCached int) {
				t.Helper()
				r := svc.query(t, q)
				if got := rowsOf(r); !reflect.DeepEqual(got, [][]any{{"/a", wantPV, wantVisitors}}) {
					t.Errorf("got %v, want %s page views, %s visitors", got, wantPV, wantVisitors)
				}
				if r.Meta.BucketsCached != wantCached {
					t.Errorf("%d buckets from the cache, want %d", r.Meta.BucketsCached, wantCached)
				}
			}
			check("1", "1", 0) // fills
			check("1", "1", 1) // hits
			write(5, 0)        // the processor rewrites the row (a replay, say)
			check("5", "1", 0)
			write(2, 3) // another shard
			check("7", "2", 0)
			check("7", "2", 1)
		})
	}
}

// A write while a bucket is read for the cache keeps what was read out of it.
func TestCacheFillSpoiledByWrite(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newRollupCache(1<<20, m)
	k := oneBucket("s", store.Day, "", 86400)
	f := c.begin(k)
	if f == nil {
		t.Fatal("no fill")
	}
	if c.begin(k) != nil {
		t.Error("two fills of one bucket at once")
	}
	c.invalidate([]store.Row{{RowKey: store.RowKey{Site: "s", Granularity: store.Day, Bucket: 86400}}})
	c.end(k, f, &bucketEntry{key: k})
	if c.get(k) != nil {
		t.Fatal("a spoiled fill was cached")
	}
	f = c.begin(k)
	c.invalidate([]store.Row{{RowKey: store.RowKey{Site: "s", Granularity: store.Day, Bucket: 2 * 86400}}}) // another bucket
	c.end(k, f, &bucketEntry{key: k})
	if c.get(k) == nil {
		t.Fatal("a clean fill was not cached")
	}
}

// The cache stays within its byte budget, evicting the least recently used buckets.
func TestCacheBounded(t *testing.T) {
	st := buildStore(t, synthetic(5, 80), 4).load(t)
	const budget = 40 << 10
	svc := newTestService(t, st, func(c *Config) { c.CacheBytes = budget })
	plain := newTestService(t, st, func(c *Config) { c.CacheBytes = 0 })
	for range 2 {
		for _, q := range cacheQueries {
			if got, want := rowsOf(svc.query(t, q)), rowsOf(plain.query(t, q)); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: cached %v, plain %v", q, got, want)
			}
			svc.cache.mu.Lock()
			size, n := svc.cache.size, len(svc.cache.entries)
			svc.cache.mu.Unlock()
			if size > budget {
				t.Fatalf("cache holds %d bytes in %d entries, budget %d", size, n, budget)
			}
		}
	}
}

// Recent buckets, which the processor still changes, are not cached; nor is anything but
// finished days when the store cannot report its writes (see TestCacheOfFinishedDays).
func TestCacheScope(t *testing.T) {
	st := buildStore(t, synthetic(11, 20), 2).load(t)
	svc := newTestService(t, st, func(c *Config) { c.CacheAfter = 30 * 24 * time.Hour })
	for range 2 {
		if r := svc.query(t, cacheQueries[0]); r.Meta.BucketsCached != 0 {
			t.Errorf("%d buckets of the last 30 days came from the cache", r.Meta.BucketsCached)
		}
	}
	blind := newTestService(t, struct{ store.Store }{st})
	for range 2 {
		if r := blind.query(t, cacheQueries[0]); r.Meta.BucketsCached != 0 {
			t.Errorf("%d buckets came from the cache on a store that does not report writes, with no finished day", r.Meta.BucketsCached)
		}
	}
	if off := newTestService(t, struct{ store.Store }{st}, func(c *Config) { c.SealedDays = false }); off.cache != nil {
		t.Error("cache set up on a store that does not report writes, without finished days")
	}
}

// splitWork hands every bucket to exactly one worker, in contiguous ranges.
func TestSplitWork(t *testing.T) {
	svc := newTestService(t, memstore.New())
	const w = 3600
	for _, reads := range [][]span{
		{{0, 30 * w}},
		{{0, w}},
		{{0, 3 * w}, {5 * w, 6 * w}, {9 * w, 30 * w}},
		{{w / 2, 7*w + 17}}, // not aligned: the cache is off, any cut is fine
		nil,
	} {
		hits := make([]*bucketEntry, 5)
		workers := svc.splitWork(reads, hits, w)
		covered := map[int64]int{}
		nhits := 0
		for _, wk := range workers {
			nhits += len(wk.hits)
			for _, r := range wk.reads {
				if r.from >= r.to {
					t.Errorf("%v: empty range %v", reads, r)
				}
				for b := r.from; b < r.to; b++ {
					covered[b]++
				}
			}
		}
		want := map[int64]int{}
		for _, r := range reads {
			for b := r.from; b < r.to; b++ {
				want[b]++
			}
		}
		if !reflect.DeepEqual(covered, want) || nhits != len(hits) {
			t.Errorf("%v: %d workers cover %d seconds (want %d), %d hits", reads, len(workers), len(covered), len(want), nhits)
		}
	}
}

// A query without a time dimension caches its sealed days merged into one range entry; a
// write to any of those days drops it.
func TestRangeEntry(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	ctx := context.Background()
	d1, d2 := at("2026-03-08 00:00:00"), at("2026-03-09 00:00:00")
	rows := []store.Row{
		hrow(store.Day, "event:page", d1, "/a", 0, store.Aggregate{Pageviews: 1, Visitors: visitorsOf(1)}),
		hrow(store.Day, "event:page", d1, "/b", 1, store.Aggregate{Pageviews: 2, Visitors: visitorsOf(2, 3)}),
		hrow(store.Day, "event:page", d2, "/a", 0, store.Aggregate{Pageviews: 4, Visitors: visitorsOf(1, 4)}),
	}
	if err := st.WriteRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	svc := newTestService(t, st)
	q := `{"site_id":"r.test","metrics":["pageviews","visitors"],"date_range":["2026-03-08","2026-03-09"],"dimensions":["event:page"]}`
	check := func(want [][]any, wantCached int, wantRange bool) {
		t.Helper()
		r := svc.query(t, q)
		if got := rowsOf(r); !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		if r.Meta.BucketsCached != wantCached {
			t.Errorf("%d buckets from the cache, want %d", r.Meta.BucketsCached, wantCached)
		}
		svc.cache.mu.Lock()
		_, isRange := svc.cache.entries[bucketKey{partKey{"r.test", store.Day, "event:page"}, d1.Unix(), d2.Unix() + 86400}]
		svc.cache.mu.Unlock()
		if isRange != wantRange {
			t.Errorf("range entry cached: %v, want %v", isRange, wantRange)
		}
	}
	check([][]any{{"/a", "5", "2"}, {"/b", "2", "2"}}, 0, true)
	check([][]any{{"/a", "5", "2"}, {"/b", "2", "2"}}, 2, true)
	// filtered queries use the range entry too
	if r := svc.query(t, `{"site_id":"r.test","metrics":["pageviews"],"date_range":["2026-03-08","2026-03-09"],"filters":[["contains","event:page",["b"]]]}`); !reflect.DeepEqual(rowsOf(r), [][]any{{"2"}}) || r.Meta.BucketsCached != 2 {
		t.Errorf("filtered: %v, %d cached", rowsOf(r), r.Meta.BucketsCached)
	}
	if err := st.WriteRows(ctx, []store.Row{hrow(store.Day, "event:page", d2, "/b", 2, store.Aggregate{Pageviews: 8, Visitors: visitorsOf(9)})}); err != nil {
		t.Fatal(err)
	}
	check([][]any{{"/b", "10", "3"}, {"/a", "5", "2"}}, 1, true) // d1 from its bucket entry, d2 read again
	check([][]any{{"/b", "10", "3"}, {"/a", "5", "2"}}, 2, true)
}

// Queries and writes at once: no race, and once the writes stop the cached answers are the
// store's.
func TestCacheConcurrentWrites(t *testing.T) {
	st := buildStore(t, synthetic(13, 40), 4).load(t)
	svc := newTestService(t, st)
	plain := newTestService(t, st, func(c *Config) { c.CacheBytes = 0 })
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			b := at("2026-03-01 00:00:00").AddDate(0, 0, i%10)
			r := hrow(store.Day, "event:page", b, "/", int32(i%4), store.Aggregate{Pageviews: int64(i), Visitors: visitorsOf(uint64(i))})
			r.Site = "a.test"
			if err := st.WriteRows(ctx, []store.Row{r}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		for _, q := range cacheQueries[:2] {
			svc.query(t, q)
		}
	}
	for _, q := range cacheQueries {
		if got, want := rowsOf(svc.query(t, q)), rowsOf(plain.query(t, q)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s after concurrent writes:\ncached %v\nplain  %v", q, got, want)
		}
	}
}
