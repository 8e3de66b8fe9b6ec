package processor

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sessionsOf renders the open visits of p for comparison (row pointers left out).
func sessionsOf(p *Partition) map[visitorKey]session {
	out := map[visitorKey]session{}
	for k, s := range p.sessions {
		c := *s
		c.index, c.lastMinute, c.evRows, c.evHour, c.active = nil, 0, nil, 0, false
		c.values = nil
		for _, v := range s.values {
			c.values = append(c.values, countedValue{v.dimValue, 0})
		}
		out[k] = c
	}
	return out
}

func TestCheckpointRoundTrip(t *testing.T) {
	st := newTestStore(t)
	p := open(t, st, 2)
	e := withAttrs(pv(1, 0, "/a"), "Google", "Mobile", "DE")
	e.UTMCampaign, e.City, e.BrowserVersion = "spring", "Berlin", "128"
	p.Apply(0, e)
	p.Apply(1, custom(1, 25*time.Minute, "Signup", "/b", true))
	ce := custom(2, 5*time.Minute, "Scroll", "/c", false)
	ce.Props = map[string]string{"plan": "pro"}
	p.Apply(2, ce)
	p.Apply(3, pv(1, 20*time.Minute, "/late")) // out of order inside the visit
	next, err := p.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if next != 4 {
		t.Fatalf("checkpoint at %d", next)
	}
	q := open(t, st, 2)
	if !q.Resumed() || q.Next() != 4 {
		t.Fatalf("resumed=%v next=%d", q.Resumed(), q.Next())
	}
	if w, _ := q.Watermark(); w != ms(25*time.Minute) {
		t.Errorf("watermark %d", w)
	}
	if got, want := sessionsOf(q), sessionsOf(p); !reflect.DeepEqual(got, want) {
		t.Errorf("restored sessions differ:\n got %+v\nwant %+v", got, want)
	}
	// another partition has its own checkpoint
	if r := open(t, st, 1); r.Resumed() || r.Next() != 0 {
		t.Errorf("partition 1 resumed at %d", r.Next())
	}
}

func TestLargeCheckpointsAreChunked(t *testing.T) {
	st := newTestStore(t)
	p := open(t, st, 0)
	ctx := context.Background()
	n := 4000
	for i := range n {
		e := pv(uint64(i+1), time.Duration(i)*time.Millisecond, fmt.Sprintf("/page/%d/%s", i, strings.Repeat("x", 40)))
		e.Referrer = fmt.Sprintf("ref%d.example/", i)
		p.Apply(int64(i), e)
	}
	if _, err := p.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if p.ckptSize < 2 {
		t.Fatalf("a %d-session checkpoint was not chunked", n)
	}
	firstGen := p.ckptGen
	q := open(t, st, 0)
	if q.OpenSessions() != n || !reflect.DeepEqual(sessionsOf(q), sessionsOf(p)) {
		t.Fatalf("restored %d of %d sessions", q.OpenSessions(), n)
	}

	// A crash after the chunks of the next generation but before its head: the old
	// checkpoint is intact, and the orphan chunks are cleaned up on open.
	p.Apply(int64(n), pv(1, time.Minute, "/more"))
	p.st = &headFailingStore{testStore: st, key: p.key}
	if _, err := p.Checkpoint(ctx); err == nil {
		t.Fatal("checkpoint succeeded without its head")
	}
	orphans := countChunks(t, st, p.key, firstGen+1)
	if orphans == 0 {
		t.Fatal("no chunks of the new generation were written")
	}
	r := open(t, st, 0)
	if r.Next() != int64(n) || r.ckptGen != firstGen {
		t.Fatalf("after a failed checkpoint: next %d gen %d", r.Next(), r.ckptGen)
	}
	if left := countChunks(t, st, p.key, firstGen+1); left != 0 {
		t.Errorf("%d orphan chunks left after open", left)
	}

	// a smaller checkpoint goes inline and drops the old chunks
	for i := range n {
		r.Apply(int64(n+i), pv(uint64(i+1), 10*time.Hour, "/"))
	}
	r.Apply(int64(2*n), pv(1, 12*time.Hour, "/")) // every earlier visit has ended
	if _, err := r.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if r.ckptSize != 0 || countChunks(t, st, p.key, firstGen) != 0 {
		t.Errorf("inline checkpoint left %d chunks behind", countChunks(t, st, p.key, firstGen))
	}
	if s := open(t, st, 0); s.OpenSessions() != 1 || s.Next() != int64(2*n+1) {
		t.Errorf("resumed with %d sessions at %d", s.OpenSessions(), s.Next())
	}
}

// headFailingStore fails the write of the checkpoint head.
type headFailingStore struct {
	*testStore
	key string
}

func (s *headFailingStore) PutMeta(ctx context.Context, ns, key string, v []byte) error {
	if key == s.key {
		return errDown
	}
	return s.testStore.PutMeta(ctx, ns, key, v)
}

func countChunks(t *testing.T, st *testStore, key string, gen uint64) int {
	t.Helper()
	n := 0
	prefix := fmt.Sprintf("%s/chunk/%d/", key, gen)
	err := st.ListMeta(context.Background(), CheckpointNamespace, func(k string, _ []byte) error {
		if strings.HasPrefix(k, prefix) {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestUnusableCheckpointsAreRefused(t *testing.T) {
	ctx := context.Background()
	key := CheckpointKey("glimpse-events", "glimpse-processor", 0)
	good := func(t *testing.T) (*testStore, []byte) {
		st := newTestStore(t)
		p := open(t, st, 0)
		p.Apply(0, pv(1, 0, "/"))
		if _, err := p.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		v, _, _ := st.GetMeta(ctx, CheckpointNamespace, key)
		return st, v
	}
	cases := map[string]func([]byte) []byte{
		"newer head":    func(v []byte) []byte { v[0] = headVersion + 1; return v },
		"newer body":    func(v []byte) []byte { v[2] = bodyVersion + 1; return v },
		"flipped bit":   func(v []byte) []byte { v[len(v)/2] ^= 1; return v },
		"truncated":     func(v []byte) []byte { return v[:len(v)-3] },
		"empty":         func(v []byte) []byte { return nil },
		"unknown shape": func(v []byte) []byte { v[1] = 7; return v },
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			st, v := good(t)
			if err := st.PutMeta(ctx, CheckpointNamespace, key, damage(v)); err != nil {
				t.Fatal(err)
			}
			_, err := OpenPartition(ctx, testConfig(), Deps{Store: st, Log: quiet()}, 0)
			if !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("open returned %v, want ErrCheckpoint", err)
			}
		})
	}
	t.Run("processor stops", func(t *testing.T) {
		st, v := good(t)
		v[0] = headVersion + 1
		if err := st.PutMeta(ctx, CheckpointNamespace, key, v); err != nil {
			t.Fatal(err)
		}
		c := newFakeClaim(0, messages(t, pv(1, 0, "/")))
		p := newProcessor(t, &fakeBus{claims: []*fakeClaim{c}}, st, nil)
		errc := make(chan error, 1)
		go func() { errc <- p.Run(ctx) }()
		select {
		case err := <-errc:
			if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "upgrade the processor") {
				t.Fatalf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run went on with an unusable checkpoint")
		}
		if c.Committed() != 0 {
			t.Error("committed without a usable checkpoint")
		}
	})
}

func TestCheckpointKeepsNothingBeyondItsPosition(t *testing.T) {
	// the stored events of a visit replayed after a checkpoint keep their visit
	st := newTestStore(t)
	p := open(t, st, 0)
	p.Apply(0, pv(7, 0, "/a"))
	if _, err := p.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	q := open(t, st, 0)
	q.Apply(1, pv(7, 10*time.Minute, "/b"))
	flush(t, q)
	evs := st.storedEvents(t, site)
	if len(evs) != 2 || evs[0].SessionID != evs[1].SessionID {
		t.Fatalf("a visit split by a restart: %+v", evs)
	}
}
