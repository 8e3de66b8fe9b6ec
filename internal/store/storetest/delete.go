package storetest

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// SiteScanner reads everything the engine holds, below the store.Store interface (Pebble:
// every key of the database; Cassandra: every row of every table of the keyspace), and
// counts, by site, the entries that belong to one. Entries that name no site (meta) are
// not counted. It is how RunDeleteSite proves that nothing of a deleted site is left
// anywhere, not only where the store's own reads look.
type SiteScanner func(t *testing.T, s store.Store) map[string]int

// RunDeleteSite checks store.SiteDeleter: it writes rows of every granularity and events
// of several days and shards for two sites (one site's name a prefix of the other's),
// deletes one, scans the whole store with scan and checks that nothing of the deleted site
// is left and that the other site and the meta table are untouched. Stores may be shared
// with other tests.
func RunDeleteSite(t *testing.T, open Factory, scan SiteScanner) {
	t.Helper()
	t.Run("DeleteSite/RemovesEverythingOfOneSite", func(t *testing.T) { testDeleteSite(t, open, scan) })
	t.Run("DeleteSite/UnknownSite", func(t *testing.T) { testDeleteUnknownSite(t, open) })
}

func deleter(t *testing.T, s store.Store) store.SiteDeleter {
	t.Helper()
	d, ok := s.(store.SiteDeleter)
	if !ok {
		t.Fatalf("%T does not implement store.SiteDeleter", s)
	}
	return d
}

// siteData writes a site's rows (3 granularities, totals and two dimensions, 3 days, 2
// shards) and events (3 days, 2 shards) and returns them.
func siteData(t *testing.T, ctx context.Context, s store.Store, site string) ([]store.Row, []store.StoredEvent) {
	t.Helper()
	var rows []store.Row
	var evs []store.StoredEvent
	n := int64(1)
	for day := int64(0); day < 3; day++ {
		t0 := day0 + day*dayMS + 9*3600*1000
		for _, g := range []store.Granularity{store.Minute, store.Hour, store.Day} {
			for _, dim := range []string{store.TotalsDimension, "event:page", "event:props:plan"} {
				if g == store.Minute && dim != store.TotalsDimension {
					continue
				}
				val := ""
				if dim != store.TotalsDimension {
					val = "/v"
				}
				for shard := int32(0); shard < 2; shard++ {
					rows = append(rows, mkRow(site, g, dim, g.Truncate(t0), val, shard, n))
					n++
				}
			}
		}
		for shard := int32(0); shard < 2; shard++ {
			for i := int64(0); i < 3; i++ {
				evs = append(evs, mkEvent(site, shard, 100*day+i, t0+i*1000))
			}
		}
	}
	write(t, ctx, s, rows...)
	if err := s.WriteEvents(ctx, evs); err != nil {
		t.Fatalf("WriteEvents: %v", err)
	}
	return rows, evs
}

func countByGranularity(rows []store.Row) map[store.Granularity]int64 {
	out := map[store.Granularity]int64{}
	for _, r := range rows {
		out[r.Granularity]++
	}
	return out
}

func siteRows(t *testing.T, ctx context.Context, s store.Store, site string) []store.Row {
	t.Helper()
	var out []store.Row
	for _, g := range []store.Granularity{store.Minute, store.Hour, store.Day} {
		for _, dim := range []string{store.TotalsDimension, "event:page", "event:props:plan"} {
			out = append(out, scan(t, ctx, s, store.RowRange{Site: site, Granularity: g, Dimension: dim, From: day0 / 1000, To: (day0 + 4*dayMS) / 1000})...)
		}
	}
	return sortRows(out)
}

func testDeleteSite(t *testing.T, open Factory, scanStore SiteScanner) {
	ctx, s := openStore(t, open)
	gone := unique(t, "site")
	kept := gone + "b" // its encoding starts with the deleted site's name
	ns := unique(t, "ns")
	goneRows, goneEvents := siteData(t, ctx, s, gone)
	keptRows, keptEvents := siteData(t, ctx, s, kept)
	if err := s.PutMeta(ctx, ns, gone, []byte("meta of the site")); err != nil {
		t.Fatal(err)
	}

	before := scanStore(t, s)
	if before[gone] < len(goneRows)+len(goneEvents) || before[kept] < len(keptRows)+len(keptEvents) {
		t.Fatalf("scan before the delete found %d entries of %s and %d of %s, want at least %d each: the scanner misses data",
			before[gone], gone, before[kept], kept, len(goneRows)+len(goneEvents))
	}

	rep, err := deleter(t, s).DeleteSite(ctx, gone)
	if err != nil {
		t.Fatalf("DeleteSite: %v", err)
	}
	if want := countByGranularity(goneRows); !maps.Equal(rep.Rows, want) {
		t.Errorf("report rows = %v, want %v", rep.Rows, want)
	}
	if rep.Events != int64(len(goneEvents)) {
		t.Errorf("report events = %d, want %d", rep.Events, len(goneEvents))
	}

	after := scanStore(t, s)
	if after[gone] != 0 {
		t.Errorf("after DeleteSite a scan of the whole store still finds %d entries of %s", after[gone], gone)
	}
	if after[kept] != before[kept] {
		t.Errorf("after DeleteSite of %s, the store holds %d entries of %s, want the %d it held before", gone, after[kept], kept, before[kept])
	}
	if got := siteRows(t, ctx, s, gone); len(got) != 0 {
		t.Errorf("ScanRows of the deleted site returns %d rows", len(got))
	}
	all := store.EventRange{Site: gone, From: day0, To: day0 + 3*dayMS}
	if got := scanEvents(t, ctx, s, all); len(got) != 0 {
		t.Errorf("ScanEvents of the deleted site returns %d events", len(got))
	}
	wantRows(t, "rows of the other site", siteRows(t, ctx, s, kept), sortRows(keptRows))
	all.Site = kept
	wantEvents(t, "events of the other site", scanEvents(t, ctx, s, all), keptEvents)
	wantMeta(t, ctx, s, ns, gone, []byte("meta of the site"))

	// Deleting again finds nothing, and the site can be written afresh.
	rep, err = deleter(t, s).DeleteSite(ctx, gone)
	if err != nil || rep.TotalRows() != 0 || rep.Events != 0 {
		t.Errorf("second DeleteSite = %+v, %v; want an empty report", rep, err)
	}
	again := mkEvent(gone, 0, 999, day0+dayMS)
	if err := s.WriteEvents(ctx, []store.StoredEvent{again}); err != nil {
		t.Fatal(err)
	}
	write(t, ctx, s, goneRows[0])
	wantEvents(t, "events written after the delete", scanEvents(t, ctx, s, store.EventRange{Site: gone, From: day0, To: day0 + 3*dayMS}), []store.StoredEvent{again})
	wantRows(t, "rows written after the delete", siteRows(t, ctx, s, gone), sortRows(goneRows[:1]))
}

func testDeleteUnknownSite(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	rep, err := deleter(t, s).DeleteSite(ctx, unique(t, "nothing"))
	if err != nil {
		t.Fatalf("DeleteSite of a site without data = %v, want no error", err)
	}
	if rep.TotalRows() != 0 || rep.Events != 0 {
		t.Errorf("DeleteSite of a site without data reports %+v", rep)
	}
	if _, err := deleter(t, s).DeleteSite(ctx, ""); err == nil {
		t.Error("DeleteSite of the empty site succeeded, want an error")
	}
}

// Sweeper is implemented by the engines that enforce store.Retention themselves (the
// embedded Pebble store and the memory store); Cassandra expires data by TTL instead.
type Sweeper interface {
	Sweep(ctx context.Context, r store.Retention, now time.Time) (store.SweepReport, error)
}

// RunRetention checks Sweeper: rows and events older than the retention are gone after a
// sweep, newer ones (and everything kept forever) stay. open must hand out an empty store:
// the sweep's report counts everything the store holds.
func RunRetention(t *testing.T, open Factory) {
	t.Helper()
	t.Run("Retention/Sweep", func(t *testing.T) { testRetention(t, open) })
}

func testRetention(t *testing.T, open Factory) {
	ctx, s := openStore(t, open)
	sw, ok := s.(Sweeper)
	if !ok {
		t.Fatalf("%T does not implement Sweep", s)
	}
	site := unique(t, "site")
	const day = 24 * time.Hour
	now := time.UnixMilli(day0).Add(20*day + 13*time.Hour + 17*time.Minute + 5*time.Second)
	r := store.Retention{Minute: 2 * day, Hour: 10 * day, Day: 0, Events: 3 * day}
	sec := func(t time.Time) int64 { return t.Unix() }

	minuteCut := store.Minute.Truncate(now.Add(-r.Minute).UnixMilli())
	hourCut := store.Hour.Truncate(now.Add(-r.Hour).UnixMilli())
	expired := []store.Row{
		mkRow(site, store.Minute, "", minuteCut-60, "", 0, 1),
		mkRow(site, store.Minute, "", sec(now.Add(-5*day)), "", 1, 2),
		mkRow(site, store.Hour, "event:page", hourCut-3600, "/a", 0, 3),
		mkRow(site, store.Hour, "", sec(now.Add(-30*day)), "", 0, 4),
	}
	kept := []store.Row{
		mkRow(site, store.Minute, "", minuteCut, "", 0, 5), // the bucket holding the cutoff
		mkRow(site, store.Minute, "", store.Minute.Truncate(now.UnixMilli()), "", 0, 6),
		mkRow(site, store.Hour, "event:page", hourCut, "/a", 0, 7),
		mkRow(site, store.Day, "", store.Day.Truncate(now.Add(-15*day).UnixMilli()), "", 0, 8), // day rows: forever
	}
	write(t, ctx, s, append(append([]store.Row{}, expired...), kept...)...)

	eventCut := store.Day.Truncate(now.Add(-r.Events).UnixMilli()) * 1000
	oldEvents := []store.StoredEvent{mkEvent(site, 0, 1, eventCut-1), mkEvent(site, 1, 2, now.Add(-10*day).UnixMilli())}
	newEvents := []store.StoredEvent{mkEvent(site, 0, 3, eventCut), mkEvent(site, 1, 4, now.Add(-time.Hour).UnixMilli())}
	if err := s.WriteEvents(ctx, append(append([]store.StoredEvent{}, oldEvents...), newEvents...)); err != nil {
		t.Fatal(err)
	}

	rep, err := sw.Sweep(ctx, r, now)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if want := countByGranularity(expired); rep.Rows[store.Minute] != want[store.Minute] || rep.Rows[store.Hour] != want[store.Hour] || rep.Rows[store.Day] != 0 {
		t.Errorf("sweep report rows = %v, want %v", rep.Rows, want)
	}
	if rep.Events != int64(len(oldEvents)) {
		t.Errorf("sweep report events = %d, want %d", rep.Events, len(oldEvents))
	}

	var got []store.Row
	for _, g := range []store.Granularity{store.Minute, store.Hour, store.Day} {
		for _, dim := range []string{"", "event:page"} {
			got = append(got, scan(t, ctx, s, store.RowRange{Site: site, Granularity: g, Dimension: dim, From: 0, To: sec(now) + 86400})...)
		}
	}
	wantRows(t, "rows after the sweep", sortRows(got), sortRows(kept))
	wantEvents(t, "events after the sweep", scanEvents(t, ctx, s, store.EventRange{Site: site, From: 0, To: now.UnixMilli() + 1}), newEvents)

	rep, err = sw.Sweep(ctx, r, now)
	if err != nil || !rep.Empty() {
		t.Errorf("second Sweep = %+v, %v; want nothing removed", rep, err)
	}
	rep, err = sw.Sweep(ctx, store.Retention{}, now.Add(100*365*day))
	if err != nil || !rep.Empty() {
		t.Errorf("Sweep with everything kept forever = %+v, %v; want nothing removed", rep, err)
	}
}
