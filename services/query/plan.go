package query

import (
	"fmt"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Paths a query can be answered by.
const (
	PathRollup = "rollup"
	PathScan   = "scan"
)

// plan says how one query is answered.
type plan struct {
	path   string
	reason string // why the scan path was chosen

	// rollup path
	gran      store.Granularity
	dimension string  // rollup dimension read; store.TotalsDimension for the totals row
	rowFilter *Filter // keeps the rows whose value matches
	values    []string
}

// makePlan answers from rollups whenever the rows hold exactly what the query asks:
//
//   - at most one non-time dimension, and it is one of dims.Rolled;
//   - at most one filter, on a rolled dimension, and either on the same dimension as the
//     breakdown or, without a breakdown, on a visit dimension (each visit has one value, so
//     rows add up), or on an event dimension with a single "is" value (one row), or when only
//     pageviews, events and visitors are asked (visits are what would be double counted);
//     "and", "or" and "not" over comparisons of one dimension count as one filter on it;
//   - a breakdown by or filter on a custom property only when a filter on it rejects "":
//     events without the property have no rows;
//   - the granularity is the coarsest whose buckets tile both the date range and the time
//     dimension's buckets: day rows for whole days and day/week/month buckets, hour rows for
//     time:hour or ranges in whole hours, minute rows for time:minute and realtime;
//   - minute rows hold only totals, so a breakdown or filter on minute rows is scanned.
//
// Everything else scans stored events.
func makePlan(q *Query, forceScan bool) plan {
	scan := func(format string, args ...any) plan {
		return plan{path: PathScan, reason: fmt.Sprintf(format, args...)}
	}
	if forceScan || q.ForceScan {
		return scan("the scan path was forced")
	}
	if needsRevenue(q.Metrics) {
		return scan("rollups hold no revenue; stored events do")
	}
	var dim string
	for _, d := range q.Dimensions {
		if isTimeDim(d) {
			continue
		}
		if dim != "" {
			return scan("no rollup breaks down by two dimensions (%s and %s)", dim, d)
		}
		dim = d
	}
	if dim != "" && !isRolled(dim) {
		return scan("%s has no rollup", dim)
	}
	var rowFilter *Filter
	switch len(q.Filters) {
	case 0:
	case 1:
		f := &q.Filters[0]
		// "and", "or" and "not" over one dimension select rows by value as a leaf does
		fdim := f.singleDimension()
		switch {
		case fdim == "":
			return scan("no rollup holds a filter on several dimensions (%s)", strings.Join(f.dimensions(nil), ", "))
		case !isRolled(fdim):
			return scan("%s has no rollup to filter", fdim)
		case dim != "" && fdim != dim:
			return scan("no rollup holds a breakdown by %s filtered on %s", dim, fdim)
		case dim == "" && dims.IsEvent(fdim) && !singleIs(f) && !onlyEventMetrics(q.Metrics):
			return scan("a visit can hold several %s values, so visits matching this filter cannot be added up from rollups", fdim)
		}
		dim = fdim
		rowFilter = f
	default:
		return scan("no rollup combines %d filters", len(q.Filters))
	}
	// The processor writes property rows only for events that have the property, so the
	// rows cannot tell the events without it (value "") apart.
	if key, ok := strings.CutPrefix(dim, dims.PropsPrefix); ok && (rowFilter == nil || rowFilter.Match("")) {
		return scan("events without the property %q have no rollup rows", key)
	}
	gran := q.granularity() // timeutil.go: the range, the time dimension and the site's zone
	if gran == store.Minute && dim != "" {
		return scan("minute rollups hold only totals, not %s", dim)
	}
	if gran == store.Minute && minuteRowsExpired(q) {
		return scan("this date_range needs minute rollups (its edges or buckets are not whole hours of UTC), which are kept only %d days", minuteRetentionDays(q))
	}
	p := plan{path: PathRollup, gran: gran, dimension: dim, rowFilter: rowFilter}
	if dim == "" {
		p.dimension = store.TotalsDimension
	}
	if rowFilter != nil && rowFilter.Op == OpIs && !rowFilter.IgnoreCase {
		p.values = rowFilter.Values
	}
	return p
}

func isRolled(d string) bool { return dims.IsRolled(d) }

func singleIs(f *Filter) bool { return f.Op == OpIs && len(f.Values) == 1 && !f.IgnoreCase }

// onlyEventMetrics reports whether every metric counts events (or their visitors), none
// counts visits: those add up across the rows of an event dimension.
func onlyEventMetrics(ms []string) bool {
	for _, m := range ms {
		if m != MetricPageviews && m != MetricEvents && m != MetricVisitors {
			return false
		}
	}
	return true
}
