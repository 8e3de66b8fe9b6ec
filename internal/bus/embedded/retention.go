package embedded

import (
	"errors"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

func (b *Bus) retentionLoop() {
	defer b.bg.Done()
	tick := time.NewTicker(b.opts.RetentionCheck)
	defer tick.Stop()
	for {
		select {
		case <-b.closing:
			return
		case now := <-tick.C:
			if err := b.enforceRetention(now); err != nil && !errors.Is(err, ErrClosed) {
				b.log.Error("bus retention failed", "err", err)
			}
		}
	}
}

// enforceRetention deletes, per partition, the messages older than Retention that no
// recently committing group still needs (see Options.Retention).
func (b *Bus) enforceRetention(now time.Time) error {
	cutoff := now.Add(-b.opts.Retention).UnixMilli()
	b.mu.RLock()
	topics := make([]*topic, 0, len(b.topics))
	for _, t := range b.topics {
		topics = append(topics, t)
	}
	var groups []*group
	for _, g := range b.groups {
		groups = append(groups, g)
	}
	b.mu.RUnlock()

	for _, t := range topics {
		for _, part := range t.parts {
			low, tail := part.bounds()
			if low >= tail {
				continue
			}
			keep := tail
			for _, g := range groups {
				if g.t != t {
					continue
				}
				g.mu.Lock()
				if g.committedAt[part.id] >= cutoff {
					keep = min(keep, g.committed[part.id])
				}
				g.mu.Unlock()
			}
			young, err := b.firstAtOrAfter(part, low, tail, cutoff)
			if err != nil {
				return err
			}
			newLow := min(keep, young)
			if newLow <= low {
				continue
			}
			// Move low first, so a concurrent Fetch skips to it instead of finding a gap.
			part.mu.Lock()
			part.low = newLow
			part.mu.Unlock()
			err = b.withDB(func(db *pebble.DB) error {
				batch := db.NewBatch()
				defer batch.Close()
				_ = batch.DeleteRange(appendMsgKey(nil, t.name, part.id, low), appendMsgKey(nil, t.name, part.id, newLow), nil)
				_ = batch.Set(lowKey(t.name, part.id), appendBEUint64(nil, uint64(newLow)), nil)
				// No fsync: if this is lost in a crash, the messages come back and are
				// deleted again next time.
				return batch.Commit(pebble.NoSync)
			})
			if err != nil {
				return err
			}
			b.m.retentionDeleted.WithLabelValues(t.name).Add(float64(newLow - low))
			b.log.Debug("bus retention", "topic", t.name, "partition", part.id, "deleted", newLow-low, "first_kept", newLow)
		}
	}
	return nil
}

// firstAtOrAfter returns the first offset in [low, tail) published at or after cutoff
// (Unix ms), or tail. Publish times grow with offsets, so it binary-searches.
func (b *Bus) firstAtOrAfter(part *partition, low, tail, cutoff int64) (int64, error) {
	var ferr error
	i := sort.Search(int(tail-low), func(i int) bool {
		if ferr != nil {
			return true
		}
		var at int64
		ferr = b.withDB(func(db *pebble.DB) error {
			v, closer, err := db.Get(appendMsgKey(nil, part.topic, part.id, low+int64(i)))
			if err != nil {
				return err
			}
			defer closer.Close()
			at, _, _, _, err = decodeRecord(v)
			return err
		})
		return ferr != nil || at >= cutoff
	})
	if ferr != nil {
		return 0, ferr
	}
	return low + int64(i), nil
}
