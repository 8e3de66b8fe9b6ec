package memstore

import (
	"context"
	"errors"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

var _ store.SiteDeleter = (*Store)(nil)

// DeleteSite removes every rollup row and stored event of site.
func (s *Store) DeleteSite(ctx context.Context, site string) (store.DeleteReport, error) {
	rep := store.DeleteReport{Rows: map[store.Granularity]int64{}}
	if site == "" {
		return rep, errors.New("memstore: delete site: the site is empty")
	}
	if err := s.lockOpen(ctx); err != nil {
		return rep, err
	}
	defer s.mu.Unlock()
	for p, m := range s.rows {
		if p.site == site {
			rep.Rows[p.gran] += int64(len(m))
			rep.Partitions++
			delete(s.rows, p)
		}
	}
	if evs, ok := s.events[site]; ok {
		rep.Events = int64(len(evs))
		rep.Partitions++
		delete(s.events, site)
	}
	return rep, nil
}

// lockOpen takes the write lock for a call made under ctx. It returns holding the lock
// only when it returns nil: ctx is done or the store is closed otherwise.
func (s *Store) lockOpen(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Sweep deletes the rollup rows and stored events retention r no longer keeps at now, by
// the same rule as the embedded Pebble store (store.Retention.RowCutoff and EventCutoff),
// and reports what it removed. The memory store runs no background sweep: it keeps
// nothing across restarts anyway.
func (s *Store) Sweep(ctx context.Context, r store.Retention, now time.Time) (store.SweepReport, error) {
	rep := store.SweepReport{Rows: map[store.Granularity]int64{}}
	if err := s.lockOpen(ctx); err != nil {
		return rep, err
	}
	defer s.mu.Unlock()
	for p, m := range s.rows {
		cutoff, ok := r.RowCutoff(p.gran, now)
		if !ok {
			continue
		}
		for c := range m {
			if c.bucket < cutoff {
				delete(m, c)
				rep.Rows[p.gran]++
			}
		}
		if len(m) == 0 {
			delete(s.rows, p)
		}
	}
	if cutoff, ok := r.EventCutoff(now); ok {
		for site, evs := range s.events {
			for k, e := range evs {
				if e.Time < cutoff {
					delete(evs, k)
					rep.Events++
				}
			}
			if len(evs) == 0 {
				delete(s.events, site)
			}
		}
	}
	return rep, nil
}
