package sketch

import (
	"math"
	"testing"
)

// The design promises visitors within 2% at 100k distinct visitors, including after the
// sketches of separate buckets and shards are serialised and merged.
func TestMergedErrorWithinTwoPercent(t *testing.T) {
	const distinct = 100_000
	const parts = 8
	shards := make([]*Sketch, parts)
	for i := range shards {
		shards[i] = New()
	}
	for id := uint64(1); id <= distinct; id++ {
		// every id lands in two shards, as a visitor seen in two buckets would
		shards[id%parts].Add(id * 2654435761)
		shards[(id+3)%parts].Add(id * 2654435761)
	}
	total := New()
	for _, s := range shards {
		if err := total.MergeBinary(s.Binary()); err != nil {
			t.Fatal(err)
		}
	}
	got := total.Estimate()
	errPct := math.Abs(float64(got)-distinct) / distinct * 100
	t.Logf("estimate %d for %d distinct (%.3f%% error)", got, distinct, errPct)
	if errPct > 2 {
		t.Fatalf("estimate %d is %.2f%% off %d; want <= 2%%", got, errPct, distinct)
	}
}

func TestSmallSetsAreExact(t *testing.T) {
	s := New()
	for id := uint64(0); id < 500; id++ {
		s.Add(id)
		s.Add(id) // duplicates do not count
	}
	if got := s.Estimate(); got != 500 {
		t.Fatalf("estimate %d, want 500", got)
	}
}

func TestCorruptBinaryIsAnError(t *testing.T) {
	if _, err := FromBinary([]byte{0xff, 0x01}); err == nil {
		t.Fatal("want error for corrupt sketch")
	}
}

// Canonical bytes depend only on the set: the same ids added in another order, with
// compactions at other points, encode the same, on either side of the switch to registers.
func TestCanonicalDependsOnlyOnTheSet(t *testing.T) {
	for _, n := range []int{denseAbove / 2, denseAbove + 500, 3 * denseAbove} {
		a, b := New(), New()
		for i := range n {
			a.Add(uint64(i) * 0x9e3779b97f4a7c15)
			if i%1000 == 999 {
				a.Canonical() // a flush in between: may switch a to registers early
			}
		}
		for i := n - 1; i >= 0; i-- {
			b.Add(uint64(i) * 0x9e3779b97f4a7c15)
		}
		ca, cb := a.Canonical(), b.Canonical()
		if string(ca) != string(cb) {
			t.Fatalf("%d ids: canonical bytes differ with the order of additions (%d and %d bytes)", n, len(ca), len(cb))
		}
		if wantSparse := n <= denseAbove; isSparse(ca) != wantSparse {
			t.Fatalf("%d ids: sparse=%v, want %v", n, isSparse(ca), wantSparse)
		}
		c, err := FromBinary(ca)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Estimate(); math.Abs(float64(got)-float64(n)) > 0.02*float64(n) {
			t.Fatalf("%d ids: estimate %d after the round trip", n, got)
		}
	}
}

// Below the switch a sketch keeps its near-exact sparse count.
func TestCanonicalKeepsSmallSetsExact(t *testing.T) {
	s := New()
	for id := uint64(0); id < 3000; id++ {
		s.Add(id)
	}
	c, err := FromBinary(s.Canonical())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Estimate(); got != 3000 {
		t.Fatalf("estimate %d, want 3000", got)
	}
}
