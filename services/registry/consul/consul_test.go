package consul

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/glimpse-analytics/glimpse/services/registry"
	"github.com/glimpse-analytics/glimpse/services/registry/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig is quick enough for tests: 1s is Consul's shortest check interval.
func testConfig(addr string) Config {
	cfg := DefaultConfig()
	cfg.Address = addr
	cfg.CheckInterval = time.Second
	cfg.CheckTimeout = 500 * time.Millisecond
	cfg.WatchWait = 5 * time.Second
	cfg.RequestTimeout = 2 * time.Second
	return cfg
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

type harness struct {
	*Registry
	logs    *logBuffer
	metrics *prometheus.Registry
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	logs := &logBuffer{}
	metrics := prometheus.NewRegistry()
	r, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Leave a shared agent as we found it.
		r.regMu.Lock()
		var ids []string
		for id := range r.owned {
			ids = append(ids, id)
		}
		r.regMu.Unlock()
		for _, id := range ids {
			_ = r.Deregister(context.Background(), id)
		}
		_ = r.Close()
	})
	return &harness{Registry: r, logs: logs, metrics: metrics}
}

// healthServer answers /healthz with 200 while healthy is true.
type healthServer struct {
	*httptest.Server
	mu      sync.Mutex
	healthy bool
}

func newHealthServer(t *testing.T) *healthServer {
	t.Helper()
	h := &healthServer{healthy: true}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		ok := h.healthy
		h.mu.Unlock()
		if r.URL.Path != "/healthz" || !ok {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *healthServer) set(ok bool) {
	h.mu.Lock()
	h.healthy = ok
	h.mu.Unlock()
}

func ids(insts []registry.Instance) string {
	var s []string
	for _, in := range insts {
		s = append(s, in.ID)
	}
	return strings.Join(s, ",")
}

// waitFor polls cond every 20ms until it holds or within passes; it returns how long it took.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func instancesAre(r *Registry, service, want string) func() bool {
	return func() bool {
		insts, err := r.Instances(context.Background(), service)
		return err == nil && ids(insts) == want
	}
}

func TestFlagsAndDefaults(t *testing.T) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	for name, want := range map[string]string{
		"consul.address": "127.0.0.1:8500", "consul.check-interval": "5s", "consul.check-timeout": "2s",
		"consul.deregister-critical-after": "1m0s", "consul.watch-wait": "30s", "consul.request-timeout": "5s",
		"consul.token": "", "consul.datacenter": "", "consul.zone": "",
	} {
		f := fs.Lookup(name)
		if f == nil || f.DefValue != want {
			t.Errorf("flag %s: %+v, want default %q", name, f, want)
		}
	}
	if err := fs.Parse([]string{"-consul.address=consul:8500", "-consul.zone=eu-1", "-consul.check-interval=10s"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Address != "consul:8500" || cfg.Zone != "eu-1" || cfg.CheckInterval != 10*time.Second {
		t.Fatalf("flags not applied: %+v", cfg)
	}
	bad := DefaultConfig()
	bad.CheckTimeout = time.Minute
	bad.WatchWait = time.Hour
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "check-timeout") || !strings.Contains(err.Error(), "watch-wait") {
		t.Fatalf("Validate = %v", err)
	}
	if _, err := New(bad, Options{}); err == nil {
		t.Fatal("New accepted an invalid config")
	}
}

func TestRegistrationShape(t *testing.T) {
	cfg := testConfig("127.0.0.1:1")
	cfg.Zone = "eu-1"
	r, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	reg, err := r.registration(registry.Instance{ID: "c-1", Service: registry.Collector, Address: "http://10.0.0.5:8081/", Meta: map[string]string{"version": "1.2.3"}})
	if err != nil {
		t.Fatal(err)
	}
	if reg.Address != "10.0.0.5" || reg.Port != 8081 || reg.Name != registry.Collector {
		t.Fatalf("address/port/name: %+v", reg)
	}
	if reg.Check.HTTP != "http://10.0.0.5:8081/healthz" || reg.Check.Interval != "1s" || reg.Check.Timeout != "500ms" || reg.Check.DeregisterCriticalServiceAfter != "1m0s" {
		t.Fatalf("check: %+v", reg.Check)
	}
	if strings.Join(reg.Tags, " ") != "version=1.2.3 zone=eu-1" || reg.Meta[MetaZone] != "eu-1" || reg.Meta[MetaAddress] != "http://10.0.0.5:8081/" {
		t.Fatalf("tags %v meta %v", reg.Tags, reg.Meta)
	}
	reg, _ = r.registration(registry.Instance{ID: "q", Service: "s", Address: "https://q.example", Meta: map[string]string{"zone": "us-2"}})
	if reg.Port != 443 || reg.Meta[MetaZone] != "us-2" {
		t.Fatalf("https default port / own zone: %+v", reg)
	}
	for _, addr := range []string{registry.InProcScheme + "x", "10.0.0.5:80", "http://", "http://h:port"} {
		if _, err := r.registration(registry.Instance{ID: "x", Service: "s", Address: addr}); err == nil {
			t.Errorf("address %q accepted", addr)
		}
	}
	if _, err := r.registration(registry.Instance{Service: "s", Address: "http://h:1"}); err == nil {
		t.Error("empty ID accepted")
	}
	in := toInstance(&api.ServiceEntry{Node: &api.Node{Address: "10.1.1.1"}, Service: &api.AgentService{ID: "ext", Service: "s", Port: 9000}})
	if in.Address != "http://10.1.1.1:9000" || in.Meta != nil {
		t.Fatalf("instance registered by another tool: %+v", in)
	}
}

func TestConformanceOnFake(t *testing.T) {
	f := startFake(t)
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		return newHarness(t, testConfig(f.addr)).Registry
	}, registrytest.Options{Settle: time.Second, Address: func(*testing.T) string { return "http://127.0.0.1:9/" }})
}

func TestFailingCheckDisappearsOnFake(t *testing.T) {
	f := startFake(t)
	r := newHarness(t, testConfig(f.addr))
	if err := r.Register(context.Background(), registry.Instance{ID: "a", Service: "svc", Address: "http://127.0.0.1:9"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "registered instance listed", instancesAre(r.Registry, "svc", "a"))
	f.setStatus("a", api.HealthCritical)
	waitFor(t, time.Second, "critical instance dropped", instancesAre(r.Registry, "svc", ""))
	if got := value(r.m.instances.WithLabelValues("svc")); got != 0 {
		t.Fatalf("glimpse_registry_instances = %v, want 0", got)
	}
}

func TestUnreachableKeepsCacheAndLogsOnce(t *testing.T) {
	f := startFake(t)
	r := newHarness(t, testConfig(f.addr))
	if err := r.Register(context.Background(), registry.Instance{ID: "a", Service: "svc", Address: "http://127.0.0.1:9"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "listed", instancesAre(r.Registry, "svc", "a"))
	if got := value(r.m.reachable); got != 1 {
		t.Fatalf("reachable = %v", got)
	}
	f.down()
	waitFor(t, 3*time.Second, "outage noticed", func() bool { return value(r.m.reachable) == 0 })
	for i := 0; i < 100; i++ {
		insts, err := r.Instances(context.Background(), "svc")
		if err != nil || ids(insts) != "a" {
			t.Fatalf("during the outage: %v %v, want the cached set", insts, err)
		}
	}
	time.Sleep(1500 * time.Millisecond) // several failed watch queries and one keeper round
	if n := r.logs.count("consul: unreachable"); n != 1 {
		t.Fatalf("outage logged %d times, want once:\n%s", n, r.logs.buf.String())
	}
	// A service never looked up before the outage has nothing cached: a fast error.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := r.Instances(ctx, "other"); err == nil || ctx.Err() != nil {
		t.Fatalf("unknown service during the outage: err %v, ctx %v", err, ctx.Err())
	}
	f.up()
	waitFor(t, 3*time.Second, "reachable again", func() bool { return value(r.m.reachable) == 1 })
	if n := r.logs.count("consul: reachable again"); n != 1 {
		t.Fatalf("recovery logged %d times", n)
	}
	waitFor(t, 2*time.Second, "lookups of a new service work again", instancesAre(r.Registry, "other", ""))
}

func TestReRegistersAfterAgentReset(t *testing.T) {
	f := startFake(t)
	r := newHarness(t, testConfig(f.addr))
	if err := r.Register(context.Background(), registry.Instance{ID: "a", Service: "svc", Address: "http://127.0.0.1:9", Meta: map[string]string{"version": "v1"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "listed", instancesAre(r.Registry, "svc", "a"))
	f.down()
	f.reset()
	f.up()
	took := waitFor(t, 3*time.Second, "registered again", func() bool { reg, _ := f.known("a"); return reg != nil })
	reg, status := f.known("a")
	if status != api.HealthCritical || reg.Meta["version"] != "v1" || reg.Check.HTTP != "http://127.0.0.1:9/healthz" {
		t.Fatalf("re-registration: status %q, %+v", status, reg)
	}
	t.Logf("re-registered %s after the fake agent came back", took)
	if got := value(r.m.reregistrations); got != 1 {
		t.Fatalf("reregistrations = %v", got)
	}
	// Deregistered instances stay gone.
	if err := r.Deregister(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if reg, _ := f.known("a"); reg != nil {
		t.Fatal("a deregistered instance came back")
	}
	if err := r.Deregister(context.Background(), "a"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("second Deregister = %v, want ErrNotFound", err)
	}
}

// TestWatchKeepsInstancesWhileAgentSettles restarts the agent with an empty catalog under a
// watching registry (a gateway). Its instances register again as critical, so for a while
// the agent lists none: the watch keeps the ones it knew for settleTime instead of
// answering "none", then follows the agent again.
func TestWatchKeepsInstancesWhileAgentSettles(t *testing.T) {
	f := startFake(t)
	cfg := testConfig(f.addr)
	owner := newHarness(t, cfg)
	if err := owner.Register(context.Background(), registry.Instance{ID: "a", Service: "svc", Address: "http://127.0.0.1:9"}); err != nil {
		t.Fatal(err)
	}
	gw := newHarness(t, cfg)
	waitFor(t, 2*time.Second, "listed", instancesAre(gw.Registry, "svc", "a"))
	f.down()
	waitFor(t, 3*time.Second, "outage noticed", func() bool { return value(gw.m.reachable) == 0 })
	f.reset()
	f.up()
	waitFor(t, 5*time.Second, "the agent answers the watch again", func() bool { return value(gw.m.reachable) == 1 && gw.logs.count("kept while they register again") == 1 })
	back := time.Now()
	waitFor(t, 3*time.Second, "registered again (critical)", func() bool { _, st := f.known("a"); return st == api.HealthCritical })
	// The fake runs no checks: "a" stays critical, so the agent lists nothing.
	for time.Since(back) < gw.settleTime()-300*time.Millisecond {
		if !instancesAre(gw.Registry, "svc", "a")() {
			t.Fatalf("%s after the agent came back the watch lists %v; want the known instance kept for %s", time.Since(back).Round(time.Millisecond), func() string { i, _ := gw.Instances(context.Background(), "svc"); return ids(i) }(), gw.settleTime())
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := waitFor(t, 2*time.Second, "the still-critical instance dropped after settling", instancesAre(gw.Registry, "svc", ""))
	t.Logf("kept for %s after the agent came back", (gw.settleTime() - 300*time.Millisecond + took).Round(10*time.Millisecond))
	f.setStatus("a", api.HealthPassing)
	waitFor(t, time.Second, "listed once passing", instancesAre(gw.Registry, "svc", "a"))
}

func TestRegisterWhileDownIsRetried(t *testing.T) {
	f := startFake(t)
	f.down()
	r := newHarness(t, testConfig(f.addr))
	err := r.Register(context.Background(), registry.Instance{ID: "a", Service: "svc", Address: "http://127.0.0.1:9"})
	if err == nil || !strings.Contains(err.Error(), f.addr) {
		t.Fatalf("Register with the agent down = %v", err)
	}
	f.up()
	waitFor(t, 3*time.Second, "registered once the agent answers", func() bool { reg, _ := f.known("a"); return reg != nil })
}

func TestFirstLookupBoundedByContext(t *testing.T) {
	f := startFake(t)
	f.mu.Lock()
	f.hang = true
	f.mu.Unlock()
	r := newHarness(t, testConfig(f.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Instances(ctx, "svc")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("Instances on a hanging agent: %v after %s", err, time.Since(start))
	}
}

func TestCloseStopsEverything(t *testing.T) {
	f := startFake(t)
	before := goleak.IgnoreCurrent()
	r, err := New(testConfig(f.addr), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "b", "c"} {
		if _, err := r.Instances(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("Close waited %s for blocking queries", time.Since(start))
	}
	if _, err := r.Instances(context.Background(), "a"); err == nil {
		t.Fatal("Instances after Close succeeded")
	}
	if err := r.Register(context.Background(), registry.Instance{ID: "x", Service: "s", Address: "http://h:1"}); err == nil {
		t.Fatal("Register after Close succeeded")
	}
	goleak.VerifyNone(t, before)
}

// value reads a gauge or counter.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}
