package cassandra

import (
	"context"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/storetest"
)

// scanSites reads every row of every table of the keyspace and counts, by site, the rows
// of the tables that have a site column (rollups, events, event_days). The tables without
// one (meta, schema_version) are read too, so a table added later without a site column
// fails here until the scan learns it.
func scanSites(t *testing.T, st store.Store) map[string]int {
	t.Helper()
	s := st.(*Store)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var tables []string
	it := s.sess.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?`, s.cfg.Keyspace).WithContext(ctx).Iter()
	var name string
	for it.Scan(&name) {
		tables = append(tables, name)
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	withoutSite := map[string]bool{"meta": true, "schema_version": true}
	out := map[string]int{}
	for _, tbl := range tables {
		if withoutSite[tbl] {
			var n int64
			if err := s.sess.Query(`SELECT COUNT(*) FROM ` + tbl).WithContext(ctx).Scan(&n); err != nil {
				t.Fatalf("read table %s: %v", tbl, err)
			}
			continue
		}
		it := s.sess.Query(`SELECT site FROM ` + tbl).WithContext(ctx).PageSize(1000).Iter()
		var site string
		for it.Scan(&site) {
			out[site]++
		}
		if err := it.Close(); err != nil {
			t.Fatalf("read table %s: %v (a table without a site column? teach scanSites about it)", tbl, err)
		}
	}
	if len(tables) < 4 {
		t.Fatalf("the keyspace lists only the tables %v", tables)
	}
	return out
}

func TestDeleteSite(t *testing.T) {
	needNode(t)
	cfg := testConfig(testKeyspace)
	cfg.PageSize = 97
	storetest.RunDeleteSite(t, func(t *testing.T) (store.Store, func() store.Store) {
		s := openTest(t, cfg, Options{})
		t.Cleanup(func() { s.Close() })
		return s, nil
	}, scanSites)
}
