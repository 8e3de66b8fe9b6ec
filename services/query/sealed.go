package query

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/sketch"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Sealed days (see store.SealedDimension): a day no processor will change again is read
// from its rows merged across shards, one row per value instead of one per value and
// shard. The first query that reads such a day from the shards' rows stores the merge, in
// the background, for every later query of any query service.

// sealRefresh is how long the processors' seals are trusted before they are read again.
// Seals only move forward, so an old reading merely merges a little later.
const sealRefresh = 15 * time.Second

// seals caches store.SealedThrough and bounds the background writes of merged days.
type seals struct {
	mu      sync.Mutex
	readAt  time.Time
	through int64 // Unix seconds; 0 = nothing sealed

	writing chan struct{} // one merge being stored at a time; others are left to later queries
	wg      sync.WaitGroup
}

// sealedThrough returns the time (Unix seconds) before which every rollup row is final, or
// 0. A store that cannot answer makes it 0 (the shards' rows are read as before). Buckets
// that end by it are also the only ones cached when the store cannot report writes.
func (s *Service) sealedThrough(ctx context.Context) int64 {
	sl := &s.seals
	sl.mu.Lock()
	defer sl.mu.Unlock()
	now := s.now()
	if !sl.readAt.IsZero() && now.Sub(sl.readAt) < sealRefresh && now.After(sl.readAt) {
		return sl.through
	}
	ms, ok, err := store.SealedThrough(ctx, s.store)
	switch {
	case err != nil:
		s.log.Debug("could not read the processors' seals; reading every day from the shards' rows", "err", err)
		return 0 // not remembered: the next query asks again
	case !ok:
		sl.through = 0
	default:
		sl.through = ms / 1000
	}
	sl.readAt = now
	return sl.through
}

// sealedSpan is the range [from, to) of whole buckets of p that are sealed, empty when the
// plan cannot use merged days: only day buckets of a query reading every value are merged.
func (s *Service) sealedSpan(ctx context.Context, q *Query, p plan) span {
	from, to := q.Range.From.Unix(), q.Range.To.Unix()
	w := int64(p.gran.Duration() / time.Second)
	if !s.cfg.SealedDays || p.gran != store.Day || len(p.values) > 0 || from%w != 0 {
		return span{from, from}
	}
	through := s.sealedThrough(ctx)
	end := from
	for end < to && end+w <= through {
		end += w
	}
	return span{from, end}
}

// readSpan reads the rows of r: the buckets in the sealed span from their merged rows when
// stored, the others (and sealed ones not merged yet) from the shards' rows.
func (wk *rollupWorker) readSpan(ctx context.Context, r span) error {
	sealed := span{max(r.from, wk.sealed.from), min(r.to, wk.sealed.to)}
	if sealed.from >= sealed.to {
		return wk.readRows(ctx, r)
	}
	if r.from < sealed.from {
		if err := wk.readRows(ctx, span{r.from, sealed.from}); err != nil {
			return err
		}
	}
	missing, err := wk.readMerged(ctx, sealed)
	if err != nil {
		return err
	}
	for _, m := range missing {
		if err := wk.readRows(ctx, m); err != nil {
			return err
		}
	}
	if sealed.to < r.to {
		return wk.readRows(ctx, span{sealed.to, r.to})
	}
	return nil
}

// readRows reads the shards' rows of r.
func (wk *rollupWorker) readRows(ctx context.Context, r span) error {
	rr := store.RowRange{Site: wk.q.SiteID, Granularity: wk.p.gran, Dimension: wk.p.dimension, From: r.from, To: r.to, Values: wk.p.values}
	return wk.s.visitRows(ctx, rr, wk.row)
}

// inSealed reports whether bucket lies in the sealed span: its rows are kept whole, as an
// entry, to be stored merged.
func (wk *rollupWorker) inSealed(bucket int64) bool {
	return bucket >= wk.sealed.from && bucket < wk.sealed.to
}

// readMerged reads the merged rows of the sealed buckets in r. A bucket whose marker is
// stored and whose value rows are all there becomes an entry (folded like a cached one);
// the others are returned as ranges to read from the shards, and remembered to be merged.
func (wk *rollupWorker) readMerged(ctx context.Context, r span) ([]span, error) {
	w := int64(wk.p.gran.Duration() / time.Second)
	dim := store.SealedDimension(wk.p.dimension)
	got := map[int64]*bucketEntry{}
	marks := map[int64]int64{}
	var cur *bucketEntry
	rr := store.RowRange{Site: wk.q.SiteID, Granularity: wk.p.gran, Dimension: dim, From: r.from, To: r.to}
	err := wk.s.visitRows(ctx, rr, func(row *store.Row) error {
		if wk.read++; wk.read%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if row.Bucket < r.from || row.Bucket >= r.to || row.Site != wk.q.SiteID || row.Dimension != dim {
			return nil
		}
		if row.Shard == store.SealedMarkerShard {
			marks[row.Bucket] = row.Offset
			return nil
		}
		if cur == nil || cur.key.from != row.Bucket {
			if cur = got[row.Bucket]; cur == nil {
				cur = &bucketEntry{key: oneBucket(wk.q.SiteID, wk.p.gran, wk.p.dimension, row.Bucket)}
				got[row.Bucket] = cur
			}
		}
		v := bucketValue{value: strings.Clone(row.Value), sk: &sketch.Union{},
			pageviews: row.Pageviews, events: row.Events, visits: row.Visits, bounces: row.Bounces, durationMS: row.DurationMS}
		if err := v.sk.Add(row.Visitors); err != nil {
			cur.broken = true // read from the shards instead, and merged again
		}
		cur.vals = append(cur.vals, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var missing []span
	for b := r.from; b < r.to; b += w {
		e := got[b]
		n, marked := marks[b]
		if marked && e == nil && n == 0 {
			e = &bucketEntry{key: oneBucket(wk.q.SiteID, wk.p.gran, wk.p.dimension, b)}
		}
		if marked && e != nil && !e.broken && int64(len(e.vals)) == n {
			if wk.entries == nil {
				wk.entries = map[int64]*bucketEntry{}
			}
			wk.entries[b] = e
			wk.mergedRead++
			continue
		}
		wk.unmerged = append(wk.unmerged, b)
		if k := len(missing) - 1; k >= 0 && missing[k].to == b {
			missing[k].to = b + w
		} else {
			missing = append(missing, span{b, b + w})
		}
	}
	return missing, nil
}

// mergedRows returns the rows that store the sealed buckets the workers read from the
// shards' rows: per bucket its value rows and then its marker. It must run before the
// entries are cached (it compacts their sketches).
func mergedRows(q *Query, p plan, workers []*rollupWorker) (rows []store.Row, days int) {
	dim := store.SealedDimension(p.dimension)
	for _, wk := range workers {
		for _, b := range wk.unmerged {
			e := wk.entries[b]
			if e != nil && e.broken {
				continue
			}
			key := store.RowKey{Site: q.SiteID, Granularity: p.gran, Dimension: dim, Bucket: b}
			var n int64
			if e != nil {
				for i := range e.vals {
					v := &e.vals[i]
					k := key
					k.Value, k.Shard = v.value, store.SealedValueShard
					rows = append(rows, store.Row{RowKey: k, Aggregate: store.Aggregate{
						Pageviews: v.pageviews, Events: v.events, Visits: v.visits, Bounces: v.bounces,
						DurationMS: v.durationMS, Visitors: v.sk.AppendBinary(nil)}})
				}
				n = int64(len(e.vals))
			}
			key.Shard = store.SealedMarkerShard
			rows = append(rows, store.Row{RowKey: key, Offset: n})
			days++
		}
	}
	return rows, days
}

// mergedWriteBytes bounds the visitor sketches of one WriteRows call of storeMerged. The
// merged days of a 30-day top pages hold tens of megabytes of dense sketches; written at
// once they would make one batch that large (Pebble keeps a batch over half a memtable in
// memory as a memtable of its own until it is flushed), on top of the rows being written.
const mergedWriteBytes = 1 << 20

// writeChunked writes rows in order, in calls of at most mergedWriteBytes of sketches
// (and at least one row each). It clears the rows it wrote, so their sketches can be
// collected while the others are written.
func writeChunked(ctx context.Context, st store.Store, rows []store.Row) error {
	for len(rows) > 0 {
		n, size := 0, 0
		for n < len(rows) && (n == 0 || size+len(rows[n].Visitors) <= mergedWriteBytes) {
			size += len(rows[n].Visitors)
			n++
		}
		if err := st.WriteRows(ctx, rows[:n]); err != nil {
			return err
		}
		clear(rows[:n])
		rows = rows[n:]
	}
	return nil
}

// storeMerged writes the merged rows of sealed days in the background: the value rows
// first, the markers last, so a reader never trusts a day whose rows are not all written.
// While one merge is being written, others are dropped (a later query merges them again).
func (s *Service) storeMerged(rows []store.Row, days int) {
	if len(rows) == 0 {
		return
	}
	select {
	case s.seals.writing <- struct{}{}:
	default:
		return
	}
	s.seals.wg.Add(1)
	go func() {
		defer s.seals.wg.Done()
		defer func() { <-s.seals.writing }()
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		defer cancel()
		values := make([]store.Row, 0, len(rows))
		markers := make([]store.Row, 0, days)
		for _, r := range rows {
			if r.Shard == store.SealedMarkerShard {
				markers = append(markers, r)
			} else {
				values = append(values, r)
			}
		}
		rows = nil // values and markers hold them now
		err := writeChunked(ctx, s.store, values)
		if err == nil {
			err = writeChunked(ctx, s.store, markers)
		}
		if err != nil {
			s.metrics.sealedWriteErrors.Inc()
			s.log.Warn("could not store merged finished days; later queries read them from the shards' rows and try again", "days", days, "err", err)
			return
		}
		s.metrics.sealedMerged.Add(float64(days))
	}()
}
