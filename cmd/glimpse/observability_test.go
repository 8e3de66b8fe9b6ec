package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
	"github.com/glimpse-analytics/glimpse/services/registry"
)

// The process's top handler counts requests by route pattern and gives them ids; /readyz
// waits for the engines.
func TestServeInstrumentsEveryRequest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runTarget(targetAll)(ctx, []string{"--addr=" + addr, "--data-dir=" + filepath.Join(t.TempDir(), "data"), "--log.level=error"}, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("glimpse all: %v", err)
		}
	}()
	base := "http://" + addr
	get := func(path, id string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 30s (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := get("/readyz", "probe-1").Header.Get("X-Request-Id"); got != "probe-1" {
		t.Errorf("X-Request-Id = %q, want the caller's probe-1", got)
	}
	if got := get("/no/such/page/42", "").Header.Get("X-Request-Id"); got == "" {
		t.Error("no X-Request-Id made for a request without one")
	}
	body, _ := io.ReadAll(get("/metrics", "").Body)
	for _, want := range []string{
		`glimpse_http_requests_total{code="200",route="/readyz",service="all"}`,
		`route="/",service="all"}`, // the gateway's catch-all serves unknown paths
		`glimpse_http_request_duration_seconds_count{route="/readyz",service="all"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(body), "/no/such/page") {
		t.Error("/metrics labels a request by its raw path")
	}
}

func TestDependenciesAreTheEnginesThatAnswerPings(t *testing.T) {
	st := memstore.New()
	deps := dependencies(map[string]any{"store": st, "bus": nil, "registry": registry.NewInProc()})
	if len(deps) != 1 || deps[0].Name != "store" {
		t.Fatalf("dependencies = %+v, want the store only", deps)
	}
	if err := deps[0].Ping(context.Background()); err != nil {
		t.Fatalf("open store: %v", err)
	}
	_ = st.Close()
	if err := deps[0].Ping(context.Background()); err == nil {
		t.Fatal("closed store answered its ping")
	}
}
