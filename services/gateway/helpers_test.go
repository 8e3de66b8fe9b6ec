package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/glimpse-analytics/glimpse/services/registry"
)

// fakeClock is the clock of rate limits and upstream bookkeeping in tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// quietConfig has no rate limits, so tests that send many requests from one address are
// about what they test.
func quietConfig() Config {
	cfg := DefaultConfig()
	cfg.RateLimit.IPRate, cfg.RateLimit.SiteEventRate, cfg.RateLimit.SiteAPIRate = 0, 0, 0
	return cfg
}

type testGateway struct {
	*Gateway
	reg     *registry.InProc
	clock   *fakeClock
	metrics *prometheus.Registry
	logs    *bytes.Buffer
	logMu   *sync.Mutex
}

func newGateway(t *testing.T, cfg Config, inproc map[string]http.Handler) *testGateway {
	t.Helper()
	tg := &testGateway{reg: registry.NewInProc(), clock: newFakeClock(), metrics: prometheus.NewRegistry(), logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	g, err := New(cfg, Deps{
		Registry: tg.reg, InProc: inproc, Metrics: tg.metrics, Now: tg.clock.Now,
		Log: slog.New(slog.NewTextHandler(lockedWriter{tg.logMu, tg.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	tg.Gateway = g
	return tg
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (tg *testGateway) logText() string {
	tg.logMu.Lock()
	defer tg.logMu.Unlock()
	return tg.logs.String()
}

func (tg *testGateway) add(t *testing.T, service, id, addr string) {
	t.Helper()
	if err := tg.reg.Register(context.Background(), registry.Instance{ID: id, Service: service, Address: addr}); err != nil {
		t.Fatal(err)
	}
}

// gatewayTo is a gateway with the quiet test configuration and one upstream instance.
func gatewayTo(t *testing.T, service, id, addr string) *testGateway {
	t.Helper()
	g := newGateway(t, quietConfig(), nil)
	g.add(t, service, id, addr)
	return g
}

// metric returns the value of the series of name whose labels include want.
func (tg *testGateway) metric(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	families, err := tg.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			return value(m)
		}
	}
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return 0
}

// upstreamServer is an httptest upstream that counts hits and records what it saw.
type upstreamServer struct {
	*httptest.Server
	hits    atomic.Int64
	mu      sync.Mutex
	bodies  []string
	headers []http.Header
}

func newUpstream(t *testing.T, h http.HandlerFunc) *upstreamServer {
	t.Helper()
	u := &upstreamServer{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.bodies = append(u.bodies, string(b))
		u.headers = append(u.headers, r.Header.Clone())
		u.mu.Unlock()
		if h == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		h(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstreamServer) lastHeader() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.headers) == 0 {
		return nil
	}
	return u.headers[len(u.headers)-1]
}

// deadAddress is an http:// address nothing listens on (connections are refused).
func deadAddress(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	addr := s.URL
	s.Close()
	return addr
}

// hangUp reads the request and drops the connection without answering: the upstream got
// the request, the gateway gets a transport error.
func hangUp(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func send(h http.Handler, method, path, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func mustMetric(t *testing.T, m prometheus.Metric) *dto.Metric {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// testCollectorCount is how many series c has.
func testCollectorCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}
