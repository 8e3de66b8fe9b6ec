package pebblestore

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

func visitRowsFixture() []store.Row {
	var rows []store.Row
	for b := int64(0); b < 4; b++ {
		for _, v := range []string{"", "/a", "/b\x00nul", "/c", strings.Repeat("x", 300)} {
			for sh := int32(0); sh < 3; sh++ {
				var vis []byte
				if sh != 1 {
					vis = []byte{byte(b), byte(sh), 7, 7, 7}
				}
				rows = append(rows, store.Row{
					RowKey:    store.RowKey{Site: "v.test", Granularity: store.Day, Dimension: "event:page", Bucket: 86400 * b, Value: v, Shard: sh},
					Aggregate: store.Aggregate{Pageviews: b + 1, Visits: int64(sh), Visitors: vis},
					Offset:    int64(len(rows)),
				})
			}
		}
	}
	return rows
}

// VisitRows lends the rows ScanRows copies: same rows, same order, same filters.
func TestVisitRowsIsScanRows(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testOptions())
	defer s.Close()
	ctx := context.Background()
	if err := s.WriteRows(ctx, visitRowsFixture()); err != nil {
		t.Fatal(err)
	}
	for _, rr := range []store.RowRange{
		{Site: "v.test", Granularity: store.Day, Dimension: "event:page", From: 0, To: 4 * 86400},
		{Site: "v.test", Granularity: store.Day, Dimension: "event:page", From: 86400, To: 3 * 86400},
		{Site: "v.test", Granularity: store.Day, Dimension: "event:page", From: 0, To: 4 * 86400, Values: []string{"/c", "/b\x00nul"}},
	} {
		var scanned, visited []store.Row
		if err := s.ScanRows(ctx, rr, func(r store.Row) error { scanned = append(scanned, r); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := s.VisitRows(ctx, rr, func(r *store.Row) error {
			c := *r
			c.Value = strings.Clone(r.Value)
			if r.Visitors != nil {
				c.Visitors = append([]byte{}, r.Visitors...)
			}
			visited = append(visited, c)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(scanned) == 0 || !reflect.DeepEqual(scanned, visited) {
			t.Errorf("%+v: VisitRows gave %d rows, ScanRows %d, or they differ", rr, len(visited), len(scanned))
		}
	}
}

// WatchRows reports each successful write once it is readable, until stopped.
func TestWatchRows(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testOptions())
	defer s.Close()
	ctx := context.Background()
	rows := visitRowsFixture()
	var seen int
	stop := s.WatchRows(func(written []store.Row) {
		got, err := s.GetRows(ctx, []store.RowKey{written[0].RowKey})
		if err != nil || len(got) != 1 || got[0].Offset != written[0].Offset {
			t.Errorf("watched write not readable yet: %v %v", got, err)
		}
		seen += len(written)
	})
	if err := s.WriteRows(ctx, rows[:10]); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteRows(ctx, []store.Row{{RowKey: store.RowKey{Site: "v.test", Granularity: 9}}}); err == nil {
		t.Fatal("a bad granularity was written")
	}
	stop()
	if err := s.WriteRows(ctx, rows[10:]); err != nil {
		t.Fatal(err)
	}
	if seen != 10 {
		t.Errorf("watch saw %d rows, want 10", seen)
	}
}
