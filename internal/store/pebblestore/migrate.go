package pebblestore

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Format 1 kept events in (day, shard, time, offset) order under tagEventsV1; format 2 keeps
// them in (day, time, shard, offset) order under tagEvents (see keys.go for why).

// migrateBatchBytes bounds one batch of the conversion.
const migrateBatchBytes = 4 << 20

// v1ClusteringLen is the length of a format 1 event key after the site.
const v1ClusteringLen = 8 + 4 + 8 + 8

// migrateEventsV1 moves every format 1 event to its format 2 key, one batch at a time: a
// batch writes the new keys and deletes the old ones together, so a conversion cut short by
// a crash leaves each event under exactly one of its keys and the next Open finishes it.
// The format marker changes only once nothing is left under tagEventsV1.
func (s *Store) migrateEventsV1() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagEventsV1}, UpperBound: []byte{tagEventsV1 + 1}})
	if err != nil {
		return fmt.Errorf("pebblestore: convert events to format 2: %w", err)
	}
	defer it.Close()
	start, lastLog := time.Now(), time.Now()
	batch := s.db.NewBatch()
	defer func() { _ = batch.Close() }()
	var moved int64
	var key []byte
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		_, rest, err := lendString(k[1:])
		if err != nil || len(rest) != v1ClusteringLen {
			return fmt.Errorf("pebblestore: convert events to format 2: %w %x", errCorruptKey, k)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("pebblestore: convert events to format 2: %w", err)
		}
		// Same site and fixed-width fields, reordered: i64 day, i32 shard, i64 time, i64
		// offset become i64 day, i64 time, i32 shard, i64 offset.
		key = append(append(key[:0], tagEvents), k[1:len(k)-len(rest)]...)
		key = append(append(append(append(key, rest[0:8]...), rest[12:20]...), rest[8:12]...), rest[20:28]...)
		_ = batch.Set(key, v, nil) // Set and Delete copy their arguments
		_ = batch.Delete(k, nil)
		moved++
		if batch.Len() >= migrateBatchBytes {
			if err := batch.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("pebblestore: convert events to format 2: %w", err)
			}
			batch.Reset()
			if time.Since(lastLog) >= 5*time.Second {
				s.log.Info("converting stored events to store format 2", "events", moved, "elapsed", time.Since(start).Round(time.Second))
				lastLog = time.Now()
			}
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("pebblestore: convert events to format 2: %w", err)
	}
	_ = batch.Set(formatKey, []byte("2"), nil)
	if err := batch.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: convert events to format 2: %w", err)
	}
	s.log.Info("stored events converted to store format 2 (time order)", "events", moved, "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}
