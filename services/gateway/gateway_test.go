package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/services/registry"
)

func newTestGateway(t *testing.T, reg registry.Registry, inproc map[string]http.Handler) *Gateway {
	t.Helper()
	g, err := New(DefaultConfig(), Deps{
		Registry: reg, InProc: inproc,
		Tracker:   fstest.MapFS{"glimpse.js": {Data: []byte("/*tracker*/")}},
		Dashboard: fstest.MapFS{"index.html": {Data: []byte("<h1>dash</h1>")}},
		Metrics:   prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func do(t *testing.T, h http.Handler, method, path, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func errorOf(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
		t.Fatalf("want a JSON error body, got %q", rec.Body.String())
	}
	return e.Error
}

func TestRoutesToInProcessInstances(t *testing.T) {
	reg := registry.NewInProc()
	var gotBody string
	collector := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.WriteHeader(http.StatusAccepted)
	})
	query := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "query:"+r.URL.Path) })
	_ = reg.Register(context.Background(), registry.Instance{ID: "c1", Service: registry.Collector, Address: registry.InProcScheme + "c"})
	_ = reg.Register(context.Background(), registry.Instance{ID: "q1", Service: registry.Query, Address: registry.InProcScheme + "q"})
	g := newTestGateway(t, reg, map[string]http.Handler{registry.InProcScheme + "c": collector, registry.InProcScheme + "q": query})

	rec := do(t, g.Handler(), http.MethodPost, "/api/event", `{"n":"pageview"}`)
	if rec.Code != http.StatusAccepted || gotBody != `{"n":"pageview"}` {
		t.Fatalf("event: %d body seen %q", rec.Code, gotBody)
	}
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatal("collect endpoint must allow any origin")
	}
	if rec.Header().Get("X-Request-Id") == "" {
		t.Fatal("every answer carries a request id")
	}
	rec = do(t, g.Handler(), http.MethodPost, "/api/v1/query", `{}`)
	if rec.Body.String() != "query:/api/v1/query" {
		t.Fatalf("query route: %q", rec.Body.String())
	}
	rec = do(t, g.Handler(), http.MethodGet, "/js/glimpse.js", "")
	if rec.Code != http.StatusOK || rec.Body.String() != "/*tracker*/" {
		t.Fatalf("tracker: %d %q", rec.Code, rec.Body.String())
	}
	rec = do(t, g.Handler(), http.MethodGet, "/", "")
	if !strings.Contains(rec.Body.String(), "dash") {
		t.Fatalf("dashboard: %d %q", rec.Code, rec.Body.String())
	}
}

func TestNoInstanceIs503WithRetryAfter(t *testing.T) {
	g := newTestGateway(t, registry.NewInProc(), nil)
	for _, path := range []string{"/api/event", "/api/v1/query"} {
		rec := do(t, g.Handler(), http.MethodPost, path, `{}`)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("%s: %d, Retry-After %q", path, rec.Code, rec.Header().Get("Retry-After"))
		}
		if msg := errorOf(t, rec); !strings.Contains(msg, "available") {
			t.Fatalf("%s: unhelpful error %q", path, msg)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	reg := registry.NewInProc()
	_ = reg.Register(context.Background(), registry.Instance{ID: "c1", Service: registry.Collector, Address: registry.InProcScheme + "c"})
	reads := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, `{"error":"too large"}`, http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	g := newTestGateway(t, reg, map[string]http.Handler{registry.InProcScheme + "c": reads})
	big := strings.Repeat("x", int(DefaultConfig().MaxEventBytes)+1)
	rec := do(t, g.Handler(), http.MethodPost, "/api/event", big)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized beacon: %d", rec.Code)
	}
	// a chunked body (no Content-Length) is cut off at the limit as well
	req := httptest.NewRequest(http.MethodPost, "/api/event", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	rec = httptest.NewRecorder()
	g.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized chunked beacon: %d", rec.Code)
	}
}

func TestPreflight(t *testing.T) {
	g := newTestGateway(t, registry.NewInProc(), nil)
	rec := do(t, g.Handler(), http.MethodOptions, "/api/event", "", "Origin", "https://site.example", "Access-Control-Request-Method", "POST")
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Methods") == "" ||
		rec.Header().Get("Access-Control-Allow-Origin") != "*" || rec.Header().Get("Access-Control-Max-Age") == "" {
		t.Fatalf("preflight: %d %v", rec.Code, rec.Header())
	}
}

// A beacon's own answer carries what a page may read of it (origin, exposed headers) and
// none of the preflight's headers, which browsers ignore there.
func TestBeaconAnswerCORSHeaders(t *testing.T) {
	g := newTestGateway(t, registry.NewInProc(), nil)
	rec := do(t, g.Handler(), http.MethodPost, "/api/event", `{"n":"pageview","u":"https://site.example/","d":"site.example"}`, "Origin", "https://site.example")
	h := rec.Header()
	if h.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Fatalf("beacon answer (%d) lacks its CORS headers: %v", rec.Code, h)
	}
	for _, k := range []string{"Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age"} {
		if h.Get(k) != "" {
			t.Errorf("beacon answer carries the preflight header %s", k)
		}
	}
}

func TestProxiesAndBalancesOverHTTP(t *testing.T) {
	hits := map[string]int{}
	newUpstream := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[name]++
			if r.Header.Get("X-Forwarded-For") == "" {
				t.Errorf("%s: proxied request lacks X-Forwarded-For", name)
			}
			w.WriteHeader(http.StatusAccepted)
		}))
	}
	a, b := newUpstream("a"), newUpstream("b")
	defer a.Close()
	defer b.Close()
	reg := registry.NewInProc()
	_ = reg.Register(context.Background(), registry.Instance{ID: "a", Service: registry.Collector, Address: a.URL})
	_ = reg.Register(context.Background(), registry.Instance{ID: "b", Service: registry.Collector, Address: b.URL})
	g := newTestGateway(t, reg, nil)
	for i := 0; i < 10; i++ {
		if rec := do(t, g.Handler(), http.MethodPost, "/api/event", `{}`); rec.Code != http.StatusAccepted {
			t.Fatalf("request %d: %d", i, rec.Code)
		}
	}
	if hits["a"] != 5 || hits["b"] != 5 {
		t.Fatalf("round robin spread %v, want 5/5", hits)
	}
	// a dead upstream is a 503 the tracker retries, not a hang or a 502 page
	b.Close()
	_ = reg.Deregister(context.Background(), "a")
	rec := do(t, g.Handler(), http.MethodPost, "/api/event", `{}`)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("dead upstream: %d", rec.Code)
	}
}
