package query

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

const (
	dayLayout  = "2006-01-02"
	timeLayout = "2006-01-02 15:04:05"

	secPerMinute = 60
	secPerHour   = 3600
	secPerDay    = 86400
	secPerWeek   = 7 * secPerDay

	// RealtimeWindow is what date_range "realtime" covers, and RealtimeVisitorsWindow what
	// GET /api/v1/realtime counts; both end with the current minute.
	RealtimeWindow         = 30 * time.Minute
	RealtimeVisitorsWindow = 5 * time.Minute
)

var (
	minYear = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxYear = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// parseDateRange resolves a date_range against now in UTC (see parseDateRangeIn).
func parseDateRange(raw json.RawMessage, now time.Time) (DateRange, error) {
	return parseDateRangeIn(raw, now, time.UTC, time.Time{})
}

// parseDateRangeIn resolves a date_range against now: calendar days, months and years are
// those of loc, the site's time zone. created is when the site was added (zero when
// unknown): "all" starts on that day.
func parseDateRangeIn(raw json.RawMessage, now time.Time, loc *time.Location, created time.Time) (DateRange, error) {
	local := now.In(loc)
	y, m, d := local.Date()
	day := func(y int, m time.Month, d int) time.Time { return localMidnight(y, m, d, loc) }
	today, tomorrow := day(y, m, d), day(y, m, d+1)

	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch {
		case s == "day":
			return DateRange{Input: s, From: today, To: tomorrow, Days: true}, nil
		case s == "month":
			return DateRange{Input: s, From: day(y, m, 1), To: day(y, m+1, 1), Days: true}, nil
		case s == "6mo" || s == "12mo":
			back := 5
			if s == "12mo" {
				back = 11
			}
			return DateRange{Input: s, From: day(y, m-time.Month(back), 1), To: day(y, m+1, 1), Days: true}, nil
		case s == "year":
			return DateRange{Input: s, From: day(y, 1, 1), To: day(y+1, 1, 1), Days: true}, nil
		case s == "all":
			// From the day the site was added, at most MaxRangeDays back.
			from := day(y, m, d-(MaxRangeDays-1))
			if !created.IsZero() {
				cy, cm, cd := created.In(loc).Date()
				if c := day(cy, cm, cd); c.After(from) {
					from = c
				}
			}
			if from.After(today) {
				from = today
			}
			return DateRange{Input: s, From: from, To: tomorrow, Days: true}, nil
		case s == "realtime":
			end := now.UTC().Truncate(time.Minute).Add(time.Minute)
			return DateRange{Input: s, From: end.Add(-RealtimeWindow), To: end}, nil
		case strings.HasSuffix(s, "d") && len(s) >= 2 && len(s) <= 5:
			n, err := strconv.Atoi(s[:len(s)-1])
			if err == nil && n >= 1 && n <= MaxRangeDays && s[0] != '0' && s[0] != '+' {
				return DateRange{Input: s, From: day(y, m, d-(n-1)), To: tomorrow, Days: true}, nil
			}
		}
		return DateRange{}, badRequest("date_range %q is not understood; %s", truncate(s, 40), dateRangeHelp)
	}

	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return DateRange{}, badRequest("%s", dateRangeHelp)
	}
	d1, err1 := time.Parse(dayLayout, pair[0])
	d2, err2 := time.Parse(dayLayout, pair[1])
	t1, e1 := time.Parse(time.RFC3339, pair[0])
	t2, e2 := time.Parse(time.RFC3339, pair[1])
	const expected = `expected YYYY-MM-DD (e.g. "2026-01-31"), or both ends as RFC 3339 timestamps with whole minutes (e.g. "2026-01-31T13:00:00Z")`
	var (
		r    DateRange
		span time.Duration // the length that MaxRangeDays bounds
	)
	switch {
	case err1 == nil && err2 == nil:
		if d2.Before(d1) {
			return DateRange{}, badRequest("date_range ends (%s) before it starts (%s); give the earlier date first", pair[1], pair[0])
		}
		if d1.Before(minYear) || d2.AddDate(0, 0, 1).After(maxYear) {
			return DateRange{}, badRequest("date_range must lie between 1970-01-01 and 9999-12-31")
		}
		r = DateRange{Input: "custom", From: day(d1.Date()), To: day(d2.AddDate(0, 0, 1).Date()), Days: true}
		span = d2.AddDate(0, 0, 1).Sub(d1) // in days, whatever the zone's DST
	case e1 == nil && e2 == nil:
		// Timestamps: [from, to) in whole minutes, any offset, resolved to UTC.
		t1, t2 = t1.UTC(), t2.UTC()
		if t1.Second() != 0 || t1.Nanosecond() != 0 || t2.Second() != 0 || t2.Nanosecond() != 0 {
			return DateRange{}, badRequest("date_range timestamps must be whole minutes (seconds = 0)")
		}
		if !t2.After(t1) {
			return DateRange{}, badRequest("date_range must end after it starts; timestamps mean [from, to)")
		}
		if t1.Before(minYear) || t2.After(maxYear) {
			return DateRange{}, badRequest("date_range must lie between 1970-01-01 and 9999-12-31")
		}
		r = DateRange{Input: "custom", From: t1, To: t2}
		span = t2.Sub(t1)
	case err1 != nil && e1 != nil:
		return DateRange{}, badRequest("date_range: %q is not a date; %s", truncate(pair[0], 40), expected)
	case err2 != nil && e2 != nil:
		return DateRange{}, badRequest("date_range: %q is not a date; %s", truncate(pair[1], 40), expected)
	default:
		return DateRange{}, badRequest("date_range: give both ends as dates or both as timestamps, not one of each")
	}
	if span > MaxRangeDays*24*time.Hour {
		return DateRange{}, badRequest("date_range spans more than %d days; ask for a shorter range", MaxRangeDays)
	}
	return r, nil
}

// localMidnight is the first instant of the day y-m-d in loc; out-of-range months and days
// roll over, as with time.Date. (Where a DST change skips midnight, time.Date resolves the
// missing 00:00 to the instant the clocks jump, which is the day's first.)
func localMidnight(y int, m time.Month, d int, loc *time.Location) time.Time {
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// floorDiv is a/b rounded toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// isUTC reports whether loc keeps UTC's calendar (nil stands for UTC).
func isUTC(loc *time.Location) bool { return loc == nil || loc == time.UTC }

// bucketStart returns the start (Unix seconds) of the UTC time-dimension bucket holding sec.
func bucketStart(timeDim string, sec int64) int64 { return bucketStartIn(timeDim, sec, time.UTC) }

// bucketStartIn returns the start (Unix seconds) of the time-dimension bucket holding sec,
// in the calendar of loc: hours, days, weeks (starting on Monday) and months begin at
// loc's wall clock. A day with a DST change has 23 or 25 hours.
func bucketStartIn(timeDim string, sec int64, loc *time.Location) int64 {
	if isUTC(loc) {
		switch timeDim {
		case dims.TimeMinute:
			return floorDiv(sec, secPerMinute) * secPerMinute
		case dims.TimeHour:
			return floorDiv(sec, secPerHour) * secPerHour
		case dims.TimeDay:
			return floorDiv(sec, secPerDay) * secPerDay
		case dims.TimeWeek:
			days := floorDiv(sec, secPerDay)
			// 1970-01-01 was a Thursday: Monday-based weekday is (days+3) mod 7.
			wd := ((days+3)%7 + 7) % 7
			return (days - wd) * secPerDay
		case dims.TimeMonth:
			t := time.Unix(sec, 0).UTC()
			return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).Unix()
		}
		return sec
	}
	t := time.Unix(sec, 0).In(loc)
	y, m, d := t.Date()
	switch timeDim {
	case dims.TimeMinute:
		return sec - int64(t.Second())
	case dims.TimeHour:
		// Counting back from the wall clock keeps the two hours of a DST fall-back apart.
		return sec - int64(t.Minute()*secPerMinute+t.Second())
	case dims.TimeDay:
		return localMidnight(y, m, d, loc).Unix()
	case dims.TimeWeek:
		wd := (int(t.Weekday()) + 6) % 7 // Monday = 0
		return localMidnight(y, m, d-wd, loc).Unix()
	case dims.TimeMonth:
		return localMidnight(y, m, 1, loc).Unix()
	}
	return sec
}

// nextBucket returns the start of the UTC bucket after the one starting at start.
func nextBucket(timeDim string, start int64) int64 { return nextBucketIn(timeDim, start, time.UTC) }

// nextBucketIn returns the start of the bucket after the one starting at start, in loc.
func nextBucketIn(timeDim string, start int64, loc *time.Location) int64 {
	switch timeDim {
	case dims.TimeMinute:
		return start + secPerMinute
	case dims.TimeHour:
		return start + secPerHour
	}
	if isUTC(loc) {
		switch timeDim {
		case dims.TimeDay:
			return start + secPerDay
		case dims.TimeWeek:
			return start + secPerWeek
		case dims.TimeMonth:
			return time.Unix(start, 0).UTC().AddDate(0, 1, 0).Unix()
		}
		return start + 1
	}
	y, m, d := time.Unix(start, 0).In(loc).Date()
	switch timeDim {
	case dims.TimeDay:
		return localMidnight(y, m, d+1, loc).Unix()
	case dims.TimeWeek:
		return localMidnight(y, m, d+7, loc).Unix()
	case dims.TimeMonth:
		return localMidnight(y, m+1, 1, loc).Unix()
	}
	return start + 1
}

// formatLabel formats a UTC bucket start the way Plausible labels time dimensions.
func formatLabel(timeDim string, start int64) string { return formatLabelIn(timeDim, start, time.UTC) }

// formatLabelIn formats a bucket start in loc's wall clock: "2026-03-29 01:00:00" for
// minutes and hours, "2026-03-29" for days, weeks (their Monday) and months (their 1st).
// The two hours of a DST fall-back share one label, so they make one row.
func formatLabelIn(timeDim string, start int64, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	t := time.Unix(start, 0).In(loc)
	switch timeDim {
	case dims.TimeMinute, dims.TimeHour:
		return t.Format(timeLayout)
	}
	return t.Format(dayLayout)
}

// countTimeLabels counts the buckets of timeDim that overlap [from, to) without
// enumerating them.
func countTimeLabels(timeDim string, from, to time.Time) int64 {
	if !to.After(from) {
		return 0
	}
	first := bucketStart(timeDim, from.Unix())
	end := to.Unix()
	switch timeDim {
	case dims.TimeMonth:
		last := to.Add(-time.Second).UTC()
		f := time.Unix(first, 0).UTC()
		return int64((last.Year()-f.Year())*12+int(last.Month())-int(f.Month())) + 1
	case dims.TimeWeek:
		return (end - first + secPerWeek - 1) / secPerWeek
	case dims.TimeDay:
		return (end - first + secPerDay - 1) / secPerDay
	case dims.TimeHour:
		return (end - first + secPerHour - 1) / secPerHour
	case dims.TimeMinute:
		return (end - first + secPerMinute - 1) / secPerMinute
	}
	return 0
}

// countTimeLabelsIn is countTimeLabels in loc's calendar, counted on the wall clock (so at
// most one off across a DST change): it bounds the size of an answer.
func countTimeLabelsIn(timeDim string, from, to time.Time, loc *time.Location) int64 {
	if isUTC(loc) {
		return countTimeLabels(timeDim, from, to)
	}
	wall := func(t time.Time) time.Time {
		l := t.In(loc)
		return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
	}
	return countTimeLabels(timeDim, wall(from), wall(to))
}

// timeLabels lists the UTC bucket starts of timeDim that overlap [from, to).
func timeLabels(timeDim string, from, to time.Time) []int64 {
	return timeLabelsIn(timeDim, from, to, time.UTC)
}

// timeLabelsIn lists the bucket starts of timeDim in loc that overlap [from, to).
func timeLabelsIn(timeDim string, from, to time.Time, loc *time.Location) []int64 {
	var out []int64
	for b := bucketStartIn(timeDim, from.Unix(), loc); b < to.Unix(); b = nextBucketIn(timeDim, b, loc) {
		out = append(out, b)
	}
	return out
}

// labelsIn lists the distinct labels of the buckets of timeDim in loc that overlap
// [from, to), in order: a DST fall-back's repeated hour is listed once.
func labelsIn(timeDim string, from, to time.Time, loc *time.Location) []string {
	starts := timeLabelsIn(timeDim, from, to, loc)
	out := make([]string, 0, len(starts))
	for _, b := range starts {
		if l := formatLabelIn(timeDim, b, loc); len(out) == 0 || out[len(out)-1] != l {
			out = append(out, l)
		}
	}
	return out
}

// zoneGranularity is the coarsest rollup granularity whose UTC buckets tile loc's hours
// and days over [from, to): day rows for UTC, hour rows while every offset of loc in the
// range is a whole number of hours (DST changes included), minute rows for offsets such as
// +05:30 or +05:45.
func zoneGranularity(loc *time.Location, from, to time.Time) store.Granularity {
	if isUTC(loc) {
		return store.Day
	}
	g := store.Day
	for t := from; t.Before(to); {
		lt := t.In(loc)
		_, off := lt.Zone()
		switch {
		case off%secPerHour != 0:
			return store.Minute
		case off != 0:
			g = store.Hour
		}
		_, end := lt.ZoneBounds()
		if !end.After(t) {
			break
		}
		t = end
	}
	return g
}

// granularity is the coarsest rollup granularity that answers q: its buckets tile the date
// range, the time dimension's buckets, and those buckets in the site's time zone.
func (q *Query) granularity() store.Granularity {
	gran := rangeGranularity(q.Range.From, q.Range.To)
	td := q.timeDim()
	if td == "" {
		return gran
	}
	gran = min(gran, timeDimGranularity(td))
	if td != dims.TimeMinute {
		gran = min(gran, zoneGranularity(q.Location, q.Range.From, q.Range.To))
	}
	return gran
}

// timeDimGranularity is the coarsest rollup granularity that can answer timeDim.
func timeDimGranularity(timeDim string) store.Granularity {
	switch timeDim {
	case dims.TimeMinute:
		return store.Minute
	case dims.TimeHour:
		return store.Hour
	}
	return store.Day
}

// rangeGranularity is the coarsest rollup granularity whose buckets tile [from, to).
func rangeGranularity(from, to time.Time) store.Granularity {
	f, t := from.Unix(), to.Unix()
	switch {
	case f%secPerDay == 0 && t%secPerDay == 0:
		return store.Day
	case f%secPerHour == 0 && t%secPerHour == 0:
		return store.Hour
	}
	return store.Minute
}

// minuteRetention is how long q's minute rollup rows are kept: the store's setting, or its
// default when the query was parsed without one.
func minuteRetention(q *Query) time.Duration {
	if q.minuteRetention != 0 {
		return q.minuteRetention
	}
	return store.DefaultRetention().Minute
}

// minuteRowsExpired reports whether q's range starts before the minute rows kept.
func minuteRowsExpired(q *Query) bool {
	keep := minuteRetention(q)
	return !q.now.IsZero() && q.Range.From.Before(q.now.Add(-keep).Add(time.Hour))
}

func minuteRetentionDays(q *Query) int { return int(minuteRetention(q) / (24 * time.Hour)) }
