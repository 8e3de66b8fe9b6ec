package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/glimpse-analytics/glimpse/services/registry"
)

func testPool(t *testing.T, cfg Config, clock *fakeClock) (*pool, *metrics) {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	return newPool(cfg, nil, clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil)), m), m
}

func instances(addrs ...string) []registry.Instance {
	var out []registry.Instance
	for _, a := range addrs {
		out = append(out, registry.Instance{ID: a, Service: "s", Address: a})
	}
	return out
}

func trip(t *testing.T, p *pool, addr string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		l, _ := p.acquire(instances(addr), nil, 0)
		if l == nil {
			return
		}
		l.finish(errors.New("boom"))
	}
	if st, _ := p.state(addr); st != gobreaker.StateOpen {
		t.Fatalf("%s: breaker %v after %d failures", addr, st, n)
	}
}

func TestReadyToTrip(t *testing.T) {
	trip := readyToTrip(0.5, 10)
	cases := []struct {
		ok, fail uint32
		want     bool
	}{
		{0, 9, false}, // below the volume, even all failing
		{0, 10, true}, // volume reached, all failing
		{5, 5, true},  // exactly the ratio
		{6, 4, false}, // below the ratio
		{60, 40, false},
		{40, 60, true},
	}
	for _, c := range cases {
		counts := gobreaker.Counts{TotalSuccesses: c.ok, TotalFailures: c.fail, Requests: c.ok + c.fail + 7, TotalExclusions: 7}
		if got := trip(counts); got != c.want {
			t.Errorf("%d ok / %d failed: trip=%v, want %v", c.ok, c.fail, got, c.want)
		}
	}
}

func TestBreakerOutcomeClassification(t *testing.T) {
	if !isSuccessful(nil) || !isSuccessful(context.Canceled) || !isSuccessful(fmt.Errorf("proxy: %w", context.Canceled)) {
		t.Fatal("nil and cancellations must not count as failures")
	}
	if !isExcluded(context.Canceled) || isExcluded(context.DeadlineExceeded) || isExcluded(nil) {
		t.Fatal("only cancellations are left out of the counts")
	}
	for _, err := range []error{&statusError{code: 503}, context.DeadlineExceeded, errors.New("connection refused"), errAborted} {
		if isSuccessful(err) {
			t.Errorf("%v counted as success", err)
		}
	}
}

func TestBreakerSettingsFromConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Breaker = BreakerConfig{FailureRatio: 0.5, MinRequests: 4, Window: time.Minute, OpenTimeout: time.Hour, HalfOpenRequests: 2}
	p, _ := testPool(t, cfg, newFakeClock())
	s := p.breakerSettings("http://a")
	if s.MaxRequests != 2 || s.Timeout != time.Hour || s.Interval != time.Minute || s.BucketPeriod != 10*time.Second || s.Name != "http://a" {
		t.Fatalf("settings %+v", s)
	}
	// Cancellations neither trip nor count towards the volume.
	u := p.get("http://a")
	for i := 0; i < 10; i++ {
		done, err := u.cb.Allow()
		if err != nil {
			t.Fatal(err)
		}
		done(context.Canceled)
	}
	if c := u.cb.Counts(); c.TotalFailures != 0 || c.TotalSuccesses != 0 || c.TotalExclusions != 10 {
		t.Fatalf("counts after cancellations: %+v", c)
	}
	// 2 failures, 2 successes: ratio reached at the minimum volume.
	for _, err := range []error{nil, errors.New("x"), nil, errors.New("y")} {
		done, _ := u.cb.Allow()
		done(err)
	}
	if u.cb.State() != gobreaker.StateOpen {
		t.Fatalf("state %v, want open", u.cb.State())
	}
}

func TestBalancerSkipsOpenBreakers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Breaker.MinRequests, cfg.Breaker.OpenTimeout = 3, time.Hour
	p, m := testPool(t, cfg, newFakeClock())
	trip(t, p, "http://a", 3)
	all := instances("http://a", "http://b", "http://c")
	seen := map[string]int{}
	for i := uint64(0); i < 30; i++ {
		l, why := p.acquire(all, nil, i)
		if l == nil {
			t.Fatalf("no lease: %s", why)
		}
		seen[l.u.addr]++
		l.finish(nil)
	}
	if seen["http://a"] != 0 || seen["http://b"] != 15 || seen["http://c"] != 15 {
		t.Fatalf("spread with a's breaker open: %v", seen)
	}
	if v := value(mustMetric(t, m.breakerState.WithLabelValues("http://a"))); v != float64(gobreaker.StateOpen) {
		t.Fatalf("breaker_state gauge %v", v)
	}
	if v := value(mustMetric(t, m.breakerTransitions.WithLabelValues("http://a", "open"))); v != 1 {
		t.Fatalf("transitions to open %v", v)
	}
	// b and c had 15 successes each: it takes as many failures to reach the ratio.
	trip(t, p, "http://b", 40)
	trip(t, p, "http://c", 40)
	if l, why := p.acquire(all, nil, 0); l != nil || why != reasonBreakerOpen {
		t.Fatalf("all open: lease %v reason %q", l, why)
	}
}

func TestBalancerPrefersLeastPending(t *testing.T) {
	p, _ := testPool(t, DefaultConfig(), newFakeClock())
	all := instances("http://a", "http://b")
	held, _ := p.acquire(all, nil, 0) // a: 1 in flight
	if held.u.addr != "http://a" {
		t.Fatalf("first pick %s", held.u.addr)
	}
	for i := uint64(0); i < 4; i++ { // whatever the rotation, b has fewer in flight
		l, _ := p.acquire(all, nil, i*2)
		if l.u.addr != "http://b" {
			t.Fatalf("rotation %d picked %s while a has a request in flight", i*2, l.u.addr)
		}
		l.finish(nil)
	}
	held.finish(nil)
	// Equal load: the rotation decides, which is round robin.
	seen := map[string]int{}
	for i := uint64(0); i < 10; i++ {
		l, _ := p.acquire(all, nil, i)
		seen[l.u.addr]++
		l.finish(nil)
	}
	if seen["http://a"] != 5 || seen["http://b"] != 5 {
		t.Fatalf("equal load spread %v", seen)
	}
	// Skipped instances (already tried) are never picked.
	l, _ := p.acquire(all, []string{"http://a"}, 0)
	if l.u.addr != "http://b" {
		t.Fatalf("tried instance picked again")
	}
	l.finish(nil)
	if l, why := p.acquire(all, []string{"http://a", "http://b"}, 0); l != nil || why != reasonNoInstance {
		t.Fatalf("everything tried: %v %q", l, why)
	}
}

func TestBulkhead(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxConcurrentPerUpstream = 2
	p, _ := testPool(t, cfg, newFakeClock())
	one := instances("http://a")
	l1, _ := p.acquire(one, nil, 0)
	l2, _ := p.acquire(one, nil, 0)
	if l1 == nil || l2 == nil {
		t.Fatal("two leases within the bound")
	}
	if l, why := p.acquire(one, nil, 0); l != nil || why != reasonBulkhead {
		t.Fatalf("third lease: %v %q", l, why)
	}
	// With a second instance the overflow goes there.
	l3, _ := p.acquire(instances("http://a", "http://b"), nil, 0)
	if l3 == nil || l3.u.addr != "http://b" {
		t.Fatalf("overflow went to %v", l3)
	}
	l1.finish(nil)
	if l, _ := p.acquire(one, nil, 0); l == nil {
		t.Fatal("a slot freed by finish was not reusable")
	}
}

func TestHalfOpenProbes(t *testing.T) {
	cfg := DefaultConfig()
	// gobreaker reads the wall clock itself, so the open timeout is real and short.
	cfg.Breaker = BreakerConfig{FailureRatio: 0.5, MinRequests: 2, Window: time.Minute, OpenTimeout: 50 * time.Millisecond, HalfOpenRequests: 2}
	p, _ := testPool(t, cfg, newFakeClock())
	trip(t, p, "http://a", 2)
	all := instances("http://a", "http://b")
	if l, _ := p.acquire(all, nil, 0); l.u.addr != "http://b" {
		t.Fatal("open breaker picked")
	} else {
		l.finish(nil)
	}
	time.Sleep(70 * time.Millisecond)
	if st, _ := p.state("http://a"); st != gobreaker.StateHalfOpen {
		t.Fatalf("after the open timeout: %v", st)
	}
	one := instances("http://a")
	probe1, _ := p.acquire(one, nil, 0)
	probe2, _ := p.acquire(one, nil, 0)
	if probe1 == nil || probe2 == nil {
		t.Fatal("half-open breaker let fewer than MaxRequests probes through")
	}
	if l, why := p.acquire(one, nil, 0); l != nil || why != reasonBreakerOpen {
		t.Fatalf("third probe admitted: %v %q", l, why)
	}
	// Meanwhile traffic goes to the healthy instance.
	if l, _ := p.acquire(all, nil, 0); l == nil || l.u.addr != "http://b" {
		t.Fatalf("while probing: %v", l)
	} else {
		l.finish(nil)
	}
	probe1.finish(nil)
	probe2.finish(nil)
	if st, _ := p.state("http://a"); st != gobreaker.StateClosed {
		t.Fatalf("after successful probes: %v", st)
	}
	// A failed probe opens it again.
	trip(t, p, "http://a", 2)
	time.Sleep(70 * time.Millisecond)
	probe, _ := p.acquire(one, nil, 0)
	probe.finish(&statusError{code: 500})
	if st, _ := p.state("http://a"); st != gobreaker.StateOpen {
		t.Fatalf("after a failed probe: %v", st)
	}
}

func TestPoolForgetsDepartedInstances(t *testing.T) {
	clock := newFakeClock()
	p, m := testPool(t, DefaultConfig(), clock)
	l, _ := p.acquire(instances("http://old"), nil, 0)
	l.finish(nil)
	clock.Advance(upstreamIdle / 2)
	l, _ = p.acquire(instances("http://new"), nil, 0)
	l.finish(nil)
	if _, ok := p.state("http://old"); !ok {
		t.Fatal("forgotten too early")
	}
	clock.Advance(upstreamIdle/2 + pruneInterval + time.Second)
	l, _ = p.acquire(instances("http://new"), nil, 0)
	l.finish(nil)
	if _, ok := p.state("http://old"); ok {
		t.Fatal("an instance the registry stopped listing was kept")
	}
	if _, ok := p.state("http://new"); !ok {
		t.Fatal("a listed instance was dropped")
	}
	if n := testCollectorCount(m.breakerState); n != 1 {
		t.Fatalf("breaker_state series: %d, want 1", n)
	}
}

func TestBadAddresses(t *testing.T) {
	p, _ := testPool(t, DefaultConfig(), newFakeClock())
	for _, addr := range []string{registry.InProcScheme + "missing", "10.0.0.1:80", "ftp://h/", "http://"} {
		if u := p.get(addr); u.bad == nil {
			t.Errorf("%q accepted", addr)
		}
	}
}
