package query

import (
	"fmt"

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
		switch {
		case !isRolled(f.Dimension):
			return scan("%s has no rollup to filter", f.Dimension)
		case dim != "" && f.Dimension != dim:
			return scan("no rollup holds a breakdown by %s filtered on %s", dim, f.Dimension)
		case dim == "" && dims.IsEvent(f.Dimension) && !singleIs(f) && !onlyEventMetrics(q.Metrics):
			return scan("a visit can hold several %s values, so visits matching this filter cannot be added up from rollups", f.Dimension)
		}
		dim = f.Dimension
		rowFilter = f
	default:
		return scan("no rollup combines %d filters", len(q.Filters))
	}
	gran := rangeGranularity(q.Range.From, q.Range.To)
	if td := q.timeDim(); td != "" {
		if g := timeDimGranularity(td); g < gran {
			gran = g
		}
	}
	if gran == store.Minute && dim != "" {
		return scan("minute rollups hold only totals, not %s", dim)
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
