package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// Sealed days.
//
// A 30-day breakdown reads the day rows of every shard: 30 days × the bus partitions × the
// values of a day, each row with a visitor sketch. Once no processor can change a day any
// more, its rows can be merged across shards once and kept: a query then reads one row per
// value and day instead of one per shard. The merged rows live next to the rows they merge
// (same site, Day granularity, bucket and value) under SealedDimension(dim), so every
// engine keeps, expires and deletes them with the rest of the site's day rows.
//
// When a day is sealed is the processors' call. Each partition's processor records, with
// every checkpoint, the time before which it will never write a row again (its seal): the
// oldest event time it still accepts (newest event seen minus the lateness), or the start
// of its oldest open visit if that is earlier, since a visit's rows sit in the hour and day
// it started. SealedThrough takes the minimum over all partitions of every consumer group
// that recorded itself; a day that ends by then is final in every shard.
//
// Merged rows are written by whoever first reads a sealed day from the shard rows (the
// query service): the value rows (Shard SealedValueShard), then a marker row (Value "",
// Shard SealedMarkerShard) whose Offset is the number of value rows. A reader uses the
// merged rows of a day only when the marker is there and the count matches, so a write cut
// short is read as "not merged yet" and redone.

// SealNamespace is the Meta namespace of the seal records.
const SealNamespace = "seal"

// sealedPrefix starts the dimension name of merged rows. No query dimension starts with it
// (they start with "event:" or "visit:").
const sealedPrefix = "sealed:"

// SealedDimension is the dimension under which the merged day rows of dim are kept.
func SealedDimension(dim string) string { return sealedPrefix + dim }

// Shards of the merged rows of a sealed day.
const (
	SealedValueShard  int32 = 0
	SealedMarkerShard int32 = 1
)

// SealGroupKey is the Meta key (in SealNamespace) recording how many partitions topic has
// for consumer group: a group counts only once every partition has recorded its seal.
func SealGroupKey(topic, group string) string { return topic + "\x00" + group }

// SealKey is the Meta key (in SealNamespace) of the seal of one partition.
func SealKey(topic, group string, partition int32) string {
	return SealGroupKey(topic, group) + "\x00" + strconv.Itoa(int(partition))
}

// EncodeSeal is the value of a seal record or a partition count.
func EncodeSeal(v int64) []byte { return binary.AppendVarint(nil, v) }

// SealedThrough returns the time (Unix ms) before which no processor will change a rollup
// row again, and false when nothing is known to be sealed: no group recorded itself, or a
// partition of one has no seal yet.
func SealedThrough(ctx context.Context, m Meta) (int64, bool, error) {
	type group struct {
		partitions int64
		seals      map[string]int64
	}
	groups := map[string]*group{}
	get := func(k string) *group {
		g := groups[k]
		if g == nil {
			g = &group{partitions: -1, seals: map[string]int64{}}
			groups[k] = g
		}
		return g
	}
	err := m.ListMeta(ctx, SealNamespace, func(key string, value []byte) error {
		v, n := binary.Varint(value)
		if n <= 0 || n != len(value) {
			return fmt.Errorf("store: malformed seal record %q", key)
		}
		parts := strings.Split(key, "\x00")
		switch len(parts) {
		case 2:
			get(key).partitions = v
		case 3:
			get(parts[0] + "\x00" + parts[1]).seals[parts[2]] = v
		default:
			return fmt.Errorf("store: malformed seal key %q", key)
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	through, any := int64(0), false
	for _, g := range groups {
		if g.partitions <= 0 || int64(len(g.seals)) < g.partitions {
			return 0, false, nil // a partition that never recorded a seal may still write anything
		}
		for p := range g.partitions {
			v, ok := g.seals[strconv.Itoa(int(p))]
			if !ok {
				return 0, false, nil
			}
			if !any || v < through {
				through, any = v, true
			}
		}
	}
	return through, any, nil
}
