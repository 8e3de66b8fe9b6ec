package dims

import (
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

func TestDurationBucketOf(t *testing.T) {
	for ms, want := range map[int64]string{0: "0", 9999: "0", 10_000: "10", 29_999: "10", 30_000: "30", 59_000: "30",
		60_000: "60", 179_999: "60", 180_000: "180", 600_000: "600", 1_799_999: "600", 1_800_000: "1800", 86_400_000: "1800"} {
		if got := DurationBucketOf(ms); got != want {
			t.Errorf("DurationBucketOf(%d) = %q, want %q", ms, got, want)
		}
	}
	v := &Visit{First: &event.Event{}, DurationMS: 45_000}
	if got, ok := VisitValue(DurationBucket, v); !ok || got != "30" {
		t.Fatalf("VisitValue(duration bucket) = %q, %v", got, ok)
	}
	if !Known(DurationBucket) || IsRolled(DurationBucket) || IsEvent(DurationBucket) {
		t.Fatal("visit:duration_bucket is a known, scanned visit dimension")
	}
}
