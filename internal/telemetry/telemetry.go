// Package telemetry holds what every service shares for being observed: the logger, the
// Prometheus registry and the health endpoints.
package telemetry

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewLogger returns a slog logger writing to w. format is "text" (one process, a person
// reading) or "json" (the fleet, a log pipeline reading); level is debug|info|warn|error.
// Records logged with a context that carries a request id (see WithRequestID) get a
// request_id attribute.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(contextHandler{slog.NewTextHandler(w, opts)}), nil
	case "json":
		return slog.New(contextHandler{slog.NewJSONHandler(w, opts)}), nil
	}
	return nil, fmt.Errorf("log format %q: use text or json", format)
}

// NewRegistry returns a Prometheus registry with the Go runtime and process collectors.
// Each process has its own registry (not the global one) so tests can run many services.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Probe answers /readyz: nil when ready, or the reason it is not.
type Probe func() error

// Mount adds /healthz (the process is alive), /readyz (every dependency answers) and
// /metrics to mux.
func Mount(mux interface {
	Handle(pattern string, h http.Handler)
}, reg *prometheus.Registry, ready Probe) {
	mux.Handle("/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	}))
	mux.Handle("/readyz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready: "+err.Error()+"\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	}))
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// RegisterAll registers every collector in cs on r, or none: on an error the ones already
// registered are taken back. A collector registered before gives the error `already`, which
// names what was opened twice on one registry.
func RegisterAll(r prometheus.Registerer, already string, cs ...prometheus.Collector) error {
	for i, c := range cs {
		if err := r.Register(c); err != nil {
			for _, d := range cs[:i] {
				r.Unregister(d)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return errors.New(already)
			}
			return err
		}
	}
	return nil
}
