package sketch

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
)

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
	if !u.Dense() {
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

// idsSketch returns the serialised sketch of ids, compacted as the processor writes it.
func idsSketch(ids []uint64) []byte {
	s := New()
	for _, id := range ids {
		s.Add(id)
	}
	s.Estimate()
	return s.Binary()
}

// A union answers what one sketch of all the merged ids answers, on both sides of the
// sparse/dense switch, however the ids are split into rows and whatever the order. Around
// the switch (a Union at 8192 keys, a Sketch at 16 KiB of keys, near 8000 ids) one may be
// sparse and the other dense: there they agree within the HyperLogLog error.
func TestUnionEqualsOneSketch(t *testing.T) {
	same := func(n int, got, want int64) bool {
		if n <= 6000 || n >= 12_000 {
			return got == want
		}
		return math.Abs(float64(got-want)) <= 0.02*float64(n)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 17, 500, 1000, 1001, 3000, 4500, 5200, 5600, 6000, 8000, 8192, 8193, 9000, 12_000, 20_000, 100_000} {
		ids := make([]uint64, n)
		for i := range ids {
			ids[i] = rng.Uint64()
		}
		all := New()
		for _, id := range ids {
			all.Add(id)
		}
		want := all.Estimate()
		for _, parts := range []int{1, 3, 8, 240} {
			rows := make([][]uint64, parts)
			for _, id := range ids {
				p := rng.IntN(parts)
				rows[p] = append(rows[p], id)
				if rng.IntN(4) == 0 { // some ids are in two rows
					q := rng.IntN(parts)
					rows[q] = append(rows[q], id)
				}
			}
			var u Union
			for _, r := range rows {
				if err := u.Add(idsSketch(r)); err != nil {
					t.Fatal(err)
				}
			}
			if got := u.Estimate(); !same(n, got, want) {
				t.Errorf("%d ids in %d rows: union estimate %d, one sketch %d", n, parts, got, want)
			}
			// Merging unions of halves gives the same.
			var a, b Union
			for i, r := range rows {
				h := &a
				if i%2 == 1 {
					h = &b
				}
				if err := h.Add(idsSketch(r)); err != nil {
					t.Fatal(err)
				}
			}
			b.Merge(&a)
			if got := b.Estimate(); !same(n, got, want) {
				t.Errorf("%d ids in %d rows: merged halves estimate %d, one sketch %d", n, parts, got, want)
			}
			if c := b.Clone(); !same(n, c.Estimate(), want) {
				t.Errorf("%d ids: clone estimate %d, want %d", n, c.Estimate(), want)
			}
		}
	}
}

func TestUnionWithinTwoPercentAt100k(t *testing.T) {
	const distinct = 100_000
	var u Union
	rows := make([][]uint64, 240)
	for id := uint64(1); id <= distinct; id++ {
		rows[id%240] = append(rows[id%240], id*2654435761)
		rows[(id+7)%240] = append(rows[(id+7)%240], id*2654435761)
	}
	for _, r := range rows {
		if err := u.Add(idsSketch(r)); err != nil {
			t.Fatal(err)
		}
	}
	got := u.Estimate()
	if e := math.Abs(float64(got)-distinct) / distinct; e > 0.02 {
		t.Fatalf("estimate %d for %d distinct: %.2f%% off", got, distinct, 100*e)
	}
}

// Sketches written with loose (not yet compacted) keys merge like compacted ones.
func TestUnionLooseKeys(t *testing.T) {
	s := New()
	for id := range uint64(300) {
		s.Add(id)
	}
	loose := s.Binary() // no Estimate: the ids are still in the loose set
	var u Union
	if err := u.Add(loose); err != nil {
		t.Fatal(err)
	}
	if got, want := u.Estimate(), s.Estimate(); got != want {
		t.Fatalf("union of a loose sketch %d, sketch %d", got, want)
	}
}

// Version 1 dense sketches (4-bit registers and a bias) merge like version 2 ones.
func TestUnionDenseV1(t *testing.T) {
	ids := make([]uint64, 50_000)
	for i := range ids {
		ids[i] = uint64(i)
	}
	v2 := idsSketch(ids)
	if v2[3] != 0 {
		t.Fatal("50k ids did not give a dense sketch")
	}
	v1 := append([]byte{1, precision, 0, 0, 0, 0, 0, 0}, make([]byte, numRegs/2)...)
	for i := 0; i < numRegs; i += 2 {
		a, b := v2[headerLen+i], v2[headerLen+i+1]
		if a > 15 || b > 15 {
			t.Skip("registers above 15 do not fit version 1 without a bias")
		}
		v1[headerLen+i/2] = a<<4 | b
	}
	var u1, u2 Union
	if err := u1.Add(v1); err != nil {
		t.Fatal(err)
	}
	if err := u2.Add(v2); err != nil {
		t.Fatal(err)
	}
	if u1.Estimate() != u2.Estimate() {
		t.Fatalf("v1 %d, v2 %d", u1.Estimate(), u2.Estimate())
	}
}

func TestUnionRejectsCorruptSketches(t *testing.T) {
	good := idsSketch([]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9})
	dense := idsSketch(func() (ids []uint64) {
		for i := range uint64(30_000) {
			ids = append(ids, i)
		}
		return
	}())
	bad := map[string][]byte{
		"short":           {2, 14, 0},
		"version":         append([]byte{3}, good[1:]...),
		"precision":       append([]byte{2, 16}, good[2:]...),
		"truncated list":  good[:len(good)-1],
		"trailing byte":   append(bytes.Clone(good), 0),
		"truncated dense": dense[:len(dense)-1],
		"dense register":  func() []byte { d := bytes.Clone(dense); d[100] = 60; return d }(),
		"count":           func() []byte { d := bytes.Clone(good); d[len(d)-13-9]++; return d }(),
	}
	for name, b := range bad {
		var u Union
		if err := u.Add(b); err == nil {
			t.Errorf("%s: no error", name)
		} else if !errors.Is(err, errCorrupt) {
			t.Errorf("%s: error %v does not wrap errCorrupt", name, err)
		}
	}
}

func FuzzUnionAdd(f *testing.F) {
	f.Add(idsSketch([]uint64{1, 2, 3}))
	f.Add(idsSketch(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var u Union
		_ = u.Add(b) // must not panic
		u.Estimate()
		var v Union
		v.Merge(&u)
	})
}

func BenchmarkUnion(b *testing.B) {
	for _, size := range []int{10, 200, 1200, 12_000} {
		rows := make([][]byte, 240)
		for i := range rows {
			ids := make([]uint64, size)
			for j := range ids {
				ids[j] = uint64(i*size + j)
			}
			rows[i] = idsSketch(ids)
		}
		b.Run(fmt.Sprintf("rows=240/ids=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var u Union
				for _, r := range rows {
					if err := u.Add(r); err != nil {
						b.Fatal(err)
					}
				}
				u.Estimate()
			}
		})
	}
}

// Rows that repeat the same ids (returning visitors) keep a union sparse and exact however
// many keys arrive, and its memory bounded.
func TestUnionManyDuplicates(t *testing.T) {
	ids := make([]uint64, 3000)
	for i := range ids {
		ids[i] = uint64(i) * 0x9e3779b97f4a7c15
	}
	row := idsSketch(ids)
	var u Union
	for range 200 {
		if err := u.Add(row); err != nil {
			t.Fatal(err)
		}
		if n := len(u.keys) + len(u.pending); n > 5*sparseMaxKeys+3000 {
			t.Fatalf("union holds %d keys for 3000 distinct", n)
		}
	}
	var one Union
	if err := one.Add(row); err != nil {
		t.Fatal(err)
	}
	if u.Dense() || u.Estimate() != one.Estimate() {
		t.Fatalf("dense %v, estimate %d, want sparse %d", u.Dense(), u.Estimate(), one.Estimate())
	}
	u.Trim()
	if u.Estimate() != one.Estimate() || u.Size() > 64+4*3100 {
		t.Fatalf("after Trim: estimate %d, size %d", u.Estimate(), u.Size())
	}
}

func TestSortKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 511, 512, 513, 5000, 100_000} {
		keys := make([]uint32, n)
		for i := range keys {
			keys[i] = rng.Uint32()
			if i%3 == 0 {
				keys[i] &= 0xffff // many duplicates and small keys
			}
		}
		want := slices.Clone(keys)
		slices.Sort(want)
		sortKeys(keys)
		if !slices.Equal(keys, want) {
			t.Fatalf("n=%d: not sorted", n)
		}
	}
}

// The estimate from counted registers is the register-by-register one, bit for bit.
func TestDenseEstimateByCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 10, 1000, 20_000, 1_000_000} {
		var u Union
		u.toDense()
		for range n {
			x := rng.Uint64()
			u.regs[x>>50] = max(u.regs[x>>50], uint8(bits.LeadingZeros64(x<<14|1<<13)+1))
		}
		if a, b := denseEstimate(u.regs), denseEstimateSeq(u.regs); a != b {
			t.Errorf("n=%d: %d by counts, %d by registers", n, a, b)
		}
		u.regs[7] = 45 // above 39: the register-by-register sum
		if a, b := denseEstimate(u.regs), denseEstimateSeq(u.regs); a != b {
			t.Errorf("n=%d with a high register: %d, %d", n, a, b)
		}
	}
}

func TestValidKey(t *testing.T) {
	for _, k := range []uint32{0, 1, 2, 3, 0xfffffffe, 0xffffffff, 40<<1 | 1, 41<<1 | 1, 63<<1 | 1, 1 << 20} {
		_, r := decodeKey(k)
		if validKey(k) != (r <= maxRank) {
			t.Errorf("key %#x: rank %d, valid %v", k, r, validKey(k))
		}
	}
}

func TestUnionAppendBinaryRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 2, 300, 8000, 8192, 8193, 9000, 50_000} {
		var u Union
		for p := 0; p < 8; p++ { // eight rows, as eight shards would write them
			ids := make([]uint64, 0, n/8+1)
			for range n/8 + 1 {
				ids = append(ids, rng.Uint64())
			}
			if n == 0 {
				ids = nil
			}
			if err := u.Add(idsSketch(ids)); err != nil {
				t.Fatal(err)
			}
		}
		want := u.Estimate()
		b := u.AppendBinary(nil)
		if n == 0 {
			if len(b) != 0 {
				t.Fatalf("empty union serialised to %d bytes", len(b))
			}
			continue
		}
		var back Union
		if err := back.Add(b); err != nil {
			t.Fatalf("%d ids: re-reading the serialised union: %v", n, err)
		}
		if got := back.Estimate(); got != want {
			t.Errorf("%d ids: estimate %d after a round trip, want %d", n, got, want)
		}
		if back.Dense() != u.Dense() {
			t.Errorf("%d ids: dense %v after a round trip, want %v", n, back.Dense(), u.Dense())
		}
		s, err := FromBinary(b)
		if err != nil {
			t.Fatalf("%d ids: the serialised union is no sketch: %v", n, err)
		}
		if got := s.Estimate(); n <= 6000 && got != want {
			t.Errorf("%d ids: sketch estimate %d, union %d", n, got, want)
		}
		// Merged with more rows, the stored union counts like the rows it replaced.
		extra := idsSketch([]uint64{rng.Uint64(), rng.Uint64()})
		var viaRows, viaStored Union
		viaRows.Merge(&u)
		_ = viaRows.Add(extra)
		_ = viaStored.Add(b)
		_ = viaStored.Add(extra)
		if viaRows.Estimate() != viaStored.Estimate() {
			t.Errorf("%d ids: stored union merges to %d, the rows to %d", n, viaStored.Estimate(), viaRows.Estimate())
		}
	}
}
