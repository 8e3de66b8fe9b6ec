package gateway

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/services/registry"
)

// countingUpstream is an upstream that counts the connections made to it.
func countingUpstream(t *testing.T, idleTimeout time.Duration, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(h)
	s.Config.IdleTimeout = idleTimeout
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &conns
}

func accepted(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }

func sendBeacons(t *testing.T, g *testGateway, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if rec := send(g.Handler(), http.MethodPost, "/api/event", `{"n":"pageview","d":"a.example"}`); rec.Code != http.StatusAccepted {
			t.Fatalf("beacon %d: HTTP %d %s", i, rec.Code, rec.Body)
		}
	}
}

func TestUpstreamConnectionsAreReused(t *testing.T) {
	up, conns := countingUpstream(t, time.Minute, accepted)
	g := gatewayTo(t, registry.Collector, "c", up.URL)
	sendBeacons(t, g, 20)
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 beacons one after another opened %d connections to the collector, want 1", n)
	}
}

func TestConnectionTheUpstreamClosedIsNotUsed(t *testing.T) {
	// The upstream drops idle connections after 50ms: a beacon sent later must not be
	// written to the dead one (it would fail, and beacons are not sent twice).
	up, conns := countingUpstream(t, 50*time.Millisecond, accepted)
	g := gatewayTo(t, registry.Collector, "c", up.URL)
	sendBeacons(t, g, 1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(100 * time.Millisecond)
		sendBeacons(t, g, 1)
		if conns.Load() >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if n := conns.Load(); n < 2 {
		t.Fatalf("%d connections: the upstream never closed its idle one, so the test proves nothing", n)
	}
}

func TestConnectionCloseIsHonoured(t *testing.T) {
	up, conns := countingUpstream(t, time.Minute, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusAccepted)
	})
	g := gatewayTo(t, registry.Collector, "c", up.URL)
	sendBeacons(t, g, 3)
	if n := conns.Load(); n != 3 {
		t.Fatalf("3 answers with Connection: close, %d connections; want a new one for each", n)
	}
}

func TestUnreadAnswerClosesItsConnection(t *testing.T) {
	// A client that goes away in the middle of a long answer leaves the rest unread: the
	// connection must not carry the next request (which would read the rest as its answer).
	var requests atomic.Int64
	up, conns := countingUpstream(t, time.Minute, func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 1 {
			_, _ = w.Write([]byte("short"))
			return
		}
		// Far more than socket buffers hold, until the gateway stops reading.
		chunk := []byte(strings.Repeat("x", 64<<10))
		for i := 0; i < 4096 && r.Context().Err() == nil; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	g := gatewayTo(t, registry.Query, "q", up.URL)
	gw := serveGateway(t, g)

	resp, err := gw.Client().Get(gw.URL + "/api/v1/export?site_id=a.example")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // closes the connection: the body was not read to its end
	testkitWait(t, 5*time.Second, func() bool { return g.pool.get(up.URL).pending.Load() == 0 })

	rec := send(g.Handler(), http.MethodGet, "/api/v1/export?site_id=a.example", "")
	if rec.Code != http.StatusOK || rec.Body.String() != "short" {
		t.Fatalf("next request: HTTP %d %.40q, want the short answer", rec.Code, rec.Body.String())
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections; the half-read one must be closed and a new one opened", n)
	}
}

// testkitWait polls cond until it holds or timeout passes.
func testkitWait(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("timed out waiting for the gateway to finish the abandoned request")
		}
	}
}

func TestAnswerLeftUndrainedClosesItsConnection(t *testing.T) {
	// A 503 to a read is dropped and the read sent elsewhere; an answer longer than the
	// gateway drains must close its connection rather than leave its rest to the next one.
	var requests atomic.Int64
	bad, badConns := countingUpstream(t, time.Minute, func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(strings.Repeat("x", 4*maxDrain)))
			return
		}
		_, _ = w.Write([]byte("fine"))
	})
	good := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("fine")) })
	g := gatewayTo(t, registry.Query, "bad", bad.URL)
	g.add(t, registry.Query, "good", good.URL)
	for i := 0; i < 6; i++ {
		if rec := send(g.Handler(), http.MethodGet, "/api/v1/stats?site_id=a.example", ""); rec.Code != http.StatusOK || rec.Body.String() != "fine" {
			t.Fatalf("request %d: HTTP %d %.40q", i, rec.Code, rec.Body.String())
		}
	}
	if requests.Load() < 2 {
		t.Fatalf("the first instance answered %d requests; the test needs it to answer again after its 503", requests.Load())
	}
	if n := badConns.Load(); n != 2 {
		t.Fatalf("%d connections to the instance that answered 503; want the undrained one closed and one new", n)
	}
}
