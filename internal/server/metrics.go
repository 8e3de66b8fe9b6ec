package server

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/telemetry"
)

// unmatchedRoute labels requests no pattern of the mux matched (answered 404 or 405).
const unmatchedRoute = "unmatched"

// HTTPMetrics counts and times the requests of one process's top mux, labelled by the mux
// pattern that matched (never the raw path, which callers choose freely).
type HTTPMetrics struct {
	service  string
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// children caches the label children per (route, code) so a request costs one map
	// lookup instead of hashing its label values on every observation.
	mu       sync.RWMutex
	children map[routeCode]routeChildren
}

type routeCode struct {
	route string
	code  int
}

type routeChildren struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// maxCachedRoutes bounds the cache: routes are the mux's patterns (a few dozen at most) and
// codes are three digits, so it only fills up through a bug; past it, children are looked
// up on every request rather than cached.
const maxCachedRoutes = 4096

// NewHTTPMetrics registers glimpse_http_requests_total and
// glimpse_http_request_duration_seconds on reg, with service as the value of the
// service label (the target's name). A nil reg keeps the metrics unexported.
func NewHTTPMetrics(reg prometheus.Registerer, service string) (*HTTPMetrics, error) {
	m := &HTTPMetrics{
		service: service,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_http_requests_total",
			Help: "HTTP requests answered by this process, by service (target), route (the matched pattern; \"unmatched\" when none matched) and status code.",
		}, []string{"service", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "glimpse_http_request_duration_seconds",
			Help:    "Time from a request's arrival to its handler's return, by service (target) and route (the matched pattern).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service", "route"}),
		children: map[routeCode]routeChildren{},
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return nil, errors.New("server: the HTTP metrics are already registered (is another instrumented server using the same registry?)")
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *HTTPMetrics) childrenFor(route string, code int) routeChildren {
	key := routeCode{route, code}
	m.mu.RLock()
	c, ok := m.children[key]
	m.mu.RUnlock()
	if ok {
		return c
	}
	c = routeChildren{
		requests: m.requests.WithLabelValues(m.service, route, codeText(code)),
		duration: m.duration.WithLabelValues(m.service, route),
	}
	m.mu.Lock()
	if len(m.children) < maxCachedRoutes {
		m.children[key] = c
	}
	m.mu.Unlock()
	return c
}

// codeTexts holds the decimal text of every valid status code, so labelling allocates
// nothing.
var codeTexts = func() (t [600]string) {
	for i := 100; i < len(t); i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func codeText(code int) string {
	if code >= 100 && code < len(codeTexts) {
		return codeTexts[code]
	}
	return strconv.Itoa(code)
}

// Mux is the process's top router: an http.ServeMux whose handlers tell Instrument the
// pattern they were registered under. Request.Pattern alone is not enough, since a
// handler that routes again with a ServeMux of its own (the collector's) overwrites it.
type Mux struct {
	http.ServeMux
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{} }

// Handle registers h for pattern (see http.ServeMux).
func (m *Mux) Handle(pattern string, h http.Handler) {
	m.ServeMux.Handle(pattern, routeLabel{pattern: pattern, next: h})
}

// HandleFunc registers f for pattern (see http.ServeMux).
func (m *Mux) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(f))
}

// routeLabel records its pattern in Instrument's writer before the handler runs.
type routeLabel struct {
	pattern string
	next    http.Handler
}

func (l routeLabel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if sw, ok := w.(*statusWriter); ok && sw.route == "" {
		sw.route = l.pattern
	}
	l.next.ServeHTTP(w, r)
}

// Instrument wraps h, the process's top handler (a Mux, or an http.ServeMux without
// nested routers): every request gets a request id (kept from a sane X-Request-Id header
// or generated, set on the response and in the request's context) and is counted and
// timed by the route pattern that matched.
func (m *HTTPMetrics) Instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := ensureRequestID(w, r)
		// A ServeMux records the matched pattern in the request it is given: keep a
		// pointer to that copy to read it afterwards when no Mux handler reported one.
		r = r.WithContext(telemetry.WithRequestID(r.Context(), id))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			route := sw.route
			if route == "" {
				route = r.Pattern
			}
			if route == "" {
				route = unmatchedRoute
			}
			code := sw.code
			if code == 0 {
				code = http.StatusOK // the handler wrote nothing: net/http answers 200
			}
			c := m.childrenFor(route, code)
			c.requests.Inc()
			c.duration.Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status code a handler sent.
type statusWriter struct {
	http.ResponseWriter
	code  int
	route string // set by the Mux handler that matched
}

func (s *statusWriter) WriteHeader(code int) {
	// 1xx answers (103 Early Hints) precede the final one.
	if s.code == 0 && code >= 200 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

// Flush lets streaming handlers (realtime, CSV exports, the gateway's proxy) flush through
// the wrapper.
func (s *statusWriter) Flush() {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's own writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
