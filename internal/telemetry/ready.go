package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Pinger is implemented by engines that can tell whether they answer: a store, a bus or a
// registry. Ping must be cheap (one small request) and return once ctx ends.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Dependency is one thing a process needs to answer before it reports ready.
type Dependency struct {
	Name string // "store", "bus", "registry": named in /readyz's answer
	Ping func(ctx context.Context) error
}

// Defaults of DependencyProbe.
const (
	DefaultProbeInterval = 2 * time.Second
	DefaultProbeTimeout  = time.Second
)

// DependencyProbe checks its dependencies at most once per Interval, each bounded by
// Timeout, and answers from the last check in between, so that /readyz under any scrape or
// healthcheck rate sends the engines at most one small request per Interval.
type DependencyProbe struct {
	Deps     []Dependency
	Interval time.Duration    // default DefaultProbeInterval
	Timeout  time.Duration    // default DefaultProbeTimeout
	Now      func() time.Time // default time.Now; tests replace it

	mu        sync.Mutex // held during a check, so concurrent callers wait for its answer
	checked   bool
	checkedAt time.Time
	last      error
}

// Check returns nil when every dependency answered at the last check, or an error naming
// each one that did not and why.
func (p *DependencyProbe) Check() error {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultProbeInterval
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.checked && now().Sub(p.checkedAt) < interval {
		return p.last
	}
	p.last = p.checkAll()
	p.checked, p.checkedAt = true, now()
	return p.last
}

func (p *DependencyProbe) checkAll() error {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	errs := make([]error, len(p.Deps))
	var wg sync.WaitGroup
	for i, d := range p.Deps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Ping(ctx); err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					err = fmt.Errorf("no answer within %v", timeout)
				}
				errs[i] = fmt.Errorf("%s: %w", d.Name, err)
			}
		}()
	}
	wg.Wait()
	var failed []string
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return errors.New(strings.Join(failed, "; "))
}

// AllReady combines probes: ready when all are, otherwise the first reason given.
func AllReady(probes ...Probe) Probe {
	return func() error {
		for _, p := range probes {
			if err := p(); err != nil {
				return err
			}
		}
		return nil
	}
}
