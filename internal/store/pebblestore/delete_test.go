package pebblestore

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/storetest"
)

// scanSites iterates over every key of the database and counts the rollup and event keys
// of each site.
func scanSites(t *testing.T, st store.Store) map[string]int {
	t.Helper()
	s := st.(*Store)
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]int{}
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		switch k[0] {
		case tagRows, tagEvents:
			site, _, err := readString(k[1:])
			if err != nil {
				t.Fatalf("key %x: %v", k, err)
			}
			out[site]++
		case tagMeta, tagSystem:
		default:
			t.Fatalf("key %x has an unknown table tag", k)
		}
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeleteSite(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testOptions())
	t.Cleanup(func() { s.Close() })
	storetest.RunDeleteSite(t, func(t *testing.T) (store.Store, func() store.Store) { return s, nil }, scanSites)
}

// The deleted keys stay gone across a reopen and a full compaction (range tombstones are
// durable and do not resurrect anything).
func TestDeleteSiteSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOptions())
	ctx := context.Background()
	rows := []store.Row{{RowKey: store.RowKey{Site: "a.example", Granularity: store.Hour, Bucket: 3600}, Aggregate: store.Aggregate{Pageviews: 1}}}
	if err := s.WriteRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteSite(ctx, "a.example"); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = mustOpen(t, dir, testOptions())
	defer s.Close()
	if n := scanSites(t, s)["a.example"]; n != 0 {
		t.Errorf("after reopen %d keys of the deleted site are back", n)
	}
}

func TestRetention(t *testing.T) {
	storetest.RunRetention(t, func(t *testing.T) (store.Store, func() store.Store) {
		s := mustOpen(t, t.TempDir(), testOptions())
		t.Cleanup(func() { s.Close() })
		return s, nil
	})
}

// The background sweep runs on its own, removes expired data and counts it in
// glimpse_store_retention_deleted_total.
func TestRetentionBackgroundSweep(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := testOptions()
	opts.Metrics = reg
	opts.Retention = store.Retention{Minute: time.Hour}
	opts.SweepEvery = 10 * time.Millisecond
	s := mustOpen(t, t.TempDir(), opts)
	defer s.Close()
	ctx := context.Background()
	old := store.Minute.Truncate(time.Now().Add(-2 * time.Hour).UnixMilli())
	if err := s.WriteRows(ctx, []store.Row{{RowKey: store.RowKey{Site: "a.example", Granularity: store.Minute, Bucket: old}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for scanSites(t, s)["a.example"] != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the background sweep did not remove the expired row")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The sweep counts what it removed just after its commit, so the row can be seen gone a
	// moment before the counter moves.
	for {
		got := labelledCounter(t, reg, "glimpse_store_retention_deleted_total", "minute_rows")
		if got == 1 {
			break
		}
		if got > 1 || time.Now().After(deadline) {
			t.Fatalf("glimpse_store_retention_deleted_total{kind=minute_rows} = %v, want 1", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func labelledCounter(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
