package cassandra

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/gocql/gocql"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/storemetrics"
)

const (
	insertRow = `INSERT INTO rollups (site, granularity, dimension, period, bucket, value, shard,
 pageviews, events, visits, bounces, duration_ms, visitors, bus_offset)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`

	rowColumns = `bucket, value, shard, pageviews, events, visits, bounces, duration_ms, visitors, bus_offset`

	scanRowsStmt = `SELECT ` + rowColumns + ` FROM rollups
 WHERE site = ? AND granularity = ? AND dimension = ? AND period = ? AND bucket >= ? AND bucket < ?`

	// The value filter runs inside the one partition the statement reads.
	scanRowsValuesStmt = scanRowsStmt + ` AND value IN ? ALLOW FILTERING`

	getRowsStmt = `SELECT ` + rowColumns + ` FROM rollups
 WHERE site = ? AND granularity = ? AND dimension = ? AND period = ? AND (bucket, value, shard) IN ?`

	// getRowsChunk bounds the keys of one multi-key read.
	getRowsChunk = 100
	// maxServerValues is the longest value list filtered by Cassandra; longer ones are
	// filtered here.
	maxServerValues = 100
)

// groupRows drops all but the last of rows with the same key (the last write of a call
// wins, as in one batch of the embedded store) and groups the rest by partition, in the
// order partitions first appear.
func groupRows(rows []store.Row) [][]*store.Row {
	last := make(map[store.RowKey]int, len(rows))
	for i := range rows {
		last[rows[i].RowKey] = i
	}
	index := map[partKey]int{}
	var groups [][]*store.Row
	for i := range rows {
		r := &rows[i]
		if last[r.RowKey] != i {
			continue
		}
		p := partOf(&r.RowKey)
		gi, ok := index[p]
		if !ok {
			gi = len(groups)
			index[p] = gi
			groups = append(groups, nil)
		}
		groups[gi] = append(groups[gi], r)
	}
	return groups
}

// WriteRows upserts full-state rows with the TTL of their granularity. Rows are grouped by
// partition into unlogged batches that run concurrently; when it returns nil every row is
// acknowledged at the configured consistency. Writing the same rows again is a no-op, and a
// failed call may simply be retried.
func (s *Store) WriteRows(ctx context.Context, rows []store.Row) (err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpWriteRows, true, start, err, false) }()
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	for i := range rows {
		if err := checkRowKey(&rows[i].RowKey); err != nil {
			return err
		}
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()

	groups := groupRows(rows)
	ws := make([][]write, len(groups))
	n := 0
	for gi, grp := range groups {
		ws[gi] = make([]write, len(grp))
		for j, r := range grp {
			visitors := r.Visitors
			if visitors == nil {
				visitors = []byte{} // an empty blob, not a null: no tombstone
			}
			ws[gi][j] = write{
				stmt: insertRow,
				args: []any{
					r.Site, int8(r.Granularity), r.Dimension, periodOf(r.Bucket), r.Bucket, r.Value, r.Shard,
					r.Pageviews, r.Events, r.Visits, r.Bounces, r.DurationMS, visitors, r.Offset,
					s.rowTTL[r.Granularity],
				},
				size: 120 + len(r.Site) + len(r.Dimension) + len(r.Value) + len(visitors),
			}
		}
		n += len(grp)
	}
	if err := s.writeGroups(ctx, ws, s.clock.next()); err != nil {
		return wrapErr(storemetrics.OpWriteRows, err)
	}
	s.m.RowsWritten.Add(float64(n))
	return nil
}

// rowDecoder reads rows of one partition of (site, g, dim).
func rowDecoder(site string, g store.Granularity, dim string) decoder[store.Row] {
	return func(sc gocql.Scanner) (store.Row, error) {
		r := store.Row{RowKey: store.RowKey{Site: site, Granularity: g, Dimension: dim}}
		err := sc.Scan(&r.Bucket, &r.Value, &r.Shard, &r.Pageviews, &r.Events, &r.Visits, &r.Bounces, &r.DurationMS, &r.Visitors, &r.Offset)
		if len(r.Visitors) == 0 {
			r.Visitors = nil
		}
		return r, err
	}
}

// GetRows reads the rows of keys: one multi-key read (clustering IN) per partition and up to
// getRowsChunk keys, run concurrently. Keys asked twice are read once; keys that cannot be
// stored (see WriteRows) are absent.
func (s *Store) GetRows(ctx context.Context, keys []store.RowKey) (_ []store.Row, err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpGetRows, false, start, err, false) }()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.exit()

	seen := make(map[store.RowKey]struct{}, len(keys))
	index := map[partKey]int{}
	type group struct {
		p    partKey
		keys [][]any
	}
	var groups []group
	for i := range keys {
		k := &keys[i]
		if _, dup := seen[*k]; dup || !storable(k) {
			continue
		}
		seen[*k] = struct{}{}
		p := partOf(k)
		gi, ok := index[p]
		if !ok {
			gi = len(groups)
			index[p] = gi
			groups = append(groups, group{p: p})
		}
		groups[gi].keys = append(groups[gi].keys, []any{k.Bucket, k.Value, k.Shard})
	}

	var mu sync.Mutex
	out := make([]store.Row, 0, len(seen))
	g := newErrGroup(ctx)
	// The semaphore slots are taken page by page inside collect; this one only bounds the
	// goroutines.
	gate := make(chan struct{}, s.cfg.MaxConcurrentReads)
loop:
	for _, grp := range groups {
		for i := 0; i < len(grp.keys); i += getRowsChunk {
			ks := grp.keys[i:min(i+getRowsChunk, len(grp.keys))]
			p := grp.p
			ok := g.goSem(gate, func(ctx context.Context) error {
				rows, err := collect(ctx, s, []partScan{{
					stmt: getRowsStmt,
					args: []any{p.site, int8(p.g), p.dimension, p.period, ks},
				}}, rowDecoder(p.site, p.g, p.dimension))
				if err != nil {
					return err
				}
				mu.Lock()
				out = append(out, rows...)
				mu.Unlock()
				return nil
			})
			if !ok {
				break loop
			}
		}
	}
	if err := firstErr(ctx, g.wait()); err != nil {
		return nil, wrapErr(storemetrics.OpGetRows, err)
	}
	s.m.RowsRead.Add(float64(len(out)))
	return out, nil
}

// ScanRows calls fn for every row in r, in (bucket, value, shard) order. It reads the
// partitions (UTC days) that [r.From, r.To) spans in order, each as a clustering slice
// bucket >= From AND bucket < To, paged, with up to scanAhead partitions fetched ahead of
// the one being delivered. r.Values is applied by Cassandra inside each partition (and
// checked again here). fn may call back into the store.
func (s *Store) ScanRows(ctx context.Context, r store.RowRange, fn func(store.Row) error) (err error) {
	start := time.Now()
	callerErr := false
	defer func() { s.m.observe(storemetrics.OpScanRows, false, start, err, callerErr) }()
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.exit()

	first, last, ok := periodRange(r.From, r.To)
	if !ok || r.Site == "" || !validGranularity(r.Granularity) {
		return nil
	}
	if n := last - first + 1; n > maxScanPeriods {
		return wrapErr(storemetrics.OpScanRows, errRangeTooWide(n))
	}
	from, to := max(r.From, minBucket), min(r.To, maxBucket)

	var want map[string]struct{}
	var values []string
	if len(r.Values) > 0 {
		values = slices.Clone(r.Values)
		slices.Sort(values)
		values = slices.Compact(values)
		want = make(map[string]struct{}, len(values))
		for _, v := range values {
			want[v] = struct{}{}
		}
	}
	serverFilter := want != nil && len(values) <= maxServerValues && !s.noFiltering.Load()

	parts := make([]partScan, 0, last-first+1)
	for p := first; p <= last; p++ {
		ps := partScan{stmt: scanRowsStmt, args: []any{r.Site, int8(r.Granularity), r.Dimension, p, from, to}}
		if serverFilter {
			plain := ps
			ps = partScan{stmt: scanRowsValuesStmt, args: append(slices.Clip(ps.args), values), fallback: &plain}
		}
		parts = append(parts, ps)
	}
	var read int
	callerErr, err = scanOrdered(ctx, s, parts, rowDecoder(r.Site, r.Granularity, r.Dimension), func(row store.Row) error {
		if want != nil {
			if _, ok := want[row.Value]; !ok {
				return nil
			}
		}
		read++
		return fn(row)
	})
	s.m.RowsRead.Add(float64(read))
	if err != nil && !callerErr {
		return wrapErr(storemetrics.OpScanRows, err)
	}
	return err
}
