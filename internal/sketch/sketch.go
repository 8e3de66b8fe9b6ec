// Package sketch counts unique visitors with HyperLogLog sketches that merge across time
// buckets, shards and dimension values. It wraps github.com/axiomhq/hyperloglog at
// precision 14 with the sparse representation, which is exact-ish for the small sets most
// rows hold and about 0.8% standard error for large ones.
package sketch

import (
	"fmt"

	"github.com/axiomhq/hyperloglog"
)

// Sketch is a set of visitor ids, estimated. The zero value is not usable; call New.
type Sketch struct{ hll *hyperloglog.Sketch }

// New returns an empty sketch.
func New() *Sketch { return &Sketch{hll: hyperloglog.New14()} }

// Add inserts a visitor id. Ids are already uniformly distributed hashes, but they are
// mixed once more so first-party ids (cookie mode) that are not hashes spread as well.
func (s *Sketch) Add(visitorID uint64) { s.hll.InsertHash(mix(visitorID)) }

// Merge adds every element of o to s.
func (s *Sketch) Merge(o *Sketch) error { return s.hll.Merge(o.hll) }

// MergeBinary adds the sketch serialised in b to s; an empty b is an empty sketch.
func (s *Sketch) MergeBinary(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	o, err := FromBinary(b)
	if err != nil {
		return err
	}
	return s.Merge(o)
}

// Estimate returns the estimated number of distinct ids added.
func (s *Sketch) Estimate() int64 { return int64(s.hll.Estimate()) }

// denseAbove is the size past which Canonical switches a sketch from its sparse list to
// registers. The sparse list is near-exact but costs about 3 bytes per visitor and is
// re-merged in full every m/100 (163) additions; past ~5,500 visitors the 16 KiB of
// registers are smaller, and additions to them cost nothing extra. The library itself
// switches only at m (16,384), where the list is three times the size of the registers.
const denseAbove = 6000

// dense is an empty register-form sketch: merging it switches a sparse one to registers.
var dense = hyperloglog.NewNoSparse()

// Canonical returns the serialised form of s after compacting it, which depends only on
// the set of ids added (not on their order or on earlier compactions), so a row rebuilt
// by a replay is written with the same bytes. A sparse sketch of more than denseAbove
// visitors is switched to registers first; sets only grow, so a replay reaches the same
// form.
func (s *Sketch) Canonical() []byte {
	n := s.hll.Estimate() // merges pending ids into the sparse list
	b := s.Binary()
	if n > denseAbove && isSparse(b) {
		_ = s.hll.Merge(dense) // same precision: cannot fail
		b = s.Binary()
	}
	return b
}

// isSparse reports whether a serialised sketch holds the sparse list (its fourth byte).
func isSparse(b []byte) bool { return len(b) > 3 && b[3] == 1 }

// Clone returns an independent copy.
func (s *Sketch) Clone() *Sketch { return &Sketch{hll: s.hll.Clone()} }

// Binary returns the serialised form stored in rollup rows.
func (s *Sketch) Binary() []byte {
	b, err := s.hll.MarshalBinary()
	if err != nil { // MarshalBinary cannot fail for a sketch built by this package
		panic(fmt.Sprintf("sketch: marshal: %v", err))
	}
	return b
}

// FromBinary parses a serialised sketch.
func FromBinary(b []byte) (*Sketch, error) {
	s := &Sketch{hll: hyperloglog.New14()}
	if err := s.hll.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("sketch: corrupt visitor sketch: %w", err)
	}
	return s, nil
}

// mix is the splitmix64 finaliser: a cheap bijection that spreads sequential ids.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
