package processor

// liveSketchBytes is what a live (in-memory, not yet serialised) visitor sketch is counted
// as: a dense precision-14 HyperLogLog holds 2^14 one-byte registers. A sparse one holds
// less, so glimpse_processor_sketch_bytes is an upper bound where live sketches exist.
const liveSketchBytes = 1 << 14

// sketchBytes approximates the memory the cached rows of this partition spend on unique
// visitors: their serialised sketches, their buffered visitor ids and their live sketches.
// It walks the cache, as eviction does after every flush.
func (p *Partition) sketchBytes() int {
	n := 0
	for _, e := range p.rows.m {
		for ; e != nil; e = e.next {
			n += cap(e.visitors) + 8*cap(e.ids)
			if e.liveSketch() != nil {
				n += liveSketchBytes
			}
		}
	}
	return n
}
