package sites

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

func TestDeleteSite(t *testing.T) {
	ctx := context.Background()
	st := newMeta(t)
	dir := NewDirectory(st, Options{})
	for _, d := range []string{"gone.example", "kept.example"} {
		if _, err := dir.Add(ctx, Site{Domain: d}); err != nil {
			t.Fatal(err)
		}
	}
	ring := NewKeyring(st, Options{})
	_, only, err := ring.Create(ctx, KeySpec{Sites: []string{"gone.example"}})
	if err != nil {
		t.Fatal(err)
	}
	_, both, err := ring.Create(ctx, KeySpec{Sites: []string{"gone.example", "kept.example"}})
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := ring.Create(ctx, KeySpec{Sites: []string{"kept.example"}})
	if err != nil {
		t.Fatal(err)
	}
	_, admin, err := ring.Create(ctx, KeySpec{Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	mp := NewMPSecrets(st, Options{})
	for _, d := range []string{"gone.example", "kept.example"} {
		if _, _, err := mp.Create(ctx, d, "server"); err != nil {
			t.Fatal(err)
		}
	}
	rows := []store.Row{
		{RowKey: store.RowKey{Site: "gone.example", Granularity: store.Hour, Bucket: 3600}, Aggregate: store.Aggregate{Pageviews: 1}},
		{RowKey: store.RowKey{Site: "gone.example", Granularity: store.Day, Bucket: 0}, Aggregate: store.Aggregate{Pageviews: 1}},
		{RowKey: store.RowKey{Site: "kept.example", Granularity: store.Day, Bucket: 0}, Aggregate: store.Aggregate{Pageviews: 2}},
	}
	if err := st.WriteRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteEvents(ctx, []store.StoredEvent{{Site: "gone.example", Offset: 1, Time: 1000}}); err != nil {
		t.Fatal(err)
	}

	res, err := DeleteSite(ctx, st, " Gone.Example ", DeleteOptions{})
	if err != nil {
		t.Fatalf("DeleteSite: %v", err)
	}
	if res.Domain != "gone.example" || !res.HadRecord {
		t.Errorf("result = %+v, want the normalised domain and HadRecord", res)
	}
	if !slices.Equal(res.KeysRevoked, []string{only.ID}) || !slices.Equal(res.KeysNarrowed, []string{both.ID}) {
		t.Errorf("keys revoked %v, narrowed %v; want [%s] and [%s]", res.KeysRevoked, res.KeysNarrowed, only.ID, both.ID)
	}
	if res.MPSecrets != 1 {
		t.Errorf("Measurement Protocol secrets deleted = %d, want 1", res.MPSecrets)
	}
	if res.Data.TotalRows() != 2 || res.Data.Events != 1 {
		t.Errorf("data deleted = %+v, want 2 rows and 1 event", res.Data)
	}

	if _, ok, _ := dir.Get(ctx, "gone.example"); ok {
		t.Error("the site record is still there")
	}
	if _, ok, _ := dir.Get(ctx, "kept.example"); !ok {
		t.Error("the other site's record is gone")
	}
	if _, ok, _ := ring.Get(ctx, only.ID); ok {
		t.Error("the key of only the deleted site still exists")
	}
	if k, ok, _ := ring.Get(ctx, both.ID); !ok || !slices.Equal(k.Sites, []string{"kept.example"}) {
		t.Errorf("the key of both sites = %+v (exists %v), want it to read kept.example only", k, ok)
	}
	for _, id := range []string{other.ID, admin.ID} {
		if _, ok, _ := ring.Get(ctx, id); !ok {
			t.Errorf("key %s, which did not name the site, is gone", id)
		}
	}
	if list, _ := mp.List(ctx, "kept.example"); len(list) != 1 {
		t.Errorf("the other site has %d Measurement Protocol secrets, want 1", len(list))
	}
	got, err := st.GetRows(ctx, []store.RowKey{rows[0].RowKey, rows[2].RowKey})
	if err != nil || len(got) != 1 || got[0].Site != "kept.example" {
		t.Errorf("rows left = %+v, %v; want only the other site's", got, err)
	}

	// The site is gone now: without Force that is an error, with Force a no-op.
	if _, err := DeleteSite(ctx, st, "gone.example", DeleteOptions{}); !errors.Is(err, ErrNoSite) {
		t.Errorf("second DeleteSite = %v, want ErrNoSite", err)
	}
	if err := st.WriteRows(ctx, rows[:1]); err != nil { // a late event from the bus
		t.Fatal(err)
	}
	res, err = DeleteSite(ctx, st, "gone.example", DeleteOptions{Force: true})
	if err != nil || res.HadRecord || res.Data.TotalRows() != 1 {
		t.Errorf("DeleteSite with Force = %+v, %v; want the late row removed", res, err)
	}
	if _, err := DeleteSite(ctx, st, "not a domain!", DeleteOptions{Force: true}); err == nil {
		t.Error("DeleteSite of an invalid domain succeeded")
	}
}
