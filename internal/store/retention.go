package store

import (
	"log/slog"
	"strconv"
	"time"
)

// Retention says how long each kind of data is kept; 0 keeps it forever. Cassandra applies
// it as the TTL of every write (counted from the write); the embedded Pebble store and the
// memory store remove what is older, by bucket or event time, in a periodic sweep.
type Retention struct {
	Minute time.Duration // minute rollup rows
	Hour   time.Duration // hour rollup rows
	Day    time.Duration // day rollup rows
	Events time.Duration // stored events (filtered queries)
}

// DefaultRetention keeps minute rows 7 days, hour rows 400 days, day rows forever and
// stored events 30 days.
func DefaultRetention() Retention {
	const day = 24 * time.Hour
	return Retention{Minute: 7 * day, Hour: 400 * day, Day: 0, Events: 30 * day}
}

// For is the retention of rollup rows of granularity g.
func (r Retention) For(g Granularity) time.Duration {
	switch g {
	case Minute:
		return r.Minute
	case Hour:
		return r.Hour
	case Day:
		return r.Day
	}
	return 0
}

// Forever reports whether nothing ever expires.
func (r Retention) Forever() bool {
	return r.Minute <= 0 && r.Hour <= 0 && r.Day <= 0 && r.Events <= 0
}

// LogValue logs the settings as durations, "forever" for 0.
func (r Retention) LogValue() slog.Value {
	f := func(d time.Duration) string {
		const day = 24 * time.Hour
		switch {
		case d <= 0:
			return "forever"
		case d%day == 0:
			return strconv.FormatInt(int64(d/day), 10) + "d"
		}
		return d.String()
	}
	return slog.GroupValue(
		slog.String("minute", f(r.Minute)),
		slog.String("hour", f(r.Hour)),
		slog.String("day", f(r.Day)),
		slog.String("events", f(r.Events)),
	)
}

// RowCutoff is the first bucket start (Unix seconds) of granularity g that retention keeps
// at now; ok is false when rows of g are kept forever. A row is expired once its whole
// bucket lies before now minus the retention, so a bucket is never cut short.
func (r Retention) RowCutoff(g Granularity, now time.Time) (cutoff int64, ok bool) {
	d := r.For(g)
	if d <= 0 {
		return 0, false
	}
	oldest := now.Add(-d).UnixMilli()
	// The bucket holding oldest still has time inside the retention; the ones before it do not.
	return g.Truncate(oldest), true
}

// EventCutoff is the first event time (Unix ms) retention keeps at now; ok is false when
// events are kept forever. Events expire by whole UTC days (the unit of the event layout):
// the cutoff is the start of the day holding now minus the retention.
func (r Retention) EventCutoff(now time.Time) (cutoffMillis int64, ok bool) {
	if r.Events <= 0 {
		return 0, false
	}
	return Day.Truncate(now.Add(-r.Events).UnixMilli()) * 1000, true
}

// SweepReport counts what one retention sweep removed.
type SweepReport struct {
	Rows   map[Granularity]int64 // rollup rows, by granularity
	Events int64
}

// Empty reports whether the sweep removed nothing.
func (r SweepReport) Empty() bool {
	return r.Rows[Minute] == 0 && r.Rows[Hour] == 0 && r.Rows[Day] == 0 && r.Events == 0
}

// LogValue lets a report be logged as one attribute group.
func (r SweepReport) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("minute_rows", r.Rows[Minute]),
		slog.Int64("hour_rows", r.Rows[Hour]),
		slog.Int64("day_rows", r.Rows[Day]),
		slog.Int64("events", r.Events),
	)
}
