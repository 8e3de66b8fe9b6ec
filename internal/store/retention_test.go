package store

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRetentionCutoffs(t *testing.T) {
	now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	r := Retention{Minute: 2 * time.Hour, Hour: 36 * time.Hour, Events: 3 * 24 * time.Hour}
	if c, ok := r.RowCutoff(Minute, now); !ok || c != time.Date(2026, 3, 14, 13, 9, 0, 0, time.UTC).Unix() {
		t.Errorf("minute cutoff = %v, %v", time.Unix(c, 0).UTC(), ok)
	}
	if c, ok := r.RowCutoff(Hour, now); !ok || c != time.Date(2026, 3, 13, 3, 0, 0, 0, time.UTC).Unix() {
		t.Errorf("hour cutoff = %v, %v", time.Unix(c, 0).UTC(), ok)
	}
	if _, ok := r.RowCutoff(Day, now); ok {
		t.Error("day rows kept forever have a cutoff")
	}
	if c, ok := r.EventCutoff(now); !ok || c != time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC).UnixMilli() {
		t.Errorf("event cutoff = %v, %v", time.UnixMilli(c).UTC(), ok)
	}
	if !(Retention{}).Forever() || r.Forever() {
		t.Error("Forever is wrong")
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "retention", DefaultRetention())
	if want := "retention.minute=7d retention.hour=400d retention.day=forever retention.events=30d"; !strings.Contains(buf.String(), want) {
		t.Errorf("logged %q, want it to hold %q", buf.String(), want)
	}
}
