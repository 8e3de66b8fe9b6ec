package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/glimpse-analytics/glimpse/services/registry"
)

// upstream is what the gateway keeps about one instance address: its circuit breaker, its
// requests in flight (the bulkhead and the balancer's load signal) and how to reach it.
type upstream struct {
	addr    string
	target  *url.URL     // network instances
	handler http.Handler // in-process instances
	bad     error        // the address cannot be used at all
	// conns are the idle connections to a plain-HTTP instance (see h1Client); nil for
	// HTTPS, which goes through the gateway's http.Transport.
	conns    *connPool
	hostport string

	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	pending  atomic.Int64
	lastSeen atomic.Int64 // unix nanoseconds of the last time the registry listed it
}

// pool holds the upstreams by address. Entries are created on first sight and dropped after
// the registry has not listed them for a while, so breakers survive registry hiccups but
// departed instances do not pile up (nor do their metric series).
type pool struct {
	cfg     Config
	inproc  map[string]http.Handler
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics

	mu        sync.RWMutex
	byAddr    map[string]*upstream
	lastPrune atomic.Int64
}

// How long an address the registry no longer lists keeps its state, and how often that is
// checked.
const (
	upstreamIdle  = 10 * time.Minute
	pruneInterval = time.Minute
)

func newPool(cfg Config, inproc map[string]http.Handler, now func() time.Time, log *slog.Logger, m *metrics) *pool {
	return &pool{cfg: cfg, inproc: inproc, now: now, log: log, metrics: m, byAddr: map[string]*upstream{}}
}

func (p *pool) get(addr string) *upstream {
	p.mu.RLock()
	u := p.byAddr[addr]
	p.mu.RUnlock()
	if u != nil {
		return u
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if u = p.byAddr[addr]; u != nil {
		return u
	}
	u = &upstream{addr: addr}
	if strings.HasPrefix(addr, registry.InProcScheme) {
		if u.handler = p.inproc[addr]; u.handler == nil {
			u.bad = fmt.Errorf("registered at %s, which is not in this process", addr)
		}
	} else if t, err := url.Parse(addr); err != nil || t.Host == "" || (t.Scheme != "http" && t.Scheme != "https") {
		u.bad = fmt.Errorf("registered with an unusable address %q", addr)
	} else {
		u.target = t
		if t.Scheme == "http" {
			u.conns = &connPool{}
			u.hostport = t.Host
			if t.Port() == "" {
				u.hostport = net.JoinHostPort(t.Hostname(), "80")
			}
		}
	}
	u.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](p.breakerSettings(addr))
	p.metrics.breakerState.WithLabelValues(addr).Set(float64(gobreaker.StateClosed))
	p.byAddr[addr] = u
	return u
}

// breakerSettings are the gobreaker settings of one upstream.
func (p *pool) breakerSettings(addr string) gobreaker.Settings {
	b := p.cfg.Breaker
	window := b.Window
	return gobreaker.Settings{
		Name:        addr,
		MaxRequests: uint32(max(b.HalfOpenRequests, 1)),
		// A rolling window of six buckets: old failures fade out gradually instead of all
		// at once at the end of a fixed interval.
		Interval:     window,
		BucketPeriod: window / 6,
		Timeout:      b.OpenTimeout,
		ReadyToTrip:  readyToTrip(b.FailureRatio, uint32(max(b.MinRequests, 1))),
		IsSuccessful: isSuccessful,
		IsExcluded:   isExcluded,
		OnStateChange: func(name string, from, to gobreaker.State) {
			p.metrics.breakerState.WithLabelValues(name).Set(float64(to))
			p.metrics.breakerTransitions.WithLabelValues(name, to.String()).Inc()
			switch to {
			case gobreaker.StateOpen:
				p.log.Warn("circuit breaker opened: upstream is failing, sending its traffic elsewhere", "upstream", name, "from", from.String(), "retry_in", b.OpenTimeout)
			default:
				p.log.Info("circuit breaker changed state", "upstream", name, "from", from.String(), "to", to.String())
			}
		},
	}
}

// readyToTrip opens a breaker once at least minRequests finished in the window and the
// share of failures among them reached ratio. Requests still in flight and excluded ones
// (the client went away) are not part of the volume.
func readyToTrip(ratio float64, minRequests uint32) func(gobreaker.Counts) bool {
	return func(c gobreaker.Counts) bool {
		done := c.TotalSuccesses + c.TotalFailures
		return done >= minRequests && float64(c.TotalFailures) >= ratio*float64(done)
	}
}

// isSuccessful: a request the client abandoned says nothing about the upstream, so it is
// never a failure. (isExcluded keeps it out of the counts altogether; this is the second
// line should an error slip past it.)
func isSuccessful(err error) bool { return err == nil || errors.Is(err, context.Canceled) }

func isExcluded(err error) bool { return errors.Is(err, context.Canceled) }

// lease is an admitted request on one upstream: it holds a bulkhead slot and the breaker's
// permission, and must be finished exactly once.
type lease struct {
	u    *upstream
	done func(error)
}

func (l *lease) finish(err error) {
	l.done(err)
	l.u.pending.Add(-1)
}

// Why no upstream could be leased.
const (
	reasonNoInstance  = "no_instance"
	reasonBreakerOpen = "breaker_open"
	reasonBulkhead    = "bulkhead"
)

// acquire picks the instance with the fewest requests in flight among those not in skip,
// whose breaker is not open and whose bulkhead has room. Ties go to the first candidate in
// a rotation that starts at start (mod the number of candidates), so equal load is spread
// round robin over the admissible instances only, and an instance next to an open one does
// not inherit its share. It returns the lease, or nil and the reason that ruled out the
// last candidate.
func (p *pool) acquire(insts []registry.Instance, skip []string, start uint64) (*lease, string) {
	now := p.now()
	p.maybePrune(now)
	var buf [8]*upstream
	cands := buf[:0]
	reason := reasonNoInstance
	for _, inst := range insts {
		addr := inst.Address
		if contains(skip, addr) || containsAddr(cands, addr) {
			continue
		}
		u := p.get(addr)
		u.lastSeen.Store(now.UnixNano())
		if u.cb.State() == gobreaker.StateOpen {
			reason = reasonBreakerOpen
			continue
		}
		cands = append(cands, u)
	}
	limit := int64(p.cfg.MaxConcurrentPerUpstream)
	for len(cands) > 0 {
		n := uint64(len(cands))
		best := int(start % n)
		for j := uint64(1); j < n; j++ {
			i := int((start + j) % n)
			if cands[i].pending.Load() < cands[best].pending.Load() {
				best = i
			}
		}
		u := cands[best]
		cands = append(cands[:best], cands[best+1:]...)
		if !u.tryReserve(limit) {
			reason = reasonBulkhead
			continue
		}
		done, err := u.cb.Allow()
		if err != nil {
			// Open since the check above, or half-open with all its probes out.
			u.pending.Add(-1)
			reason = reasonBreakerOpen
			continue
		}
		return &lease{u: u, done: done}, ""
	}
	return nil, reason
}

// tryReserve takes a bulkhead slot if fewer than limit requests are in flight (limit ≤ 0:
// no bound).
func (u *upstream) tryReserve(limit int64) bool {
	for {
		cur := u.pending.Load()
		if limit > 0 && cur >= limit {
			return false
		}
		if u.pending.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

func (p *pool) maybePrune(now time.Time) {
	last := p.lastPrune.Load()
	if now.UnixNano()-last < int64(pruneInterval) || !p.lastPrune.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	cutoff := now.Add(-upstreamIdle).UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, u := range p.byAddr {
		if u.lastSeen.Load() < cutoff && u.pending.Load() == 0 {
			delete(p.byAddr, addr)
			p.metrics.forgetUpstream(addr)
			if u.conns != nil {
				u.conns.close()
			}
		}
	}
}

// closeConns closes the idle connections to every upstream.
func (p *pool) closeConns() {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, u := range p.byAddr {
		if u.conns != nil {
			u.conns.close()
		}
	}
}

// state returns the breaker state of addr, for tests and introspection.
func (p *pool) state(addr string) (gobreaker.State, bool) {
	p.mu.RLock()
	u := p.byAddr[addr]
	p.mu.RUnlock()
	if u == nil {
		return gobreaker.StateClosed, false
	}
	return u.cb.State(), true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func containsAddr(list []*upstream, addr string) bool {
	for _, u := range list {
		if u.addr == addr {
			return true
		}
	}
	return false
}
