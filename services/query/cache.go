package query

import (
	"container/list"
	"sync"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/sketch"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// rowWatcher is implemented by stores that report the rows written to them (pebblestore and
// memstore, which live in the process that writes them). The cache needs it: without it a
// query service could not know that a cached bucket changed, so it caches nothing.
type rowWatcher interface {
	WatchRows(fn func([]store.Row)) (stop func())
}

// partKey names one rollup: a site, granularity and dimension.
type partKey struct {
	site string
	gran store.Granularity
	dim  string
}

// bucketKey names the rows of the buckets [from, to) of one rollup: all their values and
// shards. A bucket entry covers one bucket; a range entry (see rollup) several.
type bucketKey struct {
	partKey
	from, to int64
}

func oneBucket(site string, g store.Granularity, dim string, bucket int64) bucketKey {
	return bucketKey{partKey{site, g, dim}, bucket, bucket + int64(g.Duration()/time.Second)}
}

// bucketEntry is the rows of its key merged across shards (and, for a range, buckets): per
// value, the summed counts and the union of the visitor sketches. It is immutable once
// cached.
type bucketEntry struct {
	key    bucketKey
	vals   []bucketValue
	size   int64
	broken bool // a visitor sketch could not be read: never cached
}

// buckets is how many buckets e covers.
func (e *bucketEntry) buckets() int {
	return int((e.key.to - e.key.from) / int64(e.key.gran.Duration()/time.Second))
}

type bucketValue struct {
	value                                          string
	pageviews, events, visits, bounces, durationMS int64
	sk                                             *sketch.Union // never nil in a cached entry
}

// entryOverhead is the bookkeeping counted for an entry and for each of its values.
const entryOverhead = 160

func (e *bucketEntry) measure() {
	n := int64(entryOverhead + len(e.key.site) + len(e.key.dim))
	for i := range e.vals {
		n += int64(entryOverhead + len(e.vals[i].value) + e.vals[i].sk.Size())
	}
	e.size = n
}

// fill is a bucket being read to be cached. A write to the bucket while it is read makes it
// stale: what was read may predate the write, so it is not cached.
type fill struct{ stale bool }

// rollupCache keeps merged buckets that can no longer change in normal operation: those that
// ended more than Config.CacheAfter ago (the processor drops events later than its
// lateness). It does not rely on that: every row written to the store drops the cached
// entries that cover its bucket (and spoils fills in progress), so a processor catching up
// on old events, a replay or a late write never leaves a stale answer. Entries are evicted
// least recently used first to stay within Config.CacheBytes.
type rollupCache struct {
	max int64

	mu      sync.Mutex
	size    int64
	lru     list.List // of *bucketEntry, most recently used first
	entries map[bucketKey]*list.Element
	fills   map[bucketKey]*fill
	ranges  map[partKey]map[bucketKey]int // keys of range entries and fills, with their count (0–2)
	m       *metrics
}

func newRollupCache(maxBytes int64, m *metrics) *rollupCache {
	return &rollupCache{max: maxBytes, entries: map[bucketKey]*list.Element{}, fills: map[bucketKey]*fill{},
		ranges: map[partKey]map[bucketKey]int{}, m: m}
}

func (k bucketKey) isRange() bool { return k.to-k.from > int64(k.gran.Duration()/time.Second) }

// track counts a range entry or fill of k in the index invalidate searches (d = +1 or -1).
func (c *rollupCache) track(k bucketKey, d int) {
	if !k.isRange() {
		return
	}
	rs := c.ranges[k.partKey]
	if rs == nil {
		rs = map[bucketKey]int{}
		c.ranges[k.partKey] = rs
	}
	if rs[k] += d; rs[k] <= 0 {
		delete(rs, k)
		if len(rs) == 0 {
			delete(c.ranges, k.partKey)
		}
	}
}

// get returns the cached entry of k, or nil.
func (c *rollupCache) get(k bucketKey) *bucketEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.entries[k]
	if el == nil {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*bucketEntry)
}

// begin registers a fill of k, to be read from the store after this call. It returns nil
// when another query is filling k already.
func (c *rollupCache) begin(k bucketKey) *fill {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fills[k] != nil || c.entries[k] != nil {
		return nil
	}
	f := &fill{}
	c.fills[k] = f
	c.track(k, +1)
	return f
}

// end finishes the fill f of e.key: e is cached unless a write spoiled the fill. e may be
// nil to give up.
func (c *rollupCache) end(k bucketKey, f *fill, e *bucketEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fills[k] == f {
		delete(c.fills, k)
		c.track(k, -1)
	}
	if e == nil || f.stale || c.entries[k] != nil {
		return
	}
	e.measure()
	if e.size > c.max/4 { // one huge bucket would evict everything else
		return
	}
	c.entries[k] = c.lru.PushFront(e)
	c.track(k, +1)
	c.size += e.size
	for c.size > c.max {
		c.remove(c.lru.Back())
		c.m.cacheEvictions.Inc()
	}
	c.m.cacheBytes.Set(float64(c.size))
}

func (c *rollupCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*bucketEntry)
	delete(c.entries, e.key)
	c.track(e.key, -1)
	c.size -= e.size
}

// invalidate drops the entries covering the buckets of rows, which were just written, and
// spoils their fills.
func (c *rollupCache) invalidate(rows []store.Row) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) == 0 && len(c.fills) == 0 {
		return
	}
	var prev bucketKey
	for i := range rows {
		r := &rows[i]
		k := oneBucket(r.Site, r.Granularity, r.Dimension, r.Bucket)
		if i > 0 && k == prev {
			continue
		}
		prev = k
		c.drop(k)
		for rk := range c.ranges[k.partKey] {
			if rk.from <= r.Bucket && r.Bucket < rk.to {
				c.drop(rk)
			}
		}
	}
	c.m.cacheBytes.Set(float64(c.size))
}

func (c *rollupCache) drop(k bucketKey) {
	if el := c.entries[k]; el != nil {
		c.remove(el)
		c.m.cacheInvalidations.Inc()
	}
	if f := c.fills[k]; f != nil {
		f.stale = true
	}
}
