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
		site, rest, err := lendString(k[1:])
		if err != nil {
			return fmt.Errorf("pebblestore: convert events to format 2: %w %x", errCorruptKey, k)
		}
		day, shard, tm, offset, err := readEventClusteringV1(rest)
		if err != nil {
			return fmt.Errorf("pebblestore: convert events to format 2: %w %x", err, k)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("pebblestore: convert events to format 2: %w", err)
		}
		key = appendInt64(appendInt32(appendInt64(appendInt64(eventSite(key[:0], site), day), tm), shard), offset)
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

// readEventClusteringV1 decodes the format 1 (day, shard, time, offset) that follows an
// event site prefix.
func readEventClusteringV1(b []byte) (day int64, shard int32, tMillis, offset int64, err error) {
	if day, b, err = readInt64(b); err != nil {
		return
	}
	if shard, b, err = readInt32(b); err != nil {
		return
	}
	if tMillis, b, err = readInt64(b); err != nil {
		return
	}
	if offset, b, err = readInt64(b); err != nil {
		return
	}
	if len(b) != 0 {
		err = errCorruptKey
	}
	return
}
