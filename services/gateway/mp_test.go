package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/docs"
	"github.com/glimpse-analytics/glimpse/services/registry"
)

func TestMPRoutesToCollectorWithQuery(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != mpPath || r.URL.Query().Get("measurement_id") != "example.com" || r.URL.Query().Get("api_secret") != "s" {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	g := gatewayTo(t, registry.Collector, "c", up.URL)
	body := `{"client_id":"c","events":[{"name":"a"}]}`
	rec := send(g.Handler(), http.MethodPost, mpPath+"?measurement_id=example.com&api_secret=s", body)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if up.bodies[0] != body {
		t.Errorf("collector saw %q", up.bodies[0])
	}
	if rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Error("the MP endpoint must not invite browsers: its api_secret would be public")
	}
	if rec := send(g.Handler(), http.MethodGet, mpPath+"?measurement_id=example.com", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", rec.Code)
	}
	if up.hits.Load() != 1 {
		t.Errorf("collector saw %d requests, want 1", up.hits.Load())
	}
}

func TestMPBodyLimitIsTheCollectors(t *testing.T) {
	up := newUpstream(t, nil)
	g := gatewayTo(t, registry.Collector, "c", up.URL)
	// larger than a beacon may be, within the MP limit
	mid := `{"x":"` + strings.Repeat("a", int(DefaultConfig().MaxEventBytes)*2) + `"}`
	if rec := send(g.Handler(), http.MethodPost, mpPath+"?measurement_id=a.com", mid); rec.Code != http.StatusAccepted {
		t.Errorf("%d-byte MP body: status %d", len(mid), rec.Code)
	}
	big := strings.Repeat("a", maxMPBytes+1)
	if rec := send(g.Handler(), http.MethodPost, mpPath+"?measurement_id=a.com", big); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized MP body: status %d", rec.Code)
	}
}

func TestMPIsNotRetriedAfterTheCollectorGotIt(t *testing.T) {
	cfg := quietConfig()
	cfg.Breaker.MinRequests = 1000
	hungUp := newUpstream(t, hangUp)
	healthy := newUpstream(t, nil)
	g := newGateway(t, cfg, nil)
	g.add(t, registry.Collector, "a", hungUp.URL)
	g.add(t, registry.Collector, "b", healthy.URL)
	failed := 0
	for range 10 {
		if rec := send(g.Handler(), http.MethodPost, mpPath+"?measurement_id=a.com", `{}`); rec.Code == http.StatusServiceUnavailable {
			failed++
		}
	}
	if failed == 0 || failed != int(hungUp.hits.Load()) || int(healthy.hits.Load())+failed != 10 {
		t.Fatalf("failed %d, hung-up saw %d, healthy saw %d: an MP request was sent twice or lost", failed, hungUp.hits.Load(), healthy.hits.Load())
	}
}

func TestMPSiteRateLimitUsesMeasurementID(t *testing.T) {
	cfg := quietConfig()
	cfg.RateLimit.SiteEventRate, cfg.RateLimit.SiteEventBurst = 1, 2
	up := newUpstream(t, nil)
	g := newGateway(t, cfg, nil)
	g.add(t, registry.Collector, "c", up.URL)
	codes := []int{}
	for range 3 {
		codes = append(codes, send(g.Handler(), http.MethodPost, mpPath+"?measurement_id=www.Example.com", `{}`).Code)
	}
	if codes[0] != http.StatusAccepted || codes[1] != http.StatusAccepted || codes[2] != http.StatusTooManyRequests {
		t.Errorf("statuses %v; want the third request for one site refused", codes)
	}
	if rec := send(g.Handler(), http.MethodPost, mpPath+"?measurement_id=other.example", `{}`); rec.Code != http.StatusAccepted {
		t.Errorf("another site: status %d", rec.Code)
	}
}

func TestServesOpenAPIDocument(t *testing.T) {
	g := newGateway(t, quietConfig(), nil)
	rec := send(g.Handler(), http.MethodGet, openAPIPath, "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec.Body.String() != string(docs.OpenAPI) {
		t.Error("the answer is not docs/openapi.json")
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("not an OpenAPI 3 document: %q, %v", doc.OpenAPI, err)
	}
}
