package cassandra

import (
	"fmt"
	"unicode/utf8"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Partitioning. A rollup partition is (site, granularity, dimension, period) and an event
// partition (site, day, shard); see docs/adr/0005-cassandra-store.md for the sizes.
//
// The period of a rollup row is the UTC day of its bucket, at every granularity: a
// partition holds one day of one dimension (1440 minute buckets, 24 hour buckets or one day
// bucket) times its values and shards. The period rises with the bucket, so reading the
// periods of a range in order and each partition in clustering order yields rows in
// (bucket, value, shard) order.

const (
	secondsPerDay = 24 * 60 * 60
	msPerDay      = secondsPerDay * 1000

	// Rollup buckets must lie in [minBucket, maxBucket): 1970-01-01 to 10000-01-01 UTC.
	// Writes outside are refused, so a scan can clamp its range to this window.
	minBucket = 0
	maxBucket = 253402300800

	// maxScanPeriods bounds the partitions one ScanRows may read (about 27 years of days).
	maxScanPeriods = 10_000

	// maxKeyBytes is Cassandra's limit on one clustering or partition key component.
	maxKeyBytes = 65535
)

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func validGranularity(g store.Granularity) bool {
	return g == store.Minute || g == store.Hour || g == store.Day
}

// periodOf is the period (UTC day number) of the rollup partition that holds bucket.
func periodOf(bucket int64) int64 { return floorDiv(bucket, secondsPerDay) }

// periodRange returns the first and last period that rows of [from, to) can be stored in,
// and ok=false when no row can be (an empty range, or one outside the bucket window).
func periodRange(from, to int64) (first, last int64, ok bool) {
	from, to = max(from, minBucket), min(to, maxBucket)
	if from >= to {
		return 0, 0, false
	}
	return periodOf(from), periodOf(to - 1), true
}

// dayOf is the UTC day number of t (Unix ms): the day of an event partition.
func dayOf(tMillis int64) int64 { return floorDiv(tMillis, msPerDay) }

// partKey is a rollup partition key.
type partKey struct {
	site      string
	g         store.Granularity
	dimension string
	period    int64
}

func partOf(k *store.RowKey) partKey {
	return partKey{k.Site, k.Granularity, k.Dimension, periodOf(k.Bucket)}
}

// storable reports whether k can be stored: checkRowKey succeeds. GetRows uses it to skip
// keys that cannot exist.
func storable(k *store.RowKey) bool { return checkRowKey(k) == nil }

// checkRowKey refuses a row key Cassandra cannot store or this layout does not support.
func checkRowKey(k *store.RowKey) error {
	switch {
	case k.Site == "":
		return fmt.Errorf("cassandra: row %+v has an empty site", *k)
	case !validGranularity(k.Granularity):
		return fmt.Errorf("cassandra: row %+v has unknown granularity %d", *k, k.Granularity)
	case k.Bucket < minBucket || k.Bucket >= maxBucket:
		return fmt.Errorf("cassandra: row %+v has bucket %d outside the supported years 1970 to 9999", *k, k.Bucket)
	}
	if err := checkText("site", k.Site); err != nil {
		return err
	}
	if err := checkText("dimension", k.Dimension); err != nil {
		return err
	}
	return checkText("value", k.Value)
}

// checkText refuses strings a CQL text column rejects or a key column cannot hold.
func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("cassandra: %s %q is not valid UTF-8", what, s)
	}
	if len(s) > maxKeyBytes {
		return fmt.Errorf("cassandra: %s is %d bytes long, more than the %d a key column holds", what, len(s), maxKeyBytes)
	}
	return nil
}

func checkEvent(e *store.StoredEvent) error {
	if e.Site == "" {
		return fmt.Errorf("cassandra: event (shard %d, offset %d) has an empty site", e.Shard, e.Offset)
	}
	return checkText("site", e.Site)
}

func checkNamespace(ns, key string) error {
	if ns == "" {
		return fmt.Errorf("cassandra: empty meta namespace")
	}
	if err := checkText("meta namespace", ns); err != nil {
		return err
	}
	return checkText("meta key", key)
}

func errRangeTooWide(days int64) error {
	return fmt.Errorf("cassandra: the range spans %d days of rollup partitions, more than the %d one scan may read: ask for a shorter range", days, maxScanPeriods)
}
