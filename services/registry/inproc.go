package registry

import (
	"context"
	"sort"
	"sync"
)

// InProc is a Registry held in memory, for `glimpse all` and tests.
type InProc struct {
	mu        sync.RWMutex
	instances map[string]Instance // by ID
}

// NewInProc returns an empty in-process registry.
func NewInProc() *InProc { return &InProc{instances: map[string]Instance{}} }

func (r *InProc) Register(_ context.Context, inst Instance) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.instances[inst.ID] = inst
	return nil
}

func (r *InProc) Deregister(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.instances[id]; !ok {
		return ErrNotFound
	}
	delete(r.instances, id)
	return nil
}

func (r *InProc) Instances(_ context.Context, service string) ([]Instance, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Instance
	for _, inst := range r.instances {
		if inst.Service == service {
			out = append(out, inst)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (r *InProc) Close() error { return nil }
