package sketch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// The serialised form is that of github.com/axiomhq/hyperloglog (version 2, precision 14,
// sparse precision 25), which Sketch writes. A Union reads it directly instead of building a
// hyperloglog.Sketch per row:
//
//	header:  u8 version (1 or 2) · u8 precision (14) · u8 bias (0) · u8 sparse (0 or 1)
//	sparse:  u32 n · n × u32 key (unsorted)                       — keys not yet compacted
//	         u32 count · u32 last · u32 size · size bytes          — sorted keys, varint deltas
//	dense:   u32 16384 · 16384 × u8 register                      (version 2)
//	         16384/2 bytes of two 4-bit registers plus bias        (version 1)
//
// All integers are big-endian. A sparse key encodes one hash at 25-bit precision: its
// register index at precision 14 and rank follow from it (decodeKey), and the number of
// distinct keys gives the exact-for-small-sets estimate.
const (
	precision   = 14
	numRegs     = 1 << precision
	sparseBits  = 25
	sparseM     = 1 << sparseBits
	maxRank     = 64 - precision + 1
	headerLen   = 8
	listHeadLen = 12
)

// errCorrupt is wrapped by every error about a malformed serialised sketch.
var errCorrupt = errors.New("sketch: corrupt visitor sketch")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errCorrupt, fmt.Sprintf(format, args...))
}

// sparseMaxKeys is the most distinct sparse keys a Union keeps; beyond that it is dense.
// Sketch itself turns dense when its sorted keys take more than 16 KiB, which for random
// ids happens at about 8000 ids, so up to here both give the same exact-for-small-sets
// estimate.
const sparseMaxKeys = 8192

// Union merges many serialised sketches, such as the visitor sketches of the rollup rows a
// query reads, into one estimate.
//
// While the merged sketches are sparse and hold at most sparseMaxKeys distinct keys, the
// union keeps the keys and its estimate is the sparse one, exact for small sets: what one
// Sketch of all the merged ids answers. Beyond that, or once a dense sketch is merged, it
// keeps 2^14 registers and gives the HyperLogLog estimate, again what one dense Sketch of all
// the ids answers. The order of Add calls never changes the answer.
//
// Telling whether more than sparseMaxKeys distinct keys were merged would take a sort of
// everything merged so far. So once more than that many keys (duplicates included) arrived,
// the union also fills registers as it goes: a register is set by one key at least, so when
// more than sparseMaxKeys registers are set, as many distinct keys were merged and the union
// drops its keys without sorting them. A large union thus costs one pass over the bytes of
// each merged row and allocates nothing once dense.
//
// The zero value is an empty union. A Union is not safe for concurrent use.
type Union struct {
	keys    []uint32 // sparse: sorted distinct keys
	pending []uint32 // sparse: keys merged since the last compaction, unsorted
	regs    *[numRegs]uint8
	dense   bool // regs hold the union and keys are dropped; otherwise regs (when set) shadow them
	set     int  // registers above zero, while regs shadow keys
}

// Add merges the sketch serialised in b (as Sketch.Binary writes it); empty b adds nothing.
// A malformed b is an error and leaves the union as it was, or with part of b's keys.
func (u *Union) Add(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if len(b) < headerLen {
		return corrupt("%d bytes, shorter than the header", len(b))
	}
	version, p, bias, sparse := b[0], b[1], b[2], b[3]
	switch {
	case version != 1 && version != 2:
		return corrupt("unknown version %d", version)
	case p != precision:
		return corrupt("precision %d, want %d", p, precision)
	case sparse > 1:
		return corrupt("representation byte %d", sparse)
	case version == 2 && bias != 0:
		return corrupt("register bias %d in version 2", bias)
	}
	if sparse == 0 {
		if version == 1 {
			return u.addDenseV1(b[headerLen:], bias)
		}
		if n := binary.BigEndian.Uint32(b[4:8]); n != numRegs || len(b) != headerLen+numRegs {
			return corrupt("dense sketch of %d registers in %d bytes", n, len(b)-headerLen)
		}
		return u.addDense(b[headerLen:])
	}
	return u.addSparse(b)
}

// addSparse merges the keys of a sparse sketch.
func (u *Union) addSparse(b []byte) error {
	tmp := binary.BigEndian.Uint32(b[4:8])
	listAt := uint64(headerLen) + 4*uint64(tmp)
	if listAt+listHeadLen > uint64(len(b)) || tmp > numRegs {
		return corrupt("sparse sketch of %d bytes cannot hold %d loose keys", len(b), tmp)
	}
	loose := b[headerLen:listAt]
	list := b[listAt:]
	count := binary.BigEndian.Uint32(list[0:4])
	last := binary.BigEndian.Uint32(list[4:8])
	size := binary.BigEndian.Uint32(list[8:12])
	stream := list[listHeadLen:]
	if uint64(size) != uint64(len(stream)) {
		return corrupt("key list of %d bytes declared, %d present", size, len(stream))
	}
	if uint64(size) < uint64(count) || uint64(size) > 5*uint64(count) {
		return corrupt("key list of %d keys in %d bytes", count, size)
	}
	for i := 0; i < len(loose); i += 4 {
		if k := binary.BigEndian.Uint32(loose[i:]); !validKey(k) {
			return corrupt("loose key %#08x", k)
		}
	}
	if !u.dense && count > sparseMaxKeys {
		u.toDense() // this sketch alone has too many keys for the sparse form
	}
	if u.dense {
		keys, err := appendKeys(u.pending[:0], stream, count, last)
		u.pending = keys[:0] // scratch: a dense union keeps no keys
		if err != nil {
			return err
		}
		regs := u.regs
		for i := 0; i < len(loose); i += 4 {
			idx, r := decodeKey(binary.BigEndian.Uint32(loose[i:]))
			regs[idx] = max(regs[idx], r)
		}
		for _, k := range keys {
			idx, r := decodeKey(k)
			regs[idx] = max(regs[idx], r)
		}
		return nil
	}
	mark := len(u.pending)
	for i := 0; i < len(loose); i += 4 {
		u.pending = append(u.pending, binary.BigEndian.Uint32(loose[i:]))
	}
	keys, err := appendKeys(u.pending, stream, count, last)
	if err != nil {
		u.pending = keys[:mark]
		return err
	}
	u.pending = keys
	u.added(mark)
	return nil
}

// added accounts for the keys appended to pending from index mark on.
func (u *Union) added(mark int) {
	switch {
	case u.regs != nil:
		u.shadow(u.pending[mark:])
	case len(u.keys)+len(u.pending) > sparseMaxKeys:
		u.regs = new([numRegs]uint8)
		u.shadow(u.keys)
		u.shadow(u.pending)
	}
	if u.set > sparseMaxKeys {
		u.toDense()
		return
	}
	if len(u.pending) > max(4*len(u.keys), 4*sparseMaxKeys) {
		u.compact() // many duplicates: bound the memory
	}
}

// shadow sets the registers of keys while the union is still sparse.
func (u *Union) shadow(keys []uint32) {
	regs, set := u.regs, u.set
	for _, k := range keys {
		idx, r := decodeKey(k)
		if regs[idx] == 0 {
			set++
		}
		regs[idx] = max(regs[idx], r)
	}
	u.set = set
}

// appendKeys appends the keys of a varint-delta key list to dst, checking that the list is
// well formed: count keys, strictly increasing, valid, the last one equal to last.
func appendKeys(dst []uint32, stream []byte, count, last uint32) ([]uint32, error) {
	dst = slices.Grow(dst, int(count))
	var (
		key uint32
		n   uint32
	)
	for i := 0; i < len(stream); {
		var d uint32
		switch c := stream[i]; {
		case c < 0x80:
			d = uint32(c)
			i++
		case i+1 < len(stream) && stream[i+1] < 0x80:
			d = uint32(c&0x7f) | uint32(stream[i+1])<<7
			i += 2
		case i+2 < len(stream) && stream[i+1] >= 0x80 && stream[i+2] < 0x80:
			d = uint32(c&0x7f) | uint32(stream[i+1]&0x7f)<<7 | uint32(stream[i+2])<<14
			i += 3
		default:
			x, w := binary.Uvarint(stream[i:])
			if w <= 0 || w > 5 || x > math.MaxUint32 {
				return dst, corrupt("malformed key delta at byte %d", i)
			}
			d = uint32(x)
			i += w
		}
		next := key + d
		if n > 0 && next <= key {
			return dst, corrupt("key list not increasing at key %d", n)
		}
		key = next
		if !validKey(key) {
			return dst, corrupt("key %#08x", key)
		}
		dst = append(dst, key)
		n++
	}
	if n != count || key != last {
		return dst, corrupt("key list of %d keys ending at %#x declared, %d ending at %#x present", count, last, n, key)
	}
	return dst, nil
}

// decodeKey returns the precision-14 register index and rank of a sparse key. A key is
// either idx25<<1 (the rank follows from the low bits of idx25) or, when those low bits are
// all zero, idx25<<7 | (rank-11)<<1 | 1.
func decodeKey(k uint32) (uint32, uint8) {
	if k&1 == 1 {
		return (k >> (32 - precision)) & (numRegs - 1), uint8((k>>1)&0x3f) + sparseBits - precision
	}
	return (k >> (sparseBits - precision + 1)) & (numRegs - 1), uint8(bits.LeadingZeros32(k<<(32-sparseBits+precision-1))) + 1
}

// validKey reports whether k decodes to a rank of at most maxRank. A short key's rank is at
// most 33, a long key's is its 6-bit field plus 11.
func validKey(k uint32) bool {
	return k&1 == 0 || (k>>1)&0x3f <= maxRank-(sparseBits-precision)
}

// addDense merges 16384 one-byte registers.
func (u *Union) addDense(regs []byte) error {
	src := (*[numRegs]uint8)(regs)
	// Registers never exceed maxRank: check 8 at a time. For a byte below 0x80, adding
	// 0x80-(maxRank+1) sets its high bit exactly when it is above maxRank, without carry.
	const low7, hi, lift = 0x7f7f7f7f7f7f7f7f, 0x8080808080808080, (0x80 - maxRank - 1) * 0x0101010101010101
	var over uint64
	for i := range numRegs / 8 {
		x := binary.LittleEndian.Uint64(src[8*i : 8*i+8 : 8*i+8])
		over |= (x | (x&low7 + lift)) & hi
	}
	if over != 0 {
		for i, r := range regs {
			if r > maxRank {
				return corrupt("register %d = %d", i, r)
			}
		}
	}
	u.toDense()
	maxRegs(u.regs, src)
	return nil
}

// maxRegs sets dst[i] = max(dst[i], src[i]) for registers below 0x80, eight at a time.
func maxRegs(dst, src *[numRegs]uint8) {
	const hi = 0x8080808080808080
	for i := range numRegs / 8 {
		o := 8 * i
		a := binary.LittleEndian.Uint64(dst[o : o+8 : o+8])
		b := binary.LittleEndian.Uint64(src[o : o+8 : o+8])
		ge := ((a | hi) - b) & hi // high bit of each byte set where a >= b
		mask := (ge >> 7) * 0xff
		binary.LittleEndian.PutUint64(dst[o:o+8:o+8], a&mask|b&^mask)
	}
}

// addDenseV1 merges the packed 4-bit registers of version 1.
func (u *Union) addDenseV1(packed []byte, bias uint8) error {
	if len(packed) != numRegs/2 {
		return corrupt("version 1 dense sketch of %d bytes", len(packed))
	}
	for i, v := range packed {
		if uint16(v>>4)+uint16(bias) > maxRank || uint16(v&0xf)+uint16(bias) > maxRank {
			return corrupt("version 1 register %d", 2*i)
		}
	}
	u.toDense()
	for i, v := range packed {
		u.regs[2*i] = max(u.regs[2*i], v>>4+bias)
		u.regs[2*i+1] = max(u.regs[2*i+1], v&0xf+bias)
	}
	return nil
}

// compact sorts the pending keys into keys, and moves to dense registers when there are
// more than sparseMaxKeys.
func (u *Union) compact() {
	if len(u.pending) == 0 || u.dense {
		return
	}
	p := u.pending
	sortKeys(p)
	p = slices.Compact(p)
	if len(u.keys) == 0 {
		u.keys, u.pending = p, nil // hand the buffer over
	} else {
		u.keys, u.pending = mergeKeys(u.keys, p), p[:0]
	}
	if len(u.keys) > sparseMaxKeys {
		u.toDense()
	}
}

// mergeKeys merges two sorted lists of distinct keys into a new one.
func mergeKeys(a, b []uint32) []uint32 {
	out := make([]uint32, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch x, y := a[i], b[j]; {
		case x < y:
			out = append(out, x)
			i++
		case x > y:
			out = append(out, y)
			j++
		default:
			out = append(out, x)
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// sortKeys sorts keys: a radix sort (three passes of 11 bits) for long lists, where it is
// several times faster than a comparison sort.
func sortKeys(keys []uint32) {
	if len(keys) < 512 {
		slices.Sort(keys)
		return
	}
	var counts [3][1 << 11]int32
	for _, k := range keys {
		counts[0][k&0x7ff]++
		counts[1][k>>11&0x7ff]++
		counts[2][k>>22]++
	}
	src, dst := keys, make([]uint32, len(keys))
	for pass, shift := range [3]uint{0, 11, 22} {
		c := &counts[pass]
		var sum int32
		for i, n := range c {
			c[i] = sum
			sum += n
		}
		for _, k := range src {
			b := k >> shift & 0x7ff
			dst[c[b]] = k
			c[b]++
		}
		src, dst = dst, src
	}
	copy(keys, src) // three passes leave the result in the scratch list
}

// toDense moves the union to registers.
func (u *Union) toDense() {
	if u.dense {
		return
	}
	if u.regs == nil {
		u.regs = new([numRegs]uint8)
		u.shadow(u.keys)
		u.shadow(u.pending)
	}
	u.dense = true
	u.keys, u.pending, u.set = nil, nil, 0
}

// Merge adds everything o holds to u; o is unchanged.
func (u *Union) Merge(o *Union) {
	if o.dense {
		u.toDense()
		maxRegs(u.regs, o.regs)
		return
	}
	if u.dense {
		for _, ks := range [][]uint32{o.keys, o.pending} {
			for _, k := range ks {
				idx, r := decodeKey(k)
				u.regs[idx] = max(u.regs[idx], r)
			}
		}
		return
	}
	mark := len(u.pending)
	u.pending = append(append(u.pending, o.keys...), o.pending...)
	u.added(mark)
}

// AddSketch merges s.
func (u *Union) AddSketch(s *Sketch) error {
	s.hll.Estimate() // compacts the sparse form, so Binary holds only sorted keys
	return u.Add(s.Binary())
}

// Clone returns an independent copy of u, compacted.
func (u *Union) Clone() *Union {
	u.compact()
	c := &Union{dense: u.dense, set: u.set}
	if u.regs != nil {
		r := *u.regs
		c.regs = &r
	}
	if len(u.keys) > 0 {
		c.keys = slices.Clone(u.keys)
	}
	return c
}

// Trim gives back the memory u does not need, for a union kept long to be merged into
// others. It does not sort: a sparse union keeps its keys as they are (the sort happens once,
// in the union they are merged into), drops its shadow registers and trims its lists.
func (u *Union) Trim() {
	if u.dense {
		u.keys, u.pending = nil, nil
		return
	}
	u.regs, u.set = nil, 0 // rebuilt from the keys if more arrive
	u.keys = clip(u.keys)
	u.pending = clip(u.pending)
}

func clip(s []uint32) []uint32 {
	switch {
	case len(s) == 0:
		return nil
	case cap(s) > len(s)+len(s)/8:
		return slices.Clone(s)
	}
	return s
}

// Dense reports whether u holds registers rather than sparse keys.
func (u *Union) Dense() bool {
	u.compact()
	return u.dense
}

// Size is the approximate memory u holds, in bytes.
func (u *Union) Size() int {
	n := 64 + 4*(cap(u.keys)+cap(u.pending))
	if u.regs != nil {
		n += numRegs
	}
	return n
}

// Estimate returns the estimated number of distinct ids in everything added: what one
// Sketch of all those ids answers, save between sparseMaxKeys and the size at which a
// Sketch turns dense, where the union is dense already (within the HyperLogLog error).
func (u *Union) Estimate() int64 {
	u.compact()
	if !u.dense {
		if len(u.keys) == 0 {
			return 0
		}
		return int64(sparseEstimate(uint32(len(u.keys))))
	}
	return int64(denseEstimate(u.regs))
}

// sparseEstimate is linear counting over the 2^25 sparse registers, as hyperloglog does.
func sparseEstimate(count uint32) uint64 {
	fm := float64(sparseM)
	v := float64(sparseM - min(count, sparseM-1))
	return uint64(fm * math.Log(fm/v))
}

// negPow2[v] is 2^-v.
var negPow2 = func() (t [256]float64) {
	for v := range t {
		t[v] = 1.0 / math.Pow(2.0, float64(v))
	}
	return t
}()

// alpha14 is the HyperLogLog bias constant for 2^14 registers, computed as hyperloglog does.
var alpha14 = func(m float64) float64 { return 0.7213 / (1 + 1.079/m) }(numRegs)

// denseEstimate is the LogLog-Beta estimate over the registers, computed as hyperloglog
// computes it so both give the same number.
//
// hyperloglog adds 2^-r register by register. Every partial sum of that is a multiple of
// 2^-maxr no larger than 2^14, which a float64 holds exactly while maxr <= 39, so the sum
// is exact and the same in any order: then the registers are counted by value first and
// the sum taken over the counts, several times faster. A register above 39 (a chance of
// about 2^-38 per id) takes the register-by-register sum.
func denseEstimate(regs *[numRegs]uint8) uint64 {
	var hist [4][64]int32
	for i := 0; i < numRegs; i += 4 {
		hist[0][regs[i]&63]++
		hist[1][regs[i+1]&63]++
		hist[2][regs[i+2]&63]++
		hist[3][regs[i+3]&63]++
	}
	var sum, ez float64
	exact := true
	for v := 63; v >= 0; v-- {
		n := hist[0][v] + hist[1][v] + hist[2][v] + hist[3][v]
		if n > 0 && v > 39 {
			exact = false
		}
		sum += float64(n) * negPow2[v]
	}
	ez = float64(hist[0][0] + hist[1][0] + hist[2][0] + hist[3][0])
	if !exact {
		sum = 0
		for _, v := range regs {
			sum += negPow2[v]
		}
	}
	m := float64(numRegs)
	est := alpha14 * m * (m - ez) / (sum + beta14(ez))
	return uint64(est + 0.5)
}

// denseEstimateSeq is denseEstimate summing register by register, for tests.
func denseEstimateSeq(regs *[numRegs]uint8) uint64 {
	var sum, ez float64
	for _, v := range regs {
		if v == 0 {
			ez++
		}
		sum += negPow2[v]
	}
	m := float64(numRegs)
	est := alpha14 * m * (m - ez) / (sum + beta14(ez))
	return uint64(est + 0.5)
}

// beta14 is the bias correction of LogLog-Beta (Qin et al., 2016) for precision 14, with
// the coefficients hyperloglog uses.
func beta14(ez float64) float64 {
	zl := math.Log(ez + 1)
	return -0.371009760230692*ez +
		0.00978811941207509*zl +
		0.185796293324165*math.Pow(zl, 2) +
		0.203015527328432*math.Pow(zl, 3) +
		-0.116710521803686*math.Pow(zl, 4) +
		0.0431106699492820*math.Pow(zl, 5) +
		-0.00599583540511831*math.Pow(zl, 6) +
		0.000449704299509437*math.Pow(zl, 7)
}

// AppendBinary appends the serialised form of u (as Sketch.Binary writes it, so Add and
// FromBinary read it) to dst: the sorted keys while u is sparse, the registers once it is
// dense. Adding the result to an empty Union gives u again, so a union of many rows can be
// stored as one row and merged later without changing any estimate. An empty union
// appends nothing.
func (u *Union) AppendBinary(dst []byte) []byte {
	u.compact()
	if u.dense {
		dst = append(dst, 2, precision, 0, 0)
		dst = binary.BigEndian.AppendUint32(dst, numRegs)
		return append(dst, u.regs[:]...)
	}
	if len(u.keys) == 0 {
		return dst
	}
	dst = append(dst, 2, precision, 0, 1)
	dst = binary.BigEndian.AppendUint32(dst, 0) // no loose keys
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(u.keys)))
	dst = binary.BigEndian.AppendUint32(dst, u.keys[len(u.keys)-1])
	sizeAt := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, 0) // size, set below
	var prev uint32
	for _, k := range u.keys {
		dst = binary.AppendUvarint(dst, uint64(k-prev))
		prev = k
	}
	binary.BigEndian.PutUint32(dst[sizeAt:], uint32(len(dst)-sizeAt-4))
	return dst
}
