package store

import "sync"

// RowWatchers is the list of callbacks an in-process store calls after each successful
// WriteRows. It lets a reader in the same process drop what it derived from rows that
// changed (the query service's cache of past buckets). The zero value is ready to use.
type RowWatchers struct {
	mu  sync.RWMutex
	fns map[*rowWatcher]struct{}
}

type rowWatcher struct{ fn func([]Row) }

// Add registers fn; stop removes it again.
func (ws *RowWatchers) Add(fn func([]Row)) (stop func()) {
	w := &rowWatcher{fn: fn}
	ws.mu.Lock()
	if ws.fns == nil {
		ws.fns = map[*rowWatcher]struct{}{}
	}
	ws.fns[w] = struct{}{}
	ws.mu.Unlock()
	return func() {
		ws.mu.Lock()
		delete(ws.fns, w)
		ws.mu.Unlock()
	}
}

// Notify calls every registered fn with rows, on the caller's goroutine.
func (ws *RowWatchers) Notify(rows []Row) {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	for w := range ws.fns {
		w.fn(rows)
	}
}
