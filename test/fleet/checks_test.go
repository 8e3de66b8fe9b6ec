package fleet

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/loadgen"
	"github.com/glimpse-analytics/glimpse/test/testkit"
)

// visitorTolerance is the relative error allowed on unique visitors: they are HyperLogLog
// estimates (about 0.8% standard error at the sketch's precision; 2% is beyond 2 sigma).
const visitorTolerance = 0.02

// scanFilter is a filter no rollup holds, so the query engine answers from stored events.
var scanFilter = []any{[]any{"is_not", "visit:browser", []string{"no such browser"}}}

// totalsMetrics are the metrics checkTotals asks for, in this order.
var totalsMetrics = []string{"visitors", "visits", "pageviews", "events", "bounce_rate", "views_per_visit", "visit_duration"}

// waitCounted waits until every site's page views and custom events reach the expected
// numbers (the processors caught up), failing after timeout; it fails at once when a
// number goes beyond what was sent.
func waitCounted(t *testing.T, api testkit.API, expected map[string]*loadgen.Counts, timeout time.Duration) {
	t.Helper()
	for _, site := range sortedSites(expected) {
		want := expected[site]
		testkit.WaitFor(t, timeout, site+" page views and events", func() (bool, string) {
			r := api.Query(t, map[string]any{"site_id": site, "metrics": []string{"pageviews", "events"}, "date_range": testkit.TodayRange()})
			if len(r.Results) == 0 {
				return false, "no results yet"
			}
			pv, ev := int(r.Results[0].Metrics[0]), int(r.Results[0].Metrics[1])
			if pv > want.Pageviews || ev > want.Events {
				t.Fatalf("%s: pageviews=%d events=%d exceed what was sent (%d, %d): counted twice", site, pv, ev, want.Pageviews, want.Events)
			}
			return pv == want.Pageviews && ev == want.Events, fmt.Sprintf("pageviews=%d events=%d, want %d %d", pv, ev, want.Pageviews, want.Events)
		})
	}
}

// checkCounts compares every number the query API reports for each site with the
// expected ones: totals (from rollups and from a scan of stored events) and the page,
// source, entry/exit page and device breakdowns in the promised order. Visitors are
// compared within visitorTolerance; everything else exactly.
func checkCounts(t *testing.T, api testkit.API, expected map[string]*loadgen.Counts, started time.Time, scan bool) {
	t.Helper()
	for _, site := range sortedSites(expected) {
		want := expected[site]
		t.Run(site+"/totals", func(t *testing.T) {
			modes := []bool{false}
			if scan {
				modes = append(modes, true)
			}
			for _, forceScan := range modes {
				q := map[string]any{"site_id": site, "metrics": totalsMetrics, "date_range": testkit.TodayRange()}
				if forceScan {
					q["filters"] = scanFilter
				}
				r := api.Query(t, q)
				if len(r.Results) != 1 {
					t.Fatalf("scan=%v: want one result row, got %+v", forceScan, r)
				}
				m := r.Results[0].Metrics
				testkit.CheckNear(t, fmt.Sprintf("scan=%v visitors", forceScan), m[0], float64(want.Visitors), visitorTolerance)
				testkit.CheckEqual(t, fmt.Sprintf("scan=%v visits", forceScan), m[1], float64(want.Visits))
				testkit.CheckEqual(t, fmt.Sprintf("scan=%v pageviews", forceScan), m[2], float64(want.Pageviews))
				testkit.CheckEqual(t, fmt.Sprintf("scan=%v events", forceScan), m[3], float64(want.Events))
				testkit.CheckEqual(t, fmt.Sprintf("scan=%v bounce_rate", forceScan), m[4], want.BounceRate())
				testkit.CheckEqual(t, fmt.Sprintf("scan=%v views_per_visit", forceScan), m[5], want.ViewsPerVisit())
				if m[6] < 0 || m[6] > time.Since(started).Seconds()+1 {
					t.Errorf("scan=%v visit_duration %v s is impossible for a run of %s", forceScan, m[6], time.Since(started))
				}
			}
		})
		for _, b := range testkit.Breakdowns(want) {
			t.Run(site+"/"+b.Dim, func(t *testing.T) {
				q := map[string]any{"site_id": site, "metrics": []string{b.Metric}, "dimensions": []string{b.Dim}, "date_range": testkit.TodayRange(), "limit": 1000}
				r := api.Query(t, q)
				got := r.Breakdown()
				if fmt.Sprint(testkit.SortedKV(got)) != fmt.Sprint(testkit.SortedKV(b.Want)) {
					t.Fatalf("%s by %s:\n got %v\nwant %v", b.Metric, b.Dim, testkit.SortedKV(got), testkit.SortedKV(b.Want))
				}
				top := loadgen.TopN(b.Want, 0)
				for i, row := range r.Results {
					if testkit.DimString(row.Dimensions[0]) != top[i].Key || int(row.Metrics[0]) != top[i].Value {
						t.Fatalf("row %d is %v, want %v (metric descending, then value)", i, row, top[i])
					}
				}
			})
		}
	}
}

// acknowledgedPaths splits the page-view paths of a UniquePaths plan into those whose
// beacon got a 2xx (must be counted exactly once) and those that never did (may be
// counted once: the event can land although its answer was lost).
func acknowledgedPaths(p *loadgen.Plan, rep *loadgen.Report, mustOnce, mayOnce map[string]bool) {
	for vi, v := range p.Visits {
		for bi, b := range v.Beacons {
			if b.Name != "pageview" {
				continue
			}
			if rep.Outcome[vi][bi] {
				mustOnce[b.Path] = true
			} else {
				mayOnce[b.Path] = true
			}
		}
	}
}

// checkExactlyOnce waits until every path in mustOnce is counted, then fails if any path
// is counted more than once or a path nobody sent shows up. It returns the page-view total.
func checkExactlyOnce(t *testing.T, api testkit.API, site string, mustOnce, mayOnce map[string]bool, timeout time.Duration) int {
	t.Helper()
	var counts map[string]int
	testkit.WaitFor(t, timeout, "every acknowledged page view to be counted", func() (bool, string) {
		r := api.Query(t, map[string]any{"site_id": site, "metrics": []string{"pageviews"}, "dimensions": []string{"event:page"},
			"date_range": testkit.TodayRange(), "limit": 100000})
		counts = r.Breakdown()
		missing := 0
		for p := range mustOnce {
			if counts[p] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d acknowledged page views not counted yet", missing, len(mustOnce))
	})
	var twice, unknown []string
	total, late := 0, 0
	for p, n := range counts {
		total += n
		switch {
		case n > 1:
			twice = append(twice, fmt.Sprintf("%s×%d (acknowledged=%v)", p, n, mustOnce[p]))
		case !mustOnce[p] && !mayOnce[p]:
			unknown = append(unknown, p)
		case !mustOnce[p]:
			late++
		}
	}
	sort.Strings(twice)
	if len(twice) > 0 || len(unknown) > 0 {
		t.Fatalf("counted more than once: %d %v; never sent: %v", len(twice), testkit.Head(twice, 20), testkit.Head(unknown, 20))
	}
	t.Logf("%d acknowledged page views each counted exactly once; %d never acknowledged were counted once (landed, answer lost)", len(mustOnce), late)
	return total
}

func sortedSites(m map[string]*loadgen.Counts) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
