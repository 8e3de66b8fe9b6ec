package memstore

import (
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/storetest"
)

// scanSites counts the rows and events of every site straight from the maps.
func scanSites(t *testing.T, st store.Store) map[string]int {
	s := st.(*Store)
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]int{}
	for p, m := range s.rows {
		out[p.site] += len(m)
	}
	for site, evs := range s.events {
		out[site] += len(evs)
	}
	return out
}

func TestDeleteSite(t *testing.T) {
	shared := New()
	t.Cleanup(func() { shared.Close() })
	storetest.RunDeleteSite(t, func(t *testing.T) (store.Store, func() store.Store) { return shared, nil }, scanSites)
}

func TestRetention(t *testing.T) {
	storetest.RunRetention(t, func(t *testing.T) (store.Store, func() store.Store) {
		s := New()
		t.Cleanup(func() { s.Close() })
		return s, nil
	})
}
