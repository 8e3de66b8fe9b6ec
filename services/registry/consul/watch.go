package consul

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/glimpse-analytics/glimpse/services/registry"
)

// Pacing of a watch: at most one query per minQueryGap (Consul asks clients to rate-limit
// blocking loops), and a growing pause between failed queries.
const (
	minQueryGap = 50 * time.Millisecond
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 5 * time.Second
)

// watch keeps the passing instances of one service.
type watch struct {
	service string
	ready   chan struct{} // closed once the first query answered or failed
	once    sync.Once

	mu     sync.RWMutex
	insts  []registry.Instance
	filled bool  // at least one answer came from Consul
	err    error // the last failure, reported while nothing was ever filled
}

// watchFor returns the watch of service, starting it on first use.
func (r *Registry) watchFor(service string) (*watch, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil {
		return nil, errClosed
	}
	if w, ok := r.watches[service]; ok {
		return w, nil
	}
	w := &watch{service: service, ready: make(chan struct{})}
	r.watches[service] = w
	r.wg.Add(1)
	go r.run(w)
	return w, nil
}

func (w *watch) snapshot() ([]registry.Instance, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.filled {
		return nil, w.err
	}
	if len(w.insts) == 0 {
		return nil, nil
	}
	out := make([]registry.Instance, len(w.insts))
	copy(out, w.insts)
	return out, nil
}

func (w *watch) set(insts []registry.Instance) {
	w.mu.Lock()
	w.insts, w.filled, w.err = insts, true, nil
	w.mu.Unlock()
	w.once.Do(func() { close(w.ready) })
}

func (w *watch) fail(err error) {
	w.mu.Lock()
	if !w.filled {
		w.err = err
	}
	w.mu.Unlock()
	w.once.Do(func() { close(w.ready) })
}

// run is the blocking-query loop of one watch.
func (r *Registry) run(w *watch) {
	defer r.wg.Done()
	var index uint64
	backoff := minBackoff
	gauge := r.m.instances.WithLabelValues(w.service)
	for {
		started := time.Now()
		// A blocking query returns after WatchWait plus up to 1/16 of it (Consul's jitter);
		// anything longer is a connection that died silently.
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.WatchWait+r.cfg.WatchWait/16+r.cfg.RequestTimeout)
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: r.cfg.WatchWait}).WithContext(ctx)
		entries, meta, err := r.client.Health().Service(w.service, "", true, q)
		cancel()
		if r.ctx.Err() != nil {
			return
		}
		if err != nil {
			r.observe(err)
			w.fail(fmt.Errorf("consul: looking up %q at %s: %w", w.service, r.cfg.Address, err))
			if !sleep(r.ctx, jitter(backoff)) {
				return
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		backoff = minBackoff
		r.observe(nil)
		switch {
		case meta.LastIndex < index:
			// Consul's state went back in time: the agent or the cluster was restarted or
			// restored. Start over, and check that our registrations survived.
			index = 0
			r.triggerReconcile()
		case meta.LastIndex == 0:
			index = 1
		default:
			index = meta.LastIndex
		}
		insts := make([]registry.Instance, 0, len(entries))
		for _, e := range entries {
			if e.Service != nil {
				insts = append(insts, toInstance(e))
			}
		}
		sortInstances(insts)
		w.set(insts)
		gauge.Set(float64(len(insts)))
		if !sleep(r.ctx, minQueryGap-time.Since(started)) {
			return
		}
	}
}

// toInstance turns a health entry into an Instance, restoring the address as registered.
func toInstance(e *api.ServiceEntry) registry.Instance {
	s := e.Service
	var meta map[string]string
	addr := ""
	for k, v := range s.Meta {
		if k == MetaAddress {
			addr = v
			continue
		}
		if meta == nil {
			meta = make(map[string]string, len(s.Meta))
		}
		meta[k] = v
	}
	if addr == "" {
		// Registered by something else: Consul only knows host and port.
		host := s.Address
		if host == "" && e.Node != nil {
			host = e.Node.Address
		}
		addr = "http://" + net.JoinHostPort(host, strconv.Itoa(s.Port))
	}
	return registry.Instance{ID: s.ID, Service: s.Service, Address: addr, Meta: meta}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
