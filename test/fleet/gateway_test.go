package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/loadgen"
	"github.com/glimpse-analytics/glimpse/services/registry"
	"github.com/glimpse-analytics/glimpse/test/testkit"
)

// The gateway tests run a gateway in front of collector and query processes on the real
// engines. Each fleet gets its own Consul agent: a gateway routes to every collector its
// agent lists, so a shared agent would mix fleets.

// Metric names the gateway tests read.
const (
	mCollectorEvents    = "glimpse_collector_events_total"
	mGatewayRequests    = "glimpse_gateway_requests_total"
	mBreakerState       = "glimpse_gateway_breaker_state"
	mBreakerTransitions = "glimpse_gateway_breaker_transitions_total"
	mGatewayRejected    = "glimpse_gateway_rejected_total"
	mRegistryInstances  = "glimpse_registry_instances"
	mConsulReachable    = "glimpse_registry_consul_reachable"
	mConsulReregistered = "glimpse_registry_consul_reregistrations_total"
	breakerOpen         = 2 // glimpse_gateway_breaker_state of an open breaker
)

// requireGatewayEngines skips unless Kafka, Cassandra and Consul are all configured.
func requireGatewayEngines(t *testing.T) {
	t.Helper()
	requireEngines(t, true)
}

// procSpec is one process to start: a target and its extra flags.
type procSpec struct {
	target string
	extra  []string
}

// launchAndWait launches every process at once and then waits for each to be ready, which
// is quicker on two cores than starting them one after another.
func launchAndWait(f *Fleet, specs ...procSpec) []*Proc {
	f.t.Helper()
	procs := make([]*Proc, len(specs))
	for i, s := range specs {
		if s.target == "gateway" && f.Consul == "" {
			f.t.Fatal("a gateway needs Consul")
		}
		procs[i] = f.Launch(s.target, s.extra...)
	}
	for _, p := range procs {
		p.WaitReady(90 * time.Second)
	}
	return procs
}

// collectorAccepted is how many events a collector published since it started.
func collectorAccepted(p *Proc) float64 {
	return p.Metric(mCollectorEvents, "result", "accepted")
}

// waitRoutes waits until the gateway's registry cache lists n instances of service. The
// cache of a service is filled on its first lookup, so a request is sent to start it.
func waitRoutes(t *testing.T, gw *Proc, service string, n int) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("the gateway to list %d %s instances", n, service), func() (bool, string) {
		switch service {
		case registry.Collector:
			// A beacon no collector counts: an unknown site is dropped with 202.
			req, _ := http.NewRequest(http.MethodPost, gw.URL+"/api/event", strings.NewReader(`{"n":"pageview","u":"https://warmup.invalid/","d":"warmup.invalid"}`))
			req.Header.Set("Content-Type", "text/plain")
			req.Header.Set("User-Agent", gwTestUA)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		case registry.Query:
			if resp, err := client.Get(gw.URL + "/api/v1/realtime?site_id=warmup.invalid"); err == nil {
				resp.Body.Close()
			}
		}
		got := gw.Metric(mRegistryInstances, "service", service)
		return int(got) == n, fmt.Sprintf("%v listed", got)
	})
}

// gwTestUA is a browser the collector counts (loadgen's own are used for the load).
const gwTestUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36"

// failureClock records when the load saw failures, from loadgen's progress callback (called
// after every visit, from every worker).
type failureClock struct {
	mu    sync.Mutex
	seen  int64
	times []time.Time
}

func (c *failureClock) progress(_, _, failed int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for ; c.seen < failed; c.seen++ {
		c.times = append(c.times, now)
	}
}

func (c *failureClock) snapshot() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.times...)
}

func (c *failureClock) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.times)
}

// beaconLedger is what was sent to a site with a UniquePaths plan: each page view has its own
// path, so the store's page breakdown shows exactly which beacons it holds.
type beaconLedger struct {
	site      string
	pageviews map[string]bool // every page-view path sent
	resent    map[string]bool // page views whose first attempt failed and were sent again
	signups   int             // custom events sent
	resentEvs int             // of which sent again
	sent      int             // beacons, first attempts
	acked     int             // beacons that got a 2xx, first attempt or resend
}

func newBeaconLedger(site string) *beaconLedger {
	return &beaconLedger{site: site, pageviews: map[string]bool{}, resent: map[string]bool{}}
}

// add books a send of p: first is true for first attempts (they count as sent), false for
// resends of failed beacons.
func (l *beaconLedger) add(p *loadgen.Plan, rep *loadgen.Report, first bool) {
	for vi, v := range p.Visits {
		for bi, b := range v.Beacons {
			if first {
				l.sent++
				if b.Name == "pageview" {
					l.pageviews[b.Path] = true
				} else {
					l.signups++
				}
			} else if b.Name == "pageview" {
				l.resent[b.Path] = true
			} else {
				l.resentEvs++
			}
			if rep.Outcome[vi][bi] {
				l.acked++
			}
		}
	}
}

// checkStore waits until the store (asked through base, normally the gateway) holds every
// page view that was sent, then requires each path exactly once and nothing else: a resent
// beacon carries its first attempt's event id, so even when that attempt reached the bus
// before its collector died without answering, the processor drops the second copy. The
// custom events must match too. It returns the page views and custom events the store
// holds.
func (l *beaconLedger) checkStore(t *testing.T, f *Fleet, base string, timeout time.Duration) (int, int) {
	t.Helper()
	var counts map[string]int
	testkit.WaitFor(t, timeout, "every page view sent to be counted", func() (bool, string) {
		r := f.Query(t, base, map[string]any{"site_id": l.site, "metrics": []string{"pageviews"}, "dimensions": []string{"event:page"},
			"date_range": testkit.TodayRange(), "limit": 100000})
		counts = r.Breakdown()
		missing := 0
		for p := range l.pageviews {
			if counts[p] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d page views not counted yet", missing, len(l.pageviews))
	})
	var bad []string
	total := 0
	for p, n := range counts {
		total += n
		switch {
		case !l.pageviews[p]:
			bad = append(bad, fmt.Sprintf("%s×%d never sent", p, n))
		case n > 1:
			bad = append(bad, fmt.Sprintf("%s×%d (resent=%v)", p, n, l.resent[p]))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		t.Fatalf("the store holds page views it must not: %d, e.g. %v", len(bad), testkit.Head(bad, 20))
	}
	var events int
	testkit.WaitFor(t, timeout, "the custom events", func() (bool, string) {
		r := f.Query(t, base, map[string]any{"site_id": l.site, "metrics": []string{"events"}, "date_range": testkit.TodayRange()})
		if len(r.Results) > 0 {
			events = int(r.Results[0].Metrics[0])
		}
		if events > l.signups {
			t.Fatalf("the store holds %d custom events; %d were sent (%d of them twice)", events, l.signups, l.resentEvs)
		}
		return events == l.signups, fmt.Sprintf("%d of %d", events, l.signups)
	})
	return total, events
}

// TestGatewayCollectorKilledAndRestarted runs two collectors and two query services behind a
// gateway under a steady load, kills one collector with SIGKILL and restarts it. Failed
// beacons must stop within the breaker's trip window (only requests in flight at the kill
// fail; later ones that pick the dead collector fail to connect and go to the survivor),
// the restarted collector must take traffic again once it is back in Consul and its breaker
// lets it through. The failed beacons are resent with the same body (event id included), as
// the tracker does, and then what the load sent, what got a 2xx and what the store holds
// must be equal.
func TestGatewayCollectorKilledAndRestarted(t *testing.T) {
	requireGatewayEngines(t)
	started := time.Now()
	const site = "kill.example"
	f := NewFleet(t, FleetOptions{PrivateConsul: true, Sites: []string{site}})
	// The breaker trips on the default volume (20 finished requests, half failing) and
	// probes again after 2s instead of 10s, so the restarted collector is back quickly.
	// Collectors wait 40ms for a Kafka batch, so a few beacons are in flight on the one
	// that is killed: their answers are lost although the bus may hold them.
	batching := []string{"--kafka.batch-timeout=40ms"}
	procs := launchAndWait(f,
		procSpec{target: "collector", extra: batching}, procSpec{target: "collector", extra: batching},
		procSpec{target: "query"}, procSpec{target: "query"},
		procSpec{target: "processor"},
		procSpec{target: "gateway", extra: []string{"--gateway.breaker.open-timeout=2s"}},
	)
	c1, c2, proc, gw := procs[0], procs[1], procs[4], procs[5]
	waitRoutes(t, gw, registry.Collector, 2)
	waitRoutes(t, gw, registry.Query, 2)

	// 120 beacons/s for about 30s: the kill, the restart and the restarted collector's
	// return all happen under load.
	const rate = 120
	plan := loadgen.NewPlan(loadgen.Options{Sites: []string{site}, Events: rate * 30, Seed: 11, UniquePaths: true})
	var clock failureClock
	done := make(chan *loadgen.Report, 1)
	loadStart := time.Now()
	go func() {
		done <- loadgen.Send(context.Background(), plan, loadgen.SendOptions{Target: gw.URL, Concurrency: 8, Rate: rate, Timeout: 10 * time.Second, Progress: clock.progress})
	}()

	testkit.WaitFor(t, 15*time.Second, "both collectors to take traffic", func() (bool, string) {
		a, b := collectorAccepted(c1), collectorAccepted(c2)
		return a >= 50 && b >= 50, fmt.Sprintf("collector-1 %v, collector-2 %v", a, b)
	})
	if n := clock.count(); n > 0 {
		t.Fatalf("%d beacons failed before anything was killed", n)
	}
	killedURL := c1.URL
	killAt := time.Now()
	c1.Kill()
	survivorAtKill := collectorAccepted(c2)
	// Whichever comes first takes the dead collector out of the rotation: its breaker (once
	// failed connections outnumber its successes of the breaker's window) or Consul's health
	// check. Until then connections to it are refused and those beacons go to the survivor.
	var outBy string
	testkit.WaitFor(t, 10*time.Second, "the gateway to stop choosing the killed collector", func() (bool, string) {
		opened := gw.Metric(mBreakerTransitions, "upstream", killedURL, "to", "open")
		listed := gw.Metric(mRegistryInstances, "service", registry.Collector)
		switch {
		case opened >= 1:
			outBy = "its breaker opened"
		case listed == 1:
			outBy = "Consul's health check failed"
		}
		return outBy != "", fmt.Sprintf("%v transitions to open, %v collectors listed", opened, listed)
	})
	tripped := time.Since(killAt)
	time.Sleep(4 * time.Second) // the survivor alone
	survivorGot := collectorAccepted(c2) - survivorAtKill
	if survivorGot < rate {
		t.Fatalf("the survivor accepted only %v beacons in the %s after the kill", survivorGot, time.Since(killAt).Round(time.Second))
	}

	c1 = c1.Restart()
	restartedAt := time.Now()
	testkit.WaitFor(t, 20*time.Second, "the restarted collector to take traffic", func() (bool, string) {
		v := collectorAccepted(c1)
		return v >= 20, fmt.Sprintf("%v accepted", v)
	})
	back := time.Since(restartedAt)
	if ids := consulPassing(t, f.Consul, registry.Collector); !ids[c1.URL] || !ids[c2.URL] {
		t.Fatalf("Consul's passing collectors are %v; want both %s and %s", ids, c1.URL, c2.URL)
	}

	var rep *loadgen.Report
	select {
	case rep = <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("the load did not finish")
	}
	loadTook := time.Since(loadStart)
	if rep.Sent != int64(plan.Events()) {
		t.Fatalf("the load sent %d of %d beacons", rep.Sent, plan.Events())
	}

	// Failures only right at the kill: nothing after the breaker's trip window.
	const tripWindow = 3 * time.Second
	var late []string
	for _, at := range clock.snapshot() {
		if d := at.Sub(killAt); d > tripWindow || d < -time.Second {
			late = append(late, fmt.Sprintf("%+.2fs", d.Seconds()))
		}
	}
	if len(late) > 0 {
		t.Fatalf("%d beacons failed outside the trip window of %s after the kill (at %v after it); causes: %v", len(late), tripWindow, late, rep.Errors)
	}

	// The tracker resends a beacon after a 5xx: do the same with the failed ones.
	book := newBeaconLedger(site)
	book.add(plan, rep, true)
	if rep.Failed > 0 {
		again := testkit.FailedBeacons(plan, rep)
		rep2 := loadgen.Send(context.Background(), again, loadgen.SendOptions{Target: gw.URL, Concurrency: 2, Retries: 5})
		if rep2.Failed != 0 {
			t.Fatalf("resending %d failed beacons: %d failed again: %v", again.Events(), rep2.Failed, rep2.Errors)
		}
		book.add(again, rep2, false)
	}
	if book.acked != book.sent {
		t.Fatalf("sent %d beacons, %d got a 2xx", book.sent, book.acked)
	}
	pvs, evs := book.checkStore(t, f, gw.URL, 90*time.Second)
	testkit.SkipIfDayChanged(t, started)

	t.Logf("load: %d beacons at %d/s over %s through the gateway to 2 collectors; the killed collector was out of the rotation %s after the kill (%s); the survivor took %v beacons in the next 4s",
		rep.Sent, rate, loadTook.Round(100*time.Millisecond), tripped.Round(time.Millisecond), outBy, survivorGot)
	t.Logf("failures: %d, all within %s of the kill (%v); restarted collector took traffic %s after it was ready, %v beacons so far",
		rep.Failed, tripWindow, rep.Errors, back.Round(time.Millisecond), collectorAccepted(c1))
	t.Logf("sent %d beacons (%d page views, %d custom events), %d got a 2xx (%d of them when resent); the store holds %d page views, each path once, and %d custom events",
		book.sent, len(book.pageviews), book.signups, book.acked, rep.Failed, pvs, evs)
	t.Logf("resent beacons whose first attempt had reached the bus, dropped by the processor: %v",
		proc.Metric("glimpse_processor_duplicates_dropped_total"))
	t.Logf("gateway breaker transitions of the killed address: open %v, half-open %v, closed %v",
		gw.Metric(mBreakerTransitions, "upstream", killedURL, "to", "open"),
		gw.Metric(mBreakerTransitions, "upstream", killedURL, "to", "half-open"),
		gw.Metric(mBreakerTransitions, "upstream", killedURL, "to", "closed"))
}

// consulPassing returns the addresses (as registered, scheme included) of the instances of
// service that the Consul agent at addr lists as passing their health check.
func consulPassing(t *testing.T, addr, service string) map[string]bool {
	t.Helper()
	out, err := consulPassingErr(addr, service)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func consulPassingErr(addr, service string) (map[string]bool, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/v1/health/service/" + service + "?passing=true")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("consul health of %s: HTTP %d: %s", service, resp.StatusCode, raw)
	}
	var entries []struct {
		Service struct {
			ID      string
			Address string
			Port    int
			Meta    map[string]string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&entries); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range entries {
		a := e.Service.Meta["glimpse_address"]
		if a == "" {
			a = "http://" + e.Service.Address + ":" + strconv.Itoa(e.Service.Port)
		}
		out[a] = true
	}
	return out, nil
}

// consulRegister registers an instance that is not a glimpse process (a test server) with
// an HTTP health check on /healthz, and deregisters it when the test ends.
func consulRegister(t *testing.T, agent, id, service, url string) {
	t.Helper()
	host, port, _ := strings.Cut(strings.TrimPrefix(url, "http://"), ":")
	p, _ := strconv.Atoi(port)
	reg := map[string]any{
		"ID": id, "Name": service, "Address": host, "Port": p,
		"Meta":  map[string]string{"glimpse_address": url},
		"Check": map[string]any{"HTTP": url + "/healthz", "Interval": "1s", "Timeout": "1s", "DeregisterCriticalServiceAfter": "1m"},
	}
	body, _ := json.Marshal(reg)
	consulPut(t, agent, "/v1/agent/service/register", body)
	t.Cleanup(func() {
		client := &http.Client{Timeout: 5 * time.Second}
		req, _ := http.NewRequest(http.MethodPut, "http://"+agent+"/v1/agent/service/deregister/"+id, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	})
}

func consulPut(t *testing.T, agent, path string, body []byte) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequest(http.MethodPut, "http://"+agent+path, bytes.NewReader(body))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("consul PUT %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("consul PUT %s: HTTP %d: %s", path, resp.StatusCode, raw)
	}
}

// slowServer answers /healthz at once and /api/event only after delay: a collector that is
// alive to Consul but too slow for the gateway.
type slowServer struct {
	*httptest.Server
	hits atomic.Int64
}

func newSlowServer(t *testing.T, delay time.Duration) *slowServer {
	t.Helper()
	s := &slowServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusOK)
			return
		}
		s.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(delay):
			w.WriteHeader(http.StatusAccepted)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// TestGatewaySlowCollectorIsTrippedAndBypassed registers next to a real collector an
// instance that passes its health checks but answers beacons only after a delay beyond
// --gateway.event-timeout. The gateway must time those beacons out (503, never resent: the
// collector may have published them), open that instance's breaker after the breaker's
// minimum volume, and then send everything to the healthy collector at its own latency.
func TestGatewaySlowCollectorIsTrippedAndBypassed(t *testing.T) {
	requireGatewayEngines(t)
	const site = "slow.example"
	f := NewFleet(t, FleetOptions{PrivateConsul: true, Sites: []string{site}})
	const timeout = 300 * time.Millisecond
	procs := launchAndWait(f,
		procSpec{target: "collector"},
		procSpec{target: "gateway", extra: []string{
			"--gateway.event-timeout=" + timeout.String(),
			"--gateway.breaker.min-requests=5",
			"--gateway.breaker.window=30s",
			"--gateway.breaker.open-timeout=1m", // stays open for the rest of the test
		}},
	)
	col, gw := procs[0], procs[1]
	slow := newSlowServer(t, 5*time.Second)
	consulRegister(t, f.Consul, "slow-collector", registry.Collector, slow.URL)
	waitRoutes(t, gw, registry.Collector, 2)

	plan := loadgen.NewPlan(loadgen.Options{Sites: []string{site}, Events: 900, Seed: 5, UniquePaths: true})
	half := len(plan.Visits) / 3
	first, rest := plan.Slice(0, half), plan.Slice(half, len(plan.Visits))

	// Until the breaker opens, some beacons go to the slow instance and time out.
	warmup := slow.hits.Load() // beacons that found the route
	t0 := time.Now()
	rep1 := loadgen.Send(context.Background(), first, loadgen.SendOptions{Target: gw.URL, Concurrency: 4, Rate: 150, Timeout: 10 * time.Second})
	if v := gw.Metric(mBreakerState, "upstream", slow.URL); v != breakerOpen {
		t.Fatalf("after %d beacons in %s the slow instance's breaker is %v, want %d (open); slow instance saw %d",
			rep1.Sent, time.Since(t0).Round(time.Millisecond), v, breakerOpen, slow.hits.Load())
	}
	slowHits := slow.hits.Load()
	if rep1.Failed == 0 || rep1.Failed != slowHits-warmup || rep1.Errors["HTTP 503"] != rep1.Failed {
		t.Fatalf("first part: %d failed (%v), slow instance saw %d; want every beacon it saw to fail with 503 and none else", rep1.Failed, rep1.Errors, slowHits-warmup)
	}
	if gw.Metric(mBreakerState, "upstream", col.URL) != 0 {
		t.Fatal("the healthy collector's breaker is not closed")
	}

	// Once open, the slow instance gets nothing and beacons see the healthy collector's
	// latency, far below the timeout.
	before := collectorAccepted(col)
	rep2 := loadgen.Send(context.Background(), rest, loadgen.SendOptions{Target: gw.URL, Concurrency: 4, Timeout: 10 * time.Second})
	if rep2.Failed != 0 {
		t.Fatalf("after the breaker opened %d of %d beacons failed: %v", rep2.Failed, rep2.Sent, rep2.Errors)
	}
	if n := slow.hits.Load(); n != slowHits {
		t.Fatalf("the slow instance got %d beacons after its breaker opened", n-slowHits)
	}
	if got := collectorAccepted(col) - before; got != float64(rep2.Sent) {
		t.Fatalf("the healthy collector accepted %v of the %d beacons sent after the breaker opened", got, rep2.Sent)
	}
	p50, p99, maxLat := rep2.Percentile(50), rep2.Percentile(99), rep2.Percentile(100)
	if p99 >= timeout {
		t.Fatalf("after the breaker opened: p50 %s p99 %s max %s; p99 must stay below the %s timeout", p50, p99, maxLat, timeout)
	}
	t.Logf("before the breaker opened: %d beacons, %d timed out at the slow instance (503 after %s, not resent); breaker open (state %v)",
		rep1.Sent, rep1.Failed, timeout, gw.Metric(mBreakerState, "upstream", slow.URL))
	t.Logf("after: %d beacons, all 202 from the healthy collector, p50 %s p99 %s max %s; slow instance untouched",
		rep2.Sent, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), maxLat.Round(10*time.Microsecond))
}

// gwAnswer is what a request sent by hand got back.
type gwAnswer struct {
	code       int
	retryAfter string
	dropped    string
	body       string
}

// gwBeacon posts one page view of site from a page at pageURL, as if from client address ip
// (X-Forwarded-For; loopback is a trusted proxy).
func gwBeacon(t *testing.T, base, site, pageURL, ip string) gwAnswer {
	t.Helper()
	body := `{"n":"pageview","u":"` + pageURL + `","d":"` + site + `"}`
	req, _ := http.NewRequest(http.MethodPost, base+"/api/event", strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("User-Agent", gwTestUA)
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	return gwDo(t, req)
}

func gwDo(t *testing.T, req *http.Request) gwAnswer {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return gwAnswer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), dropped: resp.Header.Get("X-Glimpse-Dropped"), body: string(raw)}
}

// gwQuery posts a page-view query for site with key ("" for none) from client address ip.
func gwQuery(t *testing.T, base, site, key, ip string) (gwAnswer, http.Header) {
	t.Helper()
	body := `{"site_id":"` + site + `","metrics":["pageviews"],"date_range":"7d"}`
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/query", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", key)
	}
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("query %s: %v", site, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return gwAnswer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(raw)}, resp.Header
}

// gwJSONError returns the "error" of a JSON error answer, failing the test when the body is
// not one.
func gwJSONError(t *testing.T, what string, r gwAnswer) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" {
		t.Fatalf("%s: HTTP %d with a body that is not a JSON error: %q", what, r.code, r.body)
	}
	return e.Error
}

// TestGatewayLimitsAndAccess runs one collector, processor and query service behind two
// gateways: one with the default limits (access checks) and one with small rate limits.
func TestGatewayLimitsAndAccess(t *testing.T) {
	requireGatewayEngines(t)
	const (
		siteA                        = "access-a.example"
		siteB                        = "access-b.example"
		rlOne                        = "rl-one.example"
		rlTwo                        = "rl-two.example"
		ipRate                       = 1 // per second
		ipBurst, siteBurst, apiBurst = 5, 20, 3
	)
	f := NewFleet(t, FleetOptions{PrivateConsul: true, Sites: []string{siteA, siteB, rlOne, rlTwo}})
	procs := launchAndWait(f,
		procSpec{target: "collector"}, procSpec{target: "processor"}, procSpec{target: "query"},
		procSpec{target: "gateway"},
		procSpec{target: "gateway", extra: []string{
			"--gateway.rate-limit.ip=" + strconv.Itoa(ipRate), "--gateway.rate-limit.ip-burst=" + strconv.Itoa(ipBurst),
			"--gateway.rate-limit.site-events=1", "--gateway.rate-limit.site-events-burst=" + strconv.Itoa(siteBurst),
			"--gateway.rate-limit.site-api=1", "--gateway.rate-limit.site-api-burst=" + strconv.Itoa(apiBurst),
		}},
	)
	col, gw, limited := procs[0], procs[3], procs[4]
	for _, g := range []*Proc{gw, limited} {
		waitRoutes(t, g, registry.Collector, 1)
		waitRoutes(t, g, registry.Query, 1)
	}

	t.Run("access", func(t *testing.T) {
		admin := f.Key()
		keyA := strings.TrimSpace(testkit.LastLine(f.Glimpse("keys", "create", "--site="+siteA, "--quiet")))
		keyB := strings.TrimSpace(testkit.LastLine(f.Glimpse("keys", "create", "--site="+siteB, "--quiet")))
		unknownBefore := col.Metric(mCollectorEvents, "result", "unknown_site")
		foreignBefore := col.Metric(mCollectorEvents, "result", "foreign_hostname")

		// Events: a known site from its own hostname counts; an unknown site and a page on
		// another hostname are answered 202 (the browser cannot fix them) and dropped.
		if r := gwBeacon(t, gw.URL, siteA, "https://"+siteA+"/counted", ""); r.code != http.StatusAccepted || r.dropped != "" {
			t.Fatalf("a page view of a known site: HTTP %d, X-Glimpse-Dropped %q", r.code, r.dropped)
		}
		if r := gwBeacon(t, gw.URL, "nobody.example", "https://nobody.example/", ""); r.code != http.StatusAccepted || !strings.HasPrefix(r.dropped, "unknown_site") {
			t.Fatalf("a page view of an unknown site: HTTP %d, X-Glimpse-Dropped %q", r.code, r.dropped)
		}
		if r := gwBeacon(t, gw.URL, siteA, "https://elsewhere.example/copied", ""); r.code != http.StatusAccepted || !strings.HasPrefix(r.dropped, "foreign_hostname") {
			t.Fatalf("a page view from a foreign hostname: HTTP %d, X-Glimpse-Dropped %q", r.code, r.dropped)
		}
		if d := col.Metric(mCollectorEvents, "result", "unknown_site") - unknownBefore; d != 1 {
			t.Errorf("collector counted %v unknown_site events, want 1", d)
		}
		if d := col.Metric(mCollectorEvents, "result", "foreign_hostname") - foreignBefore; d != 1 {
			t.Errorf("collector counted %v foreign_hostname events, want 1", d)
		}

		// Reads: the key must cover the site.
		testkit.WaitFor(t, 60*time.Second, "the counted page view", func() (bool, string) {
			r, _ := gwQuery(t, gw.URL, siteA, "Bearer "+keyA, "")
			return r.code == http.StatusOK && pageviewsOf(t, r) == 1, fmt.Sprintf("HTTP %d %s", r.code, r.body)
		})
		time.Sleep(2 * time.Second) // a dropped event would have been counted by now too
		if r, _ := gwQuery(t, gw.URL, siteA, "Bearer "+admin, ""); r.code != http.StatusOK || pageviewsOf(t, r) != 1 {
			t.Errorf("%s with the admin key: HTTP %d %s; want exactly the one page view from its own hostname", siteA, r.code, r.body)
		}
		if r, _ := gwQuery(t, gw.URL, "nobody.example", "Bearer "+admin, ""); r.code != http.StatusOK || pageviewsOf(t, r) != 0 {
			t.Errorf("an unknown site with the admin key: HTTP %d %s; want no page views", r.code, r.body)
		}
		for _, c := range []struct {
			name, auth string
			want       int
			msg        string
		}{
			{"no key", "", http.StatusUnauthorized, "send an API key"},
			{"unknown key", "Bearer glk_000000000000_" + strings.Repeat("x", 43), http.StatusUnauthorized, "not valid"},
			{"malformed key", "Bearer not-a-key", http.StatusUnauthorized, "not valid"},
			{"another scheme", "Basic Zm9vOmJhcg==", http.StatusUnauthorized, "not valid"},
			{"another site's key", "Bearer " + keyB, http.StatusForbidden, "does not give access"},
		} {
			r, h := gwQuery(t, gw.URL, siteA, c.auth, "")
			if r.code != c.want {
				t.Errorf("%s: HTTP %d, want %d: %s", c.name, r.code, c.want, r.body)
				continue
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("%s: Content-Type %q, want JSON", c.name, ct)
			}
			if msg := gwJSONError(t, c.name, r); !strings.Contains(msg, c.msg) {
				t.Errorf("%s: error %q does not say %q", c.name, msg, c.msg)
			}
			if c.want == http.StatusUnauthorized && h.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", c.name)
			}
		}
		// The realtime endpoint is guarded the same way.
		req, _ := http.NewRequest(http.MethodGet, gw.URL+"/api/v1/realtime?site_id="+siteA, nil)
		if r := gwDo(t, req); r.code != http.StatusUnauthorized {
			t.Errorf("realtime without a key: HTTP %d %s", r.code, r.body)
		}
		req.Header.Set("Authorization", "Bearer "+keyA)
		if r := gwDo(t, req); r.code != http.StatusOK {
			t.Errorf("realtime with the site's key: HTTP %d %s", r.code, r.body)
		}
	})

	t.Run("rate limits", func(t *testing.T) {
		// Requests are sent one after another in well under a second: at 1 token per
		// second at most one or two refill while a burst is spent.
		within := func(n, burst int) bool { return n >= burst && n <= burst+3 }

		// A site flooded from many addresses is limited; another site is not.
		ok, limitedN := 0, 0
		for i := 0; i < siteBurst+10; i++ {
			r := gwBeacon(t, limited.URL, rlOne, fmt.Sprintf("https://%s/flood/%d", rlOne, i), fmt.Sprintf("198.51.100.%d", i+1))
			switch r.code {
			case http.StatusAccepted:
				ok++
			case http.StatusTooManyRequests:
				limitedN++
				checkTooMany(t, "site flood", r, "for site "+rlOne)
			default:
				t.Fatalf("site flood: HTTP %d %s", r.code, r.body)
			}
		}
		if !within(ok, siteBurst) {
			t.Errorf("site flood: %d accepted, %d limited; want about the burst of %d accepted", ok, limitedN, siteBurst)
		}
		t.Logf("site flood from %d addresses: %d accepted, %d answered 429", ok+limitedN, ok, limitedN)
		if r := gwBeacon(t, limited.URL, rlTwo, "https://"+rlTwo+"/other-site", "198.51.100.200"); r.code != http.StatusAccepted {
			t.Errorf("another site during the flood: HTTP %d %s", r.code, r.body)
		}

		// One address sending too fast is limited, on beacons and API calls alike; another
		// address is not.
		const noisy, quiet = "203.0.113.10", "203.0.113.11"
		ok, limitedN = 0, 0
		for i := 0; i < ipBurst+8; i++ {
			r := gwBeacon(t, limited.URL, rlTwo, fmt.Sprintf("https://%s/burst/%d", rlTwo, i), noisy)
			switch r.code {
			case http.StatusAccepted:
				ok++
			case http.StatusTooManyRequests:
				limitedN++
				checkTooMany(t, "address burst", r, "from your address")
			default:
				t.Fatalf("address burst: HTTP %d %s", r.code, r.body)
			}
		}
		if !within(ok, ipBurst) {
			t.Errorf("address burst: %d accepted, %d limited; want about the burst of %d accepted", ok, limitedN, ipBurst)
		}
		t.Logf("burst from one address: %d accepted, %d answered 429", ok, limitedN)
		if r, _ := gwQuery(t, limited.URL, rlTwo, "Bearer "+f.Key(), noisy); r.code != http.StatusTooManyRequests {
			t.Errorf("a query from the limited address: HTTP %d %s, want 429", r.code, r.body)
		} else {
			checkTooMany(t, "query from the limited address", r, "from your address")
		}
		if r := gwBeacon(t, limited.URL, rlTwo, "https://"+rlTwo+"/quiet", quiet); r.code != http.StatusAccepted {
			t.Errorf("another address during the burst: HTTP %d %s", r.code, r.body)
		}
		// The other gateway keeps its own buckets.
		if r := gwBeacon(t, gw.URL, rlTwo, "https://"+rlTwo+"/other-gateway", noisy); r.code != http.StatusAccepted {
			t.Errorf("the limited address through the other gateway: HTTP %d %s", r.code, r.body)
		}

		// Flooding a site with beacons does not lock it out of its own numbers: the query
		// API has its own per-site buckets.
		if r, _ := gwQuery(t, limited.URL, rlOne, "Bearer "+f.Key(), "192.0.2.100"); r.code != http.StatusOK {
			t.Errorf("a query for the flooded site: HTTP %d %s", r.code, r.body)
		}
		ok, limitedN = 0, 0
		for i := 0; i < apiBurst+3; i++ {
			r, _ := gwQuery(t, limited.URL, rlTwo, "Bearer "+f.Key(), fmt.Sprintf("192.0.2.%d", i+1))
			switch r.code {
			case http.StatusOK:
				ok++
			case http.StatusTooManyRequests:
				limitedN++
				checkTooMany(t, "site queries", r, "for site "+rlTwo)
			default:
				t.Fatalf("site queries: HTTP %d %s", r.code, r.body)
			}
		}
		if !within(ok, apiBurst) {
			t.Errorf("site queries: %d answered, %d limited; want about the burst of %d answered", ok, limitedN, apiBurst)
		}
		t.Logf("queries for one site from %d addresses: %d answered, %d answered 429", ok+limitedN, ok, limitedN)
		if r, _ := gwQuery(t, limited.URL, rlOne, "Bearer "+f.Key(), "192.0.2.101"); r.code != http.StatusOK {
			t.Errorf("a query for another site while one is limited: HTTP %d %s", r.code, r.body)
		}

		for _, c := range []struct{ route, reason string }{{"event", "site_rate"}, {"event", "ip_rate"}, {"api", "ip_rate"}, {"api", "site_rate"}} {
			if v := limited.Metric(mGatewayRejected, "route", c.route, "reason", c.reason); v < 1 {
				t.Errorf("glimpse_gateway_rejected_total{route=%q,reason=%q} = %v", c.route, c.reason, v)
			}
		}
		if v := gw.Metric(mGatewayRejected, "reason", "ip_rate") + gw.Metric(mGatewayRejected, "reason", "site_rate"); v != 0 {
			t.Errorf("the gateway with the default limits rejected %v requests", v)
		}
	})
}

// pageviewsOf reads the page views of a one-row query answer (0 when there is no row).
func pageviewsOf(t *testing.T, r gwAnswer) int {
	t.Helper()
	var q testkit.QueryResult
	if err := json.Unmarshal([]byte(r.body), &q); err != nil {
		t.Fatalf("query answer is not JSON: %v: %s", err, r.body)
	}
	if len(q.Results) == 0 || len(q.Results[0].Metrics) == 0 {
		return 0
	}
	return int(q.Results[0].Metrics[0])
}

// checkTooMany checks a 429: a whole number of seconds in Retry-After and a JSON error that
// says which limit was hit.
func checkTooMany(t *testing.T, what string, r gwAnswer, says string) {
	t.Helper()
	if s, err := strconv.Atoi(r.retryAfter); err != nil || s < 1 {
		t.Errorf("%s: 429 with Retry-After %q, want a whole number of seconds", what, r.retryAfter)
	}
	if msg := gwJSONError(t, what, r); !strings.Contains(msg, says) {
		t.Errorf("%s: 429 error %q does not say %q", what, msg, says)
	}
}

// loadgenSummary and loadgenLatency match the summary `glimpse loadgen` prints.
var (
	loadgenSummary = regexp.MustCompile(`sent (\d+)\s+acknowledged (\d+)\s+failed (\d+)\s+in (\S+)\s+\((\d+) acknowledged/s\)`)
	loadgenLatency = regexp.MustCompile(`latency p50 (\S+)\s+p90 (\S+)\s+p99 (\S+)\s+max (\S+)`)
)

// loadgenRun is one `glimpse loadgen` run as it reported itself, with the CPU time each
// process spent on it and the TCP connections to the collector after it.
type loadgenRun struct {
	target, args       string
	sent, acked, rate  int
	p50, p90, p99, max time.Duration
	cpu                cpuUse
	conns              collectorConns
}

// cpuUse is the CPU time (user and system) each process of the path spent during a run.
type cpuUse struct {
	loadgen, gateway, collector, kafka time.Duration
	kafkaKnown                         bool // the Kafka broker's process was found on this host
}

func (c cpuUse) total() time.Duration { return c.loadgen + c.gateway + c.collector + c.kafka }

// cpuProbe reads the CPU time of the processes of the benchmark.
type cpuProbe struct {
	gateway, collector *Proc
	kafkaPID           int // 0: not found (Kafka runs elsewhere)
}

// sample returns the CPU time each process has used so far. The loadgen runs are this test
// process's children: their time shows in RUSAGE_CHILDREN once they have exited.
func (p cpuProbe) sample(t *testing.T) cpuUse {
	t.Helper()
	var c cpuUse
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	c.loadgen = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	seconds := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	c.gateway = seconds(p.gateway.Metric("process_cpu_seconds_total"))
	c.collector = seconds(p.collector.Metric("process_cpu_seconds_total"))
	if p.kafkaPID != 0 {
		c.kafka, c.kafkaKnown = procCPU(p.kafkaPID)
	}
	return c
}

func (c cpuUse) minus(o cpuUse) cpuUse {
	return cpuUse{loadgen: c.loadgen - o.loadgen, gateway: c.gateway - o.gateway, collector: c.collector - o.collector,
		kafka: c.kafka - o.kafka, kafkaKnown: c.kafkaKnown && o.kafkaKnown}
}

// kafkaBrokerPID finds the local Kafka broker (a JVM running kafka.Kafka), or 0.
func kafkaBrokerPID() int {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte("kafka.Kafka\x00")) {
			return pid
		}
	}
	return 0
}

// procCPU is the user and system time of a process from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces; the fields after its ")" do not.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(fields[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, true
}

// collectorConns counts the TCP sockets of this host to the collector's port: established
// ones (the connections open to it) and those in TIME_WAIT (connections closed in the last
// minute or so: a pool that churns leaves many).
type collectorConns struct{ established, timeWait int }

func countCollectorConns(t *testing.T, collectorURL string) collectorConns {
	t.Helper()
	_, portText, ok := strings.Cut(strings.TrimPrefix(collectorURL, "http://"), ":")
	port, err := strconv.ParseUint(portText, 10, 16)
	if !ok || err != nil {
		t.Fatalf("collector URL %q has no port", collectorURL)
	}
	var c collectorConns
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			// Established sockets are counted on the collector's side (local port), so
			// each connection counts once; TIME_WAIT stays with whichever side closed.
			local, remote := sockPort(f[1]), sockPort(f[2])
			switch f[3] {
			case "01":
				if local == port {
					c.established++
				}
			case "06":
				if local == port || remote == port {
					c.timeWait++
				}
			}
		}
	}
	return c
}

// sockPort reads the port of an address of /proc/net/tcp ("0100007F:4A8B").
func sockPort(addr string) uint64 {
	_, hex, _ := strings.Cut(addr, ":")
	p, _ := strconv.ParseUint(hex, 16, 16)
	return p
}

// runLoadgen runs the glimpse binary's loadgen command and parses its summary.
func runLoadgen(t *testing.T, f *Fleet, name, target string, args ...string) loadgenRun {
	t.Helper()
	all := append([]string{"loadgen", "--target=" + target}, args...)
	out, err := f.CLI(all...)
	if err != nil {
		t.Fatalf("glimpse %s: %v\n%s", strings.Join(all, " "), err, out)
	}
	s, l := loadgenSummary.FindStringSubmatch(out), loadgenLatency.FindStringSubmatch(out)
	if s == nil || l == nil {
		t.Fatalf("glimpse loadgen printed no summary:\n%s", out)
	}
	r := loadgenRun{target: name, args: strings.Join(args, " ")}
	r.sent, _ = strconv.Atoi(s[1])
	r.acked, _ = strconv.Atoi(s[2])
	r.rate, _ = strconv.Atoi(s[5])
	for i, d := range []*time.Duration{&r.p50, &r.p90, &r.p99, &r.max} {
		if *d, err = time.ParseDuration(l[i+1]); err != nil {
			t.Fatalf("latency %q: %v", l[i+1], err)
		}
	}
	if r.acked != r.sent {
		t.Fatalf("%s: %d of %d beacons acknowledged:\n%s", name, r.acked, r.sent, out)
	}
	return r
}

// measuredRun is runLoadgen with the CPU time of every process and the collector's
// connections.
func measuredRun(t *testing.T, f *Fleet, probe cpuProbe, collectorURL, name, target string, args ...string) loadgenRun {
	t.Helper()
	before := probe.sample(t)
	r := runLoadgen(t, f, name, target, args...)
	r.cpu = probe.sample(t).minus(before)
	r.conns = countCollectorConns(t, collectorURL)
	return r
}

// TestGatewayOverheadBenchmark measures what the gateway adds in front of a collector: the
// same `glimpse loadgen` traffic at 5,000 beacons/s (and then as fast as it goes) sent to
// the collector directly and through a gateway that finds it in Consul. Both run on the
// real Kafka and Cassandra; nothing else of the fleet runs. Besides loadgen's latencies it
// reports the CPU time of loadgen, the gateway, the collector and the local Kafka broker
// per run (Kafka's includes whatever else uses it meanwhile) and the connections to the
// collector, so a pool that churns shows. It takes about two and a half minutes and only
// runs when GLIMPSE_TEST_GATEWAY_BENCH is set (docs/benchmarks.md, "Gateway overhead").
func TestGatewayOverheadBenchmark(t *testing.T) {
	requireGatewayEngines(t)
	if os.Getenv("GLIMPSE_TEST_GATEWAY_BENCH") == "" {
		t.Skip("set GLIMPSE_TEST_GATEWAY_BENCH=1 to measure the gateway's overhead (about two and a half minutes)")
	}
	const site = "bench.example"
	f := NewFleet(t, FleetOptions{PrivateConsul: true, Sites: []string{site}})
	procs := launchAndWait(f,
		procSpec{target: "collector", extra: []string{"--log.level=warn"}},
		// No per-site flood guard for a load test of one site (ADR 0007).
		procSpec{target: "gateway", extra: []string{"--log.level=warn", "--gateway.rate-limit.site-events=0"}},
	)
	col, gw := procs[0], procs[1]
	waitRoutes(t, gw, registry.Collector, 1)
	seed := 100
	common := func(events int, rate string) []string {
		seed++
		return []string{"--sites=" + site, "--events=" + strconv.Itoa(events), "--concurrency=64", "--rate=" + rate, "--seed=" + strconv.Itoa(seed)}
	}
	runLoadgen(t, f, "warm-up", gw.URL, common(10000, "0")...)
	probe := cpuProbe{gateway: gw, collector: col, kafkaPID: kafkaBrokerPID()}
	run := func(name, target string, events int, rate string) loadgenRun {
		return measuredRun(t, f, probe, col.URL, name, target, common(events, rate)...)
	}
	var runs []loadgenRun
	// Alternating the targets spreads the machine's other work over both.
	for round := 0; round < 2; round++ {
		runs = append(runs, run("direct", col.URL, 50000, "5000"), run("gateway", gw.URL, 50000, "5000"))
	}
	// A rate with room to spare: the cost of the hop itself rather than of queueing.
	for round := 0; round < 2; round++ {
		runs = append(runs, run("direct", col.URL, 15000, "1000"), run("gateway", gw.URL, 15000, "1000"))
	}
	for round := 0; round < 2; round++ {
		runs = append(runs, run("direct", col.URL, 30000, "0"), run("gateway", gw.URL, 30000, "0"))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| target | loadgen flags | acknowledged/s | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|---|\n")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
	for _, r := range runs {
		fmt.Fprintf(&b, "| %s | `%s` | %d | %s | %s | %s | %s |\n", r.target, r.args, r.rate, ms(r.p50), ms(r.p90), ms(r.p99), ms(r.max))
	}
	// Kafka's time includes whatever else uses the shared broker meanwhile.
	fmt.Fprintf(&b, "\nCPU seconds per run, and per beacon over the processes listed; connections to the collector after the run (established / in TIME_WAIT):\n\n")
	fmt.Fprintf(&b, "| target | loadgen flags | loadgen | gateway | collector | Kafka | total | per beacon | gateway per beacon | collector per beacon | conns |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	secs := func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }
	perBeacon := func(d time.Duration, n int) string {
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)/float64(max(n, 1)))
	}
	for _, r := range runs {
		kafka := "?"
		if r.cpu.kafkaKnown {
			kafka = secs(r.cpu.kafka)
		}
		gateway, gatewayPer := "—", "—"
		if r.target == "gateway" {
			gateway, gatewayPer = secs(r.cpu.gateway), perBeacon(r.cpu.gateway, r.acked)
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %d / %d |\n", r.target, r.args,
			secs(r.cpu.loadgen), gateway, secs(r.cpu.collector), kafka, secs(r.cpu.total()),
			perBeacon(r.cpu.total(), r.acked), gatewayPer, perBeacon(r.cpu.collector, r.acked), r.conns.established, r.conns.timeWait)
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "\nload average after the runs: %s", load)
	}
	t.Log(b.String())
}
