package query

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/sketch"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// rowVisitor is implemented by stores that can lend rows to a callback without copying them
// (pebblestore, memstore): the row, its Value and its Visitors are valid only during the
// call and must not be modified. Reading a 30-day breakdown touches tens of thousands of
// rows, and a copy of each sketch was most of the garbage a query made.
type rowVisitor interface {
	VisitRows(ctx context.Context, r store.RowRange, fn func(*store.Row) error) error
}

// visitRows calls fn for the rows of rr, lent when the store can lend them.
func (s *Service) visitRows(ctx context.Context, rr store.RowRange, fn func(*store.Row) error) error {
	if v, ok := s.store.(rowVisitor); ok {
		return v.VisitRows(ctx, rr, fn)
	}
	return s.store.ScanRows(ctx, rr, func(r store.Row) error { return fn(&r) })
}

// maxCacheBuckets bounds the buckets a query looks up in the cache one by one; longer
// ranges of small buckets are read from the store.
const maxCacheBuckets = 20_000

// maxWorkers bounds the goroutines one query reads with.
const maxWorkers = 4

// span is a range [from, to) of bucket starts, Unix seconds.
type span struct{ from, to int64 }

// rollup answers q by adding up rollup rows: counts are summed and visitor sketches merged
// across shards, buckets and (when a filter selects several) values.
//
// Buckets that ended more than Config.CacheAfter ago come from the cache when it holds them
// (see rollupCache); the others are read from the store. The buckets to read are split into
// contiguous ranges read in parallel, one per core, each into its own groups; the groups
// are merged at the end.
func (s *Service) rollup(ctx context.Context, q *Query, p plan, meta *Meta) (*groups, error) {
	from, to := q.Range.From.Unix(), q.Range.To.Unix()
	w := int64(p.gran.Duration() / time.Second)

	var (
		hits     []*bucketEntry
		reads    []span
		fills    map[int64]*fill
		sealedTo = from // the buckets in [from, sealedTo) are sealed
		rk       bucketKey
		rfill    *fill // fill of the range entry of [from, sealedTo)
	)
	useCache := s.cache != nil && len(p.values) == 0 && from%w == 0 && (to-from)/w <= maxCacheBuckets
	if useCache {
		cutoff := s.now().Add(-s.cfg.CacheAfter).Unix() // buckets ending by then are cached
		if s.finalOnly {
			cutoff = min(cutoff, s.sealedThrough(ctx))
		}
		for sealedTo < to && sealedTo+w <= cutoff {
			sealedTo += w
		}
		// Without a time dimension all sealed buckets add up into the same groups, so their
		// merged result is cached as well, as one range entry (the 27 past days of a 30-day
		// top pages, say): asking the same again merges one entry instead of one per day.
		if q.timeDim() == "" && sealedTo-from >= 2*w {
			rk = bucketKey{partKey{q.SiteID, p.gran, p.dimension}, from, sealedTo}
			if e := s.cache.get(rk); e != nil {
				hits = append(hits, e)
				reads = append(reads, span{sealedTo, to})
			} else if p.rowFilter == nil && contains(q.Metrics, MetricVisitors) {
				// Only a query that keeps every value and its visitors can make the entry.
				rfill = s.cache.begin(rk)
			}
		}
		if len(hits) == 0 {
			cur := from
			for b := from; b < sealedTo; b += w {
				k := oneBucket(q.SiteID, p.gran, p.dimension, b)
				if e := s.cache.get(k); e != nil {
					if cur < b {
						reads = append(reads, span{cur, b})
					}
					hits = append(hits, e)
					cur = b + w
					continue
				}
				if f := s.cache.begin(k); f != nil {
					if fills == nil {
						fills = map[int64]*fill{}
					}
					fills[b] = f
				}
			}
			if cur < to {
				reads = append(reads, span{cur, to})
			}
		}
		cached := 0
		for _, e := range hits {
			cached += e.buckets()
		}
		meta.BucketsCached = cached
		s.metrics.cacheHits.Add(float64(cached))
		s.metrics.cacheMisses.Add(float64(len(fills)))
	} else {
		reads = []span{{from, to}}
	}

	sealed := s.sealedSpan(ctx, q, p)
	workers := s.splitWork(reads, hits, w)
	for _, wk := range workers {
		wk.init(s, q, p, fills)
		wk.sealed = sealed
		if rfill != nil {
			wk.sealedTo, wk.gs = sealedTo, newGroups(q, false)
		}
	}
	ctx, cancel := context.WithCancel(ctx) // the first worker to fail stops the others
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(workers))
	for i := 1; i < len(workers); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = workers[i].run(ctx); errs[i] != nil {
				cancel()
			}
		}()
	}
	if errs[0] = workers[0].run(ctx); errs[0] != nil {
		cancel()
	}
	wg.Wait()

	var (
		read int64
		err  error
	)
	for i, wk := range workers {
		read += wk.read
		// A worker cancelled because another failed reports context.Canceled: keep the cause.
		if err == nil || (errors.Is(err, context.Canceled) && errs[i] != nil && !errors.Is(errs[i], context.Canceled)) {
			err = errs[i]
		}
	}
	meta.RowsRead = read
	s.metrics.rowsRead.Add(float64(read))
	if err == nil && sealed.to > sealed.from {
		var mergedRead int
		for _, wk := range workers {
			mergedRead += wk.mergedRead
		}
		s.metrics.sealedRead.Add(float64(mergedRead))
		s.storeMerged(mergedRows(q, p, workers)) // before the entries are cached and shared
	}

	// Cache what was read of sealed buckets, unless it failed; a bucket without rows is
	// cached empty.
	if len(fills) > 0 {
		got := map[int64]*bucketEntry{}
		for _, wk := range workers {
			for b, e := range wk.entries {
				got[b] = e
			}
		}
		for b, f := range fills {
			k := oneBucket(q.SiteID, p.gran, p.dimension, b)
			e := got[b]
			switch {
			case err != nil:
				e = nil
			case e == nil:
				e = &bucketEntry{key: k}
			case e.broken:
				e = nil
			}
			s.cache.end(k, f, e)
		}
	}
	if rfill != nil {
		var e *bucketEntry
		if err == nil {
			gs := workers[0].gs
			for _, wk := range workers[1:] {
				gs.merge(wk.gs)
			}
			e = rangeEntry(rk, gs, workers[0].dimIdx)
			workers[0].g.merge(gs)
		}
		s.cache.end(rk, rfill, e)
	}
	if err != nil {
		return nil, err
	}
	g := workers[0].g
	for _, wk := range workers[1:] {
		g.merge(wk.g)
	}
	dropEmpty(g)
	return g, nil
}

// dropEmpty removes the groups without page views, events or visits. Rows can hold such a
// value: when a visit's entry or exit page moves, the processor takes the visit and its
// events from the row of the old value, which stays behind with zero counts (and possibly
// visitors). The scan never makes such a group, and docs/metrics.md counts nothing there.
func dropEmpty(g *groups) {
	for k, a := range g.m {
		if a.pageviews == 0 && a.events == 0 && a.visits == 0 {
			delete(g.m, k)
		}
	}
}

// rangeEntry makes the range entry of k from the groups of its buckets, keyed by value at
// dimIdx (or all one value, the totals, when it is -1). The groups keep their own unions.
func rangeEntry(k bucketKey, gs *groups, dimIdx int) *bucketEntry {
	e := &bucketEntry{key: k, vals: make([]bucketValue, 0, len(gs.m))}
	for gk, a := range gs.m {
		if a.sk == nil {
			return nil
		}
		v := bucketValue{pageviews: a.pageviews, events: a.events, visits: a.visits, bounces: a.bounces, durationMS: a.durationMS, sk: a.sk.Clone()}
		if dimIdx >= 0 {
			v.value = gk[dimIdx]
		}
		v.sk.Trim()
		e.vals = append(e.vals, v)
	}
	return e
}

// splitWork spreads the buckets to read and the cached buckets over up to one worker per
// core: contiguous ranges of about the same number of buckets each.
func (s *Service) splitWork(reads []span, hits []*bucketEntry, w int64) []*rollupWorker {
	var total int64
	for _, r := range reads {
		total += (r.to - r.from + w - 1) / w
	}
	n := int64(min(runtime.GOMAXPROCS(0), maxWorkers))
	// A cached bucket costs a fraction of a read one; tiny queries stay on one goroutine.
	if work := total + int64(len(hits))/4; work < 2 {
		n = 1
	} else {
		n = min(n, work)
	}
	workers := make([]*rollupWorker, n)
	for i := range workers {
		workers[i] = &rollupWorker{}
		lo, hi := len(hits)*i/int(n), len(hits)*(i+1)/int(n)
		workers[i].hits = hits[lo:hi]
	}
	per := (total + n - 1) / n
	i, left := 0, per
	for _, r := range reads {
		for r.from < r.to {
			if left == 0 && i < len(workers)-1 {
				i, left = i+1, per
			}
			take := min(r.to, r.from+left*w)
			if i == len(workers)-1 {
				take = r.to
			}
			workers[i].reads = append(workers[i].reads, span{r.from, take})
			left -= min(left, (take-r.from+w-1)/w)
			r.from = take
		}
	}
	return workers
}

// rollupWorker reads some ranges of rows and folds some cached buckets into its own groups.
type rollupWorker struct {
	reads []span
	hits  []*bucketEntry

	s      *Service
	q      *Query
	p      plan
	from   int64
	to     int64
	td     string
	tdIdx  int
	dimIdx int
	fills  map[int64]*fill // shared, read only
	g      *groups
	labels map[int64]string
	read   int64
	ctx    context.Context

	// With a range entry to fill, the buckets before sealedTo go into gs instead of g.
	sealedTo int64
	gs       *groups

	// entries holds the sealed buckets read for the cache or to be merged, by bucket.
	entries map[int64]*bucketEntry
	cur     *bucketEntry // entry of the bucket of the last row, nil when not filled

	// sealed is the span of buckets no processor changes any more (see sealed.go);
	// mergedRead counts those read from merged rows, unmerged lists those read from the
	// shards' rows, to be merged.
	sealed     span
	mergedRead int
	unmerged   []int64

	// the group of the last row, for the runs of rows (one per shard) of one value
	last       *acc
	lastBucket int64
	lastValue  string
	values     map[string]string // copies of the lent row values seen (see own)
}

func (wk *rollupWorker) init(s *Service, q *Query, p plan, fills map[int64]*fill) {
	wk.s, wk.q, wk.p, wk.fills = s, q, p, fills
	wk.from, wk.to = q.Range.From.Unix(), q.Range.To.Unix()
	wk.tdIdx, wk.dimIdx = -1, -1
	for i, d := range q.Dimensions {
		switch {
		case isTimeDim(d):
			wk.tdIdx, wk.td = i, d
		case d == p.dimension:
			wk.dimIdx = i
		}
	}
	wk.g = newGroups(q, false)
	wk.labels = map[int64]string{}
}

func (wk *rollupWorker) run(ctx context.Context) error {
	wk.ctx = ctx
	for _, e := range wk.hits {
		wk.foldEntry(e)
	}
	for _, r := range wk.reads {
		if err := wk.readSpan(ctx, r); err != nil {
			return err
		}
	}
	for _, e := range wk.entries {
		for i := range e.vals {
			e.vals[i].sk.Trim()
		}
		wk.foldEntry(e)
	}
	return nil
}

// key is the group key of a row of bucket with value.
func (wk *rollupWorker) key(bucket int64, value string) gkey {
	var k gkey
	if wk.tdIdx >= 0 {
		b := bucketStartIn(wk.td, bucket, wk.q.Location)
		l, ok := wk.labels[b]
		if !ok {
			l = formatLabelIn(wk.td, b, wk.q.Location)
			wk.labels[b] = l
		}
		k[wk.tdIdx] = l
	}
	if wk.dimIdx >= 0 {
		k[wk.dimIdx] = value
	}
	return k
}

// row folds one row; r and what it refers to are lent.
func (wk *rollupWorker) row(r *store.Row) error {
	if wk.read++; wk.read%ctxCheckEvery == 0 {
		if err := wk.ctx.Err(); err != nil {
			return err
		}
	}
	if r.Bucket < wk.from || r.Bucket >= wk.to || r.Site != wk.q.SiteID || r.Dimension != wk.p.dimension {
		return nil
	}
	if wk.fills != nil || wk.sealed.to > wk.sealed.from {
		if wk.cur == nil || wk.cur.key.from != r.Bucket {
			wk.cur = wk.entries[r.Bucket]
			if wk.cur == nil && (wk.fills[r.Bucket] != nil || wk.inSealed(r.Bucket)) {
				wk.cur = &bucketEntry{key: oneBucket(wk.q.SiteID, wk.p.gran, wk.p.dimension, r.Bucket)}
				if wk.entries == nil {
					wk.entries = map[int64]*bucketEntry{}
				}
				wk.entries[r.Bucket] = wk.cur
			}
		}
		if e := wk.cur; e != nil {
			// A sealed bucket is kept whole for the cache; the filter applies when it is folded.
			if n := len(e.vals); n == 0 || e.vals[n-1].value != r.Value {
				e.vals = append(e.vals, bucketValue{value: strings.Clone(r.Value), sk: &sketch.Union{}})
			}
			v := &e.vals[len(e.vals)-1]
			v.pageviews += r.Pageviews
			v.events += r.Events
			v.visits += r.Visits
			v.bounces += r.Bounces
			v.durationMS += r.DurationMS
			if err := v.sk.Add(r.Visitors); err != nil {
				if wk.g.needVisitors {
					return wk.rowErr(r, err)
				}
				e.broken = true // counted, but not cached: a query for visitors must fail on it
			}
			return nil
		}
	}
	if wk.p.rowFilter != nil && !wk.p.rowFilter.Match(r.Value) {
		return nil
	}
	a := wk.last
	if a == nil || r.Bucket != wk.lastBucket || r.Value != wk.lastValue {
		// r.Value is lent and its bytes are reused for the next rows: the value kept in
		// the group's key and for comparing the next row must be a copy.
		v := wk.own(r.Value)
		a = wk.groupsOf(r.Bucket).get(wk.key(r.Bucket, v))
		wk.last, wk.lastBucket, wk.lastValue = a, r.Bucket, v
	}
	if err := a.addRow(&r.Aggregate); err != nil {
		return wk.rowErr(r, err)
	}
	return nil
}

// own returns a copy of the lent value v, made once per distinct value.
func (wk *rollupWorker) own(v string) string {
	if c, ok := wk.values[v]; ok {
		return c
	}
	c := strings.Clone(v)
	if wk.values == nil {
		wk.values = map[string]string{}
	}
	wk.values[c] = c
	return c
}

func (wk *rollupWorker) rowErr(r *store.Row, err error) error {
	return fmt.Errorf("rollup row (%s, dimension %q, bucket %d, value %q, shard %d): %w", wk.p.gran, wk.p.dimension, r.Bucket, r.Value, r.Shard, err)
}

// groupsOf returns the groups the rows of bucket go to.
func (wk *rollupWorker) groupsOf(bucket int64) *groups {
	if wk.gs != nil && bucket < wk.sealedTo {
		return wk.gs
	}
	return wk.g
}

// foldEntry adds a cached entry to the groups.
func (wk *rollupWorker) foldEntry(e *bucketEntry) {
	b := e.key.from
	if b < wk.from || e.key.to > wk.to {
		return
	}
	g := wk.groupsOf(b)
	for i := range e.vals {
		v := &e.vals[i]
		if wk.p.rowFilter != nil && !wk.p.rowFilter.Match(v.value) {
			continue
		}
		if len(wk.p.values) > 0 && !contains(wk.p.values, v.value) {
			continue
		}
		a := g.get(wk.key(b, v.value))
		a.pageviews += v.pageviews
		a.events += v.events
		a.visits += v.visits
		a.bounces += v.bounces
		a.durationMS += v.durationMS
		if a.sk != nil {
			a.sk.Merge(v.sk)
		}
	}
}

// merge adds the groups of o to g; o is used up.
func (g *groups) merge(o *groups) {
	for k, b := range o.m {
		a := g.m[k]
		if a == nil {
			g.m[k] = b
			continue
		}
		a.pageviews += b.pageviews
		a.events += b.events
		a.visits += b.visits
		a.bounces += b.bounces
		a.durationMS += b.durationMS
		if a.sk != nil && b.sk != nil {
			a.sk.Merge(b.sk)
		}
	}
}
