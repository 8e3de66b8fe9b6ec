// Package gateway is the edge of Glimpse: the one address browsers and dashboard users talk
// to. It routes beacons to a collector and API calls to a query service, choosing instances
// through the registry, serves the tracker script and the dashboard, and enforces body limits
// and CORS for the collect endpoint.
//
// Upstreams are found by address: "http://host:port" is proxied over the network, while an
// address with registry.InProcScheme is resolved to a handler in this process (glimpse all),
// so the same routing code serves one process and the fleet.
//
// Between a request and an upstream sit, in order: a per-IP and a per-site token bucket
// (429), a body read in full (so it can be sent again), the balancer (the instance with the
// fewest requests in flight among those whose circuit breaker is not open and whose bulkhead
// has room), and retries on another instance when that is safe (see forward). Every
// instance has its own breaker and bulkhead. docs/adr/0007-gateway-balancing-and-breakers.md
// explains the choices. Nothing here is shared between gateway processes: run as many as
// needed behind a load balancer.
package gateway

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/clientip"
	"github.com/glimpse-analytics/glimpse/internal/server"
	"github.com/glimpse-analytics/glimpse/services/registry"
)

// Config holds the gateway's settings.
type Config struct {
	MaxEventBytes int64         // body limit of /api/event
	MaxQueryBytes int64         // body limit of /api/v1/*
	EventTimeout  time.Duration // how long a beacon may wait for a collector, retries included
	QueryTimeout  time.Duration // how long an API call may wait for a query service, retries included

	// DialTimeout bounds connecting to an upstream; a dial that fails is retried on another
	// instance whatever the request, since nothing reached the upstream.
	DialTimeout time.Duration
	// Retries is how many other instances a request may be sent to after the first (see
	// proxy.go for which requests may be sent again).
	Retries int
	// MaxConcurrentPerUpstream bounds the requests in flight to one instance (bulkhead);
	// 0 means no bound.
	MaxConcurrentPerUpstream int
	// RetryAfter is what a 503 asks the sender to wait.
	RetryAfter time.Duration

	Breaker   BreakerConfig
	RateLimit RateLimitConfig

	// TrustedProxies are the peers whose X-Forwarded-For is believed when finding the
	// client address for rate limits (a load balancer in front of the gateways).
	TrustedProxies clientip.PrefixList
}

// BreakerConfig sets the circuit breaker each upstream instance gets.
type BreakerConfig struct {
	FailureRatio     float64       // share of failed requests in the window that opens the breaker
	MinRequests      int           // finished requests in the window before the ratio counts
	Window           time.Duration // rolling window the ratio is taken over
	OpenTimeout      time.Duration // how long an open breaker rejects before probing
	HalfOpenRequests int           // probes let through when half-open; as many successes close it
}

// RateLimitConfig sets the token buckets. A rate of 0 turns that limit off. The limits are
// per gateway process: N gateways behind a load balancer admit up to N times as much.
type RateLimitConfig struct {
	IPRate         float64 // requests per second per client address (IPv6: per /64), beacons and API
	IPBurst        int
	SiteEventRate  float64 // beacons per second per site
	SiteEventBurst int
	SiteAPIRate    float64 // API requests per second per site
	SiteAPIBurst   int
	MaxKeys        int // buckets each limiter keeps at most
}

// DefaultConfig returns the defaults the flags show.
func DefaultConfig() Config {
	return Config{
		MaxEventBytes: 16 << 10, MaxQueryBytes: 64 << 10, EventTimeout: 10 * time.Second, QueryTimeout: 30 * time.Second,
		DialTimeout:              2 * time.Second,
		Retries:                  2,
		MaxConcurrentPerUpstream: 256,
		RetryAfter:               5 * time.Second,
		Breaker: BreakerConfig{
			FailureRatio: 0.5, MinRequests: 20, Window: 30 * time.Second, OpenTimeout: 10 * time.Second, HalfOpenRequests: 3,
		},
		RateLimit: RateLimitConfig{
			IPRate: 50, IPBurst: 100,
			// Per site a flood guard, not a quota: far above what one site sends, so that a
			// single site (or someone sending in its name) cannot take every collector.
			SiteEventRate: 10000, SiteEventBurst: 20000,
			SiteAPIRate: 50, SiteAPIBurst: 200,
			MaxKeys: 100000,
		},
		TrustedProxies: clientip.Loopback(),
	}
}

// RegisterFlags adds the gateway's flags under the "gateway." prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.MaxEventBytes, "gateway.max-event-bytes", c.MaxEventBytes, "largest /api/event body accepted, in bytes (larger gets 413)")
	fs.Int64Var(&c.MaxQueryBytes, "gateway.max-query-bytes", c.MaxQueryBytes, "largest /api/v1/* body accepted, in bytes (larger gets 413)")
	fs.DurationVar(&c.EventTimeout, "gateway.event-timeout", c.EventTimeout, "how long a beacon may wait for a collector, retries included, before 503")
	fs.DurationVar(&c.QueryTimeout, "gateway.query-timeout", c.QueryTimeout, "how long an API request may wait for a query service, retries included, before 503")
	fs.DurationVar(&c.DialTimeout, "gateway.dial-timeout", c.DialTimeout, "how long connecting to an upstream instance may take (duration); a failed dial is retried on another instance")
	fs.IntVar(&c.Retries, "gateway.retries", c.Retries, "how many other instances a request may be sent to after the first: any request whose connection failed, idempotent ones after other failures (count)")
	fs.IntVar(&c.MaxConcurrentPerUpstream, "gateway.upstream-max-concurrent", c.MaxConcurrentPerUpstream, "requests in flight to one upstream instance at most; more go to other instances or get 503 (count, 0 = no bound)")
	fs.DurationVar(&c.RetryAfter, "gateway.retry-after", c.RetryAfter, "delay suggested in the Retry-After header of a 503 (duration, rounded up to whole seconds)")
	fs.Float64Var(&c.Breaker.FailureRatio, "gateway.breaker.failure-ratio", c.Breaker.FailureRatio, "share of failed requests (5xx, connection errors, timeouts) in the window that opens an instance's circuit breaker (0-1]")
	fs.IntVar(&c.Breaker.MinRequests, "gateway.breaker.min-requests", c.Breaker.MinRequests, "finished requests to an instance within the window before its failure ratio can open the breaker (count)")
	fs.DurationVar(&c.Breaker.Window, "gateway.breaker.window", c.Breaker.Window, "rolling window over which an instance's failure ratio is taken (duration)")
	fs.DurationVar(&c.Breaker.OpenTimeout, "gateway.breaker.open-timeout", c.Breaker.OpenTimeout, "how long an open breaker keeps traffic away from its instance before letting probes through (duration)")
	fs.IntVar(&c.Breaker.HalfOpenRequests, "gateway.breaker.half-open-requests", c.Breaker.HalfOpenRequests, "probe requests let through a half-open breaker; that many successes close it, one failure opens it again (count)")
	fs.Float64Var(&c.RateLimit.IPRate, "gateway.rate-limit.ip", c.RateLimit.IPRate, "requests per second one client address (IPv6: one /64) may send to /api/event and /api/v1/* through this gateway (0 = no limit)")
	fs.IntVar(&c.RateLimit.IPBurst, "gateway.rate-limit.ip-burst", c.RateLimit.IPBurst, "requests one client address may send at once above its rate (count)")
	fs.Float64Var(&c.RateLimit.SiteEventRate, "gateway.rate-limit.site-events", c.RateLimit.SiteEventRate, "beacons per second one site may send through this gateway (0 = no limit)")
	fs.IntVar(&c.RateLimit.SiteEventBurst, "gateway.rate-limit.site-events-burst", c.RateLimit.SiteEventBurst, "beacons one site may send at once above its rate (count)")
	fs.Float64Var(&c.RateLimit.SiteAPIRate, "gateway.rate-limit.site-api", c.RateLimit.SiteAPIRate, "query API requests per second for one site through this gateway (0 = no limit)")
	fs.IntVar(&c.RateLimit.SiteAPIBurst, "gateway.rate-limit.site-api-burst", c.RateLimit.SiteAPIBurst, "query API requests for one site at once above its rate (count)")
	fs.IntVar(&c.RateLimit.MaxKeys, "gateway.rate-limit.max-keys", c.RateLimit.MaxKeys, "client addresses or sites each rate limiter tracks at most; idle ones are dropped first (count)")
	fs.Var(&c.TrustedProxies, "gateway.trusted-proxies", "comma-separated CIDRs (or addresses) of proxies in front of the gateway whose X-Forwarded-For names the client; empty trusts none")
}

// Validate reports the settings that cannot work.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.MaxEventBytes > 0 && c.MaxQueryBytes > 0, "gateway.max-event-bytes and gateway.max-query-bytes must be positive")
	check(c.EventTimeout > 0 && c.QueryTimeout > 0 && c.DialTimeout > 0, "gateway.event-timeout, gateway.query-timeout and gateway.dial-timeout must be positive")
	check(c.Retries >= 0, "gateway.retries must not be negative, got %d", c.Retries)
	check(c.MaxConcurrentPerUpstream >= 0, "gateway.upstream-max-concurrent must not be negative")
	check(c.Breaker.FailureRatio > 0 && c.Breaker.FailureRatio <= 1, "gateway.breaker.failure-ratio must be in (0, 1], got %v", c.Breaker.FailureRatio)
	check(c.Breaker.MinRequests >= 1, "gateway.breaker.min-requests must be at least 1")
	check(c.Breaker.Window >= 6*time.Millisecond, "gateway.breaker.window must be positive (got %s)", c.Breaker.Window)
	check(c.Breaker.OpenTimeout > 0, "gateway.breaker.open-timeout must be positive")
	check(c.Breaker.HalfOpenRequests >= 1, "gateway.breaker.half-open-requests must be at least 1")
	rl := c.RateLimit
	check(rl.IPRate >= 0 && rl.SiteEventRate >= 0 && rl.SiteAPIRate >= 0, "gateway.rate-limit.* rates must not be negative")
	check((rl.IPRate == 0 || rl.IPBurst >= 1) && (rl.SiteEventRate == 0 || rl.SiteEventBurst >= 1) && (rl.SiteAPIRate == 0 || rl.SiteAPIBurst >= 1), "gateway.rate-limit.*-burst must be at least 1 where the rate is on")
	check(rl.MaxKeys >= limiterShards, "gateway.rate-limit.max-keys must be at least %d", limiterShards)
	return errors.Join(errs...)
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
	// Now is the clock of the rate limits and of upstream bookkeeping (default time.Now).
	// Circuit breakers keep their own wall clock.
	Now func() time.Time
}

// Gateway routes requests to upstream services.
type Gateway struct {
	cfg  Config
	deps Deps
	mux  chi.Router

	next      atomic.Uint64 // rotation start of the balancer
	pool      *pool
	transport *http.Transport // HTTPS upstreams
	h1        *h1Client       // plain-HTTP upstreams

	ipLimit        *keyedLimiter
	siteEventLimit *keyedLimiter
	siteAPILimit   *keyedLimiter

	m          *metrics
	lookupWarn everyInterval
}

// New builds a gateway.
func New(cfg Config, deps Deps) (*Gateway, error) {
	if deps.Registry == nil {
		return nil, errors.New("gateway: a registry is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, deps: deps, m: m}
	g.lookupWarn.interval = 10 * time.Second
	g.pool = newPool(cfg, deps.InProc, deps.Now, deps.Log, m)
	dialer := net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	g.h1 = &h1Client{dialer: dialer, idleTimeout: upstreamIdleConnTimeout, maxIdle: maxIdleConnsPerUpstream, now: time.Now}
	g.transport = &http.Transport{
		Proxy:                 nil, // upstreams are reached directly, whatever HTTP_PROXY says
		DialContext:           dialer.DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   maxIdleConnsPerUpstream, // the default of 2 would open a new connection for most requests
		IdleConnTimeout:       upstreamIdleConnTimeout,
		TLSHandshakeTimeout:   cfg.DialTimeout,
		ExpectContinueTimeout: time.Second,
		// Answers pass through as the upstream encoded them: without this the transport
		// would ask for gzip on its own and unpack it again for every request.
		DisableCompression: true,
	}
	rl := cfg.RateLimit
	g.ipLimit = newKeyedLimiter(rl.IPRate, rl.IPBurst, rl.MaxKeys, m.limiterEvictions.WithLabelValues("ip"))
	g.siteEventLimit = newKeyedLimiter(rl.SiteEventRate, rl.SiteEventBurst, rl.MaxKeys, m.limiterEvictions.WithLabelValues("site_events"))
	g.siteAPILimit = newKeyedLimiter(rl.SiteAPIRate, rl.SiteAPIBurst, rl.MaxKeys, m.limiterEvictions.WithLabelValues("site_api"))
	g.mux = g.routes()
	return g, nil
}

// Handler serves the gateway's routes.
func (g *Gateway) Handler() http.Handler { return g.mux }

// Idle connections to upstreams: how many are kept per instance, and for how long. The
// timeout is below the services' own idle timeout (two minutes, internal/server), so the
// gateway, not the upstream, closes an idle connection.
const (
	maxIdleConnsPerUpstream = 256
	upstreamIdleConnTimeout = 90 * time.Second
)

// Close releases the idle upstream connections.
func (g *Gateway) Close() error {
	g.transport.CloseIdleConnections()
	g.pool.closeConns()
	return nil
}

func (g *Gateway) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(server.RequestID)
	event := g.upstream(&route{
		name: "event", service: registry.Collector, what: "collector",
		maxBytes: g.cfg.MaxEventBytes, timeout: g.cfg.EventTimeout,
		siteLimit: g.siteEventLimit, sites: func(_ *http.Request, body []byte) []string { return eventSites(body) },
	})
	r.With(collectCORS).Options("/api/event", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	r.With(collectCORS).Post("/api/event", event.ServeHTTP)
	// Server-side events (GA4 Measurement Protocol): POST only, no CORS (the api_secret must
	// not reach browsers), and like beacons never sent twice unless the dial failed.
	r.Post(mpPath, g.upstream(&route{
		name: "mp", service: registry.Collector, what: "collector",
		maxBytes: maxMPBytes, timeout: g.cfg.EventTimeout,
		siteLimit: g.siteEventLimit, sites: mpSite,
	}).ServeHTTP)
	r.Get(openAPIPath, g.instrument("openapi", serveOpenAPI))
	r.Handle("/api/v1/*", g.upstream(&route{
		name: "api", service: registry.Query, what: "query service",
		maxBytes: g.cfg.MaxQueryBytes, timeout: g.cfg.QueryTimeout,
		siteLimit: g.siteAPILimit, sites: apiSite,
		// Every query API endpoint reads; a POST of a query can be sent again safely.
		readOnlyPosts: []string{"/api/v1/query", "/api/v1/realtime"},
	}))
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

// instrument counts and times a route.
func (g *Gateway) instrument(route string, h http.HandlerFunc) http.HandlerFunc {
	m := &routeMetrics{route: route, requests: g.m.requests, latency: g.m.latency.WithLabelValues(route)}
	return func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(sw, r)
		m.counter(sw.code).Inc()
		m.latency.Observe(time.Since(t0).Seconds())
	}
}

// routeMetrics are the series of one route, looked up once rather than by their label
// values on every request.
type routeMetrics struct {
	route    string
	requests *prometheus.CounterVec
	latency  prometheus.Observer
	byCode   [600]atomic.Pointer[prometheus.Counter] // by status code, filled on first use
}

func (m *routeMetrics) counter(code int) prometheus.Counter {
	if code < 0 || code >= len(m.byCode) {
		return m.requests.WithLabelValues(m.route, strconv.Itoa(code))
	}
	if c := m.byCode[code].Load(); c != nil {
		return *c
	}
	c := m.requests.WithLabelValues(m.route, strconv.Itoa(code))
	m.byCode[code].Store(&c)
	return c
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
		// Assigned rather than Set: the keys are canonical already, and the value slices
		// are shared by every answer (net/http only reads them), which saves an
		// allocation per header on every beacon.
		h := w.Header()
		h["Access-Control-Allow-Origin"] = corsAllowOrigin
		if r.Method == http.MethodOptions {
			// Methods, headers and max-age answer a preflight; browsers ignore them on
			// the beacon's own answer, so it goes without them.
			h["Access-Control-Allow-Methods"] = corsAllowMethods
			h["Access-Control-Allow-Headers"] = corsAllowHeaders
			h["Access-Control-Max-Age"] = corsMaxAge
		} else {
			h["Access-Control-Expose-Headers"] = corsExposeHeaders
		}
		next.ServeHTTP(w, r)
	})
}

// The CORS answer of the collect endpoint. Each slice has room for exactly its one value,
// so an Add on a response copies it instead of writing into the shared array.
var (
	corsAllowOrigin  = []string{"*"}
	corsAllowMethods = []string{"POST, OPTIONS"}
	corsAllowHeaders = []string{"Content-Type"}
	corsMaxAge       = []string{"86400"}
	// so the tracker can honour Retry-After on a 429 or 503
	corsExposeHeaders = []string{"Retry-After, X-Request-Id"}
)

// requestIDHeader and the rules for ids live in internal/server, so that every service of
// the fleet keeps or replaces a caller's id the same way.
const requestIDHeader = server.RequestIDHeader

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
