package cassandra

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/storemetrics"
)

// Deleting a site. Every table is partitioned by site first, but Cassandra deletes whole
// partitions only by their full key:
//
//   - events (site, day, shard): the event_days index lists the (day, shards) of a site, so
//     its partitions are found without a scan; the index itself is one partition per site.
//   - rollups (site, granularity, dimension, period): the dimensions include every custom
//     property ever seen (event:props:<key>) and the periods every day since the site's
//     first event, and no table lists them. DeleteSite therefore reads the partition keys
//     of the whole table (SELECT DISTINCT: partition index only, no rows) and deletes the
//     site's. Its cost grows with the rollup partitions of all sites; it is an
//     administrative operation that runs rarely, so that is accepted rather than keeping
//     another index on the write path.
//   - meta is not site data (see store.SiteDeleter).
//
// The deletes carry a write timestamp from the store's clock, so they shadow every write
// made before them on a host whose clock is not ahead of this one's.

const (
	rollupPartitions = `SELECT DISTINCT site, granularity, dimension, period FROM rollups`
	countRollupPart  = `SELECT COUNT(*) FROM rollups WHERE site = ? AND granularity = ? AND dimension = ? AND period = ?`
	deleteRollupPart = `DELETE FROM rollups WHERE site = ? AND granularity = ? AND dimension = ? AND period = ?`
	siteEventDays    = `SELECT day, shards FROM event_days WHERE site = ?`
	countEventPart   = `SELECT COUNT(*) FROM events WHERE site = ? AND day = ? AND shard = ?`
	deleteEventPart  = `DELETE FROM events WHERE site = ? AND day = ? AND shard = ?`
	deleteEventDays  = `DELETE FROM event_days WHERE site = ?`
)

var _ store.SiteDeleter = (*Store)(nil)

// DeleteSite removes every rollup row and stored event of site and the site's event_days
// index (see the comment above for how each table is reached). Events go before their
// index, so an interrupted run leaves what it did not delete findable by the next one.
func (s *Store) DeleteSite(ctx context.Context, site string) (rep store.DeleteReport, err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpDeleteSite, true, start, err, false) }()
	if err := checkText("site", site); err != nil || site == "" {
		if err == nil {
			err = errEmptySite
		}
		return rep, err
	}
	if err := s.begin(ctx); err != nil {
		return rep, err
	}
	defer s.exit()
	rep.Rows = map[store.Granularity]int64{}
	ts := s.clock.next()

	var counts [4]atomic.Int64
	var events, parts atomic.Int64

	// Events, through the index.
	type dayShards struct {
		day    int64
		shards []int32
	}
	var days []dayShards
	it := s.query(ctx, siteEventDays, site).PageSize(s.cfg.PageSize).Iter()
	var d dayShards
	for it.Scan(&d.day, &d.shards) {
		days = append(days, d)
		d = dayShards{}
	}
	if err := it.Close(); err != nil {
		return rep, wrapErr("delete site: read event_days", err)
	}
	g := newErrGroup(ctx)
	for _, d := range days {
		for _, shard := range d.shards {
			ok := g.goSem(s.writeSem, func(ctx context.Context) error {
				var n int64
				if err := s.query(ctx, countEventPart, site, d.day, shard).Scan(&n); err != nil {
					return wrapErr("delete site: count events", err)
				}
				if err := s.query(ctx, deleteEventPart, site, d.day, shard).WithTimestamp(ts).Exec(); err != nil {
					return wrapErr("delete site: delete events", err)
				}
				events.Add(n)
				parts.Add(1)
				return nil
			})
			if !ok {
				break
			}
		}
	}
	if err := firstErr(ctx, g.wait()); err != nil {
		return rep, err
	}
	if err := s.query(ctx, deleteEventDays, site).WithTimestamp(ts).Exec(); err != nil {
		return rep, wrapErr("delete site: delete event_days", err)
	}
	s.index.forgetSite(site)

	// Rollups, by a scan of the partition keys.
	g = newErrGroup(ctx)
	it = s.query(ctx, rollupPartitions).PageSize(s.cfg.PageSize).Iter()
	var (
		pSite, dim string
		gran       int8
		period     int64
	)
	for it.Scan(&pSite, &gran, &dim, &period) {
		if pSite != site {
			continue
		}
		gr, dm, pd := gran, dim, period
		if !g.goSem(s.writeSem, func(ctx context.Context) error {
			var n int64
			if err := s.query(ctx, countRollupPart, site, gr, dm, pd).Scan(&n); err != nil {
				return wrapErr("delete site: count rollups", err)
			}
			if err := s.query(ctx, deleteRollupPart, site, gr, dm, pd).WithTimestamp(ts).Exec(); err != nil {
				return wrapErr("delete site: delete rollups", err)
			}
			if gr >= 0 && int(gr) < len(counts) {
				counts[gr].Add(n)
			}
			parts.Add(1)
			return nil
		}) {
			break
		}
	}
	scanErr := it.Close()
	if err := firstErr(ctx, g.wait()); err != nil {
		return rep, err
	}
	if scanErr != nil {
		return rep, wrapErr("delete site: read rollup partitions", scanErr)
	}
	for _, gr := range []store.Granularity{store.Minute, store.Hour, store.Day} {
		rep.Rows[gr] = counts[gr].Load()
	}
	rep.Events, rep.Partitions = events.Load(), parts.Load()
	s.log.Info("site data deleted", slog.String("site", site), slog.Any("deleted", rep))
	return rep, nil
}

// forgetSite drops the remembered index entries of site, so events written after a
// deletion record their partitions again.
func (c *indexCache) forgetSite(site string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.written {
		if p.site == site {
			delete(c.written, p)
		}
	}
}

var errEmptySite = errors.New("cassandra: delete site: the site is empty")
