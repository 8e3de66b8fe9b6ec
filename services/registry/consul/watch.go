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

func (w *watch) isFilled() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.filled
}

// current is the cached set as it is (callers must not change it).
func (w *watch) current() []registry.Instance {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.insts
}

// keepKnown returns listed plus the instances of known that it lacks (matched by ID).
func keepKnown(known, listed []registry.Instance) []registry.Instance {
	out := listed
	for _, k := range known {
		found := false
		for _, l := range listed {
			if l.ID == k.ID {
				found = true
				break
			}
		}
		if !found {
			out = append(out, k)
		}
	}
	return out
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

// settleTime is how long a watch keeps the instances it knew when Consul answers again
// after an outage or a reset: long enough for every instance to notice the agent (one check
// interval), register again and pass its first check (one more), with one to spare. It
// assumes the instances use this process's consul.check-interval.
func (r *Registry) settleTime() time.Duration { return 3 * r.cfg.CheckInterval }

// run is the blocking-query loop of one watch.
//
// When Consul answers again after failed queries, or its state went back in time, the
// answer may lack instances only because they have not registered again yet (a restarted
// dev agent forgets everything; a re-registered instance is critical until its first check
// passes). For settleTime the watch then adds no-longer-listed instances it knew to what
// Consul lists, so a gateway does not go from "every instance" to "none" while the fleet
// is healthy. After that, Consul's answer is taken as it is.
func (r *Registry) run(w *watch) {
	defer r.wg.Done()
	var index uint64
	backoff := minBackoff
	gauge := r.m.instances.WithLabelValues(w.service)
	failed := false // the last query got no answer
	var settleUntil time.Time
	for {
		started := time.Now()
		wait := r.cfg.WatchWait
		if d := time.Until(settleUntil); d > 0 && d < wait {
			wait = d // answer again when the settling ends, to drop whoever did not return
		}
		// A blocking query returns after its wait plus up to 1/16 of it (Consul's jitter);
		// anything longer is a connection that died silently.
		ctx, cancel := context.WithTimeout(r.ctx, wait+wait/16+r.cfg.RequestTimeout)
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: wait}).WithContext(ctx)
		entries, meta, err := r.client.Health().Service(w.service, "", true, q)
		cancel()
		if r.ctx.Err() != nil {
			return
		}
		if err != nil {
			failed = true
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
		reset := meta.LastIndex < index
		switch {
		case reset:
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
		if (reset || failed) && w.isFilled() {
			settleUntil = time.Now().Add(r.settleTime())
			r.log.Info("consul: answering again after an outage or a restart; instances it no longer lists are kept while they register again",
				"service", w.service, "keep_for", r.settleTime(), "listed", len(insts))
		}
		failed = false
		if time.Now().Before(settleUntil) {
			insts = keepKnown(w.current(), insts)
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
