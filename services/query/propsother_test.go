package query

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
	"github.com/glimpse-analytics/glimpse/services/processor"
)

// processedWithPropLimit runs events with more "plan" values per day than limit through
// two processor partitions into a memstore.
func processedWithPropLimit(t *testing.T, limit int) *memstore.Store {
	t.Helper()
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	cfg := processor.DefaultConfig()
	cfg.MaxPropValues = limit
	ctx := context.Background()
	parts := make([]*processor.Partition, 2)
	for i := range parts {
		p, err := processor.OpenPartition(ctx, cfg, processor.Deps{Store: st, Log: slog.New(slog.DiscardHandler)}, int32(i))
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = p
	}
	start := testNow.Add(-6 * time.Hour)
	for i := range 40 {
		vid := uint64(i%13 + 1)
		e := &event.Event{Site: "a.test", VisitorID: vid, Time: start.Add(time.Duration(i) * 7 * time.Minute).UnixMilli(),
			Hostname: "a.test", Path: fmt.Sprintf("/p%d", i%3)}
		if i%2 == 0 {
			e.Name = event.PageviewName
		} else {
			e.Name, e.Interactive = "Buy", i%3 == 0
			e.Props = map[string]string{"plan": fmt.Sprintf("plan-%d", i%9), "color": []string{"red", "blue"}[i%4/2]}
		}
		p := parts[vid%2]
		if !p.Apply(p.Next(), e) {
			t.Fatalf("event %d not applied", i)
		}
	}
	for _, p := range parts {
		if _, err := p.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	return st
}

// Values folded into "(other)" by the processor are the same on the rollup path and the
// scan path, the answer warns about them, and "(other)" can be filtered on.
func TestPropsOtherAgreesAndWarns(t *testing.T) {
	st := processedWithPropLimit(t, 3)
	rollup := newTestService(t, st)
	scan := newTestService(t, st, func(c *Config) { c.ForceScan = true; c.VisitMargin = 3 * time.Hour })

	// rows of a property hold only the events that have it: the filter lets a rollup answer
	body := `{"site_id":"a.test","metrics":` + allMetrics + `,"date_range":"day","dimensions":["event:props:plan"],"filters":[["is_not","event:props:plan",[""]]]}`
	a, b := rollup.query(t, body), scan.query(t, body)
	if a.Meta.Path != PathRollup || b.Meta.Path != PathScan {
		t.Fatalf("paths %s (%s) and %s", a.Meta.Path, a.Meta.PathReason, b.Meta.Path)
	}
	ra, rb := rowsOf(a), rowsOf(b)
	if !reflect.DeepEqual(ra, rb) {
		t.Errorf("rollup %v\nscan   %v", ra, rb)
	}
	var other []any
	named := 0
	for _, r := range ra {
		if r[0] == dims.OtherValue {
			other = r
		} else {
			named++
		}
	}
	if other == nil {
		t.Fatalf("no %q row: %v", dims.OtherValue, ra)
	}
	if named > 2*3 { // two partitions, three values each
		t.Errorf("%d named values, at most 6 expected: %v", named, ra)
	}
	for _, resp := range []*Response{a, b} {
		if !hasOtherWarning(resp.Meta.Warnings) {
			t.Errorf("%s path: no warning about %q in %q", resp.Meta.Path, dims.OtherValue, resp.Meta.Warnings)
		}
	}

	// a breakdown without "(other)" has no such warning
	colors := rollup.query(t, `{"site_id":"a.test","metrics":["events"],"date_range":"day","dimensions":["event:props:color"],"filters":[["is_not","event:props:color",[""]]]}`)
	if len(rowsOf(colors)) != 2 {
		t.Errorf("colors: %v", rowsOf(colors))
	}
	if hasOtherWarning(colors.Meta.Warnings) {
		t.Errorf("warning without %q: %q", dims.OtherValue, colors.Meta.Warnings)
	}

	// filtering on "(other)" selects exactly the events counted under it
	filter := `{"site_id":"a.test","metrics":` + allMetrics + `,"date_range":"day","filters":[["is","event:props:plan",["(other)"]]]}`
	for _, s := range []testService{rollup, scan} {
		got := s.query(t, filter)
		if rows := rowsOf(got); len(rows) != 1 || !reflect.DeepEqual(rows[0], other[1:]) {
			t.Errorf("filtered on %q (%s path): %v, want %v", dims.OtherValue, got.Meta.Path, rows, other[1:])
		}
	}
}

func hasOtherWarning(ws []string) bool {
	for _, w := range ws {
		if strings.Contains(w, dims.OtherValue) && strings.Contains(w, "--processor.max-prop-values") {
			return true
		}
	}
	return false
}
