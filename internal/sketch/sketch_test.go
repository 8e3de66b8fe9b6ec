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
