package processor

import (
	"context"
	"fmt"
	"hash/maphash"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/sketch"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// counts is the additive part of a rollup row.
type counts struct {
	pageviews, events, visits, bounces, durationMS int64
}

func (c *counts) add(d counts) {
	c.pageviews += d.pageviews
	c.events += d.events
	c.visits += d.visits
	c.bounces += d.bounces
	c.durationMS += d.durationMS
}

func (c counts) zero() bool { return c == counts{} }

func neg(c counts) counts {
	return counts{-c.pageviews, -c.events, -c.visits, -c.bounces, -c.durationMS}
}

// earlyDelta is an update to a row that is not loaded yet, caused by an event at an offset
// the store may already hold (offset <= Partition.rowsHigh). Whether it applies is decided
// once the row's stored offset is known.
type earlyDelta struct {
	offset  int64
	c       counts
	visitor uint64
	hasVis  bool
}

// maxPendingVisitors is how many visitor ids a row buffers before folding them into a
// live sketch.
const maxPendingVisitors = 512

// rowEntry is a cached rollup row.
//
// A row is either loaded (its stored state and stored offset are known) or pending (it was
// touched before the store was asked for it). Updates caused by the event at offset o are
// applied to a loaded row only if o > loadedAt: the store already holds the others. A
// pending row collects updates with o > Partition.rowsHigh directly (no stored row can be
// that new) and keeps the rest as early deltas until it is loaded.
//
// Rows of visit:entry_page and visit:exit_page are movable: a visit's value there changes
// while it goes on, and a sketch cannot forget a visitor. Their visitors are those of the
// finished visits, kept in a companion row the query never reads (see closedDims), plus
// those of the open visits that have the row's value now. A visitor joining a row is
// simply added; a row a visitor left is recomputed from the two at the next flush.
type rowEntry struct {
	key store.RowKey
	c   counts

	// Unique visitors: the canonical stored form and the ids added since (see ext.sk).
	visitors []byte
	ids      []uint64

	loadedAt int64 // Row.Offset in the store when loaded; -1 when the store had no row
	ext      *rowExt
	next     *rowEntry // next cached row with the same key hash
	touched  uint32    // flush epoch of the last update

	pending, dirty, movable, recompute bool
	evicted                            bool // dropped from the cache: holders must look it up again
}

// rowExt holds what few rows need at a time.
type rowExt struct {
	sk    *sketch.Sketch // live sketch once many ids arrived; includes visitors
	early []earlyDelta
}

func (e *rowEntry) x() *rowExt {
	if e.ext == nil {
		e.ext = &rowExt{}
	}
	return e.ext
}

func (e *rowEntry) liveSketch() *sketch.Sketch {
	if e.ext == nil {
		return nil
	}
	return e.ext.sk
}

// closedDims names the companion rows of the movable dimensions.
var closedDims = map[string]string{
	dims.EntryPage: "internal:closed-visitors:" + dims.EntryPage,
	dims.ExitPage:  "internal:closed-visitors:" + dims.ExitPage,
}

func companionKey(k store.RowKey) store.RowKey {
	k.Dimension = closedDims[k.Dimension]
	return k
}

// rowCache maps row keys to cached rows. Keys are hashed once into a uint64 map (chained
// on collision): a map keyed by the three strings of a RowKey costs five times the memory
// per entry and hashes slower.
type rowCache struct {
	seed maphash.Seed
	m    map[uint64]*rowEntry
	n    int
}

func newRowCache() *rowCache {
	return &rowCache{seed: maphash.MakeSeed(), m: make(map[uint64]*rowEntry)}
}

func (rc *rowCache) hash(k *store.RowKey) uint64 {
	h := maphash.String(rc.seed, k.Site)
	h = h*0x9e3779b97f4a7c15 ^ maphash.String(rc.seed, k.Dimension)
	h = h*0x9e3779b97f4a7c15 ^ maphash.String(rc.seed, k.Value)
	h = h*0x9e3779b97f4a7c15 ^ uint64(k.Bucket) ^ uint64(k.Granularity)<<56 ^ uint64(uint32(k.Shard))<<24
	h ^= h >> 29
	return h * 0xbf58476d1ce4e5b9
}

func (rc *rowCache) get(k *store.RowKey, h uint64) *rowEntry {
	for e := rc.m[h]; e != nil; e = e.next {
		if e.key == *k {
			return e
		}
	}
	return nil
}

func (rc *rowCache) put(e *rowEntry, h uint64) {
	e.next = rc.m[h]
	rc.m[h] = e
	rc.n++
}

// filter keeps the rows for which keep returns true.
func (rc *rowCache) filter(keep func(*rowEntry) bool) {
	for h, head := range rc.m {
		var kept *rowEntry
		for e := head; e != nil; {
			next := e.next
			if keep(e) {
				e.next = kept
				kept = e
			} else {
				e.next = nil
				rc.n--
			}
			e = next
		}
		if kept == nil {
			delete(rc.m, h)
		} else {
			rc.m[h] = kept
		}
	}
}

// shrink moves the rows into a map of their size: a Go map keeps the buckets of its largest
// size after deletes.
func (rc *rowCache) shrink() {
	m := make(map[uint64]*rowEntry, len(rc.m))
	for h, e := range rc.m {
		m[h] = e
	}
	rc.m = m
}

// row returns the cached row for the key, creating a pending one on a miss.
func (p *Partition) row(site string, g store.Granularity, dim string, bucket int64, value string) *rowEntry {
	k := store.RowKey{Site: site, Granularity: g, Dimension: dim, Bucket: bucket, Value: value, Shard: p.shard}
	return p.rowFor(&k)
}

func (p *Partition) rowFor(k *store.RowKey) *rowEntry {
	h := p.rows.hash(k)
	if e := p.rows.get(k, h); e != nil {
		return e
	}
	e := &rowEntry{key: *k, pending: true, loadedAt: -1}
	// The value may be part of a visit's packed attributes; a row outlives the visit.
	e.key.Value = p.intern.get(e.key.Value)
	_, e.movable = closedDims[k.Dimension]
	e.movable = e.movable && k.Granularity != store.Minute
	p.rows.put(e, h)
	p.pendingRows = append(p.pendingRows, e)
	return e
}

// cached returns the cached row for k, or nil.
func (p *Partition) cached(k *store.RowKey) *rowEntry { return p.rows.get(k, p.rows.hash(k)) }

func (p *Partition) markDirty(e *rowEntry) {
	e.touched = p.epoch
	if !e.dirty {
		e.dirty = true
		p.dirtyRows = append(p.dirtyRows, e)
	}
}

// markRecompute notes that a visitor left the movable row e.
func (p *Partition) markRecompute(e *rowEntry) {
	if !e.recompute {
		e.recompute = true
		p.recomputeRows = append(p.recomputeRows, e)
	}
	p.markDirty(e)
}

// add applies c to e on behalf of the event being applied (offset p.cur).
func (p *Partition) add(e *rowEntry, c counts) {
	if c.zero() {
		return
	}
	if e.pending {
		if p.cur <= p.rowsHigh {
			x := e.x()
			x.early = append(x.early, earlyDelta{offset: p.cur, c: c})
			return
		}
	} else if p.cur <= e.loadedAt {
		return
	}
	e.c.add(c)
	p.markDirty(e)
}

// addVisitor adds the visitor of the event being applied to e's sketch. Movable rows
// count visitors through joinVisitor, markRecompute and closedAdd instead.
func (p *Partition) addVisitor(e *rowEntry, vid uint64) {
	if e.movable {
		return
	}
	if e.pending {
		if p.cur <= p.rowsHigh {
			x := e.x()
			x.early = append(x.early, earlyDelta{offset: p.cur, visitor: vid, hasVis: true})
			return
		}
	} else if p.cur <= e.loadedAt {
		return
	}
	p.pushVisitor(e, vid)
	p.markDirty(e)
}

func (p *Partition) pushVisitor(e *rowEntry, vid uint64) {
	e.ids = append(e.ids, vid)
	if len(e.ids) >= maxPendingVisitors {
		p.foldVisitors(e)
	}
}

// joinVisitor adds the visitor of an open visit that now has the movable row's value in
// its bucket. Adding to a sketch is idempotent, so no offset guard is needed.
func (p *Partition) joinVisitor(e *rowEntry, vid uint64) {
	if !e.recompute { // a recomputed row will include it
		p.pushVisitor(e, vid)
	}
	p.markDirty(e)
}

// closedAdd records vid among the finished visits of the movable row e (its visible
// visitors do not change: the visit was open there).
func (p *Partition) closedAdd(e *rowEntry, vid uint64) {
	c := p.rowFor(ptr(companionKey(e.key)))
	p.pushVisitor(c, vid)
	p.markDirty(c)
}

func ptr[T any](v T) *T { return &v }

// foldVisitors moves the buffered ids into the live sketch. For a pending row the sketch
// starts empty and the stored one is merged in on load.
func (p *Partition) foldVisitors(e *rowEntry) {
	x := e.x()
	if x.sk == nil {
		x.sk = p.sketchFrom(e.key, e.visitors)
		e.visitors = nil
	}
	for _, id := range e.ids {
		x.sk.Add(id)
	}
	e.ids = e.ids[:0]
}

// sketchFrom parses a stored sketch; a corrupt one is logged and replaced by an empty
// sketch so one bad row cannot stop the partition.
func (p *Partition) sketchFrom(k store.RowKey, b []byte) *sketch.Sketch {
	if len(b) == 0 {
		return sketch.New()
	}
	s, err := sketch.FromBinary(b)
	if err != nil {
		p.log.Error("stored visitor sketch is corrupt; starting it afresh", "row", fmt.Sprintf("%+v", k), "err", err)
		return sketch.New()
	}
	return s
}

// visitorBytes returns the canonical serialised sketch of e with every buffered id in it,
// and drops the live sketch so an idle row costs only its bytes.
func (p *Partition) visitorBytes(e *rowEntry) []byte {
	if e.liveSketch() == nil && len(e.ids) == 0 {
		return e.visitors
	}
	p.foldVisitors(e)
	// The canonical form depends only on the set of ids: a replay that rebuilds a row
	// writes the same bytes.
	e.visitors = clip(e.ext.sk.Canonical())
	e.ext.sk = nil
	p.trimExt(e)
	if cap(e.ids) > 64 {
		e.ids = nil // a burst of visitors should not pin a large buffer to an idle row
	}
	return e.visitors
}

func (p *Partition) trimExt(e *rowEntry) {
	if e.ext != nil && e.ext.sk == nil && e.ext.early == nil {
		e.ext = nil
	}
}

// movableVisitors computes the visitors of a movable row: the finished visits (its
// companion row, loaded by now) plus the open ones.
func (p *Partition) movableVisitors(e *rowEntry, open []uint64) []byte {
	var base []byte
	if c := p.cached(ptr(companionKey(e.key))); c != nil {
		base = p.visitorBytes(c)
	}
	if len(open) == 0 {
		return base
	}
	sk := p.sketchFrom(e.key, base)
	for _, vid := range open {
		sk.Add(vid)
	}
	return clip(sk.Canonical())
}

// clip returns b without spare capacity: rows keep their sketch bytes for a long time.
func clip(b []byte) []byte {
	if cap(b)-len(b) <= 32 {
		return b
	}
	return append(make([]byte, 0, len(b)), b...)
}

// getRowsChunk bounds the keys asked for in one GetRows call.
const getRowsChunk = 512

// resolve loads every pending row from the store and settles its early deltas. It changes
// nothing unless every read succeeds, so it can simply be retried.
func (p *Partition) resolve(ctx context.Context) error {
	if len(p.pendingRows) == 0 {
		return nil
	}
	keys := make([]store.RowKey, len(p.pendingRows))
	for i, e := range p.pendingRows {
		keys[i] = e.key
	}
	found := make(map[store.RowKey]store.Row)
	for i := 0; i < len(keys); i += getRowsChunk {
		j := min(i+getRowsChunk, len(keys))
		rows, err := p.st.GetRows(ctx, keys[i:j])
		if err != nil {
			return fmt.Errorf("load %d rollup rows: %w", len(keys), err)
		}
		for _, r := range rows {
			found[r.RowKey] = r
		}
	}
	for _, e := range p.pendingRows {
		stored, ok := found[e.key]
		p.settle(e, stored, ok)
	}
	clear(p.pendingRows)
	p.pendingRows = p.pendingRows[:0]
	return nil
}

func (p *Partition) settle(e *rowEntry, stored store.Row, ok bool) {
	late := e.c // updates from offsets beyond rowsHigh, applied whatever the store holds
	e.c = counts{}
	e.loadedAt = -1
	if ok {
		e.loadedAt = stored.Offset
		e.c = counts{
			pageviews:  stored.Pageviews,
			events:     stored.Events,
			visits:     stored.Visits,
			bounces:    stored.Bounces,
			durationMS: stored.DurationMS,
		}
		if sk := e.liveSketch(); sk != nil {
			if len(stored.Visitors) > 0 {
				if err := sk.MergeBinary(stored.Visitors); err != nil {
					p.log.Error("stored visitor sketch is corrupt; keeping only new visitors", "row", fmt.Sprintf("%+v", e.key), "err", err)
				}
			}
		} else {
			e.visitors = stored.Visitors
		}
	}
	e.pending = false
	applied := false
	if e.ext != nil {
		for _, d := range e.ext.early {
			if d.offset <= e.loadedAt {
				continue
			}
			applied = true
			if d.hasVis {
				p.pushVisitor(e, d.visitor)
			} else {
				e.c.add(d.c)
			}
		}
		e.ext.early = nil
		p.trimExt(e)
	}
	e.c.add(late)
	if applied {
		p.markDirty(e)
	}
}

// evict drops clean rows that no accepted event can touch any more (their bucket ended
// before watermark - lateness), then, while the cache is over its bound, clean rows that
// were not touched since the previous flush. Evicted rows are reloaded when touched.
func (p *Partition) evict() {
	if p.rows.n == 0 {
		return
	}
	if p.seen {
		cutoff := floorDiv(p.watermark-p.lateMS, 1000)
		p.rows.filter(func(e *rowEntry) bool {
			keep := !evictable(e) || e.key.Bucket+int64(e.key.Granularity.Duration().Seconds()) > cutoff
			e.evicted = !keep
			return keep
		})
	}
	if p.maxRows > 0 && p.rows.n > p.maxRows {
		p.rows.filter(func(e *rowEntry) bool {
			keep := p.rows.n <= p.maxRows || !evictable(e) || e.touched+1 >= p.epoch
			e.evicted = !keep
			return keep
		})
	}
}

// ReleaseRows drops every cached row that holds nothing the store does not (evictable),
// whatever Config.MaxCachedRows allows: a partition that has received no event for a
// while (see releaseRowsAfter) gives its memory back instead of keeping the rows of its
// last burst until the next one: after a backlog of millions of events, tens of thousands
// of rows in the same heap as the queries that follow. Rows are read back from the store
// when events touch them again, so no count changes.
func (p *Partition) ReleaseRows() {
	if p.rows.n == 0 {
		return
	}
	p.rows.filter(func(e *rowEntry) bool {
		keep := !evictable(e)
		e.evicted = !keep
		return keep
	})
	p.rows.shrink()
	p.report()
}

// fresh returns the cached row for a pointer held across flushes.
func (p *Partition) fresh(e *rowEntry) *rowEntry {
	if e.evicted {
		return p.rowFor(&e.key)
	}
	return e
}

// evictable reports whether e holds nothing the store does not.
func evictable(e *rowEntry) bool { return !e.dirty && !e.pending && !e.recompute }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
