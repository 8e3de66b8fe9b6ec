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

// parseDateRange resolves a date_range against now (UTC calendar days).
func parseDateRange(raw json.RawMessage, now time.Time) (DateRange, error) {
	now = now.UTC()
	today := now.Truncate(24 * time.Hour)
	tomorrow := today.AddDate(0, 0, 1)

	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch {
		case s == "day":
			return DateRange{Input: s, From: today, To: tomorrow}, nil
		case s == "month":
			first := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC)
			return DateRange{Input: s, From: first, To: first.AddDate(0, 1, 0)}, nil
		case s == "realtime":
			end := now.Truncate(time.Minute).Add(time.Minute)
			return DateRange{Input: s, From: end.Add(-RealtimeWindow), To: end}, nil
		case strings.HasSuffix(s, "d") && len(s) >= 2 && len(s) <= 5:
			n, err := strconv.Atoi(s[:len(s)-1])
			if err == nil && n >= 1 && n <= MaxRangeDays && s[0] != '0' && s[0] != '+' {
				return DateRange{Input: s, From: today.AddDate(0, 0, -(n - 1)), To: tomorrow}, nil
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
	var r DateRange
	switch {
	case err1 == nil && err2 == nil:
		if d2.Before(d1) {
			return DateRange{}, badRequest("date_range ends (%s) before it starts (%s); give the earlier date first", pair[1], pair[0])
		}
		r = DateRange{Input: "custom", From: d1, To: d2.AddDate(0, 0, 1)}
	case e1 == nil && e2 == nil:
		// Timestamps: [from, to) in whole minutes, any offset, resolved to UTC.
		t1, t2 = t1.UTC(), t2.UTC()
		if t1.Second() != 0 || t1.Nanosecond() != 0 || t2.Second() != 0 || t2.Nanosecond() != 0 {
			return DateRange{}, badRequest("date_range timestamps must be whole minutes (seconds = 0)")
		}
		if !t2.After(t1) {
			return DateRange{}, badRequest("date_range must end after it starts; timestamps mean [from, to)")
		}
		r = DateRange{Input: "custom", From: t1, To: t2}
	case err1 != nil && e1 != nil:
		return DateRange{}, badRequest("date_range: %q is not a date; %s", truncate(pair[0], 40), expected)
	case err2 != nil && e2 != nil:
		return DateRange{}, badRequest("date_range: %q is not a date; %s", truncate(pair[1], 40), expected)
	default:
		return DateRange{}, badRequest("date_range: give both ends as dates or both as timestamps, not one of each")
	}
	if r.From.Before(minYear) || r.To.After(maxYear) {
		return DateRange{}, badRequest("date_range must lie between 1970-01-01 and 9999-12-31")
	}
	if r.To.Sub(r.From) > MaxRangeDays*24*time.Hour {
		return DateRange{}, badRequest("date_range spans more than %d days; ask for a shorter range", MaxRangeDays)
	}
	return r, nil
}

// floorDiv is a/b rounded toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// bucketStart returns the start (Unix seconds) of the time-dimension bucket holding sec.
// Weeks start on Monday; months on the 1st; all in UTC.
func bucketStart(timeDim string, sec int64) int64 {
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

// nextBucket returns the start of the bucket after the one starting at start.
func nextBucket(timeDim string, start int64) int64 {
	switch timeDim {
	case dims.TimeMinute:
		return start + secPerMinute
	case dims.TimeHour:
		return start + secPerHour
	case dims.TimeDay:
		return start + secPerDay
	case dims.TimeWeek:
		return start + secPerWeek
	case dims.TimeMonth:
		return time.Unix(start, 0).UTC().AddDate(0, 1, 0).Unix()
	}
	return start + 1
}

// formatLabel formats a bucket start the way Plausible labels time dimensions.
func formatLabel(timeDim string, start int64) string {
	t := time.Unix(start, 0).UTC()
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

// timeLabels lists the bucket starts of timeDim that overlap [from, to).
func timeLabels(timeDim string, from, to time.Time) []int64 {
	var out []int64
	for b := bucketStart(timeDim, from.Unix()); b < to.Unix(); b = nextBucket(timeDim, b) {
		out = append(out, b)
	}
	return out
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
