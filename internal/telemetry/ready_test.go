package telemetry

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeDep fails while down is set and counts its pings.
type fakeDep struct {
	down  atomic.Bool
	slow  atomic.Bool
	pings atomic.Int32
}

func (f *fakeDep) Ping(ctx context.Context) error {
	f.pings.Add(1)
	if f.slow.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.down.Load() {
		return errors.New("connection refused")
	}
	return nil
}

func TestDependencyProbeCachesFailsAndRecovers(t *testing.T) {
	store, bus := &fakeDep{}, &fakeDep{}
	now := time.Unix(1000, 0)
	p := &DependencyProbe{
		Deps:     []Dependency{{Name: "store", Ping: store.Ping}, {Name: "bus", Ping: bus.Ping}},
		Interval: 2 * time.Second,
		Timeout:  50 * time.Millisecond,
		Now:      func() time.Time { return now },
	}
	if err := p.Check(); err != nil {
		t.Fatalf("both up: %v", err)
	}
	bus.down.Store(true)
	// Within the interval the cached answer stands and nothing is asked again.
	for range 100 {
		if err := p.Check(); err != nil {
			t.Fatalf("cached answer changed within the interval: %v", err)
		}
	}
	if n := bus.pings.Load(); n != 1 {
		t.Fatalf("bus pinged %d times within one interval, want 1", n)
	}
	now = now.Add(2 * time.Second)
	err := p.Check()
	if err == nil || !strings.Contains(err.Error(), "bus: connection refused") || strings.Contains(err.Error(), "store") {
		t.Fatalf("bus down: got %v, want only the bus named with its reason", err)
	}
	store.slow.Store(true)
	now = now.Add(2 * time.Second)
	start := time.Now()
	err = p.Check()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a hanging dependency held the check for %v; the timeout is 50ms", took)
	}
	if err == nil || !strings.Contains(err.Error(), "store: no answer within 50ms") || !strings.Contains(err.Error(), "bus:") {
		t.Fatalf("both failing: got %v", err)
	}
	store.slow.Store(false)
	bus.down.Store(false)
	now = now.Add(2 * time.Second)
	if err := p.Check(); err != nil {
		t.Fatalf("recovered: %v", err)
	}
}

func TestReadyzNamesTheFailingDependency(t *testing.T) {
	reg := prometheus.NewRegistry()
	dep := &fakeDep{}
	dep.down.Store(true)
	p := &DependencyProbe{Deps: []Dependency{{Name: "registry", Ping: dep.Ping}}}
	started := false
	lifecycle := func() error {
		if !started {
			return errors.New("services are starting or stopping")
		}
		return nil
	}
	mux := http.NewServeMux()
	Mount(mux, reg, AllReady(lifecycle, p.Check))
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
		t.Fatalf("starting: %d %q", code, body)
	}
	if dep.pings.Load() != 0 {
		t.Fatal("dependencies pinged before the services started")
	}
	started = true
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "registry: connection refused") {
		t.Fatalf("registry down: %d %q", code, body)
	}
}

func TestLoggerAddsRequestIDFromContext(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log, err := NewLogger(&buf, format, "info")
		if err != nil {
			t.Fatal(err)
		}
		log = log.With("service", "collector")
		ctx := WithRequestID(context.Background(), "abc123")
		log.WarnContext(ctx, "bus unavailable")
		log.Warn("no context")
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 2 {
			t.Fatalf("%s: %d lines: %q", format, len(lines), buf.String())
		}
		if !strings.Contains(lines[0], "request_id") || !strings.Contains(lines[0], "abc123") {
			t.Errorf("%s: line with a request context lacks the id: %q", format, lines[0])
		}
		if strings.Contains(lines[1], "request_id") {
			t.Errorf("%s: line without a request context has an id: %q", format, lines[1])
		}
	}
}
