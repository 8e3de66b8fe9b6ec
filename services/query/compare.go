package query

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// Comparison modes of include.comparisons.
const (
	ComparePreviousPeriod = "previous_period"
	CompareYearOverYear   = "year_over_year"
	CompareCustom         = "custom"
)

// Comparison is the period a query is compared with, as include.comparisons asks:
//
//   - previous_period: as many days (for timestamps: as long) right before the date range;
//   - year_over_year: the same calendar dates a year earlier (29 February becomes the 28th);
//   - custom: a date_range of its own.
type Comparison struct {
	Mode  string
	Range DateRange // resolved with the query's date range, in the site's time zone

	rawRange json.RawMessage // custom
}

const compareHelp = `include.comparisons must be {"mode": "previous_period"}, {"mode": "year_over_year"} or {"mode": "custom", "date_range": ["2026-01-01","2026-01-31"]}`

// parseComparisons parses include.comparisons; null means none.
func parseComparisons(raw json.RawMessage) (*Comparison, error) {
	if isNull(raw) {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, badRequest("%s, got %s", compareHelp, describeJSON(raw))
	}
	for k, v := range m {
		switch k {
		case "mode", "date_range":
		case "match_day_of_week":
			var b bool
			if json.Unmarshal(v, &b) != nil || b {
				return nil, badRequest("include.comparisons.match_day_of_week can only be false: comparisons keep calendar dates")
			}
		default:
			return nil, badRequest("unknown include.comparisons option %q; %s", truncate(k, 40), compareHelp)
		}
	}
	c := &Comparison{}
	if err := decodeField(m, "mode", &c.Mode, "a string"); err != nil {
		return nil, badRequest("include.comparisons.%s", err.Error())
	}
	raw, hasRange := m["date_range"]
	hasRange = hasRange && !isNull(raw)
	switch c.Mode {
	case ComparePreviousPeriod, CompareYearOverYear:
		if hasRange {
			return nil, badRequest(`include.comparisons.date_range is only for "mode": "custom"; %s derives its period from the query's date_range`, c.Mode)
		}
	case CompareCustom:
		if !hasRange || !strings.HasPrefix(strings.TrimSpace(string(raw)), "[") {
			return nil, badRequest(`include.comparisons with "mode": "custom" needs a "date_range" of two dates, e.g. ["2026-01-01","2026-01-31"]`)
		}
		c.rawRange = raw
	case "":
		return nil, badRequest("include.comparisons.mode is required; %s", compareHelp)
	default:
		return nil, badRequest("unknown include.comparisons.mode %q; %s", truncate(c.Mode, 40), compareHelp)
	}
	return c, nil
}

// resolveComparison resolves q.Compare.Range from q.Range in q's time zone.
func (q *Query) resolveComparison() error {
	c, r, loc := q.Compare, q.Range, q.zone()
	switch c.Mode {
	case CompareCustom:
		cr, err := parseDateRangeIn(c.rawRange, q.now, loc, time.Time{})
		if err != nil {
			var qe *Error
			if errors.As(err, &qe) {
				return badRequest("include.comparisons.%s", qe.Msg)
			}
			return err
		}
		c.Range = cr
	case ComparePreviousPeriod:
		if r.Days {
			fy, fm, fd := r.From.In(loc).Date()
			n := daysBetween(r.From.In(loc), r.To.In(loc))
			c.Range = DateRange{Input: c.Mode, From: localMidnight(fy, fm, fd-n, loc), To: r.From, Days: true}
		} else {
			d := r.To.Sub(r.From)
			c.Range = DateRange{Input: c.Mode, From: r.From.Add(-d), To: r.From}
		}
	case CompareYearOverYear:
		if r.Days {
			fy, fm, fd := yearBefore(r.From.In(loc).Date())
			// the range's last day, a year back, and the day after it
			ly, lm, ld := yearBefore(r.To.In(loc).AddDate(0, 0, -1).Date())
			c.Range = DateRange{Input: c.Mode, From: localMidnight(fy, fm, fd, loc), To: localMidnight(ly, lm, ld+1, loc), Days: true}
		} else {
			shift := func(t time.Time) time.Time {
				l := t.In(loc)
				y, m, d := yearBefore(l.Date())
				return time.Date(y, m, d, l.Hour(), l.Minute(), 0, 0, loc)
			}
			c.Range = DateRange{Input: c.Mode, From: shift(r.From), To: shift(r.To)}
		}
	}
	if c.Range.From.Before(minYear.Add(-24 * time.Hour)) {
		return badRequest("include.comparisons: the comparison period would start before 1970-01-01; choose a later date_range or another mode")
	}
	if !c.Range.To.After(c.Range.From) {
		return badRequest("include.comparisons: the comparison period is empty; choose another date_range or mode")
	}
	if td := q.timeDim(); td != "" {
		if n := countTimeLabelsIn(td, c.Range.From, c.Range.To, loc); n > MaxTimeBuckets {
			return badRequest("include.comparisons: %s over the comparison period makes %d buckets, more than the %d allowed; use a coarser time dimension or a shorter period", td, n, MaxTimeBuckets)
		}
	}
	return nil
}

// yearBefore is the same calendar date a year earlier; 29 February becomes the 28th.
func yearBefore(y int, m time.Month, d int) (int, time.Month, int) {
	if m == time.February && d == 29 {
		d = 28
	}
	return y - 1, m, d
}

// daysBetween counts the calendar days from a's date to b's (both in their own zone).
func daysBetween(a, b time.Time) int {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return int(time.Date(by, bm, bd, 0, 0, 0, 0, time.UTC).Sub(time.Date(ay, am, ad, 0, 0, 0, 0, time.UTC)) / (24 * time.Hour))
}

// RowComparison is a result row's counterpart in the comparison period: its dimension
// values (the time bucket at the same position, other dimensions equal), its metrics, and
// the change of each metric (see change).
type RowComparison struct {
	Dimensions []string `json:"dimensions"`
	Metrics    []any    `json:"metrics"`
	Change     []any    `json:"change"`
}

// maxComparisonRows bounds the comparison query's rows, which are all kept to be matched.
const maxComparisonRows = 1 << 20

// compare answers q over its comparison period and attaches to every result row its
// counterpart. Rows are matched by their dimension values, except the time dimension,
// which is matched by position: the first bucket of the date range with the first of the
// comparison period, and so on. A row whose position has no bucket in the comparison
// period (a 31-day month against a 30-day one) gets no comparison; a bucket or value
// without data in the comparison period compares with zeros.
func (s *Service) compare(ctx context.Context, q *Query, resp *Response) error {
	cq := *q
	cq.Range = q.Compare.Range
	cq.Compare = nil
	cq.rawRange = nil // resolved already
	cq.Include = Include{}
	cq.Limit, cq.Offset = maxComparisonRows, 0
	cq.warnings = nil
	cresp, err := s.Execute(ctx, &cq)
	if err != nil {
		return err
	}
	resp.Meta.RowsRead += cresp.Meta.RowsRead
	resp.Meta.EventsScanned += cresp.Meta.EventsScanned
	for _, w := range cresp.Meta.Warnings {
		resp.Meta.Warnings = append(resp.Meta.Warnings, "comparison: "+w)
	}

	td := -1
	for i, d := range q.Dimensions {
		if isTimeDim(d) {
			td = i
		}
	}
	var (
		pos        map[string]int // main time label → position
		cmpPos     map[string]int // comparison time label → position
		cmpLabels  []string
		loc        = q.zone()
		keyOf      func(dims []string, positions map[string]int) (string, bool)
		timeDimVal string
	)
	if td >= 0 {
		timeDimVal = q.Dimensions[td]
		index := func(labels []string) map[string]int {
			m := make(map[string]int, len(labels))
			for i, l := range labels {
				m[l] = i
			}
			return m
		}
		pos = index(labelsIn(timeDimVal, q.Range.From, q.Range.To, loc))
		cmpLabels = labelsIn(timeDimVal, cq.Range.From, cq.Range.To, loc)
		cmpPos = index(cmpLabels)
	}
	keyOf = func(dv []string, positions map[string]int) (string, bool) {
		parts := make([]string, len(dv))
		copy(parts, dv)
		if td >= 0 {
			p, ok := positions[dv[td]]
			if !ok {
				return "", false
			}
			parts[td] = strconv.Itoa(p)
		}
		b, _ := json.Marshal(parts)
		return string(b), true
	}
	byKey := make(map[string]*ResultRow, len(cresp.Results))
	for i := range cresp.Results {
		if k, ok := keyOf(cresp.Results[i].Dimensions, cmpPos); ok {
			byKey[k] = &cresp.Results[i]
		}
	}
	zeros := make([]any, len(q.Metrics))
	for i, m := range q.Metrics {
		if metricIsInt(m) {
			zeros[i] = int64(0)
		} else {
			zeros[i] = 0.0
		}
	}
	for i := range resp.Results {
		row := &resp.Results[i]
		k, ok := keyOf(row.Dimensions, pos)
		if !ok {
			continue
		}
		rc := &RowComparison{Dimensions: append([]string{}, row.Dimensions...), Metrics: zeros}
		if td >= 0 {
			p := pos[row.Dimensions[td]]
			if p >= len(cmpLabels) {
				continue
			}
			rc.Dimensions[td] = cmpLabels[p]
		}
		if c := byKey[k]; c != nil {
			rc.Metrics = c.Metrics
		}
		rc.Change = make([]any, len(q.Metrics))
		for j, m := range q.Metrics {
			rc.Change[j] = change(m, row.Metrics[j], rc.Metrics[j])
		}
		row.Comparison = rc
	}
	return nil
}

// change is how metric m moved from prev to cur: for bounce_rate the difference in
// percentage points, for every other metric the change in percent of prev, both rounded to
// one decimal. It is 0 when both are 0 and null when prev is 0 and cur is not (no
// percentage describes growth from nothing), or when a value is not a number.
func change(m string, cur, prev any) any {
	c, ok1 := number(cur)
	p, ok2 := number(prev)
	if !ok1 || !ok2 {
		return nil
	}
	if m == MetricBounceRate {
		return round1(c - p)
	}
	switch {
	case p == 0 && c == 0:
		return 0.0
	case p == 0:
		return nil
	}
	return round1((c - p) / p * 100)
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// number reads a metric value as a float.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}
