package processor

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// A partition's seal is a promise: no row of a bucket that ends by it changes afterwards.
// Random traffic with late events and long visits, checkpointed often, checks it: after
// every checkpoint, the rows of buckets that ended by the previous seal are what they were.
func TestSealHoldsRowsBeforeIt(t *testing.T) {
	for seed := uint64(1); seed <= 2; seed++ {
		st := newTestStore(t)
		cfg := testConfig()
		cfg.Lateness = 3 * time.Hour
		p, err := OpenPartition(context.Background(), cfg, Deps{Store: st, Log: quiet()}, 0)
		if err != nil {
			t.Fatal(err)
		}
		evs := sealTraffic(seed)
		var (
			sealed int64 // ms
			frozen map[store.RowKey]agg
			moved  int
		)
		ended := func(k store.RowKey) bool {
			return (k.Bucket+int64(k.Granularity.Duration()/time.Second))*1000 <= sealed
		}
		for i, ev := range evs {
			p.Apply(int64(i), ev)
			if i%251 != 250 && i != len(evs)-1 {
				continue
			}
			if _, err := p.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			rows := st.dump(t, true)
			for k, want := range frozen {
				if got := rows[k]; got != want {
					t.Fatalf("seed %d, after event %d: row %+v of a bucket that ended by the seal %s changed:\nwas %v\nnow %v",
						seed, i, k, time.UnixMilli(sealed).UTC(), want, got)
				}
			}
			for k := range rows {
				if _, ok := frozen[k]; !ok && ended(k) {
					t.Fatalf("seed %d, after event %d: new row %+v in a bucket that ended by the seal %s", seed, i, k, time.UnixMilli(sealed).UTC())
				}
			}
			v, ok, err := st.GetMeta(context.Background(), store.SealNamespace, store.SealKey(cfg.Topic, cfg.Group, 0))
			if err != nil || !ok {
				t.Fatalf("no seal stored after a checkpoint: %v %v", ok, err)
			}
			s, _ := binary.Varint(v)
			if s < sealed {
				t.Fatalf("the seal went back from %d to %d", sealed, s)
			}
			if s > sealed {
				moved++
			}
			sealed = s
			frozen = map[store.RowKey]agg{}
			for k, a := range rows {
				if ended(k) {
					frozen[k] = a
				}
			}
		}
		if moved < 10 || len(frozen) == 0 {
			t.Fatalf("seed %d: the seal moved %d times and froze %d rows: the traffic does not exercise it", seed, moved, len(frozen))
		}
		if sealed > evs[len(evs)-1].Time-cfg.Lateness.Milliseconds() {
			t.Fatalf("seal %d is past the oldest event time still accepted", sealed)
		}
	}
}

// sealTraffic is five days of page views and events in rough time order: some arrive up to
// four hours late (so some are dropped), and some visitors stay for hours, so an open visit
// that started long ago holds the seal back.
func sealTraffic(seed uint64) []*event.Event {
	rng := rand.New(rand.NewPCG(seed, 99))
	pages := []string{"/", "/a", "/b", "/c"}
	var evs []*event.Event
	for t := time.Duration(0); t < 5*24*time.Hour; t += time.Duration(rng.IntN(240)) * time.Second {
		vid := uint64(rng.IntN(300))
		at := t
		if rng.IntN(10) == 0 {
			at -= time.Duration(rng.IntN(4*3600)) * time.Second
		}
		var e *event.Event
		if rng.IntN(6) == 0 {
			e = custom(vid, at, "Signup", pages[rng.IntN(len(pages))], rng.IntN(2) == 0)
		} else {
			e = pv(vid, at, pages[rng.IntN(len(pages))])
		}
		evs = append(evs, withAttrs(e, []string{"", "Google", "Bing"}[rng.IntN(3)], "Desktop", ""))
		// A regular: one visit of a page every 20 minutes from hour 10 to hour 40.
		if r := t.Truncate(20 * time.Minute); r >= 10*time.Hour && r < 40*time.Hour && (len(evs) < 2 || evs[len(evs)-2].VisitorID != 1000 || evs[len(evs)-2].Time != ms(r)) {
			evs = append(evs, pv(1000, r, "/live"))
		}
	}
	return evs
}

// A store that does not answer when the processor starts does not stop it; the partition
// count that sealing needs is recorded at a later checkpoint, and then every partition's
// seal makes days finished.
func TestPartitionCountRecordedAfterStoreOutage(t *testing.T) {
	evs := synthetic(5, 30, 12*time.Hour)
	parts := splitByShard(evs, 2)
	b := &fakeBus{claims: []*fakeClaim{newFakeClaim(0, messages(t, parts[0]...)), newFakeClaim(1, messages(t, parts[1]...))}}
	st := newTestStore(t)
	st.setFailing(true)
	p := newProcessor(t, b, st, nil)
	stop := start(t, p) // fails the test if Start returns an error
	defer stop()
	if _, ok, _ := st.Store.GetMeta(context.Background(), store.SealNamespace, store.SealGroupKey("glimpse-events", "glimpse-processor")); ok {
		t.Fatal("partition count recorded while the store was down")
	}
	st.setFailing(false)
	waitFor(t, "every partition sealed", func() bool {
		_, ok, err := store.SealedThrough(context.Background(), st)
		return ok && err == nil
	})
}
