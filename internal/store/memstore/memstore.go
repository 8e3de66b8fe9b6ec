// Package memstore is an in-memory store.Store for unit tests and for running Glimpse
// without a disk. It follows the same contract as the Pebble and Cassandra engines (the
// storetest suite runs against all of them) but keeps nothing across restarts.
package memstore

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// ErrClosed is returned by every method after Close. It wraps store.ErrUnavailable.
var ErrClosed = fmt.Errorf("%w: memstore is closed", store.ErrUnavailable)

// partition is the (site, granularity, dimension) part of a rollup key.
type partition struct {
	site string
	gran store.Granularity
	dim  string
}

// clustering is the (bucket, value, shard) part of a rollup key.
type clustering struct {
	bucket int64
	value  string
	shard  int32
}

func compareClustering(a, b clustering) int {
	if c := cmp.Compare(a.bucket, b.bucket); c != 0 {
		return c
	}
	if c := cmp.Compare(a.value, b.value); c != 0 {
		return c
	}
	return cmp.Compare(a.shard, b.shard)
}

type eventKey struct {
	shard  int32
	offset int64
}

// Store is a concurrency-safe in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	watchers store.RowWatchers

	mu     sync.RWMutex
	closed bool
	rows   map[partition]map[clustering]store.Row
	events map[string]map[eventKey]store.StoredEvent // by site
	meta   map[string]map[string][]byte              // by namespace
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		rows:   make(map[partition]map[clustering]store.Row),
		events: make(map[string]map[eventKey]store.StoredEvent),
		meta:   make(map[string]map[string][]byte),
	}
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return bytes.Clone(b)
}

func cloneRow(r store.Row) store.Row {
	r.Visitors = clone(r.Visitors)
	return r
}

func cloneEvent(e store.StoredEvent) store.StoredEvent {
	e.Payload = clone(e.Payload)
	return e
}

func validGranularity(g store.Granularity) error {
	switch g {
	case store.Minute, store.Hour, store.Day:
		return nil
	}
	return fmt.Errorf("memstore: unknown granularity %d", g)
}

// WriteRows upserts full-state rows.
func (s *Store) WriteRows(ctx context.Context, rows []store.Row) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range rows {
		if err := validGranularity(rows[i].Granularity); err != nil {
			return err
		}
	}
	// Copy outside the lock: callers may reuse their buffers once WriteRows returns.
	copied := make([]store.Row, len(rows))
	for i, r := range rows {
		copied[i] = cloneRow(r)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	for _, r := range copied {
		p := partition{r.Site, r.Granularity, r.Dimension}
		m := s.rows[p]
		if m == nil {
			m = make(map[clustering]store.Row)
			s.rows[p] = m
		}
		m[clustering{r.Bucket, r.Value, r.Shard}] = r
	}
	s.mu.Unlock()
	s.watchers.Notify(copied)
	return nil
}

// WatchRows calls fn with the rows of every later successful WriteRows, once they are
// visible to readers, on the writer's goroutine: fn must be quick and must not keep or
// modify the rows. stop ends the watch.
func (s *Store) WatchRows(fn func([]store.Row)) (stop func()) {
	return s.watchers.Add(fn)
}

// GetRows returns the stored rows for keys; missing keys are absent.
func (s *Store) GetRows(ctx context.Context, keys []store.RowKey) ([]store.Row, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	out := make([]store.Row, 0, len(keys))
	seen := make(map[store.RowKey]struct{}, len(keys))
	for _, k := range keys {
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		if r, ok := s.rows[partition{k.Site, k.Granularity, k.Dimension}][clustering{k.Bucket, k.Value, k.Shard}]; ok {
			out = append(out, cloneRow(r))
		}
	}
	return out, nil
}

// ScanRows calls fn for every row in r, in (bucket, value, shard) order. The rows are
// collected first, so fn may call back into the store.
func (s *Store) ScanRows(ctx context.Context, r store.RowRange, fn func(store.Row) error) error {
	return s.VisitRows(ctx, r, func(row *store.Row) error { return fn(cloneRow(*row)) })
}

// VisitRows is ScanRows without copies: fn gets a row whose Visitors is the stored slice.
// It is valid only until fn returns and must not be modified. Like ScanRows, the rows are
// collected first, so fn may call back into the store.
func (s *Store) VisitRows(ctx context.Context, r store.RowRange, fn func(*store.Row) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var want map[string]struct{}
	if len(r.Values) > 0 {
		want = make(map[string]struct{}, len(r.Values))
		for _, v := range r.Values {
			want[v] = struct{}{}
		}
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	var rows []store.Row
	for c, row := range s.rows[partition{r.Site, r.Granularity, r.Dimension}] {
		if c.bucket < r.From || c.bucket >= r.To {
			continue
		}
		if want != nil {
			if _, ok := want[c.value]; !ok {
				continue
			}
		}
		rows = append(rows, row) // stored rows are never changed in place: WriteRows replaces them
	}
	s.mu.RUnlock()

	slices.SortFunc(rows, func(a, b store.Row) int {
		return compareClustering(clustering{a.Bucket, a.Value, a.Shard}, clustering{b.Bucket, b.Value, b.Shard})
	})
	for i := range rows {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(&rows[i]); err != nil {
			return err
		}
	}
	return nil
}

// WriteEvents upserts events keyed by (site, shard, offset).
func (s *Store) WriteEvents(ctx context.Context, evs []store.StoredEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	copied := make([]store.StoredEvent, len(evs))
	for i, e := range evs {
		copied[i] = cloneEvent(e)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for _, e := range copied {
		m := s.events[e.Site]
		if m == nil {
			m = make(map[eventKey]store.StoredEvent)
			s.events[e.Site] = m
		}
		m[eventKey{e.Shard, e.Offset}] = e
	}
	return nil
}

// ScanEvents calls fn once for each stored event of r.Site with r.From <= Time < r.To, in
// (time, shard, offset) order. The events are collected first, so fn may call back into
// the store.
func (s *Store) ScanEvents(ctx context.Context, r store.EventRange, fn func(store.StoredEvent) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	var evs []store.StoredEvent
	for _, e := range s.events[r.Site] {
		if e.Time >= r.From && e.Time < r.To {
			evs = append(evs, cloneEvent(e))
		}
	}
	s.mu.RUnlock()

	slices.SortFunc(evs, func(a, b store.StoredEvent) int {
		if c := cmp.Compare(a.Time, b.Time); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Shard, b.Shard); c != 0 {
			return c
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
	for i, e := range evs {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// GetMeta returns the value stored under (ns, key).
func (s *Store) GetMeta(ctx context.Context, ns, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, false, ErrClosed
	}
	v, ok := s.meta[ns][key]
	if !ok {
		return nil, false, nil
	}
	return bytes.Clone(v), true, nil
}

// PutMeta stores value under (ns, key), replacing any previous value.
func (s *Store) PutMeta(ctx context.Context, ns, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.putMetaLocked(ns, key, v)
	return nil
}

func (s *Store) putMetaLocked(ns, key string, v []byte) {
	m := s.meta[ns]
	if m == nil {
		m = make(map[string][]byte)
		s.meta[ns] = m
	}
	m[key] = v
}

// PutMetaIfAbsent stores value unless (ns, key) exists, and returns what is stored now.
func (s *Store) PutMetaIfAbsent(ctx context.Context, ns, key string, value []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if v, ok := s.meta[ns][key]; ok {
		return bytes.Clone(v), nil
	}
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	s.putMetaLocked(ns, key, v)
	return bytes.Clone(v), nil
}

// DeleteMeta removes (ns, key); deleting a missing key is not an error.
func (s *Store) DeleteMeta(ctx context.Context, ns, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if m := s.meta[ns]; m != nil {
		delete(m, key)
		if len(m) == 0 {
			delete(s.meta, ns)
		}
	}
	return nil
}

// ListMeta calls fn for every key of ns in key order (bytewise). The entries are collected
// first, so fn may call back into the store.
func (s *Store) ListMeta(ctx context.Context, ns string, fn func(key string, value []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	type kv struct {
		k string
		v []byte
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	kvs := make([]kv, 0, len(s.meta[ns]))
	for k, v := range s.meta[ns] {
		kvs = append(kvs, kv{k, bytes.Clone(v)})
	}
	s.mu.RUnlock()

	slices.SortFunc(kvs, func(a, b kv) int { return cmp.Compare(a.k, b.k) })
	for _, e := range kvs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

// Close drops the data; later calls return ErrClosed. Closing twice is not an error.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.rows = nil
	s.events = nil
	s.meta = nil
	return nil
}
