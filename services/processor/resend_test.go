package processor

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

func withID(e *event.Event, id string) *event.Event {
	e.ID = id
	return e
}

// withIDs gives every event an id of its own, as senders that retry do.
func withIDs(evs []*event.Event) []*event.Event {
	for i, e := range evs {
		e.ID = fmt.Sprintf("%x-%d", e.VisitorID, i)
	}
	return evs
}

// withResends returns evs plus a resend of about one event in five (a copy with the same
// id, received 1 to 20 seconds after the original: a client that got a 503 for an event
// the bus had stored after all), in time order, and the originals that have a resend.
func withResends(evs []*event.Event, seed uint64) (out []*event.Event, resent map[*event.Event]bool) {
	rng := rand.New(rand.NewPCG(seed, 99))
	out = slices.Clone(evs)
	resent = map[*event.Event]bool{}
	for _, e := range evs {
		if rng.IntN(5) != 0 {
			continue
		}
		r := *e
		r.Time += 1000 + rng.Int64N(19_000)
		out = append(out, &r)
		resent[e] = true
	}
	slices.SortStableFunc(out, func(a, b *event.Event) int { return cmp.Compare(a.Time, b.Time) })
	return out, resent
}

func TestResendWithinAVisitIsDropped(t *testing.T) {
	st := newTestStore(t)
	reg := prometheus.NewRegistry()
	p, err := OpenPartition(context.Background(), testConfig(), Deps{Store: st, Log: quiet(), Metrics: reg}, 0)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(off int64, e *event.Event, want bool) {
		t.Helper()
		if got := p.Apply(off, e); got != want {
			t.Fatalf("Apply(%d, %s %q id %q) = %v, want %v", off, e.Name, e.Path, e.ID, got, want)
		}
	}
	apply(0, withID(pv(1, 0, "/a"), "e1"), true)
	apply(1, withID(pv(1, time.Minute, "/b"), "e2"), true)
	apply(2, withID(pv(1, time.Minute+3*time.Second, "/a"), "e1"), false)                     // resend of e1
	apply(3, withID(custom(1, 2*time.Minute, "Signup", "/b", true), "e3"), true)              //
	apply(4, withID(custom(1, 2*time.Minute+time.Second, "Signup", "/b", true), "e3"), false) // resend of e3
	apply(5, withID(pv(2, 2*time.Minute, "/a"), "e1"), true)                                  // another visitor's e1
	apply(6, pv(3, 2*time.Minute, "/a"), true)                                                // no id: always counted
	apply(7, pv(3, 2*time.Minute, "/a"), true)
	if w, _ := p.Watermark(); w != ms(2*time.Minute) {
		t.Errorf("watermark %d; a resend must not move it", w)
	}
	apply(8, withID(pv(1, 45*time.Minute, "/c"), "e4"), true)   // a new visit
	apply(9, withID(pv(1, 46*time.Minute, "/a"), "e1"), true)   // e1 of an earlier visit: not this visit's
	apply(10, withID(pv(1, 47*time.Minute, "/c"), "e4"), false) // resend of e4
	flush(t, p)

	if s := p.Stats(); s.Duplicates != 3 || s.Processed != 8 {
		t.Errorf("stats %+v; want 3 duplicates, 8 processed", s)
	}
	if got := metricValue(t, reg, "glimpse_processor_duplicates_dropped_total"); got != 3 {
		t.Errorf("glimpse_processor_duplicates_dropped_total = %v, want 3", got)
	}
	stored := st.storedEvents(t, site)
	if len(stored) != 8 {
		t.Fatalf("%d stored events; want 8 (no resend)", len(stored))
	}
	for _, se := range stored {
		if se.Offset == 2 || se.Offset == 4 || se.Offset == 10 {
			t.Errorf("resend at offset %d was stored", se.Offset)
		}
	}
	wantRows(t, st.dump(t, false), map[store.RowKey]agg{
		key(store.Day, "", 0, ""): {Pageviews: 7, Events: 1, Visits: 4, Bounces: 1, DurationMS: 2*60_000 + 60_000, Visitors: 3},
	})
}

// A visit remembers the ids of its latest MaxVisitEventIDs events; an older id is
// forgotten, so its resend would count.
func TestVisitRemembersTheLatestIDs(t *testing.T) {
	p := open(t, newTestStore(t), 0)
	n := MaxVisitEventIDs + 5
	for i := range n {
		if !p.Apply(int64(i), withID(pv(1, time.Duration(i)*time.Second, "/"), fmt.Sprint(i))) {
			t.Fatalf("event %d not counted", i)
		}
	}
	s := p.sessions[visitorKey{site, 1}]
	if len(s.ids) != MaxVisitEventIDs || s.ids[0] != eventIDHash("5") || s.ids[len(s.ids)-1] != eventIDHash(fmt.Sprint(n-1)) {
		t.Fatalf("the visit remembers %d ids", len(s.ids))
	}
	if p.Apply(int64(n), withID(pv(1, time.Minute, "/"), "5")) {
		t.Error("a resend of the oldest remembered id was counted")
	}
	if !p.Apply(int64(n+1), withID(pv(1, time.Minute, "/"), "4")) {
		t.Error("an id beyond the bound was dropped")
	}
}

func TestCheckpointKeepsEventIDs(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	p := open(t, st, 0)
	for i := range MaxVisitEventIDs + 3 {
		p.Apply(int64(i), withID(pv(1, time.Duration(i)*time.Second, "/"), fmt.Sprintf("v1-%d", i)))
	}
	p.Apply(int64(MaxVisitEventIDs+3), withID(pv(2, time.Minute, "/x"), "v2-0"))
	p.Apply(int64(MaxVisitEventIDs+4), pv(3, time.Minute, "/y")) // a visit without ids
	if _, err := p.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	head, _, _ := st.GetMeta(ctx, CheckpointNamespace, p.key)
	if head[1] != 0 || head[2] != bodyVersion {
		t.Fatalf("checkpoint with event ids written as layout %d, body version %d", head[1], head[2])
	}
	q := open(t, st, 0)
	if got, want := sessionsOf(q), sessionsOf(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored sessions differ:\n got %+v\nwant %+v", got, want)
	}
	if ids := q.sessions[visitorKey{site, 3}].ids; ids != nil {
		t.Errorf("a visit without ids restored with %d", len(ids))
	}
	next := q.Next()
	if q.Apply(next, withID(pv(1, 2*time.Minute, "/"), fmt.Sprintf("v1-%d", MaxVisitEventIDs+2))) ||
		q.Apply(next+1, withID(pv(2, 2*time.Minute, "/x"), "v2-0")) {
		t.Error("a resend after the restart was counted")
	}
	if q.Stats().Duplicates != 2 {
		t.Errorf("stats %+v", q.Stats())
	}
}

// Without event ids the checkpoint keeps the version-1 layout, which older processors
// read; this binary reads both.
func TestCheckpointWithoutIDsKeepsVersion1(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	p := open(t, st, 0)
	p.Apply(0, pv(1, 0, "/a"))
	p.Apply(1, custom(1, time.Minute, "Signup", "/a", true))
	if _, err := p.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	head, _, _ := st.GetMeta(ctx, CheckpointNamespace, p.key)
	if head[2] != bodyV1 {
		t.Fatalf("checkpoint without event ids written as body version %d", head[2])
	}
	if q := open(t, st, 0); !reflect.DeepEqual(sessionsOf(q), sessionsOf(p)) {
		t.Fatal("restored sessions differ")
	}
	// Once a visit has an id the checkpoint moves to version 2 (and back when none has).
	p.Apply(2, withID(pv(2, 2*time.Minute, "/"), "x"))
	if _, err := p.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if head, _, _ = st.GetMeta(ctx, CheckpointNamespace, p.key); head[2] != bodyVersion {
		t.Fatalf("checkpoint with an event id written as body version %d", head[2])
	}
}

// Resends in the stream change nothing, and crashes anywhere (between an event and its
// resend in particular, so the resend meets the visit restored from a checkpoint) still
// leave every event counted exactly once. Engagement events extend visits on the way.
func TestResendsCountOnceAcrossCrashes(t *testing.T) {
	orig := withIDs(withEngagement(replayStream(), 5))
	evs, resent := withResends(orig, 5)
	t.Logf("%d events, %d resends", len(orig), len(resent))

	ref := newTestStore(t)
	runWithCrashes(t, ref, orig, nil)
	want := ref.dump(t, false)
	wantEvents := ref.storedEvents(t, site)

	// the stored events of a run of evs are those of orig, at other offsets
	sameEvents := func(t *testing.T, got []store.StoredEvent) {
		t.Helper()
		if len(got) != len(wantEvents) {
			t.Fatalf("%d stored events, want %d", len(got), len(wantEvents))
		}
		for i := range got {
			g, w := got[i], wantEvents[i]
			if g.SessionID != w.SessionID || g.SessionStart != w.SessionStart || g.Time != w.Time || !bytes.Equal(g.Payload, w.Payload) {
				t.Fatalf("stored event %d differs:\n got %+v\nwant %+v", i, g, w)
			}
		}
	}

	st := newTestStore(t)
	runWithCrashes(t, st, evs, nil)
	diffRows(t, "with resends", st.dump(t, false), want)
	sameEvents(t, st.storedEvents(t, site))
	noCrash := st.dump(t, true)
	noCrashEvents := st.storedEvents(t, site)
	p := open(t, st, 0)
	if p.Stats().Duplicates != 0 { // a fresh partition
		t.Fatal(p.Stats())
	}

	// crash points: right after an original whose resend follows
	var points []int
	for i, e := range evs {
		if resent[e] {
			points = append(points, i)
		}
	}
	rng := rand.New(rand.NewPCG(6, 6))
	for _, kind := range []crashKind{crashUnflushed, crashAfterFlush, crashMidFlush, crashAfterCheckpoint, outageThenGoOn} {
		for range 3 {
			at := points[rng.IntN(len(points))]
			t.Run(fmt.Sprintf("%s at %d", kind, at), func(t *testing.T) {
				st := newTestStore(t)
				runWithCrashes(t, st, evs, map[int]crashKind{at: kind})
				diffRows(t, "after a crash", st.dump(t, true), noCrash)
				got := st.storedEvents(t, site)
				if len(got) != len(noCrashEvents) {
					t.Fatalf("%d stored events, want %d", len(got), len(noCrashEvents))
				}
				for i := range got {
					if g, w := got[i], noCrashEvents[i]; g.Offset != w.Offset || g.SessionID != w.SessionID || !bytes.Equal(g.Payload, w.Payload) {
						t.Fatalf("stored event %d differs:\n got %+v\nwant %+v", i, g, w)
					}
				}
			})
		}
	}
	t.Run("many crashes", func(t *testing.T) {
		crashes := map[int]crashKind{}
		for range 15 {
			crashes[points[rng.IntN(len(points))]] = crashKind(rng.IntN(5))
		}
		st := newTestStore(t)
		runWithCrashes(t, st, evs, crashes)
		diffRows(t, "after crashes", st.dump(t, false), want)
		sameEvents(t, st.storedEvents(t, site))
	})
}

// Every resend is dropped and counted as one, and the rows equal the definitions applied
// to the stream without them.
func TestResendsMatchTheDefinitions(t *testing.T) {
	orig := withIDs(synthetic(8, 80, 30*time.Hour))
	evs, resent := withResends(orig, 8)
	st := newTestStore(t)
	parts := applyAll(t, st, testConfig(), evs, 3, 71)
	var dups int64
	for _, p := range parts {
		dups += p.Stats().Duplicates
	}
	if dups != int64(len(resent)) {
		t.Errorf("%d duplicates dropped for %d resends", dups, len(resent))
	}
	diffRows(t, "rollups", st.dump(t, false), oracle(orig))
}
