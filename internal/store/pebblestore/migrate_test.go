package pebblestore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// A format 1 store (events in shard order under the old tag) opens as format 2 with every
// event readable, nothing left under the old tag, and the conversion done only once.
func TestOpenConvertsFormat1Events(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOptions())
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	var want []store.StoredEvent
	for i := range 3000 { // more than one conversion batch holds with the payload below
		e := store.StoredEvent{Site: "a.example", Shard: int32(i % 4), Offset: int64(i), Time: day + int64(i)*60_000,
			SessionID: uint64(i), SessionStart: day, Payload: make([]byte, 2048)}
		e.Payload[0] = byte(i)
		if i%5 == 0 {
			e.Site = "b\x00.example" // a NUL in a site survives the conversion
		}
		want = append(want, e)
		k := appendInt64(appendInt64(appendInt32(appendInt64(append([]byte{tagEventsV1}, appendString(nil, e.Site)...), dayOf(e.Time)), e.Shard), e.Time), e.Offset)
		if err := s.db.Set(k, appendEventValue(nil, &e), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Set(formatKey, []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, dir, testOptions())
	got := map[string][]store.StoredEvent{}
	for _, site := range []string{"a.example", "b\x00.example"} {
		err := s.ScanEvents(context.Background(), store.EventRange{Site: site, From: day, To: day + 4000*60_000}, func(e store.StoredEvent) error {
			got[site] = append(got[site], e)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var all []store.StoredEvent
	for _, evs := range got {
		all = append(all, evs...)
	}
	slices.SortFunc(all, func(a, b store.StoredEvent) int { return int(a.Offset - b.Offset) })
	if len(all) != len(want) {
		t.Fatalf("%d events after the conversion, want %d", len(all), len(want))
	}
	for i := range want {
		if !eventsEqual(all[i], want[i]) {
			t.Fatalf("event %d after the conversion: %+v, want %+v", i, all[i], want[i])
		}
	}
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		if it.Key()[0] == tagEventsV1 {
			t.Fatalf("key %x left in format 1", it.Key())
		}
	}
	it.Close()
	if v, closer, err := s.db.Get(formatKey); err != nil || string(v) != "2" {
		t.Fatalf("format after the conversion: %q, %v", v, err)
	} else {
		closer.Close()
	}
}

func eventsEqual(a, b store.StoredEvent) bool {
	return a.Site == b.Site && a.Shard == b.Shard && a.Offset == b.Offset && a.Time == b.Time &&
		a.SessionID == b.SessionID && a.SessionStart == b.SessionStart && slices.Equal(a.Payload, b.Payload)
}
