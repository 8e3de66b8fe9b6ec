package store_test

import (
	"context"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
)

func TestSealedThrough(t *testing.T) {
	put := func(st store.Store, key string, v int64) {
		t.Helper()
		if err := st.PutMeta(context.Background(), store.SealNamespace, key, store.EncodeSeal(v)); err != nil {
			t.Fatal(err)
		}
	}
	type rec struct {
		key string
		v   int64
	}
	g := store.SealGroupKey
	s := store.SealKey
	for _, tc := range []struct {
		name    string
		recs    []rec
		through int64
		ok      bool
	}{
		{"nothing recorded", nil, 0, false},
		{"every partition", []rec{{g("ev", "p"), 3}, {s("ev", "p", 0), 500}, {s("ev", "p", 1), 300}, {s("ev", "p", 2), 900}}, 300, true},
		{"a partition without a seal", []rec{{g("ev", "p"), 3}, {s("ev", "p", 0), 500}, {s("ev", "p", 2), 900}}, 0, false},
		{"seals without the partition count", []rec{{s("ev", "p", 0), 500}}, 0, false},
		{"a seal of a partition beyond the count is ignored", []rec{{g("ev", "p"), 1}, {s("ev", "p", 0), 500}, {s("ev", "p", 7), 1}}, 500, true},
		{"the earliest of two groups", []rec{{g("ev", "p"), 1}, {s("ev", "p", 0), 500}, {g("ev", "q"), 2}, {s("ev", "q", 0), 700}, {s("ev", "q", 1), 400}}, 400, true},
		{"an incomplete group holds every day back", []rec{{g("ev", "p"), 1}, {s("ev", "p", 0), 500}, {g("ev", "q"), 2}, {s("ev", "q", 0), 700}}, 0, false},
		{"negative times", []rec{{g("a/b", "c:d"), 1}, {s("a/b", "c:d", 0), -5}}, -5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := memstore.New()
			defer st.Close()
			for _, r := range tc.recs {
				put(st, r.key, r.v)
			}
			through, ok, err := store.SealedThrough(context.Background(), st)
			if err != nil || through != tc.through || ok != tc.ok {
				t.Errorf("SealedThrough = %d, %v, %v; want %d, %v", through, ok, err, tc.through, tc.ok)
			}
		})
	}
}

func TestSealedThroughMalformed(t *testing.T) {
	for _, tc := range []struct{ key, value string }{
		{store.SealKey("ev", "p", 0), ""},
		{store.SealKey("ev", "p", 0), "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"},
		{"no-separators", "\x02"},
		{"a\x00b\x00c\x00d", "\x02"},
	} {
		st := memstore.New()
		if err := st.PutMeta(context.Background(), store.SealNamespace, tc.key, []byte(tc.value)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := store.SealedThrough(context.Background(), st); err == nil {
			t.Errorf("key %q value %q: no error", tc.key, tc.value)
		}
		st.Close()
	}
}
