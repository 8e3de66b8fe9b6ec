package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/glimpse-analytics/glimpse/services/registry"
)

// breakerConfig trips after 3 finished requests at a 50% failure ratio and stays open for
// the whole test.
func breakerConfig() Config {
	cfg := quietConfig()
	cfg.Breaker = BreakerConfig{FailureRatio: 0.5, MinRequests: 3, Window: time.Minute, OpenTimeout: time.Hour, HalfOpenRequests: 1}
	return cfg
}

func TestDeadUpstreamIsTrippedAndTrafficFlowsToTheOther(t *testing.T) {
	live := newUpstream(t, nil)
	dead := deadAddress(t)
	g := newGateway(t, breakerConfig(), nil)
	g.add(t, registry.Collector, "a-dead", dead)
	g.add(t, registry.Collector, "b-live", live.URL)
	for i := 0; i < 20; i++ {
		body := fmt.Sprintf(`{"n":"pageview","d":"example.com","u":"https://example.com/%d"}`, i)
		rec := send(g.Handler(), http.MethodPost, "/api/event", body)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("beacon %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	// Every beacon arrived once, intact, including those first sent to the dead instance.
	if live.hits.Load() != 20 {
		t.Fatalf("live upstream got %d beacons, want 20", live.hits.Load())
	}
	for i, b := range live.bodies {
		if !strings.Contains(b, fmt.Sprintf(`"u":"https://example.com/%d"`, i)) {
			t.Fatalf("beacon %d arrived as %q", i, b)
		}
	}
	if st, _ := g.pool.state(dead); st != gobreaker.StateOpen {
		t.Fatalf("dead upstream's breaker is %v", st)
	}
	// Once open, the dead instance is not tried again: only the first 3 dials failed.
	if n := g.metric(t, "glimpse_gateway_retries_total", map[string]string{"route": "event", "reason": "dial"}); n != 3 {
		t.Fatalf("retries after dial errors: %v, want 3 (then the breaker opened)", n)
	}
	if v := g.metric(t, "glimpse_gateway_breaker_state", map[string]string{"upstream": dead}); v != 2 {
		t.Fatalf("breaker_state{upstream=dead} = %v, want 2 (open)", v)
	}
	if v := g.metric(t, "glimpse_gateway_breaker_transitions_total", map[string]string{"upstream": dead, "to": "open"}); v != 1 {
		t.Fatalf("transitions to open = %v", v)
	}
	if !strings.Contains(g.logText(), "circuit breaker opened") {
		t.Fatal("the state change was not logged")
	}
}

func TestSlowUpstreamIsTrippedAndBypassed(t *testing.T) {
	slow := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	fast := newUpstream(t, nil)
	cfg := breakerConfig()
	cfg.EventTimeout = 100 * time.Millisecond
	g := newGateway(t, cfg, nil)
	g.add(t, registry.Collector, "a-slow", slow.URL)
	g.add(t, registry.Collector, "b-fast", fast.URL)
	failed := 0
	start := time.Now()
	for i := 0; i < 20; i++ {
		rec := send(g.Handler(), http.MethodPost, "/api/event", `{"n":"pageview","d":"example.com"}`)
		switch rec.Code {
		case http.StatusAccepted:
		case http.StatusServiceUnavailable:
			failed++
			if rec.Header().Get("Retry-After") == "" || !strings.Contains(errorOf(t, rec), "did not answer within 100ms") {
				t.Fatalf("timeout answer: %v %s", rec.Header(), rec.Body)
			}
		default:
			t.Fatalf("beacon %d: %d", i, rec.Code)
		}
	}
	// A beacon the slow collector may have received is not sent again: those 3 failed,
	// and then the breaker kept every other beacon away from it.
	if failed != 3 || slow.hits.Load() != 3 || fast.hits.Load() != 17 {
		t.Fatalf("failed %d, slow saw %d, fast saw %d; want 3, 3, 17", failed, slow.hits.Load(), fast.hits.Load())
	}
	if st, _ := g.pool.state(slow.URL); st != gobreaker.StateOpen {
		t.Fatalf("slow upstream's breaker is %v", st)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s: slow requests were not cut at the timeout", d)
	}
}

func TestPostIsRetriedOnlyAfterDialErrors(t *testing.T) {
	cfg := quietConfig()
	cfg.Breaker.MinRequests = 1000 // keep every instance in play
	healthy := newUpstream(t, nil)
	hungUp := newUpstream(t, hangUp)
	failing := newUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"bus unavailable"}`))
	})

	t.Run("upstream got it, then the connection broke", func(t *testing.T) {
		g := newGateway(t, cfg, nil)
		before := healthy.hits.Load()
		g.add(t, registry.Collector, "a", hungUp.URL)
		g.add(t, registry.Collector, "b", healthy.URL)
		failed := 0
		for i := 0; i < 10; i++ {
			if rec := send(g.Handler(), http.MethodPost, "/api/event", `{"n":"pageview","d":"example.com"}`); rec.Code == http.StatusServiceUnavailable {
				failed++
			}
		}
		if failed != int(hungUp.hits.Load()) || failed == 0 || int(healthy.hits.Load()-before)+failed != 10 {
			t.Fatalf("failed %d, hung-up upstream saw %d, healthy saw %d: a beacon was sent twice or lost", failed, hungUp.hits.Load(), healthy.hits.Load()-before)
		}
		if n := g.metric(t, "glimpse_gateway_retries_total", nil); n != 0 {
			t.Fatalf("%v retries of beacons", n)
		}
	})

	t.Run("upstream answered 503", func(t *testing.T) {
		g := newGateway(t, cfg, nil)
		g.add(t, registry.Collector, "a", failing.URL)
		g.add(t, registry.Collector, "b", healthy.URL)
		before := failing.hits.Load()
		rec := send(g.Handler(), http.MethodPost, "/api/event", `{}`) // rotation starts at a
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "bus unavailable") || failing.hits.Load() != before+1 {
			t.Fatalf("collector's 503 not passed on as is: %d %s", rec.Code, rec.Body)
		}
	})

	t.Run("dial error", func(t *testing.T) {
		g := newGateway(t, cfg, nil)
		g.add(t, registry.Collector, "a", deadAddress(t))
		g.add(t, registry.Collector, "b", healthy.URL)
		before := healthy.hits.Load()
		for i := 0; i < 10; i++ {
			if rec := send(g.Handler(), http.MethodPost, "/api/event", `{"d":"x.com"}`); rec.Code != http.StatusAccepted {
				t.Fatalf("beacon %d: %d", i, rec.Code)
			}
		}
		if healthy.hits.Load()-before != 10 {
			t.Fatalf("healthy upstream saw %d beacons", healthy.hits.Load()-before)
		}
	})

	t.Run("reads are retried after any failure", func(t *testing.T) {
		g := newGateway(t, cfg, nil)
		g.add(t, registry.Query, "a", hungUp.URL)
		g.add(t, registry.Query, "b", failing.URL)
		g.add(t, registry.Query, "c", healthy.URL)
		for i := 0; i < 9; i++ {
			rec := send(g.Handler(), http.MethodPost, "/api/v1/query", `{"site_id":"x.com"}`)
			if rec.Code != http.StatusAccepted {
				t.Fatalf("query %d: %d %s", i, rec.Code, rec.Body)
			}
			rec = send(g.Handler(), http.MethodGet, "/api/v1/realtime?site_id=x.com", "")
			if rec.Code != http.StatusAccepted {
				t.Fatalf("realtime %d: %d %s", i, rec.Code, rec.Body)
			}
		}
		if g.metric(t, "glimpse_gateway_retries_total", map[string]string{"route": "api", "reason": "status"}) == 0 ||
			g.metric(t, "glimpse_gateway_retries_total", map[string]string{"route": "api", "reason": "transport"}) == 0 {
			t.Fatal("retries not counted by reason")
		}
	})

	t.Run("the last attempt's 5xx is passed on", func(t *testing.T) {
		g := newGateway(t, cfg, nil)
		g.add(t, registry.Query, "a", failing.URL)
		rec := send(g.Handler(), http.MethodGet, "/api/v1/realtime?site_id=x.com", "")
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "bus unavailable") {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	})
}

func TestBulkheadThroughGateway(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	blocked := newUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		arrived <- struct{}{}
		<-release
		w.WriteHeader(http.StatusAccepted)
	})
	cfg := quietConfig()
	cfg.MaxConcurrentPerUpstream = 2
	g := newGateway(t, cfg, nil)
	g.add(t, registry.Collector, "a", blocked.URL)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send(g.Handler(), http.MethodPost, "/api/event", `{}`)
		}()
	}
	<-arrived
	<-arrived
	rec := send(g.Handler(), http.MethodPost, "/api/event", `{}`)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(errorOf(t, rec), "busy") {
		t.Fatalf("third concurrent beacon: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if n := g.metric(t, "glimpse_gateway_rejected_total", map[string]string{"route": "event", "reason": "bulkhead"}); n != 1 {
		t.Fatalf("bulkhead rejections %v", n)
	}
	close(release)
	wg.Wait()
	if rec := send(g.Handler(), http.MethodPost, "/api/event", `{}`); rec.Code != http.StatusAccepted {
		t.Fatalf("after the bulkhead drained: %d", rec.Code)
	}
}

func TestRateLimitsThroughGateway(t *testing.T) {
	up := newUpstream(t, nil)
	cfg := quietConfig()
	cfg.RateLimit.IPRate, cfg.RateLimit.IPBurst = 1, 2
	g := newGateway(t, cfg, nil)
	g.add(t, registry.Collector, "a", up.URL)
	g.add(t, registry.Query, "q", up.URL)
	beacon := func(remote string, xff ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/event", strings.NewReader(`{"d":"a.com"}`))
		req.RemoteAddr = remote
		for _, v := range xff {
			req.Header.Add("X-Forwarded-For", v)
		}
		rec := httptest.NewRecorder()
		g.Handler().ServeHTTP(rec, req)
		return rec
	}
	for i := 0; i < 2; i++ {
		if rec := beacon("198.51.100.1:1000"); rec.Code != http.StatusAccepted {
			t.Fatalf("burst request %d: %d", i, rec.Code)
		}
	}
	rec := beacon("198.51.100.1:1000")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" || rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("over the limit: %d %v", rec.Code, rec.Header())
	}
	errorOf(t, rec)
	if rec := beacon("198.51.100.2:1000"); rec.Code != http.StatusAccepted {
		t.Fatalf("another address limited: %d", rec.Code)
	}
	// Behind a trusted proxy the client is the right-most untrusted X-Forwarded-For entry.
	if rec := beacon("127.0.0.1:5", "198.51.100.1"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("same client through the trusted proxy: %d", rec.Code)
	}
	if rec := beacon("127.0.0.1:5", "198.51.100.1, 198.51.100.3"); rec.Code != http.StatusAccepted {
		t.Fatalf("a forged left-most entry decided the client: %d", rec.Code)
	}
	if got := up.lastHeader().Get("X-Forwarded-For"); got != "198.51.100.3" {
		t.Fatalf("upstream saw X-Forwarded-For %q, want the client the gateway determined", got)
	}
	g.clock.Advance(time.Second)
	if rec := beacon("198.51.100.1:1000"); rec.Code != http.StatusAccepted {
		t.Fatalf("after a refill: %d", rec.Code)
	}
	if n := g.metric(t, "glimpse_gateway_rejected_total", map[string]string{"route": "event", "reason": "ip_rate"}); n != 2 {
		t.Fatalf("ip_rate rejections %v", n)
	}
}

func TestSiteRateLimitLeavesOtherSitesAlone(t *testing.T) {
	up := newUpstream(t, nil)
	cfg := quietConfig()
	cfg.RateLimit.SiteEventRate, cfg.RateLimit.SiteEventBurst = 1, 2
	cfg.RateLimit.SiteAPIRate, cfg.RateLimit.SiteAPIBurst = 1, 1
	g := newGateway(t, cfg, nil)
	g.add(t, registry.Collector, "a", up.URL)
	g.add(t, registry.Query, "q", up.URL)
	ev := func(body string) int { return send(g.Handler(), http.MethodPost, "/api/event", body).Code }
	if ev(`{"d":"busy.com"}`) != 202 || ev(`{"domain":"www.busy.com"}`) != 202 {
		t.Fatal("burst refused")
	}
	rec := send(g.Handler(), http.MethodPost, "/api/event", `{"d":"busy.com"}`)
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(errorOf(t, rec), "busy.com") || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("busy site over its limit: %d %s", rec.Code, rec.Body)
	}
	if ev(`{"d":"quiet.com"}`) != 202 {
		t.Fatal("another site was limited")
	}
	if ev(`{"d":"quiet.com,busy.com"}`) != 429 {
		t.Fatal("an event also naming the busy site passed")
	}
	if ev(`{"d":"quiet.com"}`) != 202 {
		t.Fatal("the refused multi-site event used quiet.com's token")
	}
	if ev(`not json at all`) != 202 { // no site: only the per-IP limit applies; the collector judges the body
		t.Fatal("junk body was rate-limited by site")
	}
	// The API has its own buckets: the busy site can still be queried.
	q := func(method, path, body string) int { return send(g.Handler(), method, path, body).Code }
	if q(http.MethodPost, "/api/v1/query", `{"site_id":"busy.com"}`) != 202 {
		t.Fatal("query of a site whose beacons are limited")
	}
	if q(http.MethodGet, "/api/v1/realtime?site_id=busy.com", "") != 429 {
		t.Fatal("second API request within the API burst of 1 passed")
	}
	if q(http.MethodGet, "/api/v1/realtime?site_id=quiet.com", "") != 202 {
		t.Fatal("API limit of one site hit another")
	}
	g.clock.Advance(time.Second)
	if ev(`{"d":"busy.com"}`) != 202 || q(http.MethodGet, "/api/v1/realtime?site_id=busy.com", "") != 202 {
		t.Fatal("no refill after a second")
	}
}

func TestRequestIDReachesUpstream(t *testing.T) {
	up := newUpstream(t, nil)
	g := gatewayTo(t, registry.Collector, "a", up.URL)
	rec := send(g.Handler(), http.MethodPost, "/api/event", `{}`)
	id := rec.Header().Get("X-Request-Id")
	if id == "" || up.lastHeader().Get("X-Request-Id") != id {
		t.Fatalf("response id %q, upstream saw %q", id, up.lastHeader().Get("X-Request-Id"))
	}
	send(g.Handler(), http.MethodPost, "/api/event", `{}`, "X-Request-Id", "lb-1234.abc")
	if got := up.lastHeader().Get("X-Request-Id"); got != "lb-1234.abc" {
		t.Fatalf("caller's id not kept: %q", got)
	}
	send(g.Handler(), http.MethodPost, "/api/event", `{}`, "X-Request-Id", "bad id\x01with control")
	if got := up.lastHeader().Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Fatalf("unsafe id forwarded: %q", got)
	}
	// A dial failure is logged with the request id, and the retry carries the same id.
	g2 := newGateway(t, quietConfig(), nil)
	g2.add(t, registry.Collector, "a", deadAddress(t))
	g2.add(t, registry.Collector, "b", up.URL)
	send(g2.Handler(), http.MethodPost, "/api/event", `{}`, "X-Request-Id", "trace-42")
	if up.lastHeader().Get("X-Request-Id") != "trace-42" || !strings.Contains(g2.logText(), "request_id=trace-42") {
		t.Fatalf("retry id %q, logs:\n%s", up.lastHeader().Get("X-Request-Id"), g2.logText())
	}
}

func TestClientGoneIsNotAFailure(t *testing.T) {
	started := make(chan struct{}, 10)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
	})
	cfg := breakerConfig()
	g := newGateway(t, cfg, nil)
	g.add(t, registry.Collector, "a", up.URL)
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequest(http.MethodPost, "/api/event", strings.NewReader(`{}`)).WithContext(ctx)
		go func() { <-started; cancel() }()
		rec := httptest.NewRecorder()
		g.Handler().ServeHTTP(rec, req)
		if rec.Code != 499 {
			t.Fatalf("abandoned request recorded as %d", rec.Code)
		}
	}
	u := g.pool.get(up.URL)
	if st := u.cb.State(); st != gobreaker.StateClosed {
		t.Fatalf("visitors closing tabs opened the breaker: %v", st)
	}
	if c := u.cb.Counts(); c.TotalFailures != 0 || c.TotalExclusions != 5 {
		t.Fatalf("counts %+v", c)
	}
}

func TestQueryFallback(t *testing.T) {
	cfg := breakerConfig()
	g := newGateway(t, cfg, nil)
	g.add(t, registry.Query, "a", deadAddress(t))
	for i := 0; i < 5; i++ {
		rec := send(g.Handler(), http.MethodPost, "/api/v1/query", `{"site_id":"x.com"}`)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("query %d: %d %v", i, rec.Code, rec.Header())
		}
		msg := errorOf(t, rec)
		want := "query service did not answer"
		if i >= 3 {
			want = "no query service is available right now (every instance is failing)"
		}
		if !strings.Contains(msg, want) {
			t.Fatalf("query %d: %q, want %q", i, msg, want)
		}
	}
	if n := g.metric(t, "glimpse_gateway_rejected_total", map[string]string{"route": "api", "reason": "breaker_open"}); n != 2 {
		t.Fatalf("breaker_open rejections %v", n)
	}
}

func TestInProcessUpstreamHasABreakerToo(t *testing.T) {
	calls := 0
	broken := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls++
		writeError(w, http.StatusInternalServerError, "store down")
	})
	g := newGateway(t, breakerConfig(), map[string]http.Handler{registry.InProcScheme + "q": broken})
	g.add(t, registry.Query, "q", registry.InProcScheme+"q")
	for i := 0; i < 5; i++ {
		send(g.Handler(), http.MethodPost, "/api/v1/query", `{}`)
	}
	if calls != 3 {
		t.Fatalf("in-process handler called %d times, want 3 before its breaker opened", calls)
	}
}

func TestConfigFlags(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := DefaultConfig()
	bad.Breaker.FailureRatio = 1.5
	bad.Retries = -1
	bad.RateLimit.IPBurst = 0
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "failure-ratio") || !strings.Contains(err.Error(), "retries") || !strings.Contains(err.Error(), "burst") {
		t.Fatalf("Validate = %v", err)
	}
	if _, err := New(bad, Deps{Registry: registry.NewInProc()}); err == nil {
		t.Fatal("New accepted an invalid config")
	}
}

// failingRegistry never has an answer, like a Consul registry that never reached its agent.
type failingRegistry struct{ registry.Registry }

func (failingRegistry) Instances(context.Context, string) ([]registry.Instance, error) {
	return nil, fmt.Errorf("consul: no answer yet")
}

func TestRegistryErrorIs503AndLoggedOnce(t *testing.T) {
	tg := newGateway(t, quietConfig(), nil)
	g, err := New(quietConfig(), Deps{Registry: failingRegistry{tg.reg}, Log: tg.deps.Log, Now: tg.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		rec := send(g.Handler(), http.MethodPost, "/api/event", `{}`)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "5" {
			t.Fatalf("%d %v", rec.Code, rec.Header())
		}
	}
	if n := strings.Count(tg.logText(), "registry lookup failed"); n != 1 {
		t.Fatalf("logged %d times", n)
	}
	tg.clock.Advance(11 * time.Second)
	send(g.Handler(), http.MethodPost, "/api/event", `{}`)
	if n := strings.Count(tg.logText(), "registry lookup failed"); n != 2 {
		t.Fatalf("logged %d times after the interval", n)
	}
}
