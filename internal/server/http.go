// Package server runs an HTTP listener as a lifecycle service: it binds in Start (so a busy
// port fails the process before anything else runs), serves in Run and drains in-flight
// requests in Stop.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// HTTP is one listening HTTP server.
type HTTP struct {
	ServiceName string
	Addr        string // host:port; port 0 picks a free one (see BoundAddr)
	Handler     http.Handler
	Log         *slog.Logger

	srv *http.Server
	ln  net.Listener
}

func (h *HTTP) Name() string { return h.ServiceName }

// BoundAddr is the address actually listened on, valid after Start.
func (h *HTTP) BoundAddr() string {
	if h.ln == nil {
		return ""
	}
	return h.ln.Addr().String()
}

func (h *HTTP) Start(context.Context) error {
	ln, err := net.Listen("tcp", h.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another process using the port? choose another with --addr or the service's address flag)", h.Addr, err)
	}
	h.ln = ln
	h.srv = &http.Server{
		Handler:           h.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(h.Log.Handler(), slog.LevelWarn),
	}
	h.Log.Info("listening", "service", h.ServiceName, "addr", ln.Addr().String())
	return nil
}

// Run serves until ctx ends. The listener keeps serving after that until Stop drains it, so
// requests arriving while other services stop are still answered.
func (h *HTTP) Run(ctx context.Context) error {
	served := make(chan error, 1)
	go func() { served <- h.srv.Serve(h.ln) }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// Stop stops accepting connections and waits for in-flight requests, bounded by ctx.
func (h *HTTP) Stop(ctx context.Context) error {
	if h.srv == nil {
		return nil
	}
	return h.srv.Shutdown(ctx)
}
