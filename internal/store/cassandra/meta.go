package cassandra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocql/gocql"

	"github.com/glimpse-analytics/glimpse/internal/store/storemetrics"
)

const (
	getMetaStmt    = `SELECT value FROM meta WHERE namespace = ? AND key = ?`
	putMetaStmt    = `INSERT INTO meta (namespace, key, value) VALUES (?, ?, ?)`
	putMetaIfStmt  = `INSERT INTO meta (namespace, key, value) VALUES (?, ?, ?) IF NOT EXISTS`
	deleteMetaStmt = `DELETE FROM meta WHERE namespace = ? AND key = ?`
	listMetaStmt   = `SELECT key, value FROM meta WHERE namespace = ?`
)

// GetMeta reads one key. An empty value is found with zero length.
func (s *Store) GetMeta(ctx context.Context, ns, key string) (_ []byte, _ bool, err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpGetMeta, false, start, err, false) }()
	if err := s.begin(ctx); err != nil {
		return nil, false, err
	}
	defer s.exit()
	if checkNamespace(ns, key) != nil {
		return nil, false, nil // cannot be stored, so it is not
	}
	if err := acquire(ctx, s.readSem); err != nil {
		return nil, false, err
	}
	defer release(s.readSem)
	var v []byte
	err = s.query(ctx, getMetaStmt, ns, key).Scan(&v)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrapErr(storemetrics.OpGetMeta, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// PutMeta stores a value, replacing any.
func (s *Store) PutMeta(ctx context.Context, ns, key string, value []byte) (err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpPutMeta, true, start, err, false) }()
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.exit()
	if err := checkNamespace(ns, key); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	return wrapErr(storemetrics.OpPutMeta, s.writeOne(ctx, putMetaStmt, ns, key, value))
}

// DeleteMeta removes a key; a missing key is not an error.
func (s *Store) DeleteMeta(ctx context.Context, ns, key string) (err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpDeleteMeta, true, start, err, false) }()
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.exit()
	if checkNamespace(ns, key) != nil {
		return nil
	}
	return wrapErr(storemetrics.OpDeleteMeta, s.writeOne(ctx, deleteMetaStmt, ns, key))
}

// writeOne runs one write with a fresh timestamp from the store's clock.
func (s *Store) writeOne(ctx context.Context, stmt string, args ...any) error {
	if err := acquire(ctx, s.writeSem); err != nil {
		return err
	}
	defer release(s.writeSem)
	return s.query(ctx, stmt, args...).WithTimestamp(s.clock.next()).Exec()
}

// PutMetaIfAbsent stores value unless key exists, with a lightweight transaction (INSERT
// ... IF NOT EXISTS at the serial consistency), and returns what is stored now: value when
// it was applied, the existing value otherwise. Concurrent callers all get the one value
// that won. A retry after a timeout is safe: it reports whatever is stored.
//
// Mixing it with PutMeta/DeleteMeta on the same key relies on the clocks of the writing
// process and of the coordinators agreeing to within the time between those calls (LWTs
// are timestamped by Paxos ballots, plain writes by the client).
func (s *Store) PutMetaIfAbsent(ctx context.Context, ns, key string, value []byte) (_ []byte, err error) {
	start := time.Now()
	defer func() { s.m.observe(storemetrics.OpPutMetaIfAbsent, true, start, err, false) }()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	if err := checkNamespace(ns, key); err != nil {
		return nil, err
	}
	if value == nil {
		value = []byte{}
	}
	if err := acquire(ctx, s.writeSem); err != nil {
		return nil, err
	}
	defer release(s.writeSem)
	existing := map[string]any{}
	applied, err := s.query(ctx, putMetaIfStmt, ns, key, value).MapScanCAS(existing)
	if err != nil {
		return nil, wrapErr(storemetrics.OpPutMetaIfAbsent, err)
	}
	if applied {
		return bytes.Clone(value), nil
	}
	raw, present := existing["value"]
	v, ok := raw.([]byte)
	if !present || (!ok && raw != nil) {
		return nil, fmt.Errorf("cassandra %s: unexpected answer %v to IF NOT EXISTS", storemetrics.OpPutMetaIfAbsent, existing)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// ListMeta calls fn for every key of ns in key order (bytewise, as Cassandra orders text).
func (s *Store) ListMeta(ctx context.Context, ns string, fn func(key string, value []byte) error) (err error) {
	start := time.Now()
	callerErr := false
	defer func() { s.m.observe(storemetrics.OpListMeta, false, start, err, callerErr) }()
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.exit()
	if checkNamespace(ns, "") != nil {
		return nil
	}
	type kv struct {
		key   string
		value []byte
	}
	callerErr, err = scanOrdered(ctx, s, []partScan{{stmt: listMetaStmt, args: []any{ns}}},
		func(sc gocql.Scanner) (kv, error) {
			var it kv
			err := sc.Scan(&it.key, &it.value)
			if it.value == nil {
				it.value = []byte{}
			}
			return it, err
		},
		func(it kv) error { return fn(it.key, it.value) })
	if err != nil && !callerErr {
		return wrapErr(storemetrics.OpListMeta, err)
	}
	return err
}
