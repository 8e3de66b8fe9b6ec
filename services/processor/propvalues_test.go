package processor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// buy is a custom event of its own visitor with the given props.
func buy(vid uint64, at time.Duration, props map[string]string) *event.Event {
	e := custom(vid, at, "Buy", "/checkout", true)
	e.Props = props
	return e
}

// foldStream sends key "plan" five distinct values on the first day (limit 3), two on the
// next, and key "color" three values on the first day.
func foldStream() []*event.Event {
	return []*event.Event{
		buy(1, 0, map[string]string{"plan": "a", "color": "red"}),
		buy(2, time.Minute, map[string]string{"plan": "b", "color": "blue"}),
		buy(3, 2*time.Minute, map[string]string{"plan": "c"}),
		buy(4, 3*time.Minute, map[string]string{"plan": "d", "color": "green"}), // plan folds
		buy(5, 4*time.Minute, map[string]string{"plan": "e"}),                   // folds
		buy(6, 5*time.Minute, map[string]string{"plan": "a"}),                   // known: kept
		buy(7, 6*time.Minute, map[string]string{"plan": "d"}),                   // folds
		buy(8, 24*time.Hour, map[string]string{"plan": "d"}),                    // a new day
		buy(9, 25*time.Hour, map[string]string{"plan": "e"}),
	}
}

func foldConfig(limit int) Config {
	c := testConfig()
	c.MaxPropValues = limit
	return c
}

func openWith(t testing.TB, cfg Config, st store.Store, reg *prometheus.Registry) *Partition {
	t.Helper()
	deps := Deps{Store: st, Log: quiet()}
	if reg != nil {
		deps.Metrics = reg
	}
	p, err := OpenPartition(context.Background(), cfg, deps, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPropValuesBeyondTheDailyLimitFoldIntoOther(t *testing.T) {
	st := newTestStore(t)
	reg := prometheus.NewRegistry()
	p := openWith(t, foldConfig(3), st, reg)
	evs := foldStream()
	for i, e := range evs {
		if !p.Apply(int64(i), e) {
			t.Fatalf("event %d not applied", i)
		}
	}
	flush(t, p)

	got := st.dump(t, false)
	plan, color := dims.PropsPrefix+"plan", dims.PropsPrefix+"color"
	one := agg{Events: 1, Visits: 1, Visitors: 1}
	want := map[store.RowKey]agg{
		key(store.Day, plan, 0, "a"):                 {Events: 2, Visits: 2, Visitors: 2},
		key(store.Day, plan, 0, "b"):                 one,
		key(store.Day, plan, 0, "c"):                 one,
		key(store.Day, plan, 0, dims.OtherValue):     {Events: 3, Visits: 3, Visitors: 3},
		key(store.Hour, plan, 0, dims.OtherValue):    {Events: 3, Visits: 3, Visitors: 3},
		key(store.Day, plan, 24*time.Hour, "d"):      one,
		key(store.Day, plan, 24*time.Hour, "e"):      one,
		key(store.Day, color, 0, "red"):              one,
		key(store.Day, color, 0, "blue"):             one,
		key(store.Day, color, 0, "green"):            one,
		key(store.Day, store.TotalsDimension, 0, ""): {Events: 7, Visits: 7, Visitors: 7},
	}
	wantRows(t, got, want)
	day0 := store.Day.Truncate(ms(0))
	for k := range got {
		if k.Dimension == plan && k.Bucket == day0 && (k.Value == "d" || k.Value == "e") {
			t.Errorf("value %q of the full day has a row: %+v", k.Value, k)
		}
	}

	stored := st.storedEvents(t, site)
	if len(stored) != len(evs) {
		t.Fatalf("%d stored events, want %d", len(stored), len(evs))
	}
	wantPlan := []string{"a", "b", "c", dims.OtherValue, dims.OtherValue, "a", dims.OtherValue, "d", "e"}
	for i, se := range stored {
		e := decodeStored(t, se)
		if e.Props["plan"] != wantPlan[i] {
			t.Errorf("stored event %d has plan %q, want %q", i, e.Props["plan"], wantPlan[i])
		}
	}
	if e := decodeStored(t, stored[3]); e.Props["color"] != "green" {
		t.Errorf("a folded key took another key with it: color %q", e.Props["color"])
	}
	if evs[3].Props["plan"] != "d" {
		t.Errorf("Apply modified its event: plan %q", evs[3].Props["plan"])
	}
	// the rollup path and the scan path of the query engine see the same values
	diffRows(t, "rollups vs stored events", got, scanOracle(t, stored))

	if v := metricValue(t, reg, "glimpse_processor_prop_values_folded_total"); v != 3 {
		t.Errorf("folded counter %v, want 3", v)
	}
	// plan on two days, color on one (the day after a visit's start may be read too)
	if v := metricValue(t, reg, "glimpse_processor_prop_value_sets"); v < 3 {
		t.Errorf("value sets gauge %v, want at least 3", v)
	}
	p.Close()
	if v := metricValue(t, reg, "glimpse_processor_prop_value_sets"); v != 0 {
		t.Errorf("value sets gauge %v after Close, want 0", v)
	}
}

// A partition opened again reads each day's values from the store: values that have rows
// keep their names, new ones meet the full set. A zero limit keeps every value.
func TestPropValueSetsComeFromTheStore(t *testing.T) {
	evs := foldStream()
	st := newTestStore(t)
	p := openWith(t, foldConfig(3), st, nil)
	for i, e := range evs[:3] { // a, b, c: the first day is full
		p.Apply(int64(i), e)
	}
	if _, err := p.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.Close()

	p = openWith(t, foldConfig(3), st, nil)
	late := []*event.Event{
		buy(20, 10*time.Minute, map[string]string{"plan": "c"}),
		buy(21, 11*time.Minute, map[string]string{"plan": "z"}),
	}
	for i, e := range late {
		p.Apply(p.Next()+int64(i), e)
	}
	flush(t, p)
	plan := dims.PropsPrefix + "plan"
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		key(store.Day, plan, 0, "c"):             {Events: 2, Visits: 2, Visitors: 2},
		key(store.Day, plan, 0, "z"):             {},
		key(store.Day, plan, 0, dims.OtherValue): {Events: 1, Visits: 1, Visitors: 1},
	})

	unlimited := newTestStore(t)
	p = openWith(t, foldConfig(0), unlimited, nil)
	for i, e := range evs {
		p.Apply(int64(i), e)
	}
	flush(t, p)
	for k := range unlimited.dump(t, false) {
		if k.Value == dims.OtherValue {
			t.Errorf("a row of %q without a limit: %+v", dims.OtherValue, k)
		}
	}
}

// A crash after rows beyond the checkpoint were stored: the replay from the checkpoint
// finds the values the crashed run admitted in the store and makes its decisions again,
// leaving every row and stored event as an uninterrupted run leaves them.
func TestPropFoldIsTheSameAfterACrash(t *testing.T) {
	evs := foldStream()
	ref := newTestStore(t)
	p := openWith(t, foldConfig(3), ref, nil)
	for i, e := range evs {
		p.Apply(int64(i), e)
	}
	if _, err := p.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, wantEvents := ref.dump(t, true), ref.storedEvents(t, site)

	for ckpt := range len(evs) {
		for crash := ckpt; crash < len(evs); crash++ {
			st := newTestStore(t)
			p := openWith(t, foldConfig(3), st, nil)
			for i := 0; i <= crash; i++ {
				p.Apply(int64(i), evs[i])
				if i == ckpt {
					if _, err := p.Checkpoint(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
			}
			flush(t, p) // stored beyond the checkpoint, then the process dies
			p = openWith(t, foldConfig(3), st, nil)
			if p.Next() != int64(ckpt+1) {
				t.Fatalf("resumed at %d, want %d", p.Next(), ckpt+1)
			}
			for i := p.Next(); i < int64(len(evs)); i++ {
				p.Apply(i, evs[i])
			}
			if _, err := p.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			diffRows(t, fmt.Sprintf("checkpoint at %d, crash at %d", ckpt, crash), st.dump(t, true), want)
			gotEvents := st.storedEvents(t, site)
			for i := range gotEvents {
				if string(gotEvents[i].Payload) != string(wantEvents[i].Payload) {
					t.Fatalf("checkpoint at %d, crash at %d: stored event %d differs", ckpt, crash, i)
				}
			}
		}
	}
}

// A failed read of a day's values leaves the event unapplied (Prepare reports it; Apply
// refuses without consuming the offset), so the bus handler can retry it.
func TestPropValuesReadFailureAppliesNothing(t *testing.T) {
	st := newTestStore(t)
	p := openWith(t, foldConfig(3), st, nil)
	e := foldStream()[0]
	st.setFailing(true)
	if err := p.Prepare(context.Background(), e); err == nil {
		t.Fatal("Prepare succeeded while the store was down")
	}
	if p.Apply(0, e) || p.Next() != 0 {
		t.Fatalf("Apply took the event while its values could not be read (next %d)", p.Next())
	}
	st.setFailing(false)
	if err := p.Prepare(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if !p.Apply(0, e) || p.Next() != 1 {
		t.Fatalf("Apply after recovery: next %d", p.Next())
	}
}

func TestMaxPropValuesValidation(t *testing.T) {
	for _, n := range []int{-1, maxMaxPropValues + 1} {
		if err := foldConfig(n).Validate(); err == nil {
			t.Errorf("max-prop-values %d accepted", n)
		}
	}
	for _, n := range []int{0, 1, maxMaxPropValues} {
		if err := foldConfig(n).Validate(); err != nil {
			t.Errorf("max-prop-values %d: %v", n, err)
		}
	}
}
