package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/storemetrics"
)

var _ store.SiteDeleter = (*Store)(nil)

// DeleteSite removes every rollup row and stored event of site with two range deletes, one
// over the site's rollup keys ('r' str(site) ...) and one over its event keys
// ('e' str(site) ...), committed durably in one batch. str() never makes one site's
// encoding a prefix of another's, so no other site is touched. The keys are counted first
// (keys only, no values), for the report.
func (s *Store) DeleteSite(ctx context.Context, site string) (rep store.DeleteReport, err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpDeleteSite, true, start, err, false) }()
	if site == "" {
		return rep, fmt.Errorf("pebblestore: delete site: the site is empty")
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if err := s.enter(); err != nil {
		return rep, err
	}
	defer s.exit()

	rep.Rows = map[store.Granularity]int64{}
	rows := appendString([]byte{tagRows}, site)
	events := eventSite(nil, site)
	n := 0
	err = s.countKeys(rows, func(k []byte) error {
		if n++; n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if len(k) > len(rows) {
			rep.Rows[store.Granularity(k[len(rows)])]++
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	err = s.countKeys(events, func([]byte) error {
		if n++; n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rep.Events++
		return nil
	})
	if err != nil {
		return rep, err
	}

	b := s.db.NewBatch()
	defer b.Close()
	for _, p := range [][]byte{rows, events} {
		if err := b.DeleteRange(p, prefixEnd(p), nil); err != nil {
			return rep, fmt.Errorf("pebblestore: delete site: %w", err)
		}
		rep.Partitions++
	}
	if err := s.commit(b); err != nil {
		return rep, err
	}
	s.log.Info("site data deleted", slog.String("site", site), slog.Any("deleted", rep))
	return rep, nil
}

// countKeys calls fn with every key that starts with prefix.
func (s *Store) countKeys(prefix []byte, fn func(k []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if err := fn(it.Key()); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	return nil
}

// Retention. Rows and events carry their time in the key right after their partition
// prefix (rollups: (site, granularity, dimension) then the bucket; events: the site then
// the UTC day), so everything a retention setting expires is one key range per partition:
// [partition, partition+cutoff). A sweep walks the partitions by seeking from one to the
// next, counts the expired keys of each (keys only) and range-deletes them in one batch.
// Pebble drops the data at its next compactions of those ranges.

// sweepCheckEvery is how many expired keys a sweep counts between two context checks.
const sweepCheckEvery = 4096

// Sweep deletes the rollup rows whose bucket, and the stored events whose UTC day, lie
// before what the retention keeps at now, and reports what it removed. Settings of 0 keep
// their data. The background sweep of Options.Retention calls it; it is safe to call at
// any time.
func (s *Store) Sweep(ctx context.Context, r store.Retention, now time.Time) (rep store.SweepReport, err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpRetentionSweep, true, start, err, false) }()
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if err := s.enter(); err != nil {
		return rep, err
	}
	defer s.exit()
	rep.Rows = map[store.Granularity]int64{}
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.sweepRows(ctx, b, r, now, &rep); err != nil {
		return store.SweepReport{}, err
	}
	if err := s.sweepEvents(ctx, b, r, now, &rep); err != nil {
		return store.SweepReport{}, err
	}
	if rep.Empty() {
		return rep, nil
	}
	if err := s.commit(b); err != nil {
		return store.SweepReport{}, err
	}
	for _, g := range []store.Granularity{store.Minute, store.Hour, store.Day} {
		s.m.retentionDeleted.WithLabelValues(g.String() + "_rows").Add(float64(rep.Rows[g]))
	}
	s.m.retentionDeleted.WithLabelValues("events").Add(float64(rep.Events))
	return rep, nil
}

// sweepRows adds to b the range deletes of expired rollup rows, one per partition.
func (s *Store) sweepRows(ctx context.Context, b *pebble.Batch, r store.Retention, now time.Time, rep *store.SweepReport) error {
	if r.Minute <= 0 && r.Hour <= 0 && r.Day <= 0 {
		return nil
	}
	var part, end []byte
	var g store.Granularity
	return s.sweepTable(ctx, b, tagRows, func(k []byte) ([]byte, []byte, error) {
		_, rest, err := lendString(k[1:])
		if err != nil || len(rest) == 0 {
			return nil, nil, fmt.Errorf("%w %x", errCorruptKey, k)
		}
		g = store.Granularity(rest[0])
		if _, rest, err = lendString(rest[1:]); err != nil {
			return nil, nil, fmt.Errorf("%w %x", errCorruptKey, k)
		}
		part = append(part[:0], k[:len(k)-len(rest)]...)
		cutoff, ok := r.RowCutoff(g, now)
		if !ok {
			return part, nil, nil
		}
		end = appendInt64(append(end[:0], part...), cutoff)
		return part, end, nil
	}, func(n int64) { rep.Rows[g] += n })
}

// sweepEvents adds to b the range deletes of expired event days, one per site.
func (s *Store) sweepEvents(ctx context.Context, b *pebble.Batch, r store.Retention, now time.Time, rep *store.SweepReport) error {
	cutoff, ok := r.EventCutoff(now)
	if !ok {
		return nil
	}
	keepFrom := dayOf(cutoff)
	var site, end []byte
	return s.sweepTable(ctx, b, tagEvents, func(k []byte) ([]byte, []byte, error) {
		_, rest, err := lendString(k[1:])
		if err != nil {
			return nil, nil, fmt.Errorf("%w %x", errCorruptKey, k)
		}
		site = append(site[:0], k[:len(k)-len(rest)]...)
		end = appendInt64(append(end[:0], site...), keepFrom)
		return site, end, nil
	}, func(n int64) { rep.Events += n })
}

// sweepTable walks the table whose keys start with tag one partition at a time and adds to
// b a range delete of each partition's expired keys. bounds is given a partition's first
// key and returns the partition's prefix and the key where what it keeps starts (nil end:
// nothing of it expires); the two may be reused buffers, as they are copied. deleted is
// told how many keys each range delete removes.
func (s *Store) sweepTable(ctx context.Context, b *pebble.Batch, tag byte, bounds func(k []byte) (part, end []byte, err error), deleted func(n int64)) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tag}, UpperBound: []byte{tag + 1}})
	if err != nil {
		return fmt.Errorf("pebblestore: retention: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; {
		if err := ctx.Err(); err != nil {
			return err
		}
		part, end, err := bounds(it.Key())
		if err != nil {
			return err
		}
		if end != nil {
			var n int64
			for ; valid && bytes.Compare(it.Key(), end) < 0; valid = it.Next() {
				if n++; n%sweepCheckEvery == 0 && ctx.Err() != nil {
					return ctx.Err()
				}
			}
			if n > 0 {
				if err := b.DeleteRange(slices.Clone(part), slices.Clone(end), nil); err != nil {
					return fmt.Errorf("pebblestore: retention: %w", err)
				}
				deleted(n)
			}
		}
		valid = it.SeekGE(prefixEnd(part))
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("pebblestore: retention: %w", err)
	}
	return nil
}

// sweepLoop runs Sweep with the configured retention every interval until stop closes.
func (s *Store) sweepLoop(r store.Retention, every time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTimer(min(time.Minute, every)) // the first sweep waits until the start is over
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		rep, err := s.Sweep(ctx, r, time.Now())
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed):
			s.log.Error("retention sweep failed; retrying at the next sweep", "err", err, "next_in", every)
		case err == nil && !rep.Empty():
			s.log.Info("retention sweep removed expired data", slog.Any("removed", rep))
		default:
			s.log.Debug("retention sweep found nothing expired")
		}
		t.Reset(every)
	}
}
