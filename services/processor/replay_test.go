package processor

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// replayStream is one partition's worth of events with everything that can move: exit
// pages, bounces turning into engaged visits, visits across hours and midnight, props, and
// a prop with more values per day than replayConfig keeps (so values fold into "(other)").
func replayStream() []*event.Event {
	evs := synthetic(3, 40, 16*time.Hour)
	for i, e := range evs {
		e.Site = site
		if e.Props != nil {
			e.Props["item"] = fmt.Sprintf("item-%d", (i*7)%23)
		}
	}
	return evs
}

// replayPropLimit is the processor.max-prop-values of the replay tests.
const replayPropLimit = 5

func replayConfig() Config {
	c := testConfig()
	c.MaxPropValues = replayPropLimit
	return c
}

const (
	flushEvery      = 53
	checkpointEvery = 3 // flushes
)

// crashKind is what happens to a partition at a crash point.
type crashKind int

const (
	crashUnflushed       crashKind = iota // everything since the last flush is lost
	crashAfterFlush                       // rows and events stored, checkpoint not
	crashMidFlush                         // the store took part of the rows, then the process died
	crashAfterCheckpoint                  // checkpoint stored (the bus commit would be next)
	outageThenGoOn                        // the store fails for a while; nothing crashes
)

func (k crashKind) String() string {
	return [...]string{"unflushed", "after flush", "mid flush", "after checkpoint", "outage"}[k]
}

// runWithCrashes processes evs on st as a processor would, with crashes at the given
// offsets. It returns the number of times the partition was reopened.
func runWithCrashes(t *testing.T, st *testStore, evs []*event.Event, crashes map[int]crashKind) int {
	t.Helper()
	ctx := context.Background()
	p := openWith(t, replayConfig(), st, nil)
	reopened := 0
	flushes := 0
	done := map[int]bool{}
	for i := p.Next(); i < int64(len(evs)); i++ {
		p.Apply(i, evs[i])
		if kind, ok := crashes[int(i)]; ok && !done[int(i)] {
			done[int(i)] = true // a replay passes the same offset again
			switch kind {
			case crashUnflushed:
			case crashAfterFlush:
				flush(t, p)
			case crashMidFlush:
				st.mu.Lock()
				st.failAfterRows = 7
				st.mu.Unlock()
				if err := p.Flush(ctx); err == nil {
					t.Fatalf("offset %d: flush did not fail", i)
				}
				st.setFailing(false)
			case crashAfterCheckpoint:
				if _, err := p.Checkpoint(ctx); err != nil {
					t.Fatal(err)
				}
			case outageThenGoOn:
				st.setFailing(true)
				if err := p.Flush(ctx); err == nil {
					t.Fatal("flush succeeded during an outage")
				}
				if _, err := p.Checkpoint(ctx); err == nil {
					t.Fatal("checkpoint succeeded during an outage")
				}
				st.setFailing(false)
				continue // the partition keeps its state and goes on
			}
			p.Close()
			p = openWith(t, replayConfig(), st, nil)
			reopened++
			if p.Next() > i+1 {
				t.Fatalf("reopened at %d after a crash at %d", p.Next(), i)
			}
			i = p.Next() - 1
			continue
		}
		if i%flushEvery == flushEvery-1 {
			flush(t, p)
			if flushes++; flushes%checkpointEvery == 0 {
				if _, err := p.Checkpoint(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if _, err := p.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	return reopened
}

func TestReplayAfterCrashGivesTheSameRows(t *testing.T) {
	evs := replayStream()
	ref := newTestStore(t)
	runWithCrashes(t, ref, evs, nil)
	want := ref.dump(t, true)
	wantEvents := ref.storedEvents(t, site)
	if len(wantEvents) != len(evs) {
		t.Fatalf("uninterrupted run stored %d of %d events", len(wantEvents), len(evs))
	}
	t.Logf("%d events, %d rows", len(evs), len(want))
	checkPropLimit(t, ref.rawRows(t))

	check := func(t *testing.T, st *testStore) {
		t.Helper()
		diffRows(t, "after crashes", st.dump(t, true), want)
		got := st.storedEvents(t, site)
		if len(got) != len(wantEvents) {
			t.Fatalf("%d stored events, want %d", len(got), len(wantEvents))
		}
		for i := range got {
			g, w := got[i], wantEvents[i]
			if g.Offset != w.Offset || g.SessionID != w.SessionID || g.SessionStart != w.SessionStart || g.Time != w.Time || !bytes.Equal(g.Payload, w.Payload) {
				t.Fatalf("stored event %d differs:\n got %+v\nwant %+v", i, g, w)
			}
		}
	}

	// each kind of crash at points inside visits, at flush and checkpoint boundaries
	for _, kind := range []crashKind{crashUnflushed, crashAfterFlush, crashMidFlush, crashAfterCheckpoint, outageThenGoOn} {
		for _, at := range []int{0, 1, flushEvery - 1, flushEvery * checkpointEvery, len(evs) / 2, len(evs) - 2} {
			t.Run(kind.String(), func(t *testing.T) {
				st := newTestStore(t)
				runWithCrashes(t, st, evs, map[int]crashKind{at: kind})
				check(t, st)
			})
		}
	}
	t.Run("many crashes of every kind", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		for round := range 4 {
			crashes := map[int]crashKind{}
			for range 12 {
				crashes[rng.IntN(len(evs))] = crashKind(rng.IntN(5))
			}
			st := newTestStore(t)
			n := runWithCrashes(t, st, evs, crashes)
			if n == 0 {
				t.Fatalf("round %d: no crash happened", round)
			}
			check(t, st)
		}
	})
}

// A second crash while replaying the first one's gap (rows already ahead of the
// checkpoint) still converges.
func TestCrashDuringReplay(t *testing.T) {
	evs := replayStream()
	ref := newTestStore(t)
	runWithCrashes(t, ref, evs, nil)

	st := newTestStore(t)
	// checkpoint at 158 (3 flushes of 53), rows flushed up to 260, crash; the replay
	// crashes again mid flush at 200 and after a flush at 230.
	runWithCrashes(t, st, evs, map[int]crashKind{260: crashAfterFlush, 200: crashMidFlush, 230: crashAfterFlush})
	diffRows(t, "after nested crashes", st.dump(t, true), ref.dump(t, true))
}

// After a crash the rows ahead of the checkpoint must never lose their offset: a row
// written by the crashed run at offset F and rewritten during the replay keeps F.
func TestRowOffsetsNeverGoBack(t *testing.T) {
	evs := replayStream()
	st := newTestStore(t)
	p := open(t, st, 0)
	for i := range 120 {
		p.Apply(int64(i), evs[i])
	}
	if _, err := p.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 120; i < 300; i++ {
		p.Apply(int64(i), evs[i])
	}
	flush(t, p)
	before := map[store.RowKey]int64{}
	for _, r := range st.rawRows(t) {
		before[r.RowKey] = r.Offset
	}
	p = open(t, st, 0)
	if p.Next() != 120 {
		t.Fatalf("resumed at %d", p.Next())
	}
	for i := 120; i < 200; i++ {
		p.Apply(int64(i), evs[i])
	}
	flush(t, p)
	for _, r := range st.rawRows(t) {
		if r.Offset < before[r.RowKey] {
			t.Fatalf("row %+v went back from offset %d to %d", r.RowKey, before[r.RowKey], r.Offset)
		}
	}
}

// checkPropLimit checks that the stream folded values and that no shard's day holds more
// than replayPropLimit values of a key with page views or events, besides "(other)".
func checkPropLimit(t *testing.T, rows []store.Row) {
	t.Helper()
	type day struct {
		dim    string
		bucket int64
		shard  int32
	}
	values := map[day]int{}
	other := 0
	for _, r := range rows {
		if r.Granularity != store.Day || !strings.HasPrefix(r.Dimension, dims.PropsPrefix) || r.Pageviews+r.Events == 0 {
			continue
		}
		if r.Value == dims.OtherValue {
			other++
			continue
		}
		values[day{r.Dimension, r.Bucket, r.Shard}]++
	}
	if other == 0 {
		t.Fatal("the replay stream folded no value: it does not test the fold")
	}
	for d, n := range values {
		if n > replayPropLimit {
			t.Errorf("%s on day %d has %d values, limit %d", d.dim, d.bucket, n, replayPropLimit)
		}
	}
}
