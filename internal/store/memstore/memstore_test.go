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
