package sketch

import "testing"

func visitorsOf(ids ...uint64) []byte {
	s := New()
	for _, id := range ids {
		s.Add(id)
	}
	return s.Binary()
}

func TestUnion(t *testing.T) {
	// small unions stay exact
	var u Union
	for r := range 60 {
		if err := u.Add(visitorsOf(uint64(r), uint64(r+1), uint64(r+2))); err != nil {
			t.Fatal(err)
		}
	}
	if got := u.Estimate(); got != 62 {
		t.Errorf("small union: %d, want 62", got)
	}
	// large unions switch to dense registers and stay within 2%
	u = Union{}
	const distinct = 20_000
	for r := range 1000 {
		ids := make([]uint64, 0, 40)
		for i := range 40 {
			ids = append(ids, uint64((r*37+i*101)%distinct))
		}
		if err := u.Add(visitorsOf(ids...)); err != nil {
			t.Fatal(err)
		}
	}
	if u.dense == nil {
		t.Error("a large union did not switch to dense registers")
	}
	want := int64(0)
	seen := map[uint64]bool{}
	for r := range 1000 {
		for i := range 40 {
			id := uint64((r*37 + i*101) % distinct)
			if !seen[id] {
				seen[id] = true
				want++
			}
		}
	}
	got := u.Estimate()
	if diff := float64(got-want) / float64(want); diff > 0.02 || diff < -0.02 {
		t.Errorf("large union: %d, want %d ± 2%%", got, want)
	}
	if err := u.Add([]byte{0xff, 1}); err == nil {
		t.Error("a corrupt sketch merged without error")
	}
}
