package query

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/sketch"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Response is the answer to a query, shaped like Plausible's Stats API v2.
type Response struct {
	Results []ResultRow `json:"results"`
	Meta    Meta        `json:"meta"`
	Query   EchoQuery   `json:"query"`
}

// ResultRow is one row: the dimension values in the order of the query's dimensions and
// the metric values in the order of its metrics. Counts and visit_duration are integers;
// bounce_rate and views_per_visit are numbers with up to 2 decimals.
type ResultRow struct {
	Dimensions []string `json:"dimensions"`
	Metrics    []any    `json:"metrics"`
	// Comparison is the row's counterpart in the period of include.comparisons (compare.go).
	Comparison *RowComparison `json:"comparison,omitempty"`
}

// Meta says how the answer was made.
type Meta struct {
	// Path is PathRollup or PathScan; PathReason says why a query was scanned.
	Path        string `json:"path"`
	PathReason  string `json:"path_reason,omitempty"`
	Granularity string `json:"granularity,omitempty"` // rollup rows read: minute, hour or day
	// RowsRead counts rollup rows read, EventsScanned stored events read.
	RowsRead      int64 `json:"rows_read"`
	EventsScanned int64 `json:"events_scanned"`
	// BucketsCached counts rollup buckets answered from the query service's cache of past
	// buckets instead of being read (see Config.CacheBytes).
	BucketsCached int `json:"buckets_cached,omitempty"`
	// TotalRows is the number of result rows before limit and offset.
	TotalRows  int      `json:"total_rows"`
	TimeLabels []string `json:"time_labels,omitempty"`
	Warnings   []string `json:"warnings"`
}

// EchoQuery is the query as it was understood, with defaults filled in and the date range
// resolved to UTC timestamps (both ends inclusive, to the second).
type EchoQuery struct {
	SiteID     string         `json:"site_id"`
	Metrics    []string       `json:"metrics"`
	Dimensions []string       `json:"dimensions"`
	Filters    [][]any        `json:"filters"`
	DateRange  [2]string      `json:"date_range"`
	OrderBy    [][2]string    `json:"order_by"`
	Pagination EchoPagination `json:"pagination"`
	Include    EchoInclude    `json:"include"`
}

// EchoPagination is the resolved limit and offset.
type EchoPagination struct {
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
}

// EchoInclude is the resolved include options.
type EchoInclude struct {
	TimeLabels   bool            `json:"time_labels"`
	EmptyBuckets bool            `json:"empty_buckets"`
	Comparisons  *EchoComparison `json:"comparisons,omitempty"`
}

// EchoComparison is the resolved comparison: its mode and period, like date_range.
type EchoComparison struct {
	Mode      string    `json:"mode"`
	DateRange [2]string `json:"date_range"`
}

func echo(q *Query) EchoQuery {
	e := EchoQuery{
		SiteID:     q.SiteID,
		Metrics:    q.Metrics,
		Dimensions: q.Dimensions,
		Filters:    [][]any{},
		DateRange:  echoRange(q.Range, q.zone()),
		OrderBy:    [][2]string{},
		Pagination: EchoPagination{Limit: q.Limit, Offset: q.Offset},
		Include:    EchoInclude{TimeLabels: q.Include.TimeLabels, EmptyBuckets: q.Include.EmptyBuckets},
	}
	for i := range q.Filters {
		e.Filters = append(e.Filters, q.Filters[i].echo())
	}
	if q.Compare != nil {
		e.Include.Comparisons = &EchoComparison{Mode: q.Compare.Mode, DateRange: echoRange(q.Compare.Range, q.zone())}
	}
	for _, o := range q.OrderBy {
		dir := "asc"
		if o.Desc {
			dir = "desc"
		}
		e.OrderBy = append(e.OrderBy, [2]string{o.Field, dir})
	}
	return e
}

// echoRange renders r as both ends, inclusive to the second, in the site's time zone
// (RFC 3339 with its offset; "Z" for UTC).
func echoRange(r DateRange, loc *time.Location) [2]string {
	return [2]string{r.From.In(loc).Format(time.RFC3339), r.To.Add(-time.Second).In(loc).Format(time.RFC3339)}
}

// gkey is a group's dimension values, in the order of the query's dimensions.
type gkey [MaxDimensions]string

// acc accumulates one group. Visitors are a union of row sketches on the rollup path and
// an exact set on the scan path.
type acc struct {
	pageviews, events, visits, bounces, durationMS int64

	sk  *sketch.Union
	ids map[uint64]struct{}

	// rev is the revenue of the group's events (scan path only, revenue.go); base the
	// visitors conversion_rate divides by (goals.go).
	rev  revenueTotals
	base int64
}

// groups holds the accumulators of one query by dimension values.
type groups struct {
	m            map[gkey]*acc
	needVisitors bool
	exact        bool // exact visitor sets (scan) instead of sketches (rollup)
}

func newGroups(q *Query, exact bool) *groups {
	return &groups{m: map[gkey]*acc{}, needVisitors: contains(q.Metrics, MetricVisitors), exact: exact}
}

func (g *groups) get(k gkey) *acc {
	a := g.m[k]
	if a == nil {
		a = &acc{}
		if g.needVisitors {
			if g.exact {
				a.ids = map[uint64]struct{}{}
			} else {
				a.sk = &sketch.Union{}
			}
		}
		g.m[k] = a
	}
	return a
}

// addRow folds a rollup row's aggregate into a.
func (a *acc) addRow(r *store.Aggregate) error {
	a.pageviews += r.Pageviews
	a.events += r.Events
	a.visits += r.Visits
	a.bounces += r.Bounces
	a.durationMS += r.DurationMS
	if a.sk != nil {
		return a.sk.Add(r.Visitors)
	}
	return nil
}

func (a *acc) visitors() int64 {
	switch {
	case a.ids != nil:
		return int64(len(a.ids))
	case a.sk != nil:
		return a.sk.Estimate()
	}
	return 0
}

// value computes metric m for a, following docs/metrics.md.
func (a *acc) value(m string) float64 {
	switch m {
	case MetricVisitors:
		return float64(a.visitors())
	case MetricVisits:
		return float64(a.visits)
	case MetricPageviews:
		return float64(a.pageviews)
	case MetricEvents:
		return float64(a.events)
	case MetricBounceRate:
		if a.visits == 0 {
			return 0
		}
		return ratio2(100*a.bounces, a.visits)
	case MetricViewsPerVisit:
		if a.visits == 0 {
			return 0
		}
		return ratio2(a.pageviews, a.visits)
	case MetricVisitDuration:
		if a.visits == 0 {
			return 0
		}
		return math.Round(float64(a.durationMS) / float64(1000*a.visits)) // one division: halves stay exact
	case MetricConversionRate:
		if a.base == 0 {
			return 0
		}
		// visitors on rollups are estimates of two different sets; never report over 100%
		return min(100, round2(100*float64(a.visitors())/float64(a.base)))
	}
	return 0
}

// metricIsInt reports whether m is reported as an integer (bounce_rate, views_per_visit
// and conversion_rate are decimals; revenue is rendered by revenue.go).
func metricIsInt(m string) bool {
	return m != MetricBounceRate && m != MetricViewsPerVisit && m != MetricConversionRate
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// ratio2 returns num/den rounded to 2 decimals, halves away from zero. Dividing 100*num
// in one step keeps exact halves exact: round2(51.0/40) gives 1.27, since 1.275 has no
// exact binary fraction and 100*1.275 comes out a little under 127.5.
func ratio2(num, den int64) float64 { return math.Round(float64(100*num)/float64(den)) / 100 }

// outRow is a result row before rendering.
type outRow struct {
	key  gkey
	vals []float64
	a    *acc
}

// finish turns groups into the response rows: computes metrics, fills empty time buckets
// when asked, orders, and paginates.
func finish(q *Query, g *groups, resp *Response) {
	nd := len(q.Dimensions)
	td := -1
	for i, d := range q.Dimensions {
		if isTimeDim(d) {
			td = i
		}
	}
	if td >= 0 && (q.Include.TimeLabels || q.Include.EmptyBuckets) {
		labels := labelsIn(q.Dimensions[td], q.Range.From, q.Range.To, q.Location)
		if q.Include.TimeLabels {
			resp.Meta.TimeLabels = make([]string, 0, len(labels))
		}
		for _, l := range labels {
			if q.Include.TimeLabels {
				resp.Meta.TimeLabels = append(resp.Meta.TimeLabels, l)
			}
			if q.Include.EmptyBuckets {
				var k gkey
				k[td] = l
				if g.m[k] == nil {
					g.get(k)
				}
			}
		}
	}
	if nd == 0 && len(g.m) == 0 {
		g.get(gkey{}) // an aggregate query always has its one row, zeros when there is no data
	}

	resp.Meta.Warnings = append(resp.Meta.Warnings, otherPropWarnings(q, g)...)
	if q.revenue != nil {
		if w := q.revenue.decide(g); w != "" {
			resp.Meta.Warnings = append(resp.Meta.Warnings, w)
		}
	}
	rows := make([]outRow, 0, len(g.m))
	for k, a := range g.m {
		r := outRow{key: k, vals: make([]float64, len(q.Metrics)), a: a}
		for i, m := range q.Metrics {
			if isRevenueMetric(m) {
				r.vals[i] = q.revenue.sortKey(a.rev, m)
			} else {
				r.vals[i] = a.value(m)
			}
		}
		rows = append(rows, r)
	}
	sortRows(q, rows)

	resp.Meta.TotalRows = len(rows)
	start := min(q.Offset, len(rows))
	end := min(start+q.Limit, len(rows))
	resp.Results = make([]ResultRow, 0, end-start)
	for _, r := range rows[start:end] {
		rr := ResultRow{Dimensions: make([]string, nd), Metrics: make([]any, len(q.Metrics))}
		copy(rr.Dimensions, r.key[:nd])
		for i, v := range r.vals {
			if isRevenueMetric(q.Metrics[i]) {
				rr.Metrics[i] = q.revenue.value(r.a.rev, q.Metrics[i])
			} else if metricIsInt(q.Metrics[i]) {
				rr.Metrics[i] = int64(v)
			} else {
				rr.Metrics[i] = v
			}
		}
		resp.Results = append(resp.Results, rr)
	}
}

// sortRows orders rows by q.OrderBy, which always ends with every dimension, so the order
// is total and answers are deterministic.
func sortRows(q *Query, rows []outRow) {
	type key struct {
		metric int // index into vals, or -1
		dim    int // index into key, or -1
		desc   bool
	}
	keys := make([]key, 0, len(q.OrderBy))
	for _, o := range q.OrderBy {
		k := key{metric: slices.Index(q.Metrics, o.Field), dim: slices.Index(q.Dimensions, o.Field), desc: o.Desc}
		if k.metric >= 0 || k.dim >= 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(rows, func(a, b outRow) int {
		for _, k := range keys {
			var c int
			if k.metric >= 0 {
				c = cmp.Compare(a.vals[k.metric], b.vals[k.metric])
			} else {
				c = strings.Compare(a.key[k.dim], b.key[k.dim])
			}
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
}

// otherPropWarnings says, for every custom-property dimension of q whose answer has the
// value dims.OtherValue, that it holds the values beyond the processor's daily limit.
func otherPropWarnings(q *Query, g *groups) []string {
	var warnings []string
	for i, d := range q.Dimensions {
		if !strings.HasPrefix(d, dims.PropsPrefix) {
			continue
		}
		for k := range g.m {
			if k[i] == dims.OtherValue {
				warnings = append(warnings, fmt.Sprintf("%s: values beyond the daily limit of distinct values per property key are counted together under %q (processor setting --processor.max-prop-values, applied per bus partition)", d, dims.OtherValue))
				break
			}
		}
	}
	return warnings
}
