package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/services/registry"
)

// BenchmarkGatewayOverhead sends the same beacon to an httptest upstream directly and
// through the gateway (its own HTTP listener, registry lookup, rate limits with limits set
// too high to refuse, body buffering, balancer, breaker and forward); the difference is
// what the gateway costs per request. cpu-µs/op is the CPU time of the whole test process
// (client, gateway and upstream) per request, so the gateway's own CPU per request is the
// difference between the gateway and the direct rows.
//
//	go test -run '^$' -bench GatewayOverhead -benchtime 3s ./services/gateway/
//
// The gateway's goroutines (its server, handlers and upstream connections) carry the
// profiler label side=gateway, so a CPU profile of the benchmark shows them alone with
// `go tool pprof -tagfocus side=gateway`.
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
	var gw *httptest.Server
	// Goroutines inherit labels from the one that starts them: the server's accept loop,
	// its connections, their handlers and the upstream connections they dial.
	pprof.Do(context.Background(), pprof.Labels("side", "gateway"), func(context.Context) {
		gw = httptest.NewServer(g.Handler())
	})
	defer gw.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	const body = `{"n":"pageview","u":"https://example.com/pricing?utm_source=news","d":"example.com","r":"https://google.com/","p":{"plan":"pro"}}`
	post := func(b *testing.B, url string) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		resp, err := client.Do(req)
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
			cpu := startCPUClock()
			for b.Loop() {
				post(b, target.url)
			}
			cpu.report(b)
		})
		b.Run(target.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			cpu := startCPUClock()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					post(b, target.url)
				}
			})
			cpu.report(b)
		})
	}
}

// cpuClock measures the CPU time (user and system) this process spends.
type cpuClock struct{ start time.Duration }

func startCPUClock() cpuClock { return cpuClock{start: processCPU()} }

// report adds the CPU time per operation since the clock started to the benchmark's
// results.
func (c cpuClock) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-c.start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGatewayInProcess is the beacon path of `glimpse all`: the gateway's router,
// limits and balancer in front of a collector handler in the same process, without
// sockets, so allocs/op and ns/op are the gateway's own.
//
//	go test -run '^$' -bench GatewayInProcess ./services/gateway/
func BenchmarkGatewayInProcess(b *testing.B) {
	collector := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})
	h := inProcessGateway(b, collector)
	const body = `{"n":"pageview","u":"https://example.com/pricing?utm_source=news","d":"example.com","r":"https://google.com/","p":{"plan":"pro"}}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/api/event", strings.NewReader(body))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// inProcessGateway is the gateway of `glimpse all` in front of collector, one in-process
// collector instance and no effective rate limits.
func inProcessGateway(tb testing.TB, collector http.Handler) http.Handler {
	tb.Helper()
	const addr = registry.InProcScheme + registry.Collector
	reg := registry.NewInProc()
	_ = reg.Register(context.Background(), registry.Instance{ID: "c1", Service: registry.Collector, Address: addr})
	cfg := DefaultConfig()
	cfg.RateLimit.IPRate, cfg.RateLimit.IPBurst = 1e9, 1e9
	cfg.RateLimit.SiteEventRate, cfg.RateLimit.SiteEventBurst = 1e9, 1e9
	g, err := New(cfg, Deps{Registry: reg, InProc: map[string]http.Handler{addr: collector}, Log: slog.New(slog.DiscardHandler), Metrics: prometheus.NewRegistry()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = g.Close() })
	return g.Handler()
}
