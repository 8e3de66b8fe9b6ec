// Package storetest is the conformance suite every store.Store engine runs unchanged, the
// way Jaeger's storage integration tests run against each of its backends.
//
// An engine's test calls Run with a Factory:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
//			dir := t.TempDir()
//			s := mustOpen(t, dir)
//			t.Cleanup(func() { s.Close() })
//			return s, func() store.Store {
//				s.Close()
//				s = mustOpen(t, dir)
//				return s
//			}
//		})
//	}
//
// The suite never assumes an empty store: every subtest works in its own sites and meta
// namespaces, named after the test plus a random suffix, so an engine may hand every subtest
// the same long-lived store (a Cassandra keyspace per test package, reused across runs).
//
// What the suite writes stays inside limits an engine may rely on:
//   - shards are bus partitions in [0, MaxShard];
//   - every scanned range is bounded: rollup ranges span at most a few days, event ranges
//     at most MaxEventRangeDays days;
//   - strings are valid UTF-8 (they may hold NUL, be empty, or be long);
//   - sites and meta namespaces are never empty.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Factory opens a store for one subtest. It is called once per subtest with that subtest's t.
//
// s is the store to test. It may be fresh or shared with other subtests; the suite isolates
// its data by unique site ids and namespaces. The Factory arranges (t.Cleanup) for the store
// it hands out, and any store reopen hands out, to be closed when the subtest ends.
//
// reopen, when the engine keeps data across restarts, closes the store returned last (by
// the Factory or by the previous reopen call), opens the same backing data again and returns
// the new store; it fails the test (t.Fatal) when it cannot. reopen is nil for engines
// without durability, and the durability subtests are skipped.
type Factory func(t *testing.T) (s store.Store, reopen func() store.Store)

// MaxShard is the highest shard (bus partition) the suite writes.
const MaxShard = 7

// MaxEventRangeDays is the widest event range, in days, the suite scans.
const MaxEventRangeDays = 7

// Run runs the whole suite against the engine behind open.
func Run(t *testing.T, open Factory) {
	t.Helper()
	subtests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"Rows/RoundTrip", testRowsRoundTrip},
		{"Rows/WriteIsIdempotent", testRowsIdempotent},
		{"Rows/OverwriteReplacesState", testRowsOverwrite},
		{"Rows/GetRowsPresentAndMissing", testGetRowsMissing},
		{"Rows/EmptyCalls", testRowsEmptyCalls},
		{"Rows/ScanRangeBounds", testScanRangeBounds},
		{"Rows/ScanAcrossPeriods", testScanAcrossPeriods},
		{"Rows/ScanOrder", testScanOrder},
		{"Rows/Isolation", testRowsIsolation},
		{"Rows/ValuesFilter", testValuesFilter},
		{"Rows/OddStrings", testRowsOddStrings},
		{"Rows/VisitorsBytes", testRowsVisitors},
		{"Rows/CallerBuffersAreCopied", testRowsBuffers},
		{"Rows/LargeBatch", testRowsLargeBatch},
		{"Rows/CallbackError", testRowsCallbackError},
		{"Rows/ConcurrentWriters", testRowsConcurrent},
		{"Events/RoundTrip", testEventsRoundTrip},
		{"Events/WriteIsIdempotent", testEventsIdempotent},
		{"Events/TimeRangeAcrossDaysAndShards", testEventsRange},
		{"Events/SiteIsolation", testEventsIsolation},
		{"Events/PayloadBytes", testEventsPayload},
		{"Events/CallbackError", testEventsCallbackError},
		{"Meta/GetPutDelete", testMetaBasic},
		{"Meta/PutIfAbsent", testMetaIfAbsent},
		{"Meta/PutIfAbsentConcurrent", testMetaIfAbsentConcurrent},
		{"Meta/ListOrderAndNamespaces", testMetaList},
		{"Meta/CallerBuffersAreCopied", testMetaBuffers},
		{"ContextCancelled", testContextCancelled},
		{"ContextCancelledDuringScan", testContextCancelledDuringScan},
		{"Durability/Reopen", testReopen},
	}
	for _, st := range subtests {
		t.Run(st.name, func(t *testing.T) { st.fn(t, open) })
	}
}

// ---------------------------------------------------------------------------------------
// helpers

// unique returns a name that no other subtest or earlier run uses.
func unique(t *testing.T, what string) string {
	name := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	return fmt.Sprintf("%s.%s.%016x", name, what, rand.Uint64())
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func openStore(t *testing.T, open Factory) (context.Context, store.Store) {
	t.Helper()
	s, _ := open(t)
	if s == nil {
		t.Fatal("Factory returned a nil store")
	}
	return ctxFor(t), s
}

// norm makes rows comparable: an empty sketch may come back as nil or as an empty slice.
func norm(r store.Row) store.Row {
	if len(r.Visitors) == 0 {
		r.Visitors = nil
	}
	return r
}

func normEvent(e store.StoredEvent) store.StoredEvent {
	if len(e.Payload) == 0 {
		e.Payload = nil
	}
	return e
}

func compareRowKeys(a, b store.RowKey) int {
	switch {
	case a.Site != b.Site:
		return strings.Compare(a.Site, b.Site)
	case a.Granularity != b.Granularity:
		return int(a.Granularity) - int(b.Granularity)
	case a.Dimension != b.Dimension:
		return strings.Compare(a.Dimension, b.Dimension)
	case a.Bucket != b.Bucket:
		if a.Bucket < b.Bucket {
			return -1
		}
		return 1
	case a.Value != b.Value:
		return strings.Compare(a.Value, b.Value)
	case a.Shard != b.Shard:
		if a.Shard < b.Shard {
			return -1
		}
		return 1
	}
	return 0
}

func sortRows(rows []store.Row) []store.Row {
	out := make([]store.Row, len(rows))
	for i, r := range rows {
		out[i] = norm(r)
	}
	slices.SortFunc(out, func(a, b store.Row) int { return compareRowKeys(a.RowKey, b.RowKey) })
	return out
}

func mkRow(site string, g store.Granularity, dim string, bucket int64, value string, shard int32, n int64) store.Row {
	return store.Row{
		RowKey: store.RowKey{Site: site, Granularity: g, Dimension: dim, Bucket: bucket, Value: value, Shard: shard},
		Aggregate: store.Aggregate{
			Pageviews:  n,
			Events:     n + 1,
			Visits:     n + 2,
			Bounces:    n + 3,
			DurationMS: n * 1000,
			Visitors:   []byte{byte(n), 0, byte(n >> 8), 0xff},
		},
		Offset: n * 10,
	}
}

func write(t *testing.T, ctx context.Context, s store.Store, rows ...store.Row) {
	t.Helper()
	if err := s.WriteRows(ctx, rows); err != nil {
		t.Fatalf("WriteRows(%d rows): %v", len(rows), err)
	}
}

func scan(t *testing.T, ctx context.Context, s store.Store, r store.RowRange) []store.Row {
	t.Helper()
	var got []store.Row
	if err := s.ScanRows(ctx, r, func(row store.Row) error {
		got = append(got, norm(row))
		return nil
	}); err != nil {
		t.Fatalf("ScanRows(%+v): %v", r, err)
	}
	return got
}

func get(t *testing.T, ctx context.Context, s store.Store, keys ...store.RowKey) []store.Row {
	t.Helper()
	got, err := s.GetRows(ctx, keys)
	if err != nil {
		t.Fatalf("GetRows(%d keys): %v", len(keys), err)
	}
	return sortRows(got)
}

func wantRows(t *testing.T, what string, got, want []store.Row) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if reflect.DeepEqual(got, want) {
		return
	}
	t.Errorf("%s: got %d rows, want %d", what, len(got), len(want))
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w string
		if i < len(got) {
			g = fmt.Sprintf("%+v", got[i])
		}
		if i < len(want) {
			w = fmt.Sprintf("%+v", want[i])
		}
		if g != w {
			t.Errorf("  row %d:\n    got  %s\n    want %s", i, g, w)
		}
		if i > 20 {
			t.Errorf("  ...")
			break
		}
	}
}

func scanEvents(t *testing.T, ctx context.Context, s store.Store, r store.EventRange) []store.StoredEvent {
	t.Helper()
	var got []store.StoredEvent
	if err := s.ScanEvents(ctx, r, func(e store.StoredEvent) error {
		got = append(got, normEvent(e))
		return nil
	}); err != nil {
		t.Fatalf("ScanEvents(%+v): %v", r, err)
	}
	return got
}

func sortEvents(evs []store.StoredEvent) []store.StoredEvent {
	out := make([]store.StoredEvent, len(evs))
	for i, e := range evs {
		out[i] = normEvent(e)
	}
	slices.SortFunc(out, func(a, b store.StoredEvent) int {
		switch {
		case a.Site != b.Site:
			return strings.Compare(a.Site, b.Site)
		case a.Shard != b.Shard:
			return int(a.Shard) - int(b.Shard)
		case a.Offset < b.Offset:
			return -1
		case a.Offset > b.Offset:
			return 1
		}
		return 0
	})
	return out
}

// wantEvents compares as sets, and reports events delivered more than once.
func wantEvents(t *testing.T, what string, got, want []store.StoredEvent) {
	t.Helper()
	type id struct {
		site   string
		shard  int32
		offset int64
	}
	seen := map[id]int{}
	for _, e := range got {
		seen[id{e.Site, e.Shard, e.Offset}]++
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("%s: event (shard %d, offset %d) delivered %d times, want once", what, k.shard, k.offset, n)
		}
	}
	g, w := sortEvents(got), sortEvents(want)
	if len(g) == 0 && len(w) == 0 {
		return
	}
	if reflect.DeepEqual(g, w) {
		return
	}
	t.Errorf("%s: got %d events, want %d", what, len(g), len(w))
	for i := 0; i < max(len(g), len(w)); i++ {
		var gs, ws string
		if i < len(g) {
			gs = fmt.Sprintf("%+v", g[i])
		}
		if i < len(w) {
			ws = fmt.Sprintf("%+v", w[i])
		}
		if gs != ws {
			t.Errorf("  event %d:\n    got  %s\n    want %s", i, gs, ws)
		}
		if i > 20 {
			t.Errorf("  ...")
			break
		}
	}
}

// day0 is a Monday at midnight UTC, in Unix ms.
var day0 = time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC).UnixMilli()

const dayMS = int64(24 * time.Hour / time.Millisecond)

func mkEvent(site string, shard int32, offset, tMillis int64) store.StoredEvent {
	return store.StoredEvent{
		Shard:        shard,
		Offset:       offset,
		SessionID:    uint64(offset)*0x9e3779b97f4a7c15 + uint64(shard),
		SessionStart: tMillis - offset%1000,
		Payload:      []byte(fmt.Sprintf("{\"o\":%d,\"s\":%d}\x00\xff", offset, shard)),
		Time:         tMillis,
		Site:         site,
	}
}

// ---------------------------------------------------------------------------------------
// rows

func testRowsRoundTrip(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	b := store.Minute.Truncate(day0 + 12*3600*1000)
	rows := []store.Row{
		{
			RowKey: store.RowKey{Site: site, Granularity: store.Minute, Dimension: store.TotalsDimension, Bucket: b, Value: "", Shard: 0},
			Aggregate: store.Aggregate{
				Pageviews: 1 << 50, Events: 3, Visits: 2, Bounces: 1, DurationMS: math.MaxInt64,
				Visitors: []byte{1, 2, 3},
			},
			Offset: 0,
		},
		{
			RowKey:    store.RowKey{Site: site, Granularity: store.Hour, Dimension: "event:page", Bucket: store.Hour.Truncate(day0), Value: "/pricing", Shard: MaxShard},
			Aggregate: store.Aggregate{Pageviews: 7},
			Offset:    -1,
		},
		{
			RowKey:    store.RowKey{Site: site, Granularity: store.Day, Dimension: "visit:source", Bucket: store.Day.Truncate(day0), Value: "Google", Shard: 3},
			Aggregate: store.Aggregate{},
			Offset:    math.MaxInt64,
		},
	}
	write(t, ctx, s, rows...)

	keys := make([]store.RowKey, len(rows))
	for i, r := range rows {
		keys[i] = r.RowKey
	}
	wantRows(t, "GetRows", get(t, ctx, s, keys...), sortRows(rows))
	for _, r := range rows {
		got := scan(t, ctx, s, store.RowRange{Site: site, Granularity: r.Granularity, Dimension: r.Dimension, From: r.Bucket, To: r.Bucket + 1})
		wantRows(t, "ScanRows "+r.Granularity.String(), got, []store.Row{norm(r)})
	}
}

func testRowsIdempotent(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	r := mkRow(site, store.Hour, "visit:country", store.Hour.Truncate(day0), "DE", 2, 5)
	write(t, ctx, s, r)
	write(t, ctx, s, r)
	write(t, ctx, s, r, r) // the same row twice in one batch
	got := scan(t, ctx, s, store.RowRange{Site: site, Granularity: store.Hour, Dimension: "visit:country", From: r.Bucket - 3600, To: r.Bucket + 3600})
	wantRows(t, "after writing one row four times", got, []store.Row{norm(r)})
}

func testRowsOverwrite(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	first := mkRow(site, store.Minute, "event:page", store.Minute.Truncate(day0), "/", 1, 10)
	write(t, ctx, s, first)

	second := first
	second.Aggregate = store.Aggregate{Pageviews: 3, Visits: 1, Visitors: []byte{9}}
	second.Offset = first.Offset + 7
	write(t, ctx, s, second)
	wantRows(t, "GetRows after overwrite", get(t, ctx, s, first.RowKey), []store.Row{norm(second)})

	// A full-state row with no visitors replaces the sketch too, and smaller counts win.
	third := second
	third.Aggregate = store.Aggregate{Pageviews: 1}
	third.Offset = 3
	write(t, ctx, s, third)
	got := scan(t, ctx, s, store.RowRange{Site: site, Granularity: store.Minute, Dimension: "event:page", From: first.Bucket, To: first.Bucket + 60})
	wantRows(t, "ScanRows after overwrite", got, []store.Row{norm(third)})
}

func testGetRowsMissing(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	b := store.Hour.Truncate(day0)
	present := mkRow(site, store.Hour, "visit:browser", b, "Firefox", 1, 4)
	other := mkRow(site, store.Hour, "visit:browser", b+3600, "Chrome", 0, 2)
	write(t, ctx, s, present, other)

	k := present.RowKey
	variants := []store.RowKey{k, k, k, k, k, k, k}
	variants[0].Site = site + "x"
	variants[1].Granularity = store.Minute
	variants[2].Dimension = "visit:os"
	variants[3].Bucket = b + 3600
	variants[4].Value = "Firefo"
	variants[5].Shard = 2
	variants[6].Dimension = store.TotalsDimension
	for _, v := range variants {
		if got := get(t, ctx, s, v); len(got) != 0 {
			t.Errorf("GetRows(%+v) = %+v, want no row (differs from a stored key in one field)", v, got)
		}
	}

	keys := append([]store.RowKey{other.RowKey}, variants...)
	keys = append(keys, present.RowKey)
	wantRows(t, "GetRows present and missing", get(t, ctx, s, keys...), sortRows([]store.Row{present, other}))
}

func testRowsEmptyCalls(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	if err := s.WriteRows(ctx, nil); err != nil {
		t.Errorf("WriteRows(nil) = %v, want nil", err)
	}
	if got, err := s.GetRows(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("GetRows(nil) = %v, %v; want no rows, nil", got, err)
	}
	if got := get(t, ctx, s, store.RowKey{Site: site, Granularity: store.Day}); len(got) != 0 {
		t.Errorf("GetRows of a missing key = %+v, want none", got)
	}
	if got := scan(t, ctx, s, store.RowRange{Site: site, Granularity: store.Day, From: 0, To: 86400 * 3}); len(got) != 0 {
		t.Errorf("ScanRows of an empty site = %+v, want none", got)
	}
	if err := s.WriteEvents(ctx, nil); err != nil {
		t.Errorf("WriteEvents(nil) = %v, want nil", err)
	}
	if got := scanEvents(t, ctx, s, store.EventRange{Site: site, From: day0, To: day0 + dayMS}); len(got) != 0 {
		t.Errorf("ScanEvents of an empty site = %+v, want none", got)
	}

	// Empty and inverted ranges hold nothing.
	r := mkRow(site, store.Day, "", store.Day.Truncate(day0), "", 0, 1)
	write(t, ctx, s, r)
	for _, rr := range []store.RowRange{
		{Site: site, Granularity: store.Day, From: r.Bucket, To: r.Bucket},
		{Site: site, Granularity: store.Day, From: r.Bucket + 1, To: r.Bucket},
	} {
		if got := scan(t, ctx, s, rr); len(got) != 0 {
			t.Errorf("ScanRows(%+v) = %+v, want none", rr, got)
		}
	}
	e := mkEvent(site, 0, 1, day0+5)
	if err := s.WriteEvents(ctx, []store.StoredEvent{e}); err != nil {
		t.Fatal(err)
	}
	for _, er := range []store.EventRange{
		{Site: site, From: e.Time, To: e.Time},
		{Site: site, From: e.Time + 1, To: e.Time - 1},
	} {
		if got := scanEvents(t, ctx, s, er); len(got) != 0 {
			t.Errorf("ScanEvents(%+v) = %+v, want none", er, got)
		}
	}
}

func testScanRangeBounds(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	for _, g := range []store.Granularity{store.Minute, store.Hour, store.Day} {
		w := int64(g.Duration() / time.Second)
		base := g.Truncate(day0 + 2*dayMS)
		var all []store.Row
		for i := int64(-3); i <= 3; i++ {
			all = append(all, mkRow(site, g, "visit:device", base+i*w, "Desktop", 0, i+10))
		}
		write(t, ctx, s, all...)
		cases := []struct {
			from, to int64
			want     []store.Row // indexes into all, as a slice
		}{
			{base, base + w, all[3:4]},
			{base, base + 1, all[3:4]},             // any To past the bucket start includes it
			{base - 1, base, nil},                  // after the previous bucket's start
			{base - w, base + 2*w, all[2:5]},       // [From, To)
			{base + 1, base + w, nil},              // From after the bucket start excludes it
			{base - 3*w, base + 3*w + 1, all[0:7]}, // everything
			{base - 100*w, base - 3*w, nil},        // before all
			{base + 3*w + 1, base + 100*w, nil},    // after all
			{base - 3*w, base - 3*w + 1, all[0:1]}, // the first
			{base + 3*w, base + 3*w + w, all[6:7]}, // the last
			{base - 2*w + 1, base + 2*w, all[2:5]}, // partial buckets at both ends
			{base - 2*w, base + 2*w + 1, all[1:6]}, // To one second past a start
			{base + w, base + w + 1, all[4:5]},     // one second wide
			{base + 4*w, base + 5*w, nil},          // empty, after
			{base - 4*w, base - 3*w, nil},          // empty, To is the first start
		}
		for _, c := range cases {
			got := scan(t, ctx, s, store.RowRange{Site: site, Granularity: g, Dimension: "visit:device", From: c.from, To: c.to})
			wantRows(t, fmt.Sprintf("%s [%+d, %+d)", g, c.from-base, c.to-base), got, sortRows(c.want))
		}
	}
}

// testScanAcrossPeriods checks ranges that straddle day, month and year boundaries, where an
// engine that splits a dimension's rows into time-period partitions must stitch them.
func testScanAcrossPeriods(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	newYear := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for _, g := range []store.Granularity{store.Minute, store.Hour, store.Day} {
		w := int64(g.Duration() / time.Second)
		var rows []store.Row
		for i := int64(-5); i < 5; i++ {
			for _, shard := range []int32{0, 1} {
				rows = append(rows, mkRow(site, g, "event:name", newYear+i*w, "Signup", shard, i+100))
			}
		}
		write(t, ctx, s, rows...)
		got := scan(t, ctx, s, store.RowRange{Site: site, Granularity: g, Dimension: "event:name", From: newYear - 5*w, To: newYear + 5*w})
		wantRows(t, g.String()+" across the new year", got, sortRows(rows))
		got = scan(t, ctx, s, store.RowRange{Site: site, Granularity: g, Dimension: "event:name", From: newYear - w, To: newYear + w})
		wantRows(t, g.String()+" one bucket each side of the new year", got, sortRows(rows[8:12]))
	}
}

func testScanOrder(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	b := store.Hour.Truncate(day0)
	// Orders that trip up naive encodings: numeric vs lexical shards and buckets, prefixes,
	// case, and multi-byte UTF-8.
	values := []string{"", "/", "/a", "/a/b", "/a\x00", "/a0", "/b", "A", "a", "aa", "ab", "é", "日本", "\x00", "\x00\x00", "\x01"}
	shards := []int32{0, 1, 2, 7, 3}
	buckets := []int64{b, b + 3600, b + 9*3600, b + 10*3600, b + 100*3600}
	var rows []store.Row
	n := int64(0)
	for _, bk := range buckets {
		for _, v := range values {
			for _, sh := range shards {
				n++
				rows = append(rows, mkRow(site, store.Hour, "event:page", bk, v, sh, n))
			}
		}
	}
	shuffled := slices.Clone(rows)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	// Write in a few batches so an engine cannot rely on one batch's order.
	for i := 0; i < len(shuffled); i += 97 {
		write(t, ctx, s, shuffled[i:min(i+97, len(shuffled))]...)
	}
	got := scan(t, ctx, s, store.RowRange{Site: site, Granularity: store.Hour, Dimension: "event:page", From: b, To: b + 101*3600})
	// The rows must arrive exactly in (bucket, value, shard) order, not just as a set.
	wantRows(t, "ScanRows order", got, sortRows(rows))
}

func testRowsIsolation(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	b := store.Day.Truncate(day0)
	type part struct {
		site string
		g    store.Granularity
		dim  string
	}
	// Partitions that share prefixes or differ in one component only.
	parts := []part{
		{site, store.Day, ""},
		{site, store.Day, "visit:source"},
		{site, store.Day, "visit:sourc"},
		{site, store.Day, "visit:source\x00"},
		{site, store.Day, "visit:source2"},
		{site, store.Hour, "visit:source"},
		{site, store.Minute, "visit:source"},
		{site + "2", store.Day, "visit:source"},
		{site + "\x00", store.Day, "visit:source"},
		{site[:len(site)-1], store.Day, "visit:source"},
	}
	want := map[part][]store.Row{}
	var all []store.Row
	for i, p := range parts {
		bucket := p.g.Truncate(b * 1000)
		rs := []store.Row{
			mkRow(p.site, p.g, p.dim, bucket, "", 0, int64(i)),
			mkRow(p.site, p.g, p.dim, bucket, "x", 1, int64(i)+100),
		}
		want[p] = rs
		all = append(all, rs...)
	}
	write(t, ctx, s, all...)
	for _, p := range parts {
		got := scan(t, ctx, s, store.RowRange{Site: p.site, Granularity: p.g, Dimension: p.dim, From: b - 86400, To: b + 86400})
		wantRows(t, fmt.Sprintf("partition %q/%s/%q", p.site, p.g, p.dim), got, sortRows(want[p]))
	}
	var keys []store.RowKey
	for _, r := range all {
		keys = append(keys, r.RowKey)
	}
	wantRows(t, "GetRows across partitions", get(t, ctx, s, keys...), sortRows(all))
}

func testValuesFilter(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	b := store.Minute.Truncate(day0)
	values := []string{"", "/", "/a", "/ab", "/b", "/c", "\x00", "é"}
	var rows []store.Row
	for i := int64(0); i < 4; i++ {
		for j, v := range values {
			for sh := int32(0); sh < 2; sh++ {
				rows = append(rows, mkRow(site, store.Minute, "event:page", b+60*i, v, sh, i*100+int64(j)))
			}
		}
	}
	write(t, ctx, s, rows...)
	filter := func(from, to int64, vals ...string) []store.Row {
		var out []store.Row
		for _, r := range rows {
			if r.Bucket >= from && r.Bucket < to && slices.Contains(vals, r.Value) {
				out = append(out, r)
			}
		}
		return sortRows(out)
	}
	cases := []struct {
		name     string
		from, to int64
		vals     []string
	}{
		{"one value", b, b + 240, []string{"/a"}},
		{"prefix of another value is not a match", b, b + 240, []string{"/a", "/b"}},
		{"unsorted with a duplicate", b, b + 240, []string{"é", "/", "é", ""}},
		{"empty string value", b, b + 240, []string{""}},
		{"NUL value", b, b + 240, []string{"\x00"}},
		{"missing value", b, b + 240, []string{"/zz"}},
		{"missing and present", b, b + 240, []string{"/zz", "/c", "/"}},
		{"sub-range", b + 60, b + 180, []string{"/ab", "/c"}},
		{"all values", b, b + 240, values},
	}
	for _, c := range cases {
		got := scan(t, ctx, s, store.RowRange{Site: site, Granularity: store.Minute, Dimension: "event:page", From: c.from, To: c.to, Values: c.vals})
		wantRows(t, c.name, got, filter(c.from, c.to, c.vals...))
	}
}

func testRowsOddStrings(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site\x00日本")
	b := store.Hour.Truncate(day0)
	odd := []string{
		"", "\x00", "\x00\x00", "a\x00", "a\x00b", "\x01", "\x00\x01", "\x00\xc3\xa9", "\u00ff",
		"日本語", "🙂", "a b\tc\nd", "\"quoted\" 'and' \\back", "%00%ff", "'; DROP TABLE rows; --",
		strings.Repeat("long/", 400),
	}
	var rows []store.Row
	for i, v := range odd {
		rows = append(rows, mkRow(site, store.Hour, "event:props:"+v, b, v, 0, int64(i)))
		rows = append(rows, mkRow(site, store.Hour, "event:props:x", b, v, 0, int64(i)+1000))
	}
	write(t, ctx, s, rows...)
	for i, v := range odd {
		got := scan(t, ctx, s, store.RowRange{Site: site, Granularity: store.Hour, Dimension: "event:props:" + v, From: b, To: b + 3600})
		wantRows(t, fmt.Sprintf("dimension and value %q", v), got, []store.Row{norm(rows[2*i])})
		got = scan(t, ctx, s, store.RowRange{Site: site, Granularity: store.Hour, Dimension: "event:props:x", From: b, To: b + 3600, Values: []string{v}})
		wantRows(t, fmt.Sprintf("value filter %q", v), got, []store.Row{norm(rows[2*i+1])})
	}
	got := scan(t, ctx, s, store.RowRange{Site: site, Granularity: store.Hour, Dimension: "event:props:x", From: b, To: b + 3600})
	var want []store.Row
	for i := range odd {
		want = append(want, rows[2*i+1])
	}
	wantRows(t, "odd values in order", got, sortRows(want))
	var keys []store.RowKey
	for _, r := range rows {
		keys = append(keys, r.RowKey)
	}
	wantRows(t, "GetRows with odd strings", get(t, ctx, s, keys...), sortRows(rows))
}

func testRowsVisitors(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	b := store.Day.Truncate(day0)
	big := make([]byte, 20000) // larger than a dense precision-14 HyperLogLog sketch
	for i := range big {
		big[i] = byte(rand.Uint32())
	}
	sketches := [][]byte{nil, {}, {0}, {0, 0, 0}, {0xff}, {1, 0, 2, 0}, big}
	var rows []store.Row
	for i, v := range sketches {
		r := mkRow(site, store.Day, "", b, fmt.Sprint(i), 0, int64(i))
		r.Visitors = v
		rows = append(rows, r)
	}
	write(t, ctx, s, rows...)
	got := scan(t, ctx, s, store.RowRange{Site: site, Granularity: store.Day, From: b, To: b + 86400})
	wantRows(t, "ScanRows sketches", got, sortRows(rows))
	var keys []store.RowKey
	for _, r := range rows {
		keys = append(keys, r.RowKey)
	}
	wantRows(t, "GetRows sketches", get(t, ctx, s, keys...), sortRows(rows))
	for _, r := range got {
		if r.Value == "0" && len(r.Visitors) != 0 {
			t.Errorf("row written with nil Visitors came back with %d bytes", len(r.Visitors))
		}
	}
}

func testRowsBuffers(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	b := store.Hour.Truncate(day0)
	buf := []byte{1, 2, 3, 4}
	r := mkRow(site, store.Hour, "", b, "", 0, 1)
	r.Visitors = buf
	want := norm(r)
	want.Visitors = bytes.Clone(buf)
	write(t, ctx, s, r)
	for i := range buf { // the caller reuses its buffer
		buf[i] = 0xee
	}
	rr := store.RowRange{Site: site, Granularity: store.Hour, From: b, To: b + 3600}
	got := scan(t, ctx, s, rr)
	wantRows(t, "after the caller reused its buffer", got, []store.Row{want})
	for _, g := range got { // a reader scribbles on what it got
		for i := range g.Visitors {
			g.Visitors[i] = 0xdd
		}
	}
	for _, g := range get(t, ctx, s, r.RowKey) {
		for i := range g.Visitors {
			g.Visitors[i] = 0xcc
		}
	}
	wantRows(t, "after readers changed returned slices", scan(t, ctx, s, rr), []store.Row{want})
	wantRows(t, "GetRows after readers changed returned slices", get(t, ctx, s, r.RowKey), []store.Row{want})
}

func testRowsLargeBatch(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	b := store.Minute.Truncate(day0 + 23*3600*1000) // crosses midnight
	var rows []store.Row
	for i := int64(0); i < 100; i++ {
		for v := 0; v < 10; v++ {
			for sh := int32(0); sh < 3; sh++ {
				rows = append(rows, mkRow(site, store.Minute, "event:page", b+60*i, fmt.Sprintf("/page/%03d", v), sh, i*1000+int64(v)))
			}
		}
	}
	write(t, ctx, s, rows...) // 3000 rows in one call
	got := scan(t, ctx, s, store.RowRange{Site: site, Granularity: store.Minute, Dimension: "event:page", From: b, To: b + 6000})
	wantRows(t, "ScanRows of 3000 rows", got, sortRows(rows))
	keys := make([]store.RowKey, len(rows))
	for i, r := range rows {
		keys[i] = r.RowKey
	}
	wantRows(t, "GetRows of 3000 keys", get(t, ctx, s, keys...), sortRows(rows))

	// Rewrite all of them with new state: still 3000 rows, all replaced.
	for i := range rows {
		rows[i].Pageviews += 1000
		rows[i].Offset += 5
	}
	write(t, ctx, s, rows...)
	got = scan(t, ctx, s, store.RowRange{Site: site, Granularity: store.Minute, Dimension: "event:page", From: b, To: b + 6000})
	wantRows(t, "ScanRows after rewriting 3000 rows", got, sortRows(rows))
}

var errStop = errors.New("storetest: stop")

func testRowsCallbackError(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	b := store.Hour.Truncate(day0)
	var rows []store.Row
	for i := int64(0); i < 50; i++ {
		rows = append(rows, mkRow(site, store.Hour, "", b+3600*i, "", 0, i))
	}
	write(t, ctx, s, rows...)
	calls := 0
	err := s.ScanRows(ctx, store.RowRange{Site: site, Granularity: store.Hour, From: b, To: b + 3600*50}, func(store.Row) error {
		calls++
		if calls == 3 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Errorf("ScanRows returned %v, want the callback's error", err)
	}
	if calls != 3 {
		t.Errorf("ScanRows called fn %d times after it failed on call 3, want 3", calls)
	}
}

func testRowsConcurrent(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	b := store.Minute.Truncate(day0)
	const writers, batches, perBatch = 4, 10, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*2)
	for w := int32(0); w < writers; w++ {
		wg.Add(2)
		go func() { // one processor per shard, rewriting its rows as it goes
			defer wg.Done()
			for i := int64(0); i < batches; i++ {
				rows := make([]store.Row, perBatch)
				for j := range rows {
					rows[j] = mkRow(site, store.Minute, "", b+60*int64(j), "", w, i)
				}
				if err := s.WriteRows(ctx, rows); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() { // a reader alongside
			defer wg.Done()
			for i := 0; i < batches; i++ {
				err := s.ScanRows(ctx, store.RowRange{Site: site, Granularity: store.Minute, From: b, To: b + 60*perBatch}, func(store.Row) error { return nil })
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var want []store.Row
	for w := int32(0); w < writers; w++ {
		for j := int64(0); j < perBatch; j++ {
			want = append(want, mkRow(site, store.Minute, "", b+60*j, "", w, batches-1))
		}
	}
	got := scan(t, ctx, s, store.RowRange{Site: site, Granularity: store.Minute, From: b, To: b + 60*perBatch})
	wantRows(t, "after concurrent writers", got, sortRows(want))
}

// ---------------------------------------------------------------------------------------
// events

func testEventsRoundTrip(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	evs := []store.StoredEvent{
		mkEvent(site, 0, 0, day0),
		mkEvent(site, MaxShard, math.MaxInt64, day0+1),
		{Shard: 3, Offset: 42, SessionID: math.MaxUint64, SessionStart: day0 - 3600*1000, Payload: []byte{0}, Time: day0 + 1234, Site: site},
	}
	if err := s.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	got := scanEvents(t, ctx, s, store.EventRange{Site: site, From: day0, To: day0 + dayMS})
	wantEvents(t, "ScanEvents", got, evs)
}

func testEventsIdempotent(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	var evs []store.StoredEvent
	for i := int64(0); i < 20; i++ {
		evs = append(evs, mkEvent(site, int32(i%3), 100+i, day0+i*60_000))
	}
	for range 3 { // a processor replays after a crash
		if err := s.WriteEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteEvents(ctx, []store.StoredEvent{evs[0], evs[0]}); err != nil {
		t.Fatal(err)
	}
	r := store.EventRange{Site: site, From: day0, To: day0 + dayMS}
	wantEvents(t, "after writing the same events again", scanEvents(t, ctx, s, r), evs)

	// An upsert of the same (site, shard, offset) replaces what is stored.
	changed := slices.Clone(evs)
	for i := range changed[:5] {
		changed[i].SessionID++
		changed[i].SessionStart -= 1000
		changed[i].Payload = []byte(fmt.Sprintf("v2-%d", i))
	}
	if err := s.WriteEvents(ctx, changed[:5]); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, "after upserting changed events", scanEvents(t, ctx, s, r), changed)
}

func testEventsRange(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	// Four days, four shards, events on and next to midnight and spread over each day.
	var evs []store.StoredEvent
	offsets := map[int32]int64{}
	add := func(shard int32, tm int64) {
		evs = append(evs, mkEvent(site, shard, offsets[shard], tm))
		offsets[shard]++
	}
	for d := int64(0); d < 4; d++ {
		midnight := day0 + d*dayMS
		for _, shard := range []int32{0, 1, 2, MaxShard} {
			for _, tm := range []int64{midnight, midnight + 1, midnight + 999, midnight + 6*3600*1000 + int64(shard), midnight + dayMS/2, midnight + dayMS - 1} {
				add(shard, tm)
			}
		}
	}
	add(1, day0+dayMS/2) // the same time on one shard twice, two offsets
	add(1, day0+dayMS/2)
	// Batches mixing days and shards.
	rand.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	for i := 0; i < len(evs); i += 17 {
		if err := s.WriteEvents(ctx, evs[i:min(i+17, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	filter := func(from, to int64) []store.StoredEvent {
		var out []store.StoredEvent
		for _, e := range evs {
			if e.Time >= from && e.Time < to {
				out = append(out, e)
			}
		}
		return out
	}
	cases := []struct {
		name     string
		from, to int64
	}{
		{"all four days", day0, day0 + 4*dayMS},
		{"wider than the data", day0 - 2*dayMS, day0 + 5*dayMS},
		{"one day", day0 + dayMS, day0 + 2*dayMS},
		{"To excludes midnight", day0, day0 + dayMS},
		{"From includes midnight", day0 + 2*dayMS, day0 + 2*dayMS + 1},
		{"one millisecond", day0 + 999, day0 + 1000},
		{"last millisecond of a day", day0 + dayMS - 1, day0 + dayMS},
		{"across midnight", day0 + dayMS - 1, day0 + dayMS + 1},
		{"partial days at both ends", day0 + dayMS/2, day0 + 3*dayMS + dayMS/2 + 1},
		{"inside one day", day0 + 2*dayMS + 1, day0 + 2*dayMS + dayMS/2},
		{"between events", day0 + 1000, day0 + 6*3600*1000},
		{"before the data", day0 - 3*dayMS, day0},
		{"after the data", day0 + 4*dayMS, day0 + 5*dayMS},
	}
	for _, c := range cases {
		got := scanEvents(t, ctx, s, store.EventRange{Site: site, From: c.from, To: c.to})
		wantEvents(t, c.name, got, filter(c.from, c.to))
	}
}

func testEventsIsolation(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	sites := []string{site, site + "2", site + "\x00", site[:len(site)-1], site + "/a"}
	var all []store.StoredEvent
	for i, st := range sites {
		for j := int64(0); j < 3; j++ {
			all = append(all, mkEvent(st, 0, j, day0+j*1000+int64(i)))
		}
	}
	if err := s.WriteEvents(ctx, all); err != nil {
		t.Fatal(err)
	}
	for i, st := range sites {
		got := scanEvents(t, ctx, s, store.EventRange{Site: st, From: day0, To: day0 + dayMS})
		wantEvents(t, fmt.Sprintf("site %q", st), got, all[3*i:3*i+3])
	}
}

func testEventsPayload(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = byte(rand.Uint32())
	}
	payloads := [][]byte{nil, {}, {0}, []byte("\x00\x00\xff"), []byte(`{"n":"pageview","u":"https://example.com/é"}`), big}
	var evs []store.StoredEvent
	for i, p := range payloads {
		e := mkEvent(site, 0, int64(i), day0+int64(i))
		e.Payload = p
		evs = append(evs, e)
	}
	buf := []byte("reused buffer")
	e := mkEvent(site, 1, 0, day0+100)
	e.Payload = buf
	want := e
	want.Payload = bytes.Clone(buf)
	if err := s.WriteEvents(ctx, append(slices.Clone(evs), e)); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'x'
	}
	r := store.EventRange{Site: site, From: day0, To: day0 + dayMS}
	got := scanEvents(t, ctx, s, r)
	wantEvents(t, "payloads", got, append(slices.Clone(evs), want))
	for _, g := range got {
		for i := range g.Payload {
			g.Payload[i] = 0
		}
	}
	wantEvents(t, "payloads after a reader changed them", scanEvents(t, ctx, s, r), append(slices.Clone(evs), want))
}

func testEventsCallbackError(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	site := unique(t, "site")
	var evs []store.StoredEvent
	for i := int64(0); i < 30; i++ {
		evs = append(evs, mkEvent(site, int32(i%2), i, day0+i*3600*1000))
	}
	if err := s.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	calls := 0
	err := s.ScanEvents(ctx, store.EventRange{Site: site, From: day0, To: day0 + 2*dayMS}, func(store.StoredEvent) error {
		calls++
		if calls == 2 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Errorf("ScanEvents returned %v, want the callback's error", err)
	}
	if calls != 2 {
		t.Errorf("ScanEvents called fn %d times after it failed on call 2, want 2", calls)
	}
}

// ---------------------------------------------------------------------------------------
// meta

func getMeta(t *testing.T, ctx context.Context, s store.Store, ns, key string) ([]byte, bool) {
	t.Helper()
	v, ok, err := s.GetMeta(ctx, ns, key)
	if err != nil {
		t.Fatalf("GetMeta(%q, %q): %v", ns, key, err)
	}
	return v, ok
}

func wantMeta(t *testing.T, ctx context.Context, s store.Store, ns, key string, want []byte) {
	t.Helper()
	v, ok := getMeta(t, ctx, s, ns, key)
	switch {
	case want == nil && ok:
		t.Errorf("GetMeta(%q) = %q, found; want not found", key, v)
	case want != nil && !ok:
		t.Errorf("GetMeta(%q) not found; want %q", key, want)
	case want != nil && !bytes.Equal(v, want):
		t.Errorf("GetMeta(%q) = %q; want %q", key, v, want)
	}
}

func testMetaBasic(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	ns := unique(t, "ns")
	wantMeta(t, ctx, s, ns, "missing", nil)
	if err := s.PutMeta(ctx, ns, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	wantMeta(t, ctx, s, ns, "k", []byte("v1"))
	if err := s.PutMeta(ctx, ns, "k", []byte("v2\x00")); err != nil {
		t.Fatal(err)
	}
	wantMeta(t, ctx, s, ns, "k", []byte("v2\x00"))

	// An empty value is a value: found, zero length.
	if err := s.PutMeta(ctx, ns, "empty", nil); err != nil {
		t.Fatal(err)
	}
	wantMeta(t, ctx, s, ns, "empty", []byte{})

	if err := s.DeleteMeta(ctx, ns, "k"); err != nil {
		t.Fatal(err)
	}
	wantMeta(t, ctx, s, ns, "k", nil)
	wantMeta(t, ctx, s, ns, "empty", []byte{})
	if err := s.DeleteMeta(ctx, ns, "never-written"); err != nil {
		t.Errorf("DeleteMeta of a missing key = %v, want nil", err)
	}
	if err := s.DeleteMeta(ctx, ns, "k"); err != nil {
		t.Errorf("DeleteMeta twice = %v, want nil", err)
	}
	// Deleting one key leaves its namespace neighbours alone, and other namespaces too.
	other := ns + "2"
	if err := s.PutMeta(ctx, other, "k", []byte("other")); err != nil {
		t.Fatal(err)
	}
	wantMeta(t, ctx, s, ns, "k", nil)
	wantMeta(t, ctx, s, other, "k", []byte("other"))
}

func testMetaIfAbsent(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	ns := unique(t, "ns")
	got, err := s.PutMetaIfAbsent(ctx, ns, "salt", []byte("first"))
	if err != nil || string(got) != "first" {
		t.Fatalf("PutMetaIfAbsent on an absent key = %q, %v; want %q", got, err, "first")
	}
	got, err = s.PutMetaIfAbsent(ctx, ns, "salt", []byte("second"))
	if err != nil || string(got) != "first" {
		t.Fatalf("PutMetaIfAbsent on a present key = %q, %v; want the stored %q", got, err, "first")
	}
	wantMeta(t, ctx, s, ns, "salt", []byte("first"))

	// After PutMeta, IfAbsent sees the new value; after DeleteMeta, it stores again.
	if err := s.PutMeta(ctx, ns, "salt", []byte("put")); err != nil {
		t.Fatal(err)
	}
	if got, err = s.PutMetaIfAbsent(ctx, ns, "salt", []byte("third")); err != nil || string(got) != "put" {
		t.Fatalf("PutMetaIfAbsent after PutMeta = %q, %v; want %q", got, err, "put")
	}
	if err := s.DeleteMeta(ctx, ns, "salt"); err != nil {
		t.Fatal(err)
	}
	if got, err = s.PutMetaIfAbsent(ctx, ns, "salt", []byte("fourth")); err != nil || string(got) != "fourth" {
		t.Fatalf("PutMetaIfAbsent after DeleteMeta = %q, %v; want %q", got, err, "fourth")
	}
	wantMeta(t, ctx, s, ns, "salt", []byte("fourth"))

	// The same key in another namespace is absent.
	if got, err = s.PutMetaIfAbsent(ctx, ns+"\x00", "salt", []byte("elsewhere")); err != nil || string(got) != "elsewhere" {
		t.Fatalf("PutMetaIfAbsent in another namespace = %q, %v; want %q", got, err, "elsewhere")
	}
}

func testMetaIfAbsentConcurrent(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	ns := unique(t, "ns")
	const rounds, racers = 20, 8
	for round := range rounds {
		key := fmt.Sprintf("salt-%d", round)
		results := make([][]byte, racers)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i], errs[i] = s.PutMetaIfAbsent(ctx, ns, key, []byte(fmt.Sprintf("racer-%d", i)))
			}()
		}
		close(start)
		wg.Wait()
		for i := range racers {
			if errs[i] != nil {
				t.Fatalf("%s racer %d: %v", key, i, errs[i])
			}
			if !bytes.Equal(results[i], results[0]) {
				t.Fatalf("%s: racer %d got %q, racer 0 got %q: every caller must see the one stored value", key, i, results[i], results[0])
			}
		}
		wantMeta(t, ctx, s, ns, key, results[0])
	}
}

func testMetaList(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	ns := unique(t, "ns")
	keys := []string{"", "\x00", "\x00\x00", "\x01", "a", "a\x00", "a\x00b", "a\x01", "aa", "b", "B", "é", "日本", strings.Repeat("k", 300)}
	namespaces := []string{ns, ns + "2", ns + "\x00", ns[:len(ns)-1]}
	for i, n := range namespaces {
		for _, k := range slices.Backward(keys) {
			if err := s.PutMeta(ctx, n, k, []byte(fmt.Sprintf("%d:%s", i, k))); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	for i, n := range namespaces {
		var got []string
		err := s.ListMeta(ctx, n, func(k string, v []byte) error {
			if string(v) != fmt.Sprintf("%d:%s", i, k) {
				t.Errorf("ListMeta(%q) key %q = %q, want %q", n, k, v, fmt.Sprintf("%d:%s", i, k))
			}
			got = append(got, k)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("ListMeta(%q) keys = %q, want %q (bytewise order, only this namespace)", n, got, want)
		}
	}
	if err := s.ListMeta(ctx, unique(t, "empty-ns"), func(k string, _ []byte) error {
		t.Errorf("ListMeta of an empty namespace returned %q", k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	if err := s.ListMeta(ctx, ns, func(string, []byte) error {
		calls++
		return errStop
	}); !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("ListMeta with a failing callback = %v after %d calls, want the callback's error after 1", err, calls)
	}
}

func testMetaBuffers(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	ns := unique(t, "ns")
	buf := []byte("value")
	if err := s.PutMeta(ctx, ns, "k", buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX")
	wantMeta(t, ctx, s, ns, "k", []byte("value"))
	v, _ := getMeta(t, ctx, s, ns, "k")
	copy(v, "YYYYY")
	wantMeta(t, ctx, s, ns, "k", []byte("value"))

	buf = []byte("salt")
	got, err := s.PutMetaIfAbsent(ctx, ns, "s", buf)
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXX")
	copy(got, "YYYY")
	wantMeta(t, ctx, s, ns, "s", []byte("salt"))
	if err := s.ListMeta(ctx, ns, func(_ string, v []byte) error {
		for i := range v {
			v[i] = 'Z'
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantMeta(t, ctx, s, ns, "k", []byte("value"))
	wantMeta(t, ctx, s, ns, "s", []byte("salt"))
}

// ---------------------------------------------------------------------------------------
// context, durability

func testContextCancelled(t *testing.T, open Factory) {
	_, s := openStore(t, open)
	site, ns := unique(t, "site"), unique(t, "ns")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	row := mkRow(site, store.Hour, "", store.Hour.Truncate(day0), "", 0, 1)
	never := func(what string) func() error {
		return func() error { return fmt.Errorf("%s called its callback with a cancelled context", what) }
	}
	checks := []struct {
		name string
		call func() error
	}{
		{"WriteRows", func() error { return s.WriteRows(ctx, []store.Row{row}) }},
		{"GetRows", func() error { _, err := s.GetRows(ctx, []store.RowKey{row.RowKey}); return err }},
		{"ScanRows", func() error {
			return s.ScanRows(ctx, store.RowRange{Site: site, Granularity: store.Hour, From: row.Bucket, To: row.Bucket + 3600},
				func(store.Row) error { return never("ScanRows")() })
		}},
		{"WriteEvents", func() error { return s.WriteEvents(ctx, []store.StoredEvent{mkEvent(site, 0, 0, day0)}) }},
		{"ScanEvents", func() error {
			return s.ScanEvents(ctx, store.EventRange{Site: site, From: day0, To: day0 + dayMS},
				func(store.StoredEvent) error { return never("ScanEvents")() })
		}},
		{"GetMeta", func() error { _, _, err := s.GetMeta(ctx, ns, "k"); return err }},
		{"PutMeta", func() error { return s.PutMeta(ctx, ns, "k", []byte("v")) }},
		{"PutMetaIfAbsent", func() error { _, err := s.PutMetaIfAbsent(ctx, ns, "k", []byte("v")); return err }},
		{"DeleteMeta", func() error { return s.DeleteMeta(ctx, ns, "k") }},
		{"ListMeta", func() error {
			return s.ListMeta(ctx, ns, func(string, []byte) error { return never("ListMeta")() })
		}},
	}
	for _, c := range checks {
		if err := c.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want an error wrapping context.Canceled", c.name, err)
		}
	}
}

func testContextCancelledDuringScan(t *testing.T, open Factory) {
	_, s := openStore(t, open)
	bg := ctxFor(t)
	site := unique(t, "site")
	b := store.Minute.Truncate(day0)
	var rows []store.Row
	var evs []store.StoredEvent
	for i := int64(0); i < 2000; i++ {
		rows = append(rows, mkRow(site, store.Minute, "", b+60*(i/4), "", int32(i%4), i))
		evs = append(evs, mkEvent(site, int32(i%4), i, day0+i))
	}
	write(t, bg, s, rows...)
	if err := s.WriteEvents(bg, evs); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(bg)
	calls := 0
	err := s.ScanRows(ctx, store.RowRange{Site: site, Granularity: store.Minute, From: b, To: b + 60*500}, func(store.Row) error {
		calls++
		if calls == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ScanRows cancelled after 10 of 2000 rows returned %v after %d rows, want context.Canceled", err, calls)
	}

	ctx, cancel = context.WithCancel(bg)
	calls = 0
	err = s.ScanEvents(ctx, store.EventRange{Site: site, From: day0, To: day0 + dayMS}, func(store.StoredEvent) error {
		calls++
		if calls == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ScanEvents cancelled after 10 of 2000 events returned %v after %d events, want context.Canceled", err, calls)
	}
}

func testReopen(t *testing.T, open Factory) {
	s, reopen := open(t)
	if reopen == nil {
		t.Skip("engine keeps no data across restarts")
	}
	ctx := ctxFor(t)
	site, ns := unique(t, "site"), unique(t, "ns")
	b := store.Hour.Truncate(day0)
	var rows []store.Row
	for i := int64(0); i < 300; i++ {
		r := mkRow(site, store.Hour, "event:page", b+3600*(i%24), fmt.Sprintf("/p\x00%d", i/24), int32(i%3), i)
		if i%5 == 0 {
			r.Visitors = nil
		}
		rows = append(rows, r)
	}
	write(t, ctx, s, rows...)
	var evs []store.StoredEvent
	for i := int64(0); i < 200; i++ {
		evs = append(evs, mkEvent(site, int32(i%4), i, day0+i*17*60_000))
	}
	if err := s.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta(ctx, ns, "checkpoint", []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutMetaIfAbsent(ctx, ns, "salt", []byte("s1")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta(ctx, ns, "gone", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMeta(ctx, ns, "gone"); err != nil {
		t.Fatal(err)
	}

	check := func(s store.Store, when string) {
		t.Helper()
		rr := store.RowRange{Site: site, Granularity: store.Hour, Dimension: "event:page", From: b, To: b + 24*3600}
		wantRows(t, "rows "+when, scan(t, ctx, s, rr), sortRows(rows))
		er := store.EventRange{Site: site, From: day0, To: day0 + 3*dayMS}
		wantEvents(t, "events "+when, scanEvents(t, ctx, s, er), evs)
		wantMeta(t, ctx, s, ns, "checkpoint", []byte{0, 1, 2})
		wantMeta(t, ctx, s, ns, "gone", nil)
		if got, err := s.PutMetaIfAbsent(ctx, ns, "salt", []byte("s2")); err != nil || string(got) != "s1" {
			t.Errorf("PutMetaIfAbsent %s = %q, %v; want %q", when, got, err, "s1")
		}
	}

	s = reopen()
	check(s, "after reopen")

	// The reopened store takes writes, and they survive another reopen.
	for i := range rows[:50] {
		rows[i].Pageviews += 10
		rows[i].Offset += 100
	}
	write(t, ctx, s, rows[:50]...)
	more := mkEvent(site, 0, 10_000, day0+5)
	evs = append(evs, more)
	if err := s.WriteEvents(ctx, []store.StoredEvent{more}); err != nil {
		t.Fatal(err)
	}
	s = reopen()
	check(s, "after a second reopen")
}
