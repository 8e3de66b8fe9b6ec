package cassandra

import (
	"bytes"
	"context"
	"sync"

	"github.com/gocql/gocql"
)

// partScan is the read of one partition: a SELECT and its arguments. fallback, when set,
// is the statement to use instead if the cluster refuses this one's ALLOW FILTERING.
type partScan struct {
	stmt     string
	args     []any
	fallback *partScan
}

// decoder reads the current row of sc.
type decoder[T any] func(sc gocql.Scanner) (T, error)

// page is one page of a partition read, or the error that ended it.
type page[T any] struct {
	items []T
	err   error
}

// scanAhead is how many partitions a scan reads ahead of the one it delivers.
const scanAhead = 8

// scanOrdered reads parts and calls fn for their rows, partition after partition and each
// in the order Cassandra returns it (clustering order). Up to scanAhead partitions are
// fetched concurrently, page by page, each page holding a slot of the read semaphore only
// while it is fetched; fn runs on the caller's goroutine and may call into the store.
// callerErr reports that err came from fn.
func scanOrdered[T any](ctx context.Context, s *Store, parts []partScan, decode decoder[T], fn func(T) error) (callerErr bool, err error) {
	if len(parts) == 0 {
		return false, nil
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	window := min(scanAhead, s.cfg.MaxConcurrentReads)
	chans := make([]chan page[T], len(parts))
	started := 0
	for i := range parts {
		for started < len(parts) && started < i+window {
			ch := make(chan page[T], 2)
			chans[started] = ch
			p := parts[started]
			started++
			wg.Add(1)
			go func() {
				defer wg.Done()
				readPartition(sctx, s, p, decode, ch)
			}()
		}
		for pg := range chans[i] {
			if pg.err != nil {
				return false, firstErr(ctx, pg.err)
			}
			for _, it := range pg.items {
				if err := ctx.Err(); err != nil {
					return false, err
				}
				if err := fn(it); err != nil {
					return true, err
				}
			}
		}
		chans[i] = nil
		// A reader that stopped because the context ended closes its channel early.
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
	return false, nil
}

// collect reads parts completely and returns their rows in order.
func collect[T any](ctx context.Context, s *Store, parts []partScan, decode decoder[T]) ([]T, error) {
	var out []T
	_, err := scanOrdered(ctx, s, parts, decode, func(it T) error {
		out = append(out, it)
		return nil
	})
	return out, err
}

// readPartition sends the pages of one partition to out and closes it.
func readPartition[T any](ctx context.Context, s *Store, p partScan, decode decoder[T], out chan<- page[T]) {
	defer close(out)
	send := func(pg page[T]) bool {
		select {
		case out <- pg:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var state []byte
	first := true
	for {
		items, next, err := fetchPage(ctx, s, p, state, decode)
		if err != nil && first && p.fallback != nil && isFilteringRefused(err) {
			if !s.noFiltering.Swap(true) {
				s.log.Warn("the cluster refuses ALLOW FILTERING (guardrail allow_filtering_enabled); value filters of rollup scans now run in glimpse", "err", err)
			}
			p = *p.fallback
			continue
		}
		if err != nil {
			send(page[T]{err: err})
			return
		}
		first = false
		if len(items) > 0 && !send(page[T]{items: items}) {
			return
		}
		if len(next) == 0 {
			return
		}
		state = next
	}
}

// fetchPage reads one page of p starting at state, and returns the state of the next page
// (empty after the last).
func fetchPage[T any](ctx context.Context, s *Store, p partScan, state []byte, decode decoder[T]) ([]T, []byte, error) {
	if err := acquire(ctx, s.readSem); err != nil {
		return nil, nil, err
	}
	defer release(s.readSem)
	iter := s.query(ctx, p.stmt, p.args...).PageSize(s.cfg.PageSize).PageState(state).Iter()
	next := bytes.Clone(iter.PageState())
	sc := iter.Scanner()
	items := make([]T, 0, iter.NumRows())
	for sc.Next() {
		it, err := decode(sc)
		if err != nil {
			_ = sc.Err()
			return nil, nil, err
		}
		items = append(items, it)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	return items, next, nil
}
