package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/services/registry"
)

// BenchmarkGatewayOverhead sends the same beacon to an httptest upstream directly and
// through the gateway (its own HTTP listener, registry lookup, rate limits with limits set
// too high to refuse, body buffering, balancer, breaker and reverse proxy); the difference
// is what the gateway costs per request.
//
//	go test -run '^$' -bench GatewayOverhead -benchtime 3s ./services/gateway/
func BenchmarkGatewayOverhead(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer upstream.Close()
	reg := registry.NewInProc()
	_ = reg.Register(context.Background(), registry.Instance{ID: "c1", Service: registry.Collector, Address: upstream.URL})
	cfg := DefaultConfig()
	cfg.RateLimit.IPRate, cfg.RateLimit.IPBurst = 1e9, 1e9
	cfg.RateLimit.SiteEventRate, cfg.RateLimit.SiteEventBurst = 1e9, 1e9
	g, err := New(cfg, Deps{Registry: reg, Log: slog.New(slog.DiscardHandler), Metrics: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	gw := httptest.NewServer(g.Handler())
	defer gw.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	const body = `{"n":"pageview","u":"https://example.com/pricing?utm_source=news","d":"example.com","r":"https://google.com/","p":{"plan":"pro"}}`
	post := func(b *testing.B, url string) {
		resp, err := client.Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	for _, target := range []struct{ name, url string }{
		{"direct", upstream.URL + "/api/event"},
		{"gateway", gw.URL + "/api/event"},
	} {
		b.Run(target.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				post(b, target.url)
			}
		})
		b.Run(target.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					post(b, target.url)
				}
			})
		})
	}
}
