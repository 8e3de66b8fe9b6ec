package fleet

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/loadgen"
	"github.com/glimpse-analytics/glimpse/test/testkit"
)

// scaled is n, or a tenth of it with -short (for a quick look at a change; the promises
// are checked at full size).
func scaled(n int) int {
	if testing.Short() {
		return n / 10
	}
	return n
}

// TestKafkaEndToEnd sends 50,000 beacons of more than 5,000 visitors to a collector that
// publishes to a 6-partition topic, which two processors share as a consumer group and
// fold into Cassandra; every number the query service reports must be the expected one.
// Both processors must have taken part, and idle partitions must stay quiet once the
// traffic ends.
func TestKafkaEndToEnd(t *testing.T) {
	started := time.Now()
	sites := []string{"kafka-one.example", "kafka-two.example", "kafka-three.example"}
	f := NewFleet(t, FleetOptions{Sites: sites})
	c := f.StartCollector()
	p1 := f.StartProcessor()
	p2 := f.StartProcessor()
	q := f.StartQuery()

	plan := loadgen.NewPlan(loadgen.Options{Sites: sites, Events: scaled(50_000), Seed: 42})
	if len(plan.Visits) < scaled(5_000) {
		t.Fatalf("plan has %d visitors, want >= %d", len(plan.Visits), scaled(5_000))
	}
	rep := loadgen.Send(context.Background(), plan, loadgen.SendOptions{Target: c.URL, Concurrency: 32})
	t.Logf("sent %d beacons of %d visitors in %s (%.0f/s), p50 %s p99 %s", rep.Sent, len(plan.Visits), rep.Elapsed.Round(time.Millisecond),
		rep.Rate(), rep.Percentile(50), rep.Percentile(99))
	if rep.Failed != 0 || rep.Acked != int64(plan.Events()) {
		t.Fatalf("acknowledged %d of %d beacons; failures: %v", rep.Acked, plan.Events(), rep.Errors)
	}
	expected := plan.Expect(nil)
	waitCounted(t, f.API(q), expected, 2*time.Minute)
	drained := time.Now()
	testkit.SkipIfDayChanged(t, started)
	checkCounts(t, f.API(q), expected, started, true)

	// Both members of the group got partitions and processed events.
	var total float64
	for _, p := range []*Proc{p1, p2} {
		n := p.Metric("glimpse_processor_events_processed_total")
		t.Logf("%s processed %.0f events; its partitions: %s", p.Name, n, lastAssignment(p))
		if n == 0 {
			t.Errorf("%s processed no events: the group did not share the partitions", p.Name)
		}
		total += n
	}
	if int(total) != plan.Events() {
		t.Errorf("the processors processed %.0f events together, want %d (each event once)", total, plan.Events())
	}

	// Idle partitions are not an error: once the traffic ended, no fetch warnings.
	if wait := 5*time.Second - time.Since(drained); wait > 0 {
		time.Sleep(wait)
	}
	for _, p := range []*Proc{p1, p2} {
		if n := p.CountLogs("fetch failed"); n > 0 {
			t.Errorf("%s logged %d fetch failures over idle partitions, e.g.:\n%s", p.Name, n, firstLines(p, "fetch failed", 3))
		}
		if n := p.CountLogs("level=WARN"); n > 0 {
			t.Errorf("%s logged %d warnings in a run without faults, e.g.:\n%s", p.Name, n, firstLines(p, "level=WARN", 5))
		}
	}
	if n := c.CountLogs("level=WARN"); n > 0 {
		t.Errorf("%s logged %d warnings in a run without faults, e.g.:\n%s", c.Name, n, firstLines(c, "level=WARN", 5))
	}
}

// TestKafkaProcessorKilled kills one of two processors with SIGKILL while beacons stream
// in, restarts it later, and checks that the group rebalanced both times and that every
// number — visits and bounces included, whose open sessions the killed processor held —
// is exactly the expected one.
func TestKafkaProcessorKilled(t *testing.T) {
	started := time.Now()
	site := "kafka-crash.example"
	f := NewFleet(t, FleetOptions{Sites: []string{site}})
	c := f.StartCollector()
	// The survivor notices the dead member after the session timeout; 6s is Kafka's minimum.
	group := []string{"--kafka.session-timeout=6s", "--kafka.heartbeat-interval=500ms", "--processor.checkpoint-interval=2s"}
	p1 := f.StartProcessor(group...)
	p2 := f.StartProcessor(group...)
	q := f.StartQuery()
	waitPartitions(t, 30*time.Second, p1, p2)

	plan := loadgen.NewPlan(loadgen.Options{Sites: []string{site}, Events: scaled(24_000), Seed: 11})
	var acked atomic.Int64
	total := int64(plan.Events())
	done := make(chan *loadgen.Report, 1)
	go func() {
		// About 20 seconds of traffic, so the kill, the rebalance and the restart all
		// happen while it flows.
		done <- loadgen.Send(context.Background(), plan, loadgen.SendOptions{Target: c.URL, Concurrency: 16, Rate: float64(total) / 20,
			Progress: func(_, a, _ int64) { acked.Store(a) }})
	}()
	waitAcked := func(frac float64) {
		testkit.WaitFor(t, time.Minute, fmt.Sprintf("%.0f%% of the beacons to be acknowledged", frac*100), func() (bool, string) {
			return acked.Load() >= int64(frac*float64(total)), fmt.Sprintf("%d of %d", acked.Load(), total)
		})
	}
	waitAcked(0.25)
	rebalancesBefore := p1.Metric("glimpse_bus_rebalances_total")
	processedBefore := p2.Metric("glimpse_processor_events_processed_total")
	p2.Kill()
	t.Logf("killed %s after it processed %.0f events", p2.Name, processedBefore)
	if processedBefore == 0 {
		t.Fatalf("%s had processed nothing before the kill", p2.Name)
	}
	testkit.WaitFor(t, 30*time.Second, p1.Name+" to take over every partition", func() (bool, string) {
		a := lastAssignment(p1)
		return p1.Metric("glimpse_bus_rebalances_total") > rebalancesBefore && a == fullAssignment(f.Partitions), "partitions " + a
	})
	waitAcked(0.6)
	p2 = p2.Restart()
	waitPartitions(t, 30*time.Second, p1, p2)
	t.Logf("%s rejoined with partitions %s; %s keeps %s", p2.Name, lastAssignment(p2), p1.Name, lastAssignment(p1))

	rep := <-done
	if rep.Failed != 0 || rep.Acked != total {
		t.Fatalf("acknowledged %d of %d beacons; failures: %v", rep.Acked, total, rep.Errors)
	}
	expected := plan.Expect(nil)
	waitCounted(t, f.API(q), expected, 2*time.Minute)
	testkit.SkipIfDayChanged(t, started)
	checkCounts(t, f.API(q), expected, started, false)
	if n := p2.Metric("glimpse_processor_events_processed_total"); n == 0 {
		t.Errorf("the restarted %s processed nothing after it rejoined", p2.Name)
	}
}

// TestKafkaBrokerRestart restarts the (private) broker while a collector is under load. A
// beacon is acknowledged only once Kafka has it; the others get a 503 and are resent. After
// all of it, every acknowledged beacon is counted exactly once.
func TestKafkaBrokerRestart(t *testing.T) {
	kafka := StartPrivateKafka(t)
	site := "kafka-broker.example"
	f := NewFleet(t, FleetOptions{Kafka: kafka.Addr, Sites: []string{site}})
	c := f.StartCollector("--collector.publish-timeout=3s", "--kafka.write-timeout=3s")
	p := f.StartProcessor()
	q := f.StartQuery()
	waitPartitions(t, 30*time.Second, p)

	plan := loadgen.NewPlan(loadgen.Options{Sites: []string{site}, Events: scaled(20_000), Seed: 23, UniquePaths: true})
	total := int64(plan.Events())
	var acked, failedAttempts atomic.Int64
	done := make(chan *loadgen.Report, 1)
	go func() {
		done <- loadgen.Send(context.Background(), plan, loadgen.SendOptions{Target: c.URL, Concurrency: 16, Rate: float64(total) / 30,
			Timeout: 10 * time.Second, Retries: 60,
			Progress: func(_, a, fl int64) { acked.Store(a); failedAttempts.Store(fl) }})
	}()
	testkit.WaitFor(t, time.Minute, "a third of the beacons to be acknowledged", func() (bool, string) {
		return acked.Load() >= total/3, fmt.Sprintf("%d of %d", acked.Load(), total)
	})
	before503 := c.Metric("glimpse_collector_events_total", "result", "unavailable")
	kafka.Stop()
	down := time.Now()
	// Let the collector feel the outage before the broker comes back.
	testkit.WaitFor(t, 30*time.Second, "the collector to answer 503 while the broker is down", func() (bool, string) {
		n := c.Metric("glimpse_collector_events_total", "result", "unavailable")
		return n > before503, fmt.Sprintf("%.0f unavailable answers", n)
	})
	time.Sleep(3 * time.Second)
	kafka.Start()
	t.Logf("broker was down for %s", time.Since(down).Round(100*time.Millisecond))

	var rep *loadgen.Report
	select {
	case rep = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("the traffic did not finish within 3 minutes of the broker's return")
	}
	unavailable := c.Metric("glimpse_collector_events_total", "result", "unavailable") - before503
	t.Logf("acknowledged %d of %d beacons; %.0f answers were 503 and resent; gave up on %d: %v", rep.Acked, total, unavailable, rep.Failed, rep.Errors)
	if unavailable == 0 {
		t.Fatal("no beacon was refused while the broker was down")
	}
	if rep.Failed != 0 {
		t.Errorf("%d beacons were never acknowledged despite resends: %v", rep.Failed, rep.Errors)
	}
	mustOnce, mayOnce := map[string]bool{}, map[string]bool{}
	acknowledgedPaths(plan, rep, mustOnce, mayOnce)
	checkExactlyOnce(t, f.API(q), site, mustOnce, mayOnce, 2*time.Minute)
}

var assignmentRE = regexp.MustCompile(`joined consumer group generation.* generation=([0-9]+) .*partitions="?\[([0-9 ]*)\]`)

// assignment is the generation and partition list of p's latest group generation
// (generation -1 before any).
func assignment(p *Proc) (generation int, partitions string) {
	m := assignmentRE.FindAllStringSubmatch(p.Logs(), -1)
	if len(m) == 0 {
		return -1, ""
	}
	last := m[len(m)-1]
	generation, _ = strconv.Atoi(last[1])
	return generation, "[" + last[2] + "]"
}

// lastAssignment is the partition list of p's latest group generation ("" before any).
func lastAssignment(p *Proc) string {
	_, parts := assignment(p)
	return parts
}

func fullAssignment(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprint(i)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// waitPartitions waits until the processors are in the same group generation and share
// every partition of the topic: each holds at least one, and each partition has one owner.
func waitPartitions(t *testing.T, timeout time.Duration, procs ...*Proc) {
	t.Helper()
	f := procs[0].f
	testkit.WaitFor(t, timeout, "the processors to share every partition", func() (bool, string) {
		seen := map[string]int{}
		var state []string
		ok := true
		gen0, _ := assignment(procs[0])
		for _, p := range procs {
			gen, a := assignment(p)
			state = append(state, fmt.Sprintf("%s=gen %d %s", p.Name, gen, a))
			parts := strings.Fields(strings.Trim(a, "[]"))
			if gen != gen0 || len(parts) == 0 {
				ok = false
			}
			for _, part := range parts {
				seen[part]++
			}
		}
		if len(seen) != f.Partitions {
			ok = false
		}
		for _, n := range seen {
			if n != 1 {
				ok = false
			}
		}
		return ok, strings.Join(state, " ")
	})
}

func firstLines(p *Proc, substr string, n int) string {
	var out []string
	for _, line := range strings.Split(p.Logs(), "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
			if len(out) == n {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
