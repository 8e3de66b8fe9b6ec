// Package pebblestore is the embedded store.Store of `glimpse all`, on Pebble
// (github.com/cockroachdb/pebble), in one directory on local disk.
//
// Keys mirror the Cassandra layout of package store (see keys.go), so a rollup scan is one
// bounded iterator over one (site, granularity, dimension) prefix, and an event scan one
// iterator over a site's days. Every write call is one Pebble batch committed with fsync:
// when WriteRows returns nil the rows survive a crash, which is what lets a processor commit
// its bus position right after. See docs/adr/0003-pebble-embedded-store.md.
package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/pebbleopts"
	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/storemetrics"
)

// Options tune Open. The zero value is ready to use.
type Options struct {
	// Logger receives Pebble's messages and store events (slow disk, write stalls,
	// background errors). Default slog.Default().
	Logger *slog.Logger
	// Metrics, when set, gets the glimpse_store_* metrics.
	Metrics prometheus.Registerer
	// CacheSize is the block cache size in bytes. Default 64 MiB.
	CacheSize int64
	// MemTableSize is the size of one memtable in bytes. Default 16 MiB. Writes stall once
	// 32 MiB of memtables wait for flushing, whatever the size (pebbleopts.MemTableQueueBytes).
	MemTableSize uint64
	// Retention, unless it keeps everything forever (the zero value), is enforced by a
	// background sweep every SweepEvery (default 1 hour; see Sweep).
	Retention  store.Retention
	SweepEvery time.Duration
}

// Defaults of Options.CacheSize and Options.MemTableSize.
const (
	DefaultCacheSize    = 64 << 20
	DefaultMemTableSize = 16 << 20
)

const (
	defaultSweepEvery = time.Hour

	// formatVersion is the layout of keys and values this package writes. It is kept in
	// the store so a newer layout is refused by older binaries instead of misread.
	formatVersion = 2

	// checkEvery is how many scanned items pass between two context checks.
	checkEvery = 64
)

// ErrLocked is returned by Open when another process (or another Store in this process)
// holds the directory.
var ErrLocked = errors.New("pebblestore: data directory is in use")

// ErrClosed is returned by every method after Close. It wraps store.ErrUnavailable.
var ErrClosed = fmt.Errorf("%w: pebblestore is closed", store.ErrUnavailable)

var formatKey = systemKey("format")

// Store is a store.Store on a Pebble database. It is safe for concurrent use.
type Store struct {
	db   *pebble.DB
	lock *pebble.Lock
	dir  string
	log  *slog.Logger
	m    *metrics
	reg  prometheus.Registerer
	dbc  *dbCollector

	metaMu sync.Mutex // serialises meta writes so PutMetaIfAbsent is atomic

	watchers store.RowWatchers

	// sweepStop ends the background retention sweep, which closes sweepDone when it has.
	sweepStop chan struct{}
	sweepDone chan struct{}

	mu       sync.Mutex
	cond     sync.Cond
	closed   bool
	inflight int
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir. It fails with an error wrapping
// ErrLocked when another glimpse uses dir, and with an actionable message when dir cannot
// be created or written.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("pebblestore: no data directory given (set --data-dir)")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("dir", dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("pebblestore: cannot create data directory %s: %w (pick a writable --data-dir)", dir, err)
	}
	if err := checkWritable(dir); err != nil {
		return nil, err
	}
	lock, err := pebble.LockDirectory(dir, vfs.Default)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is locked by another process (%v): is another glimpse running with the same --data-dir? Stop it or choose another --data-dir",
			ErrLocked, dir, err)
	}

	cacheSize := opts.CacheSize
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	memTableSize := opts.MemTableSize
	if memTableSize == 0 {
		memTableSize = DefaultMemTableSize
	}
	m := newMetrics()
	if err := m.register(opts.Metrics); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("pebblestore: register metrics: %w", err)
	}
	cache := pebble.NewCache(cacheSize)
	defer cache.Unref() // the DB holds its own reference
	popts := &pebble.Options{
		Cache:                       cache,
		MemTableSize:                memTableSize,
		MemTableStopWritesThreshold: pebbleopts.MemTableStopWrites(memTableSize),
		Lock:                        lock,
		Logger:                      pebbleLogger{log},
		FormatMajorVersion:          pebble.FormatNewest,
		EventListener:               eventListener(log, m),
	}
	// Processors look up every rollup row they touch for the first time, and most of those
	// rows do not exist yet (a new bucket): bloom filters answer such misses without reading
	// data blocks.
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		popts.Levels[i].FilterType = pebble.TableFilter
	}
	db, err := pebble.Open(dir, popts)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	s := &Store{db: db, lock: lock, dir: dir, log: log, m: m, reg: opts.Metrics}
	s.cond.L = &s.mu
	if err := s.checkFormat(); err != nil {
		_ = db.Close()
		_ = lock.Close()
		return nil, err
	}
	if opts.Metrics != nil {
		s.dbc = newDBCollector(db)
		if err := opts.Metrics.Register(s.dbc); err != nil {
			s.dbc = nil
			log.Warn("pebble health metrics not registered", "err", err)
		}
	}
	if opts.Retention.Forever() {
		log.Info("retention: data is kept forever (no retention.* setting above 0)")
	} else {
		every := opts.SweepEvery
		if every <= 0 {
			every = defaultSweepEvery
		}
		s.sweepStop, s.sweepDone = make(chan struct{}), make(chan struct{})
		go s.sweepLoop(opts.Retention, every, s.sweepStop, s.sweepDone)
		log.Info("retention: expired data is swept in the background", "retention", opts.Retention, "every", every)
	}
	log.Debug("store opened")
	return s, nil
}

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("pebblestore: data directory %s is not writable: %w (fix its permissions or pick another --data-dir)", dir, err)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

// checkFormat records the layout version in a new store, converts a format 1 store and
// refuses an unknown format.
func (s *Store) checkFormat() error {
	v, closer, err := s.db.Get(formatKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return s.db.Set(formatKey, []byte(strconv.Itoa(formatVersion)), pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("pebblestore: read format of %s: %w", s.dir, err)
	}
	stored := string(v)
	_ = closer.Close()
	got, err := strconv.Atoi(stored)
	if err == nil && got == 1 {
		return s.migrateEventsV1()
	}
	if err != nil || got != formatVersion {
		return fmt.Errorf("pebblestore: %s holds store format %q, this glimpse reads format %d: use the glimpse that wrote it or another --data-dir",
			s.dir, stored, formatVersion)
	}
	return nil
}

// enter admits one operation unless the store is closed; exit must follow.
func (s *Store) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.inflight++
	return nil
}

func (s *Store) exit() {
	s.mu.Lock()
	s.inflight--
	if s.inflight == 0 && s.closed {
		s.cond.Broadcast()
	}
	s.mu.Unlock()
}

// Close waits for running operations, flushes the memtables and closes the database, so the
// next Open replays no log. Closing twice is not an error.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.sweepStop != nil {
		close(s.sweepStop)
		<-s.sweepDone
	}
	s.mu.Lock()
	for s.inflight > 0 {
		s.cond.Wait()
	}
	s.mu.Unlock()

	if s.dbc != nil {
		s.reg.Unregister(s.dbc)
	}
	var errs []error
	if err := s.db.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("pebblestore: flush: %w", err))
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("pebblestore: close: %w", err))
	}
	if err := s.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("pebblestore: unlock: %w", err))
	}
	s.log.Debug("store closed")
	return errors.Join(errs...)
}

// Dir is the directory the store lives in.
func (s *Store) Dir() string { return s.dir }

func validGranularity(g store.Granularity) error {
	switch g {
	case store.Minute, store.Hour, store.Day:
		return nil
	}
	return fmt.Errorf("pebblestore: unknown granularity %d", g)
}

// commit applies b durably.
func (s *Store) commit(b *pebble.Batch) error {
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: commit: %w", err)
	}
	return nil
}

// WriteRows upserts full-state rows in one durable batch.
func (s *Store) WriteRows(ctx context.Context, rows []store.Row) (err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpWriteRows, true, start, err, false) }()
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	for i := range rows {
		if err := validGranularity(rows[i].Granularity); err != nil {
			return err
		}
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()

	b := s.db.NewBatch()
	defer b.Close()
	var key, val []byte
	for i := range rows {
		key = rowKey(key[:0], &rows[i].RowKey)
		val = appendRowValue(val[:0], &rows[i])
		if err := b.Set(key, val, nil); err != nil {
			return fmt.Errorf("pebblestore: batch: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.commit(b); err != nil {
		return err
	}
	s.m.RowsWritten.Add(float64(len(rows)))
	s.watchers.Notify(rows)
	return nil
}

// WatchRows calls fn with the rows of every later successful WriteRows, after they are
// durable and visible to readers, on the writer's goroutine: fn must be quick and must not
// keep or modify the rows. It lets a reader in the same process drop what it derived from
// rows that changed (the query service's cache of past buckets). stop ends the watch.
func (s *Store) WatchRows(fn func([]store.Row)) (stop func()) {
	return s.watchers.Add(fn)
}

// GetRows returns the stored rows for keys; missing keys are absent.
func (s *Store) GetRows(ctx context.Context, keys []store.RowKey) (_ []store.Row, err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpGetRows, false, start, err, false) }()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()

	out := make([]store.Row, 0, len(keys))
	seen := make(map[store.RowKey]struct{}, len(keys))
	var key []byte
	for i, k := range keys {
		if i%checkEvery == checkEvery-1 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		key = rowKey(key[:0], &k)
		v, closer, err := s.db.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pebblestore: get row: %w", err)
		}
		r := store.Row{RowKey: k}
		err = decodeRowValue(v, &r)
		closer.Close()
		if err != nil {
			return nil, fmt.Errorf("%w (row %+v)", err, k)
		}
		out = append(out, r)
	}
	s.m.RowsRead.Add(float64(len(out)))
	return out, nil
}

// ScanRows calls fn for every row in r, in (bucket, value, shard) order: one iterator over
// the (site, granularity, dimension) prefix, bounded by the bucket range. With r.Values it
// seeks from one wanted value to the next inside each bucket instead of reading the others.
// fn may call back into the store.
func (s *Store) ScanRows(ctx context.Context, r store.RowRange, fn func(store.Row) error) (err error) {
	return s.scanRows(ctx, r, false, func(row *store.Row) error { return fn(*row) })
}

// VisitRows is ScanRows without copies: fn gets a row whose Value and Visitors point into
// the iterator's buffers. They are valid only until fn returns and must not be modified;
// a caller that keeps them copies them. Queries use it to read many rows without
// allocating for each.
func (s *Store) VisitRows(ctx context.Context, r store.RowRange, fn func(*store.Row) error) (err error) {
	return s.scanRows(ctx, r, true, fn)
}

func (s *Store) scanRows(ctx context.Context, r store.RowRange, lend bool, fn func(*store.Row) error) (err error) {
	start := time.Now()
	callerErr := false
	var read int
	defer func() {
		s.m.RowsRead.Add(float64(read))
		s.m.observe(storemetrics.OpScanRows, false, start, err, callerErr)
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.From >= r.To {
		return nil
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()

	part := rowPartition(nil, r.Site, r.Granularity, r.Dimension)
	lower := appendInt64(slices.Clip(part), r.From)
	upper := appendInt64(slices.Clip(part), r.To)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("pebblestore: scan rows: %w", err)
	}
	defer it.Close()

	var values []string // sorted, distinct
	var want map[string]struct{}
	if len(r.Values) > 0 {
		values = slices.Clone(r.Values)
		slices.Sort(values)
		values = slices.Compact(values)
		want = make(map[string]struct{}, len(values))
		for _, v := range values {
			want[v] = struct{}{}
		}
	}

	var (
		seek []byte
		row  store.Row
		n    int
	)
	row.Site, row.Granularity, row.Dimension = r.Site, r.Granularity, r.Dimension
	for valid := it.First(); valid; {
		if n++; n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		k := it.Key()
		bucket, value, shard, err := readRowClusteringAs(k[len(part):], lend)
		if err != nil {
			return fmt.Errorf("%w %x", err, k)
		}
		if want != nil {
			if _, ok := want[value]; !ok {
				// Jump to the next wanted value in this bucket, or to the next bucket.
				seek = append(seek[:0], part...)
				if i, _ := slices.BinarySearch(values, value); i < len(values) {
					seek = appendString(appendInt64(seek, bucket), values[i])
				} else if bucket < math.MaxInt64 {
					seek = appendInt64(seek, bucket+1)
				} else {
					break
				}
				valid = it.SeekGE(seek)
				continue
			}
		}
		row.Bucket, row.Value, row.Shard = bucket, value, shard
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("pebblestore: scan rows: %w", err)
		}
		if err := decodeRowValueAs(v, &row, lend); err != nil {
			return fmt.Errorf("%w (row %+v)", err, row.RowKey)
		}
		read++
		if err := fn(&row); err != nil {
			callerErr = true
			return err
		}
		valid = it.Next()
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("pebblestore: scan rows: %w", err)
	}
	return nil
}

// WriteEvents upserts events in one durable batch. An event's key is
// (site, day, shard, time, offset) with day and time taken from its Time, which the bus
// event fixes: writing the same (site, shard, offset) again overwrites it.
func (s *Store) WriteEvents(ctx context.Context, evs []store.StoredEvent) (err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpWriteEvents, true, start, err, false) }()
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(evs) == 0 {
		return nil
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()

	b := s.db.NewBatch()
	defer b.Close()
	var key, val []byte
	for i := range evs {
		key = eventKey(key[:0], &evs[i])
		val = appendEventValue(val[:0], &evs[i])
		if err := b.Set(key, val, nil); err != nil {
			return fmt.Errorf("pebblestore: batch: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.commit(b); err != nil {
		return err
	}
	s.m.EventsWritten.Add(float64(len(evs)))
	return nil
}

// ScanEvents calls fn once for each event of r.Site with r.From <= Time < r.To, ordered by
// (time, shard, offset): one iterator reads the range straight through. fn may call back
// into the store.
func (s *Store) ScanEvents(ctx context.Context, r store.EventRange, fn func(store.StoredEvent) error) (err error) {
	start := time.Now()
	callerErr := false
	defer func() { s.m.observe(storemetrics.OpScanEvents, false, start, err, callerErr) }()
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.From >= r.To {
		return nil
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()

	prefix := eventSite(nil, r.Site)
	// An event's day is a function of its time, so (day, time) keys of the range lie
	// between these two bounds and nothing else does.
	lower := appendInt64(appendInt64(slices.Clip(prefix), dayOf(r.From)), r.From)
	upper := appendInt64(appendInt64(slices.Clip(prefix), dayOf(r.To-1)), r.To)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("pebblestore: scan events: %w", err)
	}
	defer it.Close()

	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if n++; n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		k := it.Key()
		_, tm, shard, offset, err := readEventClustering(k[len(prefix):])
		if err != nil {
			return fmt.Errorf("%w %x", err, k)
		}
		e := store.StoredEvent{Shard: shard, Offset: offset, Time: tm, Site: r.Site}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("pebblestore: scan events: %w", err)
		}
		if err := decodeEventValue(v, &e); err != nil {
			return fmt.Errorf("%w (event shard %d offset %d)", err, shard, offset)
		}
		s.m.EventsRead.Inc()
		if err := fn(e); err != nil {
			callerErr = true
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("pebblestore: scan events: %w", err)
	}
	return nil
}

// GetMeta returns the value stored under (ns, key).
func (s *Store) GetMeta(ctx context.Context, ns, key string) (_ []byte, _ bool, err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpGetMeta, false, start, err, false) }()
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if err := s.enter(); err != nil {
		return nil, false, err
	}
	defer s.exit()
	return s.getMeta(ns, key)
}

func (s *Store) getMeta(ns, key string) ([]byte, bool, error) {
	v, closer, err := s.db.Get(metaKey(nil, ns, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: get meta: %w", err)
	}
	defer closer.Close()
	out, err := decodeMetaValue(v)
	if err != nil {
		return nil, false, fmt.Errorf("%w (meta %q/%q)", err, ns, key)
	}
	return out, true, nil
}

// PutMeta stores value under (ns, key), durably.
func (s *Store) PutMeta(ctx context.Context, ns, key string, value []byte) (err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpPutMeta, true, start, err, false) }()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if err := s.db.Set(metaKey(nil, ns, key), appendMetaValue(nil, value), pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: put meta: %w", err)
	}
	return nil
}

// PutMetaIfAbsent stores value unless (ns, key) exists, and returns what is stored now.
func (s *Store) PutMetaIfAbsent(ctx context.Context, ns, key string, value []byte) (_ []byte, err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpPutMetaIfAbsent, true, start, err, false) }()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	cur, found, err := s.getMeta(ns, key)
	if err != nil || found {
		return cur, err
	}
	if err := s.db.Set(metaKey(nil, ns, key), appendMetaValue(nil, value), pebble.Sync); err != nil {
		return nil, fmt.Errorf("pebblestore: put meta: %w", err)
	}
	return append([]byte{}, value...), nil
}

// DeleteMeta removes (ns, key), durably; deleting a missing key is not an error.
func (s *Store) DeleteMeta(ctx context.Context, ns, key string) (err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpDeleteMeta, true, start, err, false) }()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if err := s.db.Delete(metaKey(nil, ns, key), pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: delete meta: %w", err)
	}
	return nil
}

// ListMeta calls fn for every key of ns in bytewise key order. fn may call back into the
// store.
func (s *Store) ListMeta(ctx context.Context, ns string, fn func(key string, value []byte) error) (err error) {
	start := time.Now()
	callerErr := false
	defer func() { s.m.observe(storemetrics.OpListMeta, false, start, err, callerErr) }()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	prefix := metaNamespace(nil, ns)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("pebblestore: list meta: %w", err)
	}
	defer it.Close()
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if n++; n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		k := it.Key()
		key, rest, err := readString(k[len(prefix):])
		if err != nil || len(rest) != 0 {
			return fmt.Errorf("%w %x", errCorruptKey, k)
		}
		raw, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("pebblestore: list meta: %w", err)
		}
		v, err := decodeMetaValue(raw)
		if err != nil {
			return fmt.Errorf("%w (meta %q/%q)", err, ns, key)
		}
		if err := fn(key, v); err != nil {
			callerErr = true
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("pebblestore: list meta: %w", err)
	}
	return nil
}

// pebbleLogger routes Pebble's log lines to slog. Pebble's informational lines are debug
// detail for a Glimpse operator.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

// Fatalf is called for unrecoverable states (corruption); Pebble expects it not to return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("fatal store error: "+msg, "action", "the data directory may be damaged; restore it from a backup")
	panic("pebblestore: " + msg)
}

func eventListener(log *slog.Logger, m *metrics) *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			log.Error("store background error", "err", err)
		},
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			log.Error("store data corruption", "info", info.String())
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			log.Warn("store disk is slow", "info", info.String())
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			m.writeStalls.Inc()
			log.Warn("store writes stalled", "reason", info.Reason)
		},
		WriteStallEnd: func() {
			log.Info("store writes resumed")
		},
		LowDiskSpace: func(info pebble.LowDiskSpaceInfo) {
			log.Warn("store disk space is low", "info", info.String())
		},
	}
}
