package query

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
	"github.com/glimpse-analytics/glimpse/services/processor"
)

// zoneStore feeds evs, in time order, through two processor partitions (by visitor id, as
// the bus key does) into a new memory store, and lists each site in the store's site list
// with the given time zone.
func zoneStore(t *testing.T, siteZones map[string]string, evs []*event.Event) *memstore.Store {
	t.Helper()
	ctx := context.Background()
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	dir := sites.NewDirectory(st, sites.Options{})
	for site, tz := range siteZones {
		if _, err := dir.Add(ctx, sites.Site{Domain: site, Timezone: tz}); err != nil {
			t.Fatal(err)
		}
	}
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b *event.Event) int { return cmp.Compare(a.Time, b.Time) })
	const shards = 2
	parts := make([]*processor.Partition, shards)
	for i := range parts {
		p, err := processor.OpenPartition(ctx, processor.DefaultConfig(), processor.Deps{Store: st, Log: slog.New(slog.DiscardHandler)}, int32(i))
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = p
	}
	offsets := make([]int64, shards)
	for i, e := range evs {
		s := e.VisitorID % shards
		if !parts[s].Apply(offsets[s], e) {
			t.Fatalf("the processor did not count event %d (%+v)", i, e)
		}
		offsets[s]++
	}
	for _, p := range parts {
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	return st
}

// pageviewAt is a page view of visitor vid at the wall-clock time ts of zone tz.
func pageviewAt(t *testing.T, site, tz string, vid uint64, ts, path string) *event.Event {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := time.ParseInLocation("2006-01-02 15:04", ts, loc)
	if err != nil {
		t.Fatal(err)
	}
	return &event.Event{Site: site, VisitorID: vid, Time: tm.UnixMilli(), Name: "pageview", Hostname: site, Path: path}
}

// bothPaths answers body from rollups and by a forced scan, checks that both give want
// (when not nil) and each other's rows, and returns the rollup answer.
func bothPaths(t *testing.T, rollup, scan testService, body string, want [][]any) *Response {
	t.Helper()
	a, b := rollup.query(t, body), scan.query(t, body)
	if b.Meta.Path != PathScan {
		t.Fatalf("forced scan answered from %s", b.Meta.Path)
	}
	ra, rb := rowsOf(a), rowsOf(b)
	if want != nil && !reflect.DeepEqual(ra, want) {
		t.Errorf("%s\n%s path: got  %v\nwant %v", body, a.Meta.Path, ra, want)
	}
	if !reflect.DeepEqual(ra, rb) {
		t.Errorf("%s\nrollup %v\nscan   %v", body, ra, rb)
	}
	return a
}

// A page view at 23:30 in Berlin belongs to that Berlin day, though it is the next day's
// 22:30 in UTC... and one at 00:30 to the next, though it is still the day before in UTC.
func TestSiteTimezoneDayBoundaries(t *testing.T) {
	const berlin, utc = "tz.test", "utc.test"
	var evs []*event.Event
	for _, site := range []string{berlin, utc} {
		evs = append(evs,
			pageviewAt(t, site, "Europe/Berlin", 1, "2026-03-09 23:30", "/a"), // 22:30 UTC on the 9th
			pageviewAt(t, site, "Europe/Berlin", 2, "2026-03-10 00:30", "/b"), // 23:30 UTC on the 9th
			pageviewAt(t, site, "Europe/Berlin", 3, "2026-03-10 23:30", "/c"), // 22:30 UTC on the 10th
		)
	}
	st := zoneStore(t, map[string]string{berlin: "Europe/Berlin", utc: "UTC"}, evs)
	rollup := newTestService(t, st)
	scan := newTestService(t, st, func(c *Config) { c.ForceScan = true })

	q := func(site, rest string) string {
		return `{"site_id":"` + site + `","metrics":["visitors","pageviews","visits"],` + rest + `}`
	}
	r := bothPaths(t, rollup, scan, q(berlin, `"date_range":["2026-03-10","2026-03-10"]`), [][]any{{"2", "2", "2"}})
	if r.Meta.Path != PathRollup || r.Meta.Granularity != "hour" {
		t.Errorf("a Berlin day was answered from %s %s rows, want hour rollups", r.Meta.Path, r.Meta.Granularity)
	}
	if want := [2]string{"2026-03-10T00:00:00+01:00", "2026-03-10T23:59:59+01:00"}; r.Query.DateRange != want {
		t.Errorf("echoed date_range %v, want %v", r.Query.DateRange, want)
	}
	bothPaths(t, rollup, scan, q(berlin, `"date_range":["2026-03-09","2026-03-10"],"dimensions":["time:day"]`),
		[][]any{{"2026-03-09", "1", "1", "1"}, {"2026-03-10", "2", "2", "2"}})
	bothPaths(t, rollup, scan, q(berlin, `"date_range":["2026-03-09","2026-03-10"],"dimensions":["event:page"],"order_by":[["event:page","asc"]]`),
		[][]any{{"/a", "1", "1", "1"}, {"/b", "1", "1", "1"}, {"/c", "1", "1", "1"}})
	// the cache holds UTC hour buckets: asked again, the Berlin days come from it unchanged
	body := q(berlin, `"date_range":["2026-03-09","2026-03-10"],"dimensions":["time:day"]`)
	r = rollup.query(t, body)
	if r.Meta.BucketsCached == 0 || !reflect.DeepEqual(rowsOf(r), [][]any{{"2026-03-09", "1", "1", "1"}, {"2026-03-10", "2", "2", "2"}}) {
		t.Errorf("from the cache (%d buckets): %v", r.Meta.BucketsCached, rowsOf(r))
	}
	// the same events on a UTC site fall on other days
	r = bothPaths(t, rollup, scan, q(utc, `"date_range":["2026-03-09","2026-03-10"],"dimensions":["time:day"]`),
		[][]any{{"2026-03-09", "2", "2", "2"}, {"2026-03-10", "1", "1", "1"}})
	if r.Meta.Granularity != "day" {
		t.Errorf("a UTC site read %s rows, want day rows", r.Meta.Granularity)
	}
	// hour labels are Berlin's wall clock
	bothPaths(t, rollup, scan, q(berlin, `"date_range":["2026-03-10","2026-03-10"],"dimensions":["time:hour"]`),
		[][]any{{"2026-03-10 00:00:00", "1", "1", "1"}, {"2026-03-10 23:00:00", "1", "1", "1"}})

	// "day" is today in Berlin: at 23:45 Berlin time on the 10th that is still the 10th
	late := time.Date(2026, 3, 10, 22, 45, 0, 0, time.UTC)
	for site, want := range map[string]string{berlin: "2", utc: "1"} {
		body := q(site, `"date_range":"day"`)
		parsed, err := ParseQuery([]byte(body), late, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rollup.Execute(context.Background(), parsed)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(resp.Results[0].Metrics[0]); got != want {
			t.Errorf("%s: today's visitors %s, want %s", site, got, want)
		}
	}
}

// Berlin's DST changes: 30 March 2025 has 23 hours (no 02:00), 26 October 2025 has 25 (02:00
// twice). Each UTC hour gets one page view of its own visitor.
func TestSiteTimezoneDST(t *testing.T) {
	const site = "dst.test"
	var evs []*event.Event
	hourly := func(from, to time.Time) {
		for h := from; h.Before(to); h = h.Add(time.Hour) {
			evs = append(evs, &event.Event{Site: site, VisitorID: uint64(len(evs) + 1), Time: h.Add(10 * time.Minute).UnixMilli(), Name: "pageview", Hostname: site, Path: "/"})
		}
	}
	hourly(time.Date(2025, 3, 29, 20, 0, 0, 0, time.UTC), time.Date(2025, 3, 31, 2, 0, 0, 0, time.UTC))
	hourly(time.Date(2025, 10, 25, 20, 0, 0, 0, time.UTC), time.Date(2025, 10, 27, 2, 0, 0, 0, time.UTC))
	st := zoneStore(t, map[string]string{site: "Europe/Berlin"}, evs)
	rollup := newTestService(t, st)
	scan := newTestService(t, st, func(c *Config) { c.ForceScan = true })
	q := func(rest string) string {
		return `{"site_id":"` + site + `","metrics":["visitors","pageviews","visits"],` + rest + `}`
	}

	// March: the 29th (CET) holds 20:00–22:59 UTC, the 30th 23 hours, the 31st (CEST) 22:00–01:59 UTC
	bothPaths(t, rollup, scan, q(`"date_range":["2025-03-29","2025-03-31"],"dimensions":["time:day"]`),
		[][]any{{"2025-03-29", "3", "3", "3"}, {"2025-03-30", "23", "23", "23"}, {"2025-03-31", "4", "4", "4"}})
	r := bothPaths(t, rollup, scan, q(`"date_range":["2025-03-30","2025-03-30"],"dimensions":["time:hour"],"include":{"time_labels":true}`), nil)
	if len(r.Results) != 23 || len(r.Meta.TimeLabels) != 23 {
		t.Fatalf("30 March: %d rows, %d labels; want 23 of each", len(r.Results), len(r.Meta.TimeLabels))
	}
	for i, row := range r.Results {
		h := i
		if i >= 2 { // 02:00 does not exist
			h++
		}
		want := fmt.Sprintf("2025-03-30 %02d:00:00", h)
		if row.Dimensions[0] != want || r.Meta.TimeLabels[i] != want || fmt.Sprint(row.Metrics[1]) != "1" {
			t.Errorf("30 March row %d: %v %v (label %s), want %s with 1 page view", i, row.Dimensions, row.Metrics, r.Meta.TimeLabels[i], want)
		}
	}

	// October: the 26th holds 22:00 UTC on the 25th to 22:59 UTC on the 26th, 25 hours
	bothPaths(t, rollup, scan, q(`"date_range":["2025-10-25","2025-10-27"],"dimensions":["time:day"]`),
		[][]any{{"2025-10-25", "2", "2", "2"}, {"2025-10-26", "25", "25", "25"}, {"2025-10-27", "3", "3", "3"}})
	bothPaths(t, rollup, scan, q(`"date_range":["2025-10-26","2025-10-26"]`), [][]any{{"25", "25", "25"}})
	r = bothPaths(t, rollup, scan, q(`"date_range":["2025-10-26","2025-10-26"],"dimensions":["time:hour"],"include":{"time_labels":true}`), nil)
	if len(r.Results) != 24 || len(r.Meta.TimeLabels) != 24 {
		t.Fatalf("26 October: %d rows, %d labels; want 24 of each (02:00 twice, as one label)", len(r.Results), len(r.Meta.TimeLabels))
	}
	for i, row := range r.Results {
		want, views := fmt.Sprintf("2025-10-26 %02d:00:00", i), "1"
		if i == 2 {
			views = "2"
		}
		if row.Dimensions[0] != want || r.Meta.TimeLabels[i] != want || fmt.Sprint(row.Metrics[1]) != views {
			t.Errorf("26 October row %d: %v %v, want %s with %s page views", i, row.Dimensions, row.Metrics, want, views)
		}
	}
}

// Weeks start on Monday and months on the 1st of the site's zone; the first and last
// buckets may be partial, labelled by the Monday or the 1st all the same.
func TestSiteTimezoneWeeksAndMonths(t *testing.T) {
	const site = "wm.test"
	tz := "Europe/Berlin"
	evs := []*event.Event{
		pageviewAt(t, site, tz, 1, "2026-02-28 23:30", "/"), // Saturday, February
		pageviewAt(t, site, tz, 2, "2026-03-01 00:30", "/"), // Sunday, March; still February in UTC
		pageviewAt(t, site, tz, 3, "2026-03-01 23:30", "/"), // Sunday
		pageviewAt(t, site, tz, 4, "2026-03-02 00:30", "/"), // Monday; still Sunday in UTC
	}
	st := zoneStore(t, map[string]string{site: tz}, evs)
	rollup := newTestService(t, st)
	scan := newTestService(t, st, func(c *Config) { c.ForceScan = true })
	q := func(rest string) string {
		return `{"site_id":"` + site + `","metrics":["visitors","pageviews"],"date_range":["2026-02-25","2026-03-10"],` + rest + `}`
	}
	r := bothPaths(t, rollup, scan, q(`"dimensions":["time:week"],"include":{"time_labels":true}`),
		[][]any{{"2026-02-23", "3", "3"}, {"2026-03-02", "1", "1"}})
	if want := []string{"2026-02-23", "2026-03-02", "2026-03-09"}; !reflect.DeepEqual(r.Meta.TimeLabels, want) {
		t.Errorf("week labels %v, want %v", r.Meta.TimeLabels, want)
	}
	r = bothPaths(t, rollup, scan, q(`"dimensions":["time:month"],"include":{"time_labels":true}`),
		[][]any{{"2026-02-01", "1", "1"}, {"2026-03-01", "3", "3"}})
	if want := []string{"2026-02-01", "2026-03-01"}; !reflect.DeepEqual(r.Meta.TimeLabels, want) {
		t.Errorf("month labels %v, want %v", r.Meta.TimeLabels, want)
	}
}

// Offsets of :30 are not whole UTC hours: Kolkata's days and hours are answered from
// minute rollups (totals) or the scan, and agree with counting the events one by one.
func TestSiteTimezoneHalfHourOffset(t *testing.T) {
	const site = "in.test"
	loc, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 5))
	var evs []*event.Event
	begin := time.Date(2026, 2, 27, 0, 0, 0, 0, time.UTC).UnixMilli()
	end := testNow.UnixMilli()
	for v := uint64(1); v <= 40; v++ {
		t0 := begin + rng.Int64N(end-begin)
		for n := 1 + rng.IntN(4); n > 0 && t0 < end; n-- {
			for k := 1 + rng.IntN(3); k > 0 && t0 < end; k-- {
				evs = append(evs, &event.Event{Site: site, VisitorID: v, Time: t0, Name: "pageview", Hostname: site, Path: "/p" + fmt.Sprint(rng.IntN(3))})
				t0 += int64(time.Minute/time.Millisecond) * (1 + rng.Int64N(20))
			}
			t0 += int64(time.Hour/time.Millisecond) * (1 + rng.Int64N(60))
		}
	}
	// and page views in the first and last half hour of 10–12 March, Kolkata time
	evs = append(evs, pageviewAt(t, site, "Asia/Kolkata", 101, "2026-03-10 00:10", "/p0"), pageviewAt(t, site, "Asia/Kolkata", 102, "2026-03-12 23:50", "/p1"))
	st := zoneStore(t, map[string]string{site: "Asia/Kolkata"}, evs)
	rollup := newTestService(t, st)

	// brute force: page views, visitors and visits (by their first event) per Kolkata day
	slices.SortStableFunc(evs, func(a, b *event.Event) int {
		return cmp.Or(cmp.Compare(a.VisitorID, b.VisitorID), cmp.Compare(a.Time, b.Time))
	})
	type counts struct {
		visitors       map[uint64]bool
		pageviews, vis int
	}
	byDay := map[string]*counts{}
	get := func(ms int64) *counts {
		d := time.UnixMilli(ms).In(loc).Format(dayLayout)
		if byDay[d] == nil {
			byDay[d] = &counts{visitors: map[uint64]bool{}}
		}
		return byDay[d]
	}
	for i, e := range evs {
		c := get(e.Time)
		c.pageviews++
		c.visitors[e.VisitorID] = true
		if i == 0 || evs[i-1].VisitorID != e.VisitorID || e.Time-evs[i-1].Time > (30*time.Minute).Milliseconds() {
			c.vis++
		}
	}
	want := func(days ...string) [][]any {
		var out [][]any
		for _, d := range days {
			if c := byDay[d]; c != nil {
				out = append(out, []any{d, fmt.Sprint(len(c.visitors)), fmt.Sprint(c.pageviews), fmt.Sprint(c.vis)})
			}
		}
		return out
	}
	q := func(rest string) string {
		return `{"site_id":"` + site + `","metrics":["visitors","pageviews","visits"],` + rest + `}`
	}
	recent := []string{"2026-03-10", "2026-03-11", "2026-03-12"}
	r := rollup.query(t, q(`"date_range":["2026-03-10","2026-03-12"],"dimensions":["time:day"]`))
	if got, w := rowsOf(r), want(recent...); !reflect.DeepEqual(got, w) {
		t.Errorf("Kolkata days from %s: %v, want %v", r.Meta.Path, got, w)
	}
	if r.Meta.Path != PathRollup || r.Meta.Granularity != "minute" {
		t.Errorf("recent Kolkata days answered from %s %s rows, want minute rollups", r.Meta.Path, r.Meta.Granularity)
	}
	// the totals of those days: 30 minutes of minute rows at each end, hours, a whole UTC day
	total := map[uint64]bool{}
	pv, vis := 0, 0
	for _, d := range recent {
		if c := byDay[d]; c != nil {
			pv, vis = pv+c.pageviews, vis+c.vis
			for v := range c.visitors {
				total[v] = true
			}
		}
	}
	r = rollup.query(t, q(`"date_range":["2026-03-10","2026-03-12"]`))
	if got, w := rowsOf(r), [][]any{{fmt.Sprint(len(total)), fmt.Sprint(pv), fmt.Sprint(vis)}}; !reflect.DeepEqual(got, w) || r.Meta.Path != PathRollup {
		t.Errorf("Kolkata totals from %s: %v, want %v", r.Meta.Path, got, w)
	}
	old := []string{"2026-02-28", "2026-03-01", "2026-03-02"}
	r = rollup.query(t, q(`"date_range":["2026-02-28","2026-03-02"],"dimensions":["time:day"]`))
	if got, w := rowsOf(r), want(old...); !reflect.DeepEqual(got, w) {
		t.Errorf("Kolkata days from %s: %v, want %v", r.Meta.Path, got, w)
	}
	if r.Meta.Path != PathScan || !strings.Contains(r.Meta.PathReason, "minute rollups") {
		t.Errorf("days older than the minute rollups answered from %s (%s), want the scan", r.Meta.Path, r.Meta.PathReason)
	}
	if len(rowsOf(r)) < 2 {
		t.Fatalf("too little traffic to compare: %v", rowsOf(r))
	}
	// a breakdown is scanned; its rows add up to the brute-force totals of the day
	r = rollup.query(t, q(`"date_range":["2026-03-11","2026-03-11"],"dimensions":["event:page"]`))
	pv = 0
	for _, row := range r.Results {
		n, _ := row.Metrics[1].(json.Number).Int64()
		pv += int(n)
	}
	if c := byDay["2026-03-11"]; c == nil || pv != c.pageviews || r.Meta.Path != PathScan {
		t.Errorf("page views by page on 11 March: %d from %s, want %v", pv, r.Meta.Path, c)
	}
	// hour labels start at :00 of Kolkata's clock, which is :30 in UTC
	r = rollup.query(t, q(`"date_range":["2026-03-11","2026-03-11"],"dimensions":["time:hour"]`))
	for _, row := range r.Results {
		if !strings.HasPrefix(row.Dimensions[0], "2026-03-11 ") || !strings.HasSuffix(row.Dimensions[0], ":00:00") {
			t.Errorf("hour label %q", row.Dimensions[0])
		}
	}
}

// Comparisons with known traffic on a UTC site.
func TestComparisons(t *testing.T) {
	const site = "cmp.test"
	var evs []*event.Event
	vid := uint64(0)
	add := func(day, path string, n int) {
		for range n {
			vid++
			evs = append(evs, pageviewAt(t, site, "UTC", vid, day+" 12:00", path))
		}
	}
	add("2026-03-08", "/a", 2) // the range: 8–14 March, 5 page views
	add("2026-03-10", "/a", 1)
	add("2026-03-10", "/b", 2)
	add("2026-03-02", "/a", 1) // the week before: 4 page views
	add("2026-03-02", "/c", 3)
	add("2025-03-10", "/a", 10) // a year before: 10
	add("2026-02-03", "/b", 1)  // a custom period: 1
	st := zoneStore(t, map[string]string{site: "UTC"}, evs)
	svc := newTestService(t, st)
	q := func(rest string) *Response {
		return svc.query(t, `{"site_id":"`+site+`","metrics":["pageviews","bounce_rate"],"date_range":["2026-03-08","2026-03-14"],`+rest+`}`)
	}
	cmpOf := func(r *Response) [][]any {
		var out [][]any
		for _, row := range r.Results {
			if row.Comparison == nil {
				out = append(out, nil)
				continue
			}
			line := []any{}
			for _, d := range row.Comparison.Dimensions {
				line = append(line, d)
			}
			for _, m := range append(append([]any{}, row.Comparison.Metrics...), row.Comparison.Change...) {
				line = append(line, fmt.Sprint(m))
			}
			out = append(out, line)
		}
		return out
	}
	check := func(name string, r *Response, want [][]any) {
		t.Helper()
		if got := cmpOf(r); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: comparisons %v, want %v", name, got, want)
		}
	}

	r := q(`"include":{"comparisons":{"mode":"previous_period"}}`)
	check("previous_period", r, [][]any{{"4", "100", "25", "0"}})
	if c := r.Query.Include.Comparisons; c == nil || c.DateRange != [2]string{"2026-03-01T00:00:00Z", "2026-03-07T23:59:59Z"} {
		t.Errorf("echoed comparison %+v", c)
	}
	check("year_over_year", q(`"include":{"comparisons":{"mode":"year_over_year"}}`), [][]any{{"10", "100", "-50", "0"}})
	check("custom", q(`"include":{"comparisons":{"mode":"custom","date_range":["2026-02-01","2026-02-07"]}}`), [][]any{{"1", "100", "400", "0"}})

	// time buckets are matched by position: 8 March with 1 March, 9 March with 2 March, ...
	r = q(`"dimensions":["time:day"],"include":{"empty_buckets":true,"comparisons":{"mode":"previous_period"}}`)
	check("previous_period by day", r, [][]any{
		{"2026-03-01", "0", "0", "<nil>", "100"},
		{"2026-03-02", "4", "100", "-100", "-100"},
		{"2026-03-03", "0", "0", "<nil>", "100"},
		{"2026-03-04", "0", "0", "0", "0"},
		{"2026-03-05", "0", "0", "0", "0"},
		{"2026-03-06", "0", "0", "0", "0"},
		{"2026-03-07", "0", "0", "0", "0"},
	})
	// other dimensions are matched by value; a value without traffic compares with zeros
	r = q(`"dimensions":["event:page"],"order_by":[["event:page","asc"]],"include":{"comparisons":{"mode":"previous_period"}}`)
	check("previous_period by page", r, [][]any{
		{"/a", "1", "100", "200", "0"},
		{"/b", "0", "0", "<nil>", "100"},
	})
}

// Year over year keeps calendar dates; 29 February compares with the 28th.
func TestComparisonPeriods(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dateRange, mode string
		loc             *time.Location
		want            [2]string
	}{
		{`["2028-02-29","2028-02-29"]`, "year_over_year", time.UTC, [2]string{"2027-02-28T00:00:00Z", "2027-02-28T23:59:59Z"}},
		{`["2028-02-01","2028-02-29"]`, "year_over_year", time.UTC, [2]string{"2027-02-01T00:00:00Z", "2027-02-28T23:59:59Z"}},
		{`["2027-03-01","2027-03-31"]`, "year_over_year", time.UTC, [2]string{"2026-03-01T00:00:00Z", "2026-03-31T23:59:59Z"}},
		{`"month"`, "previous_period", time.UTC, [2]string{"2026-01-29T00:00:00Z", "2026-02-28T23:59:59Z"}},
		// a week across Berlin's change to summer time: 7 days back, not 168 hours
		{`["2025-03-31","2025-04-06"]`, "previous_period", berlin, [2]string{"2025-03-24T00:00:00+01:00", "2025-03-30T23:59:59+02:00"}},
		{`["2026-03-12T06:00:00Z","2026-03-12T18:00:00Z"]`, "previous_period", time.UTC, [2]string{"2026-03-11T18:00:00Z", "2026-03-12T05:59:59Z"}},
	}
	for _, c := range cases {
		body := `{"site_id":"x","metrics":["visitors"],"date_range":` + c.dateRange + `,"include":{"comparisons":{"mode":"` + c.mode + `"}}}`
		q, err := ParseQuery([]byte(body), testNow, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := q.SetLocation(c.loc, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if got := echo(q).Include.Comparisons.DateRange; got != c.want {
			t.Errorf("%s %s in %s: %v, want %v", c.dateRange, c.mode, c.loc, got, c.want)
		}
	}
}

func TestDateRangesInZone(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2025, 11, 3, 2, 0, 0, 0, time.UTC) // 2 November in New York
	cases := map[string][2]string{
		`"day"`:   {"2026-03-15T00:00:00-04:00", "2026-03-15T23:59:59-04:00"},
		`"7d"`:    {"2026-03-09T00:00:00-04:00", "2026-03-15T23:59:59-04:00"},
		`"month"`: {"2026-03-01T00:00:00-05:00", "2026-03-31T23:59:59-04:00"},
		`"6mo"`:   {"2025-10-01T00:00:00-04:00", "2026-03-31T23:59:59-04:00"},
		`"12mo"`:  {"2025-04-01T00:00:00-04:00", "2026-03-31T23:59:59-04:00"},
		`"year"`:  {"2026-01-01T00:00:00-05:00", "2026-12-31T23:59:59-05:00"},
		`"all"`:   {"2025-11-02T00:00:00-04:00", "2026-03-15T23:59:59-04:00"},
	}
	for in, want := range cases {
		r, err := parseDateRangeIn(json.RawMessage(in), testNow, ny, created)
		if err != nil {
			t.Fatal(err)
		}
		if got := echoRange(r, ny); got != want {
			t.Errorf("%s: %v, want %v", in, got, want)
		}
	}
}

func TestBadComparisons(t *testing.T) {
	svc := newTestService(t, memstore.New())
	base := `{"site_id":"x","metrics":["visitors"],"date_range":"7d","include":{"comparisons":`
	cases := map[string]string{
		`"previous_period"}}`:                   `include.comparisons must be {"mode": "previous_period"}`,
		`{}}}`:                                  "include.comparisons.mode is required",
		`{"mode":"last_week"}}}`:                `unknown include.comparisons.mode "last_week"`,
		`{"mode":"custom"}}}`:                   `needs a "date_range" of two dates`,
		`{"mode":"custom","date_range":"7d"}}}`: `needs a "date_range" of two dates`,
		`{"mode":"custom","date_range":["2026-01-01","2026-13-01"]}}}`:          `include.comparisons.date_range: "2026-13-01" is not a date`,
		`{"mode":"previous_period","date_range":["2026-01-01","2026-01-02"]}}}`: `date_range is only for "mode": "custom"`,
		`{"mode":"previous_period","match_day_of_week":true}}}`:                 "match_day_of_week can only be false",
		`{"mode":"previous_period","colour":"red"}}}`:                           `unknown include.comparisons option "colour"`,
		`{"mode":7}}}`: "include.comparisons.mode must be a string",
	}
	for body, want := range cases {
		w := svc.post(base + body)
		var e errorBody
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != http.StatusBadRequest || !strings.Contains(e.Error, want) {
			t.Errorf("%s: %d %s, want 400 containing %q", body, w.Code, w.Body.String(), want)
		}
	}
	if w := svc.post(`{"site_id":"x","metrics":["visitors"],"date_range":["1970-01-01","1970-01-05"],"include":{"comparisons":{"mode":"year_over_year"}}}`); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "before 1970-01-01") {
		t.Errorf("comparison before 1970: %d %s", w.Code, w.Body.String())
	}
}

// A site whose stored time zone this server does not know gets an answer saying how to fix it.
func TestUnknownSiteTimezone(t *testing.T) {
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	if err := st.PutMeta(context.Background(), sites.SitesNamespace, "bad.test", []byte(`{"domain":"bad.test","hostnames":["bad.test"],"timezone":"Mars/Olympus_Mons"}`)); err != nil {
		t.Fatal(err)
	}
	svc := newTestService(t, st)
	w := svc.post(`{"site_id":"bad.test","metrics":["visitors"],"date_range":"7d"}`)
	if w.Code == http.StatusOK || !strings.Contains(w.Body.String(), "glimpse sites add bad.test --update --timezone") {
		t.Errorf("%d %s", w.Code, w.Body.String())
	}
}

// Ranges are read from the coarsest rows that fit, finer ones only at the edges.
func TestTileRange(t *testing.T) {
	const hour, day = int64(secPerHour), int64(secPerDay)
	cases := []struct {
		name     string
		from, to int64
		finest   store.Granularity
		want     []tile
	}{
		{"Berlin, 30 days", 10*day - hour, 40*day - hour, store.Hour,
			[]tile{{10*day - hour, 10 * day, store.Hour}, {10 * day, 39 * day, store.Day}, {39 * day, 40*day - hour, store.Hour}}},
		{"Kolkata, 2 days", 10*day - 11*hour/2, 12*day - 11*hour/2, store.Minute,
			[]tile{
				{10*day - 11*hour/2, 10*day - 5*hour, store.Minute}, {10*day - 5*hour, 10 * day, store.Hour},
				{10 * day, 11 * day, store.Day},
				{11 * day, 12*day - 6*hour, store.Hour}, {12*day - 6*hour, 12*day - 11*hour/2, store.Minute},
			}},
		{"one Berlin day", 10*day - hour, 11*day - hour, store.Hour,
			[]tile{{10*day - hour, 11*day - hour, store.Hour}}},
		{"UTC days", 10 * day, 12 * day, store.Day, []tile{{10 * day, 12 * day, store.Day}}},
	}
	for _, c := range cases {
		if got := tileRange(c.from, c.to, c.finest); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
