package loadgen

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

func TestBeaconIDsAreUniqueAndDeterministic(t *testing.T) {
	o := Options{Sites: []string{"a.example", "b.example"}, Events: 3000, Seed: 18446744073709551615}
	p, again := NewPlan(o), NewPlan(o)
	seen := map[string]bool{}
	for vi, v := range p.Visits {
		for bi, b := range v.Beacons {
			if b.ID == "" || len(b.ID) > event.MaxIDLen {
				t.Fatalf("visit %d beacon %d: id %q", vi, bi, b.ID)
			}
			for i := 0; i < len(b.ID); i++ {
				if c := b.ID[i]; c <= ' ' || c >= 0x7f {
					t.Fatalf("id %q is not printable ASCII without spaces", b.ID)
				}
			}
			if seen[b.ID] {
				t.Fatalf("id %q used twice", b.ID)
			}
			seen[b.ID] = true
			if again.Visits[vi].Beacons[bi].ID != b.ID {
				t.Fatalf("the same options gave id %q, then %q", b.ID, again.Visits[vi].Beacons[bi].ID)
			}
			if b.body()["eid"] != b.ID {
				t.Fatalf("body %v does not carry the id", b.body())
			}
		}
	}
	if other := NewPlan(Options{Sites: o.Sites, Events: 10, Seed: 2}); seen[other.Visits[0].Beacons[0].ID] {
		t.Error("another seed gives the same ids")
	}
}

// A retry resends the same body, id included: a server that answered 503 to an attempt it
// stored anyway can drop the resend.
func TestRetriesResendTheSameID(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies = map[string][]string{} // by eid
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("body %q: %v", b, err)
		}
		id, _ := m["eid"].(string)
		mu.Lock()
		bodies[id] = append(bodies[id], string(b))
		first := len(bodies[id]) == 1
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusServiceUnavailable) // stored, but the answer says otherwise
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	p := NewPlan(Options{Events: 20, Seed: 3})
	rep := Send(context.Background(), p, SendOptions{Target: srv.URL, Concurrency: 2, Retries: 1})
	if rep.Acked != int64(p.Events()) || rep.Failed != 0 {
		t.Fatalf("acked %d, failed %d of %d: %v", rep.Acked, rep.Failed, p.Events(), rep.Errors)
	}
	if len(bodies) != p.Events() {
		t.Fatalf("%d distinct ids for %d beacons", len(bodies), p.Events())
	}
	for id, bs := range bodies {
		if id == "" || len(bs) != 2 || bs[0] != bs[1] {
			t.Errorf("id %q: attempts %q", id, bs)
		}
	}
}
