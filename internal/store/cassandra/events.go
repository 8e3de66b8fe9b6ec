package cassandra

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/gocql/gocql"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/storemetrics"
)

const (
	insertEvent = `INSERT INTO events (site, day, shard, time_ms, bus_offset, session_id, session_start, payload)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`

	insertEventDay = `UPDATE event_days USING TTL ? SET shards = shards + ? WHERE site = ? AND day = ?`

	scanEventDays = `SELECT day, shards FROM event_days WHERE site = ? AND day >= ? AND day <= ?`

	scanEventsStmt = `SELECT shard, time_ms, bus_offset, session_id, session_start, payload FROM events
 WHERE site = ? AND day = ? AND shard = ? AND time_ms >= ? AND time_ms < ?`

	// indexRefresh is how long a written (site, day, shard) index entry is trusted by this
	// process before it is written again (refreshing its TTL).
	indexRefresh = time.Hour
	// maxIndexCache bounds the index entries remembered.
	maxIndexCache = 100_000
)

// eventPart is an event partition key.
type eventPart struct {
	site  string
	day   int64
	shard int32
}

type eventID struct {
	site   string
	shard  int32
	offset int64
}

// groupEvents drops all but the last of events with the same (site, shard, offset) and
// groups the rest by partition, in the order partitions first appear.
func groupEvents(evs []store.StoredEvent) (parts []eventPart, groups [][]*store.StoredEvent) {
	last := make(map[eventID]int, len(evs))
	for i := range evs {
		last[eventID{evs[i].Site, evs[i].Shard, evs[i].Offset}] = i
	}
	index := map[eventPart]int{}
	for i := range evs {
		e := &evs[i]
		if last[eventID{e.Site, e.Shard, e.Offset}] != i {
			continue
		}
		p := eventPart{e.Site, dayOf(e.Time), e.Shard}
		gi, ok := index[p]
		if !ok {
			gi = len(groups)
			index[p] = gi
			parts = append(parts, p)
			groups = append(groups, nil)
		}
		groups[gi] = append(groups[gi], e)
	}
	return parts, groups
}

// indexCache remembers the (site, day, shard) entries of event_days this process wrote
// recently, so a flush does not rewrite the same set element every time.
type indexCache struct {
	mu      sync.Mutex
	written map[eventPart]time.Time
}

// missing returns the entries of parts not written within indexRefresh, by (site, day).
func (c *indexCache) missing(parts []eventPart, now time.Time) map[eventDay][]int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[eventDay][]int32{}
	for _, p := range parts {
		if t, ok := c.written[p]; ok && now.Sub(t) < indexRefresh {
			continue
		}
		d := eventDay{p.site, p.day}
		out[d] = append(out[d], p.shard)
	}
	return out
}

func (c *indexCache) done(d eventDay, shards []int32, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.written == nil || len(c.written) >= maxIndexCache {
		c.written = make(map[eventPart]time.Time)
	}
	for _, sh := range shards {
		c.written[eventPart{d.site, d.day, sh}] = at
	}
}

type eventDay struct {
	site string
	day  int64
}

// WriteEvents upserts events keyed by (site, day, shard, time, offset), with the events
// TTL. It first records the partitions in event_days (a set union, so rewriting is a
// no-op), then writes the events grouped by partition into unlogged batches.
func (s *Store) WriteEvents(ctx context.Context, evs []store.StoredEvent) (err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpWriteEvents, true, start, err, false) }()
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(evs) == 0 {
		return nil
	}
	for i := range evs {
		if err := checkEvent(&evs[i]); err != nil {
			return err
		}
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()

	parts, groups := groupEvents(evs)
	ts := s.clock.next()

	// The index first: a crash after it leaves an entry for an empty partition, which a scan
	// reads as empty; the other order could hide acknowledged events.
	now := time.Now()
	missing := s.index.missing(parts, now)
	if len(missing) > 0 {
		idx := make([][]write, 0, len(missing))
		days := make([]eventDay, 0, len(missing))
		for d, shards := range missing {
			slices.Sort(shards)
			days = append(days, d)
			idx = append(idx, []write{{stmt: insertEventDay, args: []any{s.indexTTL, shards, d.site, d.day}, size: 64}})
		}
		if err := s.writeGroups(ctx, idx, ts); err != nil {
			return wrapErr(storemetrics.OpWriteEvents, err)
		}
		for _, d := range days {
			s.index.done(d, missing[d], now)
		}
	}

	ws := make([][]write, len(groups))
	n := 0
	for gi, grp := range groups {
		p := parts[gi]
		ws[gi] = make([]write, len(grp))
		for j, e := range grp {
			payload := e.Payload
			if payload == nil {
				payload = []byte{}
			}
			ws[gi][j] = write{
				stmt: insertEvent,
				args: []any{p.site, p.day, p.shard, e.Time, e.Offset, int64(e.SessionID), e.SessionStart, payload, s.eventsTTL},
				size: 80 + len(p.site) + len(payload),
			}
		}
		n += len(grp)
	}
	if err := s.writeGroups(ctx, ws, ts); err != nil {
		return wrapErr(storemetrics.OpWriteEvents, err)
	}
	s.m.EventsWritten.Add(float64(n))
	return nil
}

// ScanEvents calls fn once for each event of r.Site with r.From <= Time < r.To. It reads the
// (day, shard) partitions of the range from event_days, then each partition's time slice,
// partition after partition (ordered by day, then shard) with reads ahead.
func (s *Store) ScanEvents(ctx context.Context, r store.EventRange, fn func(store.StoredEvent) error) (err error) {
	start := time.Now()
	callerErr := false
	defer func() { s.m.observe(storemetrics.OpScanEvents, false, start, err, callerErr) }()
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.exit()
	if r.From >= r.To || r.Site == "" {
		return nil
	}

	type dayShards struct {
		day    int64
		shards []int32
	}
	days, err := collect(ctx, s, []partScan{{stmt: scanEventDays, args: []any{r.Site, dayOf(r.From), dayOf(r.To - 1)}}},
		func(sc gocql.Scanner) (dayShards, error) {
			var d dayShards
			err := sc.Scan(&d.day, &d.shards)
			return d, err
		})
	if err != nil {
		return wrapErr(storemetrics.OpScanEvents, err)
	}
	slices.SortFunc(days, func(a, b dayShards) int { return cmp.Compare(a.day, b.day) })
	var parts []partScan
	for _, d := range days {
		slices.Sort(d.shards)
		for _, sh := range slices.Compact(d.shards) {
			parts = append(parts, partScan{stmt: scanEventsStmt, args: []any{r.Site, d.day, sh, r.From, r.To}})
		}
	}
	var read int
	callerErr, err = scanOrdered(ctx, s, parts, eventDecoder(r.Site), func(e store.StoredEvent) error {
		read++
		return fn(e)
	})
	s.m.EventsRead.Add(float64(read))
	if err != nil && !callerErr {
		return wrapErr(storemetrics.OpScanEvents, err)
	}
	return err
}

// eventDecoder reads events of site.
func eventDecoder(site string) decoder[store.StoredEvent] {
	return func(sc gocql.Scanner) (store.StoredEvent, error) {
		e := store.StoredEvent{Site: site}
		var sessionID int64
		err := sc.Scan(&e.Shard, &e.Time, &e.Offset, &sessionID, &e.SessionStart, &e.Payload)
		e.SessionID = uint64(sessionID)
		if len(e.Payload) == 0 {
			e.Payload = nil
		}
		return e, err
	}
}
