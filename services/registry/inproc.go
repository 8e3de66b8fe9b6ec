package registry

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// InProc is a Registry held in memory, for `glimpse all` and tests.
type InProc struct {
	mu        sync.RWMutex
	instances map[string]Instance // by ID
	// byService holds each service's instances sorted by ID. A slice is replaced, never
	// changed, when its service's instances change, so Instances can hand it out without a
	// copy: the gateway asks once per request.
	byService map[string][]Instance
}

// NewInProc returns an empty in-process registry.
func NewInProc() *InProc {
	return &InProc{instances: map[string]Instance{}, byService: map[string][]Instance{}}
}

func (r *InProc) Register(_ context.Context, inst Instance) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, replaced := r.instances[inst.ID]
	r.instances[inst.ID] = inst
	if replaced && old.Service != inst.Service {
		r.rebuildLocked(old.Service)
	}
	r.rebuildLocked(inst.Service)
	return nil
}

func (r *InProc) Deregister(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	inst, ok := r.instances[id]
	if !ok {
		return ErrNotFound
	}
	delete(r.instances, id)
	r.rebuildLocked(inst.Service)
	return nil
}

// rebuildLocked replaces the sorted list of service's instances with a new slice, so that
// slices handed out earlier stay as they were.
func (r *InProc) rebuildLocked(service string) {
	var list []Instance
	for _, inst := range r.instances {
		if inst.Service == service {
			list = append(list, inst)
		}
	}
	if len(list) == 0 {
		delete(r.byService, service)
		return
	}
	slices.SortFunc(list, func(a, b Instance) int { return cmp.Compare(a.ID, b.ID) })
	r.byService[service] = list
}

// Instances returns service's instances ordered by ID. The slice is shared with other
// callers and with the registry: callers must not modify it (nor the Meta maps in it). It
// never changes afterwards; a later Register or Deregister makes a new one.
func (r *InProc) Instances(_ context.Context, service string) ([]Instance, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byService[service], nil
}

func (r *InProc) Close() error { return nil }
