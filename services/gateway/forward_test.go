package gateway

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/services/registry"
)

// serveGateway runs the gateway on a real listener, so requests and answers cross HTTP
// connections on both sides as in production.
func serveGateway(t *testing.T, g *testGateway) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(g.Handler())
	t.Cleanup(s.Close)
	return s
}

func TestForwardedRequestHeaders(t *testing.T) {
	var seen *http.Request
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		seen = r
		w.Header().Set("Connection", "X-Answer-Hop")
		w.Header().Set("X-Answer-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Answer", "kept")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"results":[]}`)
	})
	g := gatewayTo(t, registry.Query, "q", up.URL)
	gw := serveGateway(t, g)

	req, _ := http.NewRequest(http.MethodGet, gw.URL+"/api/v1/stats?site_id=a.example&period=7d", nil)
	req.Host = "stats.example"
	req.Header.Set("Connection", "X-Client-Hop")
	req.Header.Set("X-Client-Hop", "1")
	req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
	req.Header.Set("Te", "trailers, deflate")
	req.Header.Set("Forwarded", "for=192.0.2.1")
	req.Header.Set("X-Forwarded-Host", "forged.example")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-For", "198.51.100.9")
	req.Header.Set("X-Custom", "kept")
	req.Header.Set("User-Agent", "") // the client sends none
	resp, err := gw.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"results":[]}` {
		t.Fatalf("HTTP %d %q", resp.StatusCode, body)
	}
	if seen == nil {
		t.Fatal("the upstream saw no request")
	}
	if seen.URL.Path != "/api/v1/stats" || seen.URL.RawQuery != "site_id=a.example&period=7d" || seen.Host != "stats.example" {
		t.Errorf("upstream saw %s %s?%s for host %q; want the client's path, query and host", seen.Method, seen.URL.Path, seen.URL.RawQuery, seen.Host)
	}
	h := seen.Header
	for _, gone := range []string{"X-Client-Hop", "Proxy-Authorization", "Forwarded", "User-Agent"} {
		if v, ok := h[gone]; ok {
			t.Errorf("upstream got %s: %q; it must not be forwarded", gone, v)
		}
	}
	for k, want := range map[string]string{
		// The loopback peer is a trusted proxy, so its X-Forwarded-For names the client.
		"X-Forwarded-For":   "198.51.100.9",
		"X-Forwarded-Host":  "stats.example",
		"X-Forwarded-Proto": "http",
		"Te":                "trailers",
		"X-Custom":          "kept",
	} {
		if got := h.Values(k); len(got) != 1 || got[0] != want {
			t.Errorf("upstream got %s %q, want %q", k, got, want)
		}
	}
	if id := h.Get(requestIDHeader); id == "" || resp.Header.Get(requestIDHeader) != id {
		t.Errorf("request id: upstream got %q, client got %q; want the same one", id, resp.Header.Get(requestIDHeader))
	}
	if resp.Header.Get("X-Answer-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop answer headers reached the client: %v", resp.Header)
	}
	if resp.Header.Get("X-Answer") != "kept" {
		t.Errorf("answer header X-Answer = %q, want kept", resp.Header.Get("X-Answer"))
	}
}

func TestForwardKeepsUpstreamBasePath(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.RequestURI())
	})
	g := gatewayTo(t, registry.Query, "q", up.URL+"/glimpse/")
	rec := send(g.Handler(), http.MethodGet, "/api/v1/realtime?site_id=a.example", "")
	if rec.Code != http.StatusOK || rec.Body.String() != "/glimpse/api/v1/realtime?site_id=a.example" {
		t.Fatalf("HTTP %d %q; want the instance's base path before the request's", rec.Code, rec.Body)
	}
}

func TestForwardStreamsAnswersOfUnknownLength(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		_, _ = io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(w, "second\n")
	})
	g := gatewayTo(t, registry.Query, "q", up.URL)
	gw := serveGateway(t, g)

	// The answer's header and first line must arrive while the upstream still holds the
	// rest back.
	type firstPart struct {
		resp  *http.Response
		lines *bufio.Reader
		line  string
		err   error
	}
	first := make(chan firstPart, 1)
	go func() {
		resp, err := gw.Client().Get(gw.URL + "/api/v1/export?site_id=a.example")
		if err != nil {
			first <- firstPart{err: err}
			return
		}
		lines := bufio.NewReader(resp.Body)
		line, err := lines.ReadString('\n')
		first <- firstPart{resp: resp, lines: lines, line: line, err: err}
	}()
	var got firstPart
	select {
	case got = <-first:
	case <-time.After(3 * time.Second):
		close(release)
		t.Fatal("the first part of a streamed answer did not reach the client before the upstream finished")
	}
	if got.err != nil || got.line != "first\n" {
		t.Fatalf("first line %q, error %v", got.line, got.err)
	}
	defer got.resp.Body.Close()
	lines := got.lines
	close(release)
	if rest, _ := io.ReadAll(lines); string(rest) != "second\n" {
		t.Fatalf("rest %q", rest)
	}
}

func TestForwardPassesTrailers(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Rows")
		_, _ = io.WriteString(w, "a,b\n")
		w.Header().Set("X-Rows", "1")
	})
	g := gatewayTo(t, registry.Query, "q", up.URL)
	gw := serveGateway(t, g)

	resp, err := gw.Client().Get(gw.URL + "/api/v1/export?site_id=a.example")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "a,b\n" || resp.Trailer.Get("X-Rows") != "1" {
		t.Fatalf("body %q, trailers %v; want the upstream's trailer X-Rows: 1", body, resp.Trailer)
	}
}

func TestForwardCutsOffAnAnswerThatBreaksOff(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		// Chunked: only the missing last chunk tells the client that the answer is cut.
		_, _ = io.WriteString(w, "only part")
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the connection drops before the rest
	})
	g := gatewayTo(t, registry.Query, "q", up.URL)
	gw := serveGateway(t, g)

	resp, err := gw.Client().Get(gw.URL + "/api/v1/stats?site_id=a.example")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("the client got a broken answer as if it were whole")
	}
	u := g.pool.get(up.URL)
	if c := u.cb.Counts(); c.TotalFailures != 1 {
		t.Errorf("breaker counts %+v; want the broken answer counted as a failure of the upstream", c)
	}
	if n := u.pending.Load(); n != 0 {
		t.Errorf("%d requests still in flight; the lease was not released", n)
	}
}

func TestRetryableStatusIsDrainedAndTheRequestSentElsewhere(t *testing.T) {
	bad := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, strings.Repeat("busy ", 100))
	})
	good := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	g := gatewayTo(t, registry.Query, "bad", bad.URL)
	g.add(t, registry.Query, "good", good.URL)
	for i := 0; i < 4; i++ {
		if rec := send(g.Handler(), http.MethodGet, "/api/v1/stats?site_id=a.example", ""); rec.Code != http.StatusOK || rec.Body.String() != "ok" {
			t.Fatalf("request %d: HTTP %d %q; a read answered 503 must be sent to the other instance", i, rec.Code, rec.Body)
		}
	}
	if bad.hits.Load() == 0 {
		t.Fatal("the failing instance was never tried; the test proves nothing")
	}
}
