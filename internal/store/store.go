// Package store holds the aggregates, the enriched-event log for filtered queries, and small
// metadata (processor checkpoints, visitor-id salts, later sites and keys).
//
// The layout is Cassandra-style wide rows and the embedded Pebble store mirrors it, so one
// query engine serves both:
//
//	rollups:  partition (site, granularity, dimension, period) · cluster (bucket, value, shard)
//	events:   partition (site, day, shard)                       · cluster (time, offset)
//	meta:     partition (namespace)                              · cluster (key)
//
// The period of a rollup partition bounds its size and is engine-internal (Cassandra: one UTC
// day per partition at every granularity, see docs/adr/0005); it rises with the bucket, so it
// never changes the order of a scan. Sites and meta namespaces are never empty, key strings
// are valid UTF-8 and buckets fall in the years 1970 to 9999.
//
// Every engine answers calls on a closed store with an error wrapping ErrUnavailable, treats
// a nil and an empty Visitors sketch alike, and returns each row of GetRows once even when a
// key is asked twice.
//
// Rows are full state, never deltas: a processor that owns a shard rewrites a whole row, and
// every row remembers the highest bus offset folded into it (Row.Offset), so a replay after a
// crash skips what a row already holds and counts stay exact. See docs/adr/0002.
package store

import (
	"context"
	"errors"
	"time"
)

// Granularity is the width of a rollup bucket.
type Granularity uint8

const (
	Minute Granularity = 1
	Hour   Granularity = 2
	Day    Granularity = 3
)

func (g Granularity) String() string {
	switch g {
	case Minute:
		return "minute"
	case Hour:
		return "hour"
	case Day:
		return "day"
	}
	return "unknown"
}

// Duration is the bucket width of g.
func (g Granularity) Duration() time.Duration {
	switch g {
	case Minute:
		return time.Minute
	case Hour:
		return time.Hour
	case Day:
		return 24 * time.Hour
	}
	return 0
}

// Truncate returns the start (Unix seconds, UTC) of the bucket of width g holding t (Unix ms).
func (g Granularity) Truncate(tMillis int64) int64 {
	w := int64(g.Duration() / time.Second)
	s := tMillis / 1000
	if tMillis < 0 && tMillis%1000 != 0 {
		s--
	}
	return s - mod(s, w)
}

func mod(a, b int64) int64 { return ((a % b) + b) % b }

// TotalsDimension is the dimension name of the unsplit totals row.
const TotalsDimension = ""

// RowKey identifies one full-state aggregate row.
type RowKey struct {
	Site        string
	Granularity Granularity
	Dimension   string // TotalsDimension, or a query dimension such as "event:page", "visit:source"
	Bucket      int64  // bucket start, Unix seconds UTC
	Value       string // dimension value ("" for totals)
	Shard       int32  // bus partition that owns the row; rows of all shards add up
}

// Aggregate is the state of one row. Counts are plain integers, the unique visitors a
// mergeable HyperLogLog sketch (see internal/sketch); all are summed/merged across shards
// and buckets by the query engine.
type Aggregate struct {
	Pageviews  int64
	Events     int64 // custom events (not page views)
	Visits     int64
	Bounces    int64
	DurationMS int64  // summed visit duration of the visits counted in Visits
	Visitors   []byte // sketch.Sketch binary form; nil when no visitor was seen
}

// Row is a rollup row and the highest bus offset of its shard folded into it.
type Row struct {
	RowKey
	Aggregate
	Offset int64
}

// RowRange selects the rows of one site, granularity and dimension whose bucket lies in
// [From, To) (Unix seconds). Values, when non-empty, restricts to those dimension values.
type RowRange struct {
	Site        string
	Granularity Granularity
	Dimension   string
	From, To    int64
	Values      []string
}

// StoredEvent is an enriched event as the processor keeps it for queries no rollup answers
// (filters combined with breakdowns). Session attributes are copied in so a scan can filter
// by visit properties without reading the session's first event.
type StoredEvent struct {
	Shard  int32
	Offset int64 // bus offset; (Shard, Offset) makes writes idempotent

	SessionID    uint64 // stable id of the visit this event belongs to
	SessionStart int64  // Unix ms of the visit's first event

	Payload []byte // event.Encode form of the enriched event, with visit attributes applied
	Time    int64  // Unix ms, copy of the event's time for range scans
	Site    string // copy of the event's site
}

// EventRange selects stored events of a site with From <= Time < To (Unix ms).
type EventRange struct {
	Site     string
	From, To int64
}

// ErrUnavailable wraps errors that mean the store cannot serve right now (node down,
// timeouts). Query answers 503 for it; processors back off and retry without committing.
var ErrUnavailable = errors.New("store unavailable")

// Rows reads and writes rollup rows.
type Rows interface {
	// WriteRows upserts full-state rows. Writing the same row twice is a no-op.
	WriteRows(ctx context.Context, rows []Row) error
	// GetRows returns the stored rows for keys, in any order; missing keys are absent.
	GetRows(ctx context.Context, keys []RowKey) ([]Row, error)
	// ScanRows calls fn for every row in r, in (bucket, value, shard) order.
	ScanRows(ctx context.Context, r RowRange, fn func(Row) error) error
}

// Events keeps enriched events per site and day.
type Events interface {
	// WriteEvents upserts events keyed by (site, shard, offset). The Time of a given
	// (Site, Shard, Offset) never changes (it is the bus message's event time), so engines may
	// put day and time into the key.
	WriteEvents(ctx context.Context, evs []StoredEvent) error
	// ScanEvents calls fn for each event in r. The order is unspecified (the query engine
	// groups events by session), but each stored event is delivered exactly once.
	ScanEvents(ctx context.Context, r EventRange, fn func(StoredEvent) error) error
}

// Meta is a small namespaced key-value table for checkpoints, salts, sites and keys.
type Meta interface {
	GetMeta(ctx context.Context, ns, key string) (value []byte, found bool, err error)
	PutMeta(ctx context.Context, ns, key string, value []byte) error
	// PutMetaIfAbsent stores value unless key exists, and returns what is stored now.
	PutMetaIfAbsent(ctx context.Context, ns, key string, value []byte) ([]byte, error)
	DeleteMeta(ctx context.Context, ns, key string) error
	// ListMeta calls fn for every key of ns in key order.
	ListMeta(ctx context.Context, ns string, fn func(key string, value []byte) error) error
}

// Store is one engine behind all three tables (embedded Pebble or Cassandra).
type Store interface {
	Rows
	Events
	Meta
	Close() error
}
