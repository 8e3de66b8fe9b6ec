package sketch

import "github.com/axiomhq/hyperloglog"

// denseAfter is the estimated union size at which a Union stops merging sparse sketches
// and switches to a dense register array.
const denseAfter = 1000

// checkEvery is how many merged sketches pass between checks of the union's size.
const checkEvery = 16

// Union merges many serialised sketches, such as the visitor sketches of the rollup rows a
// query reads.
//
// Row sketches are mostly small and sparse. Merging sparse sketches one by one into a
// growing sparse sketch rewrites its sorted list every few merges, which is quadratic in the
// number of rows. So a Union starts sparse (exact for the small sets most groups hold) and,
// once it holds more than denseAfter ids, moves to dense registers, where merging a row
// costs one pass over the row's own entries. The zero value is an empty union.
type Union struct {
	sparse *Sketch
	dense  *hyperloglog.Sketch
	added  int
}

// Add merges the sketch serialised in b (as Sketch.Binary writes it); empty b adds nothing.
func (u *Union) Add(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if u.dense != nil {
		var row hyperloglog.Sketch
		if err := row.UnmarshalBinary(b); err != nil {
			return err
		}
		return u.dense.Merge(&row)
	}
	if u.sparse == nil {
		u.sparse = New()
	}
	if err := u.sparse.MergeBinary(b); err != nil {
		return err
	}
	if u.added++; u.added%checkEvery == 0 && u.sparse.Estimate() > denseAfter {
		u.dense = hyperloglog.NewNoSparse()
		if err := u.dense.Merge(u.sparse.hll); err != nil {
			return err
		}
		u.sparse = nil
	}
	return nil
}

// AddSketch merges s.
func (u *Union) AddSketch(s *Sketch) error {
	if u.dense != nil {
		return u.dense.Merge(s.hll)
	}
	if u.sparse == nil {
		u.sparse = New()
	}
	return u.sparse.Merge(s)
}

// Estimate returns the estimated number of distinct ids in everything added.
func (u *Union) Estimate() int64 {
	switch {
	case u.dense != nil:
		return int64(u.dense.Estimate())
	case u.sparse != nil:
		return u.sparse.Estimate()
	}
	return 0
}
