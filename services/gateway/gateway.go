// Package gateway is the edge of Glimpse: the one address browsers and dashboard users talk
// to. It routes beacons to a collector and API calls to a query service, choosing instances
// through the registry, serves the tracker script and the dashboard, and enforces body limits
// and CORS for the collect endpoint.
//
// Upstreams are found by address: "http://host:port" is proxied over the network, while an
// address with registry.InProcScheme is resolved to a handler in this process (glimpse all),
// so the same routing code serves one process and the fleet.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/services/registry"
)

// Config holds the gateway's settings.
type Config struct {
	MaxEventBytes int64         // body limit of /api/event
	MaxQueryBytes int64         // body limit of /api/v1/*
	EventTimeout  time.Duration // how long a beacon may wait for a collector
	QueryTimeout  time.Duration // how long an API call may wait for a query service
}

// DefaultConfig returns the defaults the flags show.
func DefaultConfig() Config {
	return Config{MaxEventBytes: 16 << 10, MaxQueryBytes: 64 << 10, EventTimeout: 10 * time.Second, QueryTimeout: 30 * time.Second}
}

// RegisterFlags adds the gateway's flags under the "gateway." prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.MaxEventBytes, "gateway.max-event-bytes", c.MaxEventBytes, "largest /api/event body accepted, in bytes (larger gets 413)")
	fs.Int64Var(&c.MaxQueryBytes, "gateway.max-query-bytes", c.MaxQueryBytes, "largest /api/v1/* body accepted, in bytes (larger gets 413)")
	fs.DurationVar(&c.EventTimeout, "gateway.event-timeout", c.EventTimeout, "how long a beacon may wait for a collector before 503")
	fs.DurationVar(&c.QueryTimeout, "gateway.query-timeout", c.QueryTimeout, "how long an API request may wait for a query service before 503")
}

// Deps are what the gateway is wired to.
type Deps struct {
	Registry registry.Registry
	// InProc resolves in-process instance addresses to their handlers (glimpse all).
	InProc map[string]http.Handler
	// Tracker holds glimpse.js; Dashboard the dashboard's static files (index.html at root).
	Tracker   fs.FS
	Dashboard fs.FS
	Log       *slog.Logger
	Metrics   prometheus.Registerer
}

// Gateway routes requests to upstream services.
type Gateway struct {
	cfg  Config
	deps Deps
	mux  chi.Router

	next    atomic.Uint64 // round-robin cursor
	proxies sync.Map      // address → *httputil.ReverseProxy

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// New builds a gateway.
func New(cfg Config, deps Deps) (*Gateway, error) {
	if deps.Registry == nil {
		return nil, errors.New("gateway: a registry is required")
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	g := &Gateway{cfg: cfg, deps: deps}
	g.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "glimpse_gateway_requests_total", Help: "Requests answered by the gateway, by route and status code.",
	}, []string{"route", "code"})
	g.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "glimpse_gateway_request_seconds", Help: "Time to answer a request at the gateway, by route.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
	}, []string{"route"})
	if deps.Metrics != nil {
		for _, c := range []prometheus.Collector{g.requests, g.latency} {
			if err := deps.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("gateway metrics: %w", err)
			}
		}
	}
	g.mux = g.routes()
	return g, nil
}

// Handler serves the gateway's routes.
func (g *Gateway) Handler() http.Handler { return g.mux }

func (g *Gateway) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(requestID)
	event := g.upstream("event", registry.Collector, g.cfg.MaxEventBytes, g.cfg.EventTimeout, "collector")
	r.With(collectCORS).Options("/api/event", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	r.With(collectCORS).Post("/api/event", event.ServeHTTP)
	r.Handle("/api/v1/*", g.upstream("api", registry.Query, g.cfg.MaxQueryBytes, g.cfg.QueryTimeout, "query service"))
	if g.deps.Tracker != nil {
		tracker := http.FileServerFS(g.deps.Tracker)
		r.Get("/js/glimpse.js", g.instrument("tracker", func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=3600")
			w.Header().Set("Access-Control-Allow-Origin", "*")
			req2 := req.Clone(req.Context())
			req2.URL.Path = "/glimpse.js"
			tracker.ServeHTTP(w, req2)
		}))
	}
	if g.deps.Dashboard != nil {
		r.Handle("/*", g.instrument("dashboard", http.FileServerFS(g.deps.Dashboard).ServeHTTP))
	}
	return r
}

// upstream returns the handler that forwards a route to an instance of service.
func (g *Gateway) upstream(route, service string, maxBytes int64, timeout time.Duration, what string) http.Handler {
	return g.instrument(route, func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBytes {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is %d bytes; the limit is %d", r.ContentLength, maxBytes))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBytes)
		insts, err := g.deps.Registry.Instances(r.Context(), service)
		if err != nil || len(insts) == 0 {
			if err != nil {
				g.deps.Log.Warn("registry lookup failed", "service", service, "err", err)
			}
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("no %s is available right now; retry shortly", what))
			return
		}
		inst := insts[g.next.Add(1)%uint64(len(insts))]
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		g.forward(w, r.WithContext(ctx), inst, what)
	})
}

func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, inst registry.Instance, what string) {
	if strings.HasPrefix(inst.Address, registry.InProcScheme) {
		h, ok := g.deps.InProc[inst.Address]
		if !ok {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("%s instance %s is registered at %s, which is not in this process", what, inst.ID, inst.Address))
			return
		}
		h.ServeHTTP(w, r)
		return
	}
	p, err := g.proxy(inst.Address, what)
	if err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	p.ServeHTTP(w, r)
}

func (g *Gateway) proxy(address, what string) (*httputil.ReverseProxy, error) {
	if p, ok := g.proxies.Load(address); ok {
		return p.(*httputil.ReverseProxy), nil
	}
	target, err := url.Parse(address)
	if err != nil || target.Host == "" {
		return nil, fmt.Errorf("%s registered with an unusable address %q", what, address)
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.deps.Log.Warn("upstream failed", "upstream", address, "err", err, "request_id", r.Header.Get(requestIDHeader))
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the %s did not answer; retry shortly", what))
		},
	}
	actual, _ := g.proxies.LoadOrStore(address, p)
	return actual.(*httputil.ReverseProxy), nil
}

// instrument counts and times a route.
func (g *Gateway) instrument(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(sw, r)
		g.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		g.latency.WithLabelValues(route).Observe(time.Since(t0).Seconds())
	}
}

type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wroteHeader {
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// collectCORS lets any site's pages send beacons. sendBeacon with text/plain needs no
// preflight; fetch with application/json does, and gets this answer.
func collectCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		next.ServeHTTP(w, r)
	})
}

const requestIDHeader = "X-Request-Id"

// requestID gives every request an id (or keeps the caller's, if sane) that upstreams log.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(requestIDHeader)
		if id == "" || len(id) > 64 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
			r.Header.Set(requestIDHeader, id)
		}
		w.Header().Set(requestIDHeader, id)
		next.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
