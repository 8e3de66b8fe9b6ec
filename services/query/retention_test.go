package query

import (
	"math"
	"testing"
	"time"
)

// The planner reads minute rollups only as far back as --retention.minute keeps them.
func TestMinuteRowsExpiredFollowsTheRetentionSetting(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tenDaysAgo := now.Add(-10 * 24 * time.Hour)
	q := func(keep time.Duration) *Query {
		return &Query{now: now, minuteRetention: keep, Range: DateRange{From: tenDaysAgo, To: now}}
	}
	if !minuteRowsExpired(q(0)) {
		t.Error("default retention (7 days): a range 10 days back should need expired minute rows")
	}
	if minuteRowsExpired(q(30 * 24 * time.Hour)) {
		t.Error("--retention.minute=30d: a range 10 days back should still have minute rows")
	}
	if !minuteRowsExpired(q(24 * time.Hour)) {
		t.Error("--retention.minute=1d: a range 10 days back should need expired minute rows")
	}
	if minuteRowsExpired(q(time.Duration(math.MaxInt64))) {
		t.Error("minute rows kept forever never expire")
	}
}
