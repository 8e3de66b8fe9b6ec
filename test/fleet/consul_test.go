package fleet

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/loadgen"
	"github.com/glimpse-analytics/glimpse/services/registry"
	"github.com/glimpse-analytics/glimpse/test/testkit"
)

// consulOutage is how long the Consul agent stays down under load.
const consulOutage = 30 * time.Second

// TestGatewayRoutesWhileConsulIsDown stops the fleet's Consul agent (a private dev agent:
// it forgets every registration when it stops) for 30 seconds under a steady load. The
// gateway must keep routing beacons and queries to the instances it last saw healthy,
// without a single failure. When the agent is back, every collector and query service must
// register again on its own — no process restarts — and be listed as passing in Consul's
// health API, and traffic must keep flowing. The store must then hold every beacon once.
func TestGatewayRoutesWhileConsulIsDown(t *testing.T) {
	requireGatewayEngines(t)
	started := time.Now()
	const site = "outage.example"
	agent := StartPrivateConsul(t)
	f := NewFleet(t, FleetOptions{Consul: agent.Addr, Sites: []string{site}})
	procs := launchAndWait(f,
		procSpec{target: "collector"}, procSpec{target: "collector"},
		procSpec{target: "query"},
		procSpec{target: "processor"},
		procSpec{target: "gateway"},
	)
	registered := map[string][]*Proc{registry.Collector: {procs[0], procs[1]}, registry.Query: {procs[2]}}
	gw := procs[4]
	waitRoutes(t, gw, registry.Collector, 2)
	waitRoutes(t, gw, registry.Query, 1)
	for svc, ps := range registered {
		if missing := missingFromConsul(agent.Addr, svc, ps); missing != "" {
			t.Fatalf("before the outage Consul does not list %s", missing)
		}
	}

	// 80 beacons/s: part one spans the outage and the agent's return, part two runs once
	// the registrations are back.
	const rate = 80
	plan := loadgen.NewPlan(loadgen.Options{Sites: []string{site}, Events: rate * 60, Seed: 23, UniquePaths: true})
	cut := len(plan.Visits) * 5 / 6
	during, after := plan.Slice(0, cut), plan.Slice(cut, len(plan.Visits))
	var clock failureClock
	done := make(chan *loadgen.Report, 1)
	go func() {
		done <- loadgen.Send(context.Background(), during, loadgen.SendOptions{Target: gw.URL, Concurrency: 4, Rate: rate, Timeout: 10 * time.Second, Progress: clock.progress})
	}()
	time.Sleep(3 * time.Second)

	agent.Stop()
	stoppedAt := time.Now()
	acceptedAtStop := gw.Metric(mGatewayRequests, "route", "event", "code", "202")
	testkit.WaitFor(t, 15*time.Second, "the gateway to notice that Consul is gone", func() (bool, string) {
		v := gw.Metric(mConsulReachable)
		return v == 0, fmt.Sprintf("glimpse_registry_consul_reachable %v", v)
	})
	// Queries are routed from the cache too, while beacons keep flowing.
	queriesDuring := 0
	for time.Since(stoppedAt) < consulOutage {
		q := f.Query(t, gw.URL, map[string]any{"site_id": site, "metrics": []string{"pageviews"}, "date_range": testkit.TodayRange()})
		if len(q.Results) != 1 {
			t.Fatalf("query during the outage: %+v", q)
		}
		queriesDuring++
		if n := clock.count(); n > 0 {
			t.Fatalf("%d beacons failed %s into the Consul outage", n, time.Since(stoppedAt).Round(time.Second))
		}
		time.Sleep(2 * time.Second)
	}
	if gw.Metric(mConsulReachable) != 0 {
		t.Fatal("the gateway reports Consul reachable during the outage")
	}
	for _, p := range procs {
		if p.Exited() {
			t.Fatalf("%s exited during the Consul outage:\n%s", p.Name, p.Tail(8<<10))
		}
	}
	acceptedDuring := gw.Metric(mGatewayRequests, "route", "event", "code", "202") - acceptedAtStop

	agent.Start() // a dev agent: an empty catalog
	backAt := time.Now()
	testkit.WaitFor(t, 30*time.Second, "every collector and query service to be registered and passing again", func() (bool, string) {
		var missing []string
		for svc, ps := range registered {
			if m := missingFromConsul(agent.Addr, svc, ps); m != "" {
				missing = append(missing, m)
			}
		}
		return len(missing) == 0, strings.Join(missing, "; ")
	})
	reregistered := time.Since(backAt)
	testkit.WaitFor(t, 15*time.Second, "the gateway to reach Consul again", func() (bool, string) {
		v := gw.Metric(mConsulReachable)
		return v == 1, fmt.Sprintf("glimpse_registry_consul_reachable %v", v)
	})
	for _, ps := range registered {
		for _, p := range ps {
			if v := p.Metric(mConsulReregistered); v < 1 {
				t.Errorf("%s: glimpse_registry_consul_reregistrations_total = %v", p.Name, v)
			}
		}
	}

	var repDuring *loadgen.Report
	select {
	case repDuring = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the load did not finish")
	}
	// And after: the gateway routes with what the new agent lists.
	repAfter := loadgen.Send(context.Background(), after, loadgen.SendOptions{Target: gw.URL, Concurrency: 4, Rate: rate, Timeout: 10 * time.Second, Progress: clock.progress})
	for _, p := range procs {
		if p.Exited() {
			t.Fatalf("%s exited:\n%s", p.Name, p.Tail(8<<10))
		}
	}
	if times := clock.snapshot(); len(times) > 0 {
		var when []string
		for _, at := range times {
			when = append(when, fmt.Sprintf("%+.1fs", at.Sub(stoppedAt).Seconds()))
		}
		t.Fatalf("%d beacons failed (at %v from the stop; causes %v %v); want none", len(times), testkit.Head(when, 20), repDuring.Errors, repAfter.Errors)
	}
	book := newBeaconLedger(site)
	book.add(during, repDuring, true)
	book.add(after, repAfter, true)
	if book.acked != book.sent || book.sent != plan.Events() {
		t.Fatalf("sent %d of %d beacons, %d got a 2xx", book.sent, plan.Events(), book.acked)
	}
	// Both collectors served after the agent came back.
	for _, c := range registered[registry.Collector] {
		if v := collectorAccepted(c); v == 0 {
			t.Errorf("%s accepted nothing", c.Name)
		}
	}
	pvs, evs := book.checkStore(t, f, gw.URL, 90*time.Second)
	testkit.SkipIfDayChanged(t, started)
	t.Logf("Consul down for %s (after a stop of its own): routing from its cache, the gateway answered %d queries and %v beacons with 2xx, none failed",
		consulOutage, queriesDuring, acceptedDuring)
	t.Logf("agent back: every instance registered and passing again %s later, without restarts; %d more beacons after that, none failed",
		reregistered.Round(100*time.Millisecond), repAfter.Sent)
	t.Logf("sent %d beacons, %d got a 2xx; the store holds %d page views on %d distinct paths and %d custom events (%d sent)",
		book.sent, book.acked, pvs, len(book.pageviews), evs, book.signups)
}

// missingFromConsul names the processes of service that the agent does not list as
// passing ("" when all are).
func missingFromConsul(agent, service string, ps []*Proc) string {
	got, err := consulPassingErr(agent, service)
	if err != nil {
		return err.Error()
	}
	var missing []string
	for _, p := range ps {
		if !got[p.URL] {
			missing = append(missing, p.Name+" ("+p.URL+")")
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %s not passing", service, strings.Join(missing, ", "))
}
