// Package lifecycle starts, runs and stops the services of one process in order, the way
// Loki's and Mimir's module managers do: dependencies start first and stop last, one failure
// stops the whole process cleanly, and readiness reflects every service.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Service is one room of the fleet (collector, processor, ...) or an engine it needs.
type Service interface {
	Name() string
	// Start prepares the service and returns once it can do its work.
	Start(ctx context.Context) error
	// Run does the work until ctx is cancelled, then returns nil; any other return stops
	// the process.
	Run(ctx context.Context) error
	// Stop drains in-flight work, flushes and closes. ctx bounds how long it may take.
	Stop(ctx context.Context) error
}

// Funcs adapts plain functions to a Service; nil functions do nothing.
type Funcs struct {
	ServiceName string
	StartFn     func(ctx context.Context) error
	RunFn       func(ctx context.Context) error
	StopFn      func(ctx context.Context) error
}

func (f Funcs) Name() string { return f.ServiceName }
func (f Funcs) Start(ctx context.Context) error {
	if f.StartFn == nil {
		return nil
	}
	return f.StartFn(ctx)
}
func (f Funcs) Run(ctx context.Context) error {
	if f.RunFn == nil {
		<-ctx.Done()
		return nil
	}
	return f.RunFn(ctx)
}
func (f Funcs) Stop(ctx context.Context) error {
	if f.StopFn == nil {
		return nil
	}
	return f.StopFn(ctx)
}

// Manager runs services in dependency order: the order they are given.
type Manager struct {
	Log         *slog.Logger
	StopTimeout time.Duration // per service; default 30s

	ready atomic.Bool
}

// Ready reports whether every service has started and none has begun stopping.
func (m *Manager) Ready() bool { return m.ready.Load() }

// Run starts services in order, runs them until ctx is done or one of them fails, then
// stops them in reverse order. It returns the first failure, or nil on a clean shutdown.
func (m *Manager) Run(ctx context.Context, services ...Service) error {
	log := m.Log
	if log == nil {
		log = slog.Default()
	}
	stopTimeout := m.StopTimeout
	if stopTimeout == 0 {
		stopTimeout = 30 * time.Second
	}
	stopAll := func(started []Service) error {
		m.ready.Store(false)
		var errs []error
		for i := len(started) - 1; i >= 0; i-- {
			s := started[i]
			sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			t0 := time.Now()
			err := s.Stop(sctx)
			cancel()
			if err != nil {
				log.Error("service did not stop cleanly", "service", s.Name(), "err", err)
				errs = append(errs, fmt.Errorf("stop %s: %w", s.Name(), err))
			} else {
				log.Info("service stopped", "service", s.Name(), "took", time.Since(t0).Round(time.Millisecond))
			}
		}
		return errors.Join(errs...)
	}

	var started []Service
	for _, s := range services {
		t0 := time.Now()
		if err := s.Start(ctx); err != nil {
			log.Error("service failed to start", "service", s.Name(), "err", err)
			return errors.Join(fmt.Errorf("start %s: %w", s.Name(), err), stopAll(started))
		}
		log.Info("service started", "service", s.Name(), "took", time.Since(t0).Round(time.Millisecond))
		started = append(started, s)
	}
	m.ready.Store(true)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		failOnce sync.Once
		failure  error
	)
	for _, s := range started {
		wg.Add(1)
		go func(s Service) {
			defer wg.Done()
			err := s.Run(runCtx)
			if runCtx.Err() == nil {
				if err == nil {
					err = errors.New("stopped unexpectedly")
				}
				failOnce.Do(func() {
					failure = fmt.Errorf("%s: %w", s.Name(), err)
					log.Error("service failed; shutting down", "service", s.Name(), "err", err)
				})
				cancel()
			} else if err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("service returned an error while shutting down", "service", s.Name(), "err", err)
			}
		}(s)
	}
	<-runCtx.Done()
	if failure == nil {
		log.Info("shutting down")
	}
	m.ready.Store(false)
	wg.Wait()
	return errors.Join(failure, stopAll(started))
}
