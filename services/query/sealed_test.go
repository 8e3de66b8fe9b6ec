package query

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// sealStore records seals as processors of a topic with the given partitions would: every
// rollup row before through is final.
func sealStore(t testing.TB, st store.Store, partitions int, through time.Time) {
	t.Helper()
	ctx := context.Background()
	if err := st.PutMeta(ctx, store.SealNamespace, store.SealGroupKey("events", "processors"), store.EncodeSeal(int64(partitions))); err != nil {
		t.Fatal(err)
	}
	for p := range partitions {
		if err := st.PutMeta(ctx, store.SealNamespace, store.SealKey("events", "processors", int32(p)), store.EncodeSeal(through.UnixMilli())); err != nil {
			t.Fatal(err)
		}
	}
}

// sealedQueries are queries whose day buckets can come from merged rows, and some whose
// cannot (hours, a value filter), which must not change either.
var sealedQueries = append([]string{
	`{"site_id":"a.test","metrics":["visitors","pageviews","visits","bounce_rate","visit_duration"],"date_range":"30d","dimensions":["event:page"]}`,
	`{"site_id":"a.test","metrics":["visitors","visits"],"date_range":"30d","dimensions":["visit:entry_page"],"filters":[["contains","visit:entry_page",["/"]]]}`,
	`{"site_id":"a.test","metrics":["visitors","pageviews"],"date_range":"30d","dimensions":["time:day"]}`,
	`{"site_id":"a.test","metrics":["visitors","pageviews","events"],"date_range":"all"}`,
	`{"site_id":"a.test","metrics":["visitors"],"date_range":["2026-02-20","2026-03-13"],"dimensions":["visit:source"],"filters":[["is_not","visit:source",["Bing"]]]}`,
}, cacheQueries...)

// Days read from their merged rows give the answers the shards' rows give: on the first
// round (which reads the shards and stores the merge), and on later ones (which read the
// merge), with and without the cache of past buckets.
func TestSealedDaysAnswerLikeShards(t *testing.T) {
	b := buildStore(t, synthetic(11, 60), 4)
	for _, engine := range []string{"mem", "pebble"} {
		for _, cacheBytes := range []int64{0, 64 << 20} {
			t.Run(engine, func(t *testing.T) {
				st := openEngine(t, engine, b.rows)
				sealStore(t, st, 4, testNow.Add(-72*time.Hour))
				plain := newTestService(t, st, func(c *Config) { c.SealedDays, c.CacheBytes = false, 0 })
				sealed := newTestService(t, st, func(c *Config) { c.CacheBytes = cacheBytes })
				for round := range 3 {
					for _, q := range sealedQueries {
						want := plain.query(t, q)
						got := sealed.query(t, q)
						sealed.seals.wg.Wait() // the merge of what it read is stored
						if !reflect.DeepEqual(rowsOf(got), rowsOf(want)) {
							t.Errorf("round %d, %s:\nsealed %v\nshards %v", round, q, rowsOf(got), rowsOf(want))
						}
					}
				}
				if n := counterValue(sealed.metrics.sealedMerged); n == 0 {
					t.Error("no finished day was merged")
				}
				if n := counterValue(sealed.metrics.sealedRead); n == 0 && cacheBytes == 0 {
					t.Error("no finished day was read from merged rows")
				}
				if n := counterValue(sealed.metrics.sealedWriteErrors); n != 0 {
					t.Errorf("%v merges could not be stored", n)
				}
				// A service started now (an empty cache) reads the merged days, and a 30-day
				// top pages then reads far fewer rows than from the shards.
				fresh := newTestService(t, st, func(c *Config) { c.CacheBytes = cacheBytes })
				q := sealedQueries[0]
				got, want := fresh.query(t, q), plain.query(t, q)
				if !reflect.DeepEqual(rowsOf(got), rowsOf(want)) {
					t.Errorf("restarted: %s:\nsealed %v\nshards %v", q, rowsOf(got), rowsOf(want))
				}
				if n := counterValue(fresh.metrics.sealedRead); n == 0 {
					t.Error("restarted: no finished day was read from merged rows")
				}
				if got.Meta.RowsRead*4 > want.Meta.RowsRead*3 {
					t.Errorf("top pages read %d rows with merged days, %d from the shards: want far fewer", got.Meta.RowsRead, want.Meta.RowsRead)
				}
			})
		}
	}
}

// Without a seal from every partition nothing is merged.
func TestNothingMergedWithoutEverySeal(t *testing.T) {
	b := buildStore(t, synthetic(11, 30), 4)
	st := openEngine(t, "mem", b.rows)
	sealStore(t, st, 4, testNow.Add(-72*time.Hour))
	ctx := context.Background()
	if err := st.DeleteMeta(ctx, store.SealNamespace, store.SealKey("events", "processors", 2)); err != nil {
		t.Fatal(err)
	}
	s := newTestService(t, st, func(c *Config) { c.CacheBytes = 0 })
	s.query(t, sealedQueries[0])
	s.seals.wg.Wait()
	if n := counterValue(s.metrics.sealedMerged); n != 0 {
		t.Errorf("%v days merged although partition 2 recorded no seal", n)
	}
	// Switched off, nothing is merged either.
	sealStore(t, st, 4, testNow.Add(-72*time.Hour))
	off := newTestService(t, st, func(c *Config) { c.CacheBytes, c.SealedDays = 0, false })
	off.query(t, sealedQueries[0])
	off.seals.wg.Wait()
	if n := counterValue(off.metrics.sealedMerged); n != 0 {
		t.Errorf("%v days merged with --query.sealed-days=false", n)
	}
}

// Merged rows without their marker, or with a marker that counts other rows, are a write
// cut short: the day is read from the shards (and merged again), never from them.
func TestIncompleteMergeIgnored(t *testing.T) {
	b := buildStore(t, synthetic(11, 30), 4)
	st := openEngine(t, "mem", b.rows)
	sealStore(t, st, 4, testNow.Add(-72*time.Hour))
	plain := newTestService(t, st, func(c *Config) { c.SealedDays, c.CacheBytes = false, 0 })
	q := sealedQueries[0]
	want := rowsOf(plain.query(t, q))

	ctx := context.Background()
	day := store.Day.Truncate(testNow.Add(-10 * 24 * time.Hour).UnixMilli())
	day2 := day + 86400
	bogus := func(bucket int64, value string) store.Row {
		return store.Row{RowKey: store.RowKey{Site: "a.test", Granularity: store.Day, Dimension: store.SealedDimension("event:page"),
			Bucket: bucket, Value: value, Shard: store.SealedValueShard}, Aggregate: store.Aggregate{Pageviews: 1_000_000, Visits: 1}}
	}
	rows := []store.Row{
		bogus(day, "/"),  // no marker
		bogus(day2, "/"), // and a marker that counts other rows
		{RowKey: store.RowKey{Site: "a.test", Granularity: store.Day, Dimension: store.SealedDimension("event:page"), Bucket: day2, Shard: store.SealedMarkerShard}, Offset: 3},
	}
	if err := st.WriteRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	s := newTestService(t, st, func(c *Config) { c.CacheBytes = 0 })
	if got := rowsOf(s.query(t, q)); !reflect.DeepEqual(got, want) {
		t.Fatalf("with an incomplete merge stored:\ngot  %v\nwant %v", got, want)
	}
	s.seals.wg.Wait()
	// The query merged both days again; now they are read from the merge.
	if got := rowsOf(s.query(t, q)); !reflect.DeepEqual(got, want) {
		t.Fatalf("after merging again:\ngot  %v\nwant %v", got, want)
	}
	rr := store.RowRange{Site: "a.test", Granularity: store.Day, Dimension: store.SealedDimension("event:page"), From: day, To: day2 + 1}
	err := st.ScanRows(ctx, rr, func(r store.Row) error {
		if r.Pageviews == 1_000_000 && r.Value == "/" {
			t.Errorf("the cut-short merge of %q was not replaced", r.Value)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// On a store that does not report writes (Cassandra), only finished days are cached: the
// answers stay those of the shards' rows, and a bucket that is not finished never comes
// from the cache, however often it is asked for.
func TestCacheOfFinishedDays(t *testing.T) {
	b := buildStore(t, synthetic(11, 60), 4)
	st := struct{ store.Store }{openEngine(t, "mem", b.rows)} // hides WatchRows
	through := store.Day.Truncate(testNow.Add(-5*24*time.Hour).UnixMilli()) * 1000
	sealStore(t, st, 4, time.UnixMilli(through))
	plain := newTestService(t, st, func(c *Config) { c.SealedDays, c.CacheBytes = false, 0 })
	cached := newTestService(t, st)
	if !cached.finalOnly {
		t.Fatal("the cache is not limited to finished days")
	}
	hits := 0
	for round := range 3 {
		for _, q := range sealedQueries {
			want := plain.query(t, q)
			got := cached.query(t, q)
			cached.seals.wg.Wait()
			hits += got.Meta.BucketsCached
			if !reflect.DeepEqual(rowsOf(got), rowsOf(want)) {
				t.Errorf("round %d, %s:\ncached %v\nshards %v", round, q, rowsOf(got), rowsOf(want))
			}
		}
	}
	if hits == 0 {
		t.Fatal("no finished day came from the cache")
	}
	// A row written now into a day after the seal would show at once: that day is not cached.
	day := store.Day.Truncate(testNow.Add(-4 * 24 * time.Hour).UnixMilli()) // older than CacheAfter, after the seal
	row := store.Row{RowKey: store.RowKey{Site: "a.test", Granularity: store.Day, Dimension: "event:page", Bucket: day, Value: "/fresh", Shard: 3},
		Aggregate: store.Aggregate{Pageviews: 5, Visits: 1}}
	if err := st.WriteRows(context.Background(), []store.Row{row}); err != nil {
		t.Fatal(err)
	}
	if got, want := rowsOf(cached.query(t, sealedQueries[0])), rowsOf(plain.query(t, sealedQueries[0])); !reflect.DeepEqual(got, want) {
		t.Errorf("after a write to an unfinished day:\ncached %v\nshards %v", got, want)
	}
}

// chunkRecorder is a store that records the WriteRows calls it gets and fails the one
// numbered failAt (from 1; 0 never).
type chunkRecorder struct {
	store.Store
	calls  [][]store.Row
	failAt int
}

func (c *chunkRecorder) WriteRows(_ context.Context, rows []store.Row) error {
	c.calls = append(c.calls, append([]store.Row(nil), rows...))
	if len(c.calls) == c.failAt {
		return store.ErrUnavailable
	}
	return nil
}

// Merged days are written in calls of at most mergedWriteBytes of sketches, in order, so
// no write makes one batch of tens of megabytes; a sketch larger than that goes alone.
func TestMergedRowsAreWrittenInChunks(t *testing.T) {
	var rows []store.Row
	sizes := []int{mergedWriteBytes / 3, mergedWriteBytes / 3, mergedWriteBytes / 3, 10, mergedWriteBytes + 1, 0, mergedWriteBytes / 2, mergedWriteBytes / 2}
	for i, n := range sizes {
		rows = append(rows, store.Row{RowKey: store.RowKey{Site: "a.test", Value: string(rune('a' + i))}, Aggregate: store.Aggregate{Visitors: make([]byte, n)}})
	}
	want := append([]store.Row(nil), rows...)
	rec := &chunkRecorder{}
	if err := writeChunked(context.Background(), rec, rows); err != nil {
		t.Fatal(err)
	}
	var got []store.Row
	for i, call := range rec.calls {
		size := 0
		for _, r := range call {
			size += len(r.Visitors)
		}
		if len(call) == 0 || (len(call) > 1 && size > mergedWriteBytes) {
			t.Errorf("call %d writes %d rows with %d bytes of sketches", i, len(call), size)
		}
		got = append(got, call...)
	}
	if len(rec.calls) != 4 {
		t.Errorf("%d calls, want 4 (three thirds | 10 bytes | the oversized one | empty + two halves)", len(rec.calls))
	}
	if !reflect.DeepEqual(got, want) {
		t.Error("the rows written are not the rows given, in order")
	}

	rec = &chunkRecorder{failAt: 2}
	if err := writeChunked(context.Background(), rec, append([]store.Row(nil), want...)); err == nil {
		t.Error("a failed write was not reported")
	}
	if len(rec.calls) != 2 {
		t.Errorf("%d calls after the second failed, want 2 (nothing written after a failure)", len(rec.calls))
	}
}
