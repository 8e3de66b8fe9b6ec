package memstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
	"github.com/glimpse-analytics/glimpse/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		s := memstore.New()
		t.Cleanup(func() { s.Close() })
		return s, nil
	})
}

// One store shared by every subtest, the way a Cassandra keyspace is: the suite must not
// depend on an empty store.
func TestConformanceShared(t *testing.T) {
	shared := memstore.New()
	t.Cleanup(func() { shared.Close() })
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) { return shared, nil })
}

func TestClosed(t *testing.T) {
	s := memstore.New()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	ctx := context.Background()
	if err := s.WriteRows(ctx, []store.Row{{RowKey: store.RowKey{Granularity: store.Day}}}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("WriteRows after Close = %v, want ErrUnavailable", err)
	}
	if _, _, err := s.GetMeta(ctx, "ns", "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetMeta after Close = %v, want ErrUnavailable", err)
	}
	if err := s.ScanEvents(ctx, store.EventRange{Site: "s", To: 1}, func(store.StoredEvent) error { return nil }); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("ScanEvents after Close = %v, want ErrUnavailable", err)
	}
}

func TestUnknownGranularity(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	if err := s.WriteRows(context.Background(), []store.Row{{RowKey: store.RowKey{Site: "s", Granularity: 9}}}); err == nil {
		t.Error("WriteRows with granularity 9 succeeded, want an error")
	}
}

func TestVisitRowsAndWatchRows(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	ctx := context.Background()
	var watched int
	stop := s.WatchRows(func(rows []store.Row) { watched += len(rows) })
	var rows []store.Row
	for b := int64(0); b < 3; b++ {
		for _, v := range []string{"/b", "/a"} {
			rows = append(rows, store.Row{RowKey: store.RowKey{Site: "m", Granularity: store.Hour, Bucket: 3600 * b, Value: v}, Aggregate: store.Aggregate{Pageviews: b, Visitors: []byte{1, byte(b)}}})
		}
	}
	if err := s.WriteRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := s.WriteRows(ctx, rows[:1]); err != nil {
		t.Fatal(err)
	}
	if watched != len(rows) {
		t.Errorf("watched %d rows, want %d", watched, len(rows))
	}
	rr := store.RowRange{Site: "m", Granularity: store.Hour, From: 3600, To: 3 * 3600, Values: []string{"/a"}}
	var scanned, visited []store.Row
	if err := s.ScanRows(ctx, rr, func(r store.Row) error { scanned = append(scanned, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.VisitRows(ctx, rr, func(r *store.Row) error { visited = append(visited, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(scanned) != 2 || len(visited) != 2 || scanned[0].Bucket != visited[0].Bucket || scanned[1].Value != visited[1].Value || string(scanned[1].Visitors) != string(visited[1].Visitors) {
		t.Errorf("ScanRows %+v, VisitRows %+v", scanned, visited)
	}
	s.Close()
	if err := s.VisitRows(ctx, rr, func(*store.Row) error { return nil }); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("VisitRows on a closed store: %v", err)
	}
}
