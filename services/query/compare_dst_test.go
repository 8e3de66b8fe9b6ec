package query

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

// dstSite counts in Europe/Berlin, where clocks went back on Sunday 26 October 2025 (02:00
// twice; a 25-hour day) and forward on Sunday 30 March 2025 and Sunday 29 March 2026 (no
// 02:00; 23-hour days).
const dstSite = "dst-compare.test"

// comparedRows renders each result row with its comparison: the row's dimensions and
// metrics, then the comparison's dimensions, metrics and changes ("<nil>" for null).
func comparedRows(r *Response) [][]string {
	out := make([][]string, 0, len(r.Results))
	for _, row := range r.Results {
		var line []string
		add := func(vs ...any) {
			for _, v := range vs {
				line = append(line, fmt.Sprint(v))
			}
		}
		for _, d := range row.Dimensions {
			add(d)
		}
		add(row.Metrics...)
		if c := row.Comparison; c != nil {
			add("vs")
			for _, d := range c.Dimensions {
				add(d)
			}
			add(c.Metrics...)
			add("change")
			add(c.Change...)
		}
		out = append(out, line)
	}
	return out
}

// checkCompared asks body from rollups and by a forced scan and checks both against the
// rows want (see comparedRows) and the echoed date ranges of the period and its comparison.
func checkCompared(t *testing.T, rollup, scan testService, body string, want [][]string, period, compared [2]string) {
	t.Helper()
	for name, svc := range map[string]testService{"rollup": rollup, "scan": scan} {
		r := svc.query(t, body)
		if got := comparedRows(r); !reflect.DeepEqual(got, want) {
			t.Errorf("%s (%s path):\ngot  %v\nwant %v", body, name, got, want)
		}
		if r.Query.DateRange != period {
			t.Errorf("%s (%s path): echoed date_range %v, want %v", body, name, r.Query.DateRange, period)
		}
		if c := r.Query.Include.Comparisons; c == nil || c.DateRange != compared {
			t.Errorf("%s (%s path): echoed comparison %+v, want date_range %v", body, name, c, compared)
		}
	}
}

// dstTraffic is page views at Berlin wall-clock times. Each entry is one visitor's visit;
// times close to midnight fall on another day in UTC, so a comparison that cut days in UTC
// or moved a period by a fixed number of hours would count them elsewhere.
func dstTraffic(t *testing.T, visits [][]string) []*event.Event {
	t.Helper()
	var evs []*event.Event
	for i, times := range visits {
		for _, ts := range times {
			evs = append(evs, pageviewAt(t, dstSite, "Europe/Berlin", uint64(1000+i), ts, "/"))
		}
	}
	return evs
}

// previous_period over the week that ends with the 25-hour day compares with the week
// before: 7 local days back, each with its own midnight.
func TestComparePreviousWeekAcrossFallBack(t *testing.T) {
	evs := dstTraffic(t, [][]string{
		// the week before, Monday 13 to Sunday 19 October (CEST)
		{"2025-10-12 23:50"}, // Sunday before it: counted nowhere
		{"2025-10-13 00:10"}, // 22:10 UTC on the 12th
		{"2025-10-13 00:10"},
		{"2025-10-13 00:10"},
		{"2025-10-15 10:00", "2025-10-15 10:10"}, // one visit of two pages
		{"2025-10-19 23:45"},
		// the week of the change, Monday 20 to Sunday 26 October
		{"2025-10-20 00:15"}, // 22:15 UTC on the 19th: this week, not the week before
		{"2025-10-20 00:15"},
		{"2025-10-22 12:00", "2025-10-22 12:05", "2025-10-22 12:10"},
		{"2025-10-26 00:30"}, // 22:30 UTC on the 25th
		{"2025-10-26 23:30"}, // after the 25th hour: 22:30 UTC
		{"2025-10-27 00:30"}, // the Monday after, though still the 26th in UTC: counted nowhere
	})
	// The two 02:30 of the 26th: 00:30 UTC (summer time) and 01:30 UTC (standard time).
	for i, utcHour := range []int{0, 1} {
		evs = append(evs, &event.Event{Site: dstSite, VisitorID: uint64(2000 + i), Name: "pageview", Hostname: dstSite, Path: "/",
			Time: at(fmt.Sprintf("2025-10-26 %02d:30:00", utcHour)).UnixMilli()})
	}
	st := zoneStore(t, map[string]string{dstSite: "Europe/Berlin"}, evs)
	rollup := newTestService(t, st)
	scan := newTestService(t, st, func(c *Config) { c.ForceScan = true })
	q := func(dims string) string {
		return `{"site_id":"` + dstSite + `","metrics":["visitors","pageviews","bounce_rate"],"date_range":["2025-10-20","2025-10-26"],"dimensions":[` + dims + `],"include":{"empty_buckets":` + fmt.Sprint(dims != "") + `,"comparisons":{"mode":"previous_period"}}}`
	}
	period := [2]string{"2025-10-20T00:00:00+02:00", "2025-10-26T23:59:59+01:00"}
	before := [2]string{"2025-10-13T00:00:00+02:00", "2025-10-19T23:59:59+02:00"}

	// This week: 7 visitors (2 + 1 + 4), 9 page views, 6 of 7 visits bounced; the week
	// before: 5 visitors, 6 page views, 4 of 5 bounced.
	checkCompared(t, rollup, scan, q(""), [][]string{
		{"7", "9", "85.71", "vs", "5", "6", "80", "change", "40", "50", "5.7"},
	}, period, before)

	checkCompared(t, rollup, scan, q(`"time:day"`), [][]string{
		{"2025-10-20", "2", "2", "100", "vs", "2025-10-13", "3", "3", "100", "change", "-33.3", "-33.3", "0"},
		{"2025-10-21", "0", "0", "0", "vs", "2025-10-14", "0", "0", "0", "change", "0", "0", "0"},
		{"2025-10-22", "1", "3", "0", "vs", "2025-10-15", "1", "2", "0", "change", "0", "50", "0"},
		{"2025-10-23", "0", "0", "0", "vs", "2025-10-16", "0", "0", "0", "change", "0", "0", "0"},
		{"2025-10-24", "0", "0", "0", "vs", "2025-10-17", "0", "0", "0", "change", "0", "0", "0"},
		{"2025-10-25", "0", "0", "0", "vs", "2025-10-18", "0", "0", "0", "change", "0", "0", "0"},
		// the 25-hour day: both 02:30 count, and so do 00:30 and 23:30
		{"2025-10-26", "4", "4", "100", "vs", "2025-10-19", "1", "1", "100", "change", "300", "300", "0"},
	}, period, before)
}

// year_over_year across the change to summer time, which fell on 29 March in 2026 and on
// 30 March in 2025: each local day compares with the same date a year earlier, whatever its
// length in either year.
func TestCompareYearOverYearAcrossSpringForward(t *testing.T) {
	evs := dstTraffic(t, [][]string{
		// 2025: 28 to 31 March
		{"2025-03-27 23:50"}, // the day before: counted nowhere
		{"2025-03-28 00:30"}, // 23:30 UTC on the 27th
		{"2025-03-30 00:30"}, // standard time, 23:30 UTC on the 29th
		{"2025-03-30 00:30"},
		{"2025-03-30 03:30"}, // summer time, 01:30 UTC
		{"2025-03-31 23:45"}, // 21:45 UTC
		{"2025-04-01 00:30"}, // still 31 March in UTC: counted nowhere
		// 2026: 28 to 31 March
		{"2026-03-27 23:30"}, // the day before: counted nowhere
		{"2026-03-28 23:30"},
		{"2026-03-29 00:30"},                     // 23:30 UTC on the 28th
		{"2026-03-29 03:30"},                     // summer time, 01:30 UTC
		{"2026-03-29 23:30"},                     // 21:30 UTC
		{"2026-03-31 00:15", "2026-03-31 00:20"}, // 22:15 UTC on the 30th, one visit of two pages
		{"2026-03-31 00:15"},
		{"2026-04-01 00:15"}, // still 31 March in UTC: counted nowhere
	})
	st := zoneStore(t, map[string]string{dstSite: "Europe/Berlin"}, evs)
	rollup := newTestService(t, st)
	scan := newTestService(t, st, func(c *Config) { c.ForceScan = true })
	q := func(dims string) string {
		return `{"site_id":"` + dstSite + `","metrics":["visitors","pageviews","bounce_rate"],"date_range":["2026-03-28","2026-03-31"],"dimensions":[` + dims + `],"include":{"empty_buckets":` + fmt.Sprint(dims != "") + `,"comparisons":{"mode":"year_over_year"}}}`
	}
	period := [2]string{"2026-03-28T00:00:00+01:00", "2026-03-31T23:59:59+02:00"}
	yearBefore := [2]string{"2025-03-28T00:00:00+01:00", "2025-03-31T23:59:59+02:00"}

	// 2026: 6 visitors, 7 page views, 5 of 6 visits bounced; 2025: 5 visitors and page
	// views, all bounced.
	checkCompared(t, rollup, scan, q(""), [][]string{
		{"6", "7", "83.33", "vs", "5", "5", "100", "change", "20", "40", "-16.7"},
	}, period, yearBefore)

	checkCompared(t, rollup, scan, q(`"time:day"`), [][]string{
		{"2026-03-28", "1", "1", "100", "vs", "2025-03-28", "1", "1", "100", "change", "0", "0", "0"},
		// 23 hours in 2026, 24 in 2025: growth from nothing has no percentage
		{"2026-03-29", "3", "3", "100", "vs", "2025-03-29", "0", "0", "0", "change", "<nil>", "<nil>", "100"},
		// 24 hours in 2026, 23 in 2025
		{"2026-03-30", "0", "0", "0", "vs", "2025-03-30", "3", "3", "100", "change", "-100", "-100", "-100"},
		{"2026-03-31", "2", "3", "50", "vs", "2025-03-31", "1", "1", "100", "change", "100", "200", "-50"},
	}, period, yearBefore)
}
