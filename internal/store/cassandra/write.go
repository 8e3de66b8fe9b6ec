package cassandra

import (
	"context"

	"github.com/gocql/gocql"
)

// write is one INSERT or UPDATE with its arguments and estimated size in bytes.
type write struct {
	stmt string
	args []any
	size int
}

// chunk cuts the writes of one partition into batches of at most maxRows writes and about
// maxBytes bytes (a single write larger than maxBytes is a batch of its own).
func chunk(ws []write, maxRows, maxBytes int) [][]write {
	var out [][]write
	start, bytes := 0, 0
	for i, w := range ws {
		if i > start && (i-start >= maxRows || bytes+w.size > maxBytes) {
			out = append(out, ws[start:i])
			start, bytes = i, 0
		}
		bytes += w.size
	}
	if start < len(ws) {
		out = append(out, ws[start:])
	}
	return out
}

// writeGroups writes groups, each the writes of one partition, as unlogged batches that
// stay inside their partition. Batches run concurrently, at most MaxConcurrentWrites of the
// store at a time, all with timestamp ts. It returns the first error; the others are
// cancelled.
func (s *Store) writeGroups(ctx context.Context, groups [][]write, ts int64) error {
	g := newErrGroup(ctx)
loop:
	for _, grp := range groups {
		for _, b := range chunk(grp, s.cfg.MaxBatchRows, s.cfg.MaxBatchBytes) {
			if !g.goSem(s.writeSem, func(ctx context.Context) error { return s.execWrites(ctx, b, ts) }) {
				break loop
			}
		}
	}
	return firstErr(ctx, g.wait())
}

// execWrites sends ws (all of one partition) as one statement or one unlogged batch.
// gocql routes it to a replica of that partition (token-aware policy).
func (s *Store) execWrites(ctx context.Context, ws []write, ts int64) error {
	if len(ws) == 1 {
		return s.query(ctx, ws[0].stmt, ws[0].args...).WithTimestamp(ts).Exec()
	}
	b := s.sess.NewBatch(gocql.UnloggedBatch).WithContext(ctx).WithTimestamp(ts)
	b.SetConsistency(s.cons)
	b.RetryPolicy(s.retrier(ctx))
	b.Entries = make([]gocql.BatchEntry, 0, len(ws))
	for _, w := range ws {
		b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: w.stmt, Args: w.args, Idempotent: true})
	}
	return s.sess.ExecuteBatch(b)
}
