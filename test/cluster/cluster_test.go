package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/loadgen"
	"github.com/glimpse-analytics/glimpse/services/registry"
	"github.com/glimpse-analytics/glimpse/test/testkit"
)

const (
	loadSite    = "load.cluster.example"
	browserSite = "browser.cluster.example"
	// The visit browser.mjs makes: the first page, then this many pushState navigations and
	// reloads of the last page, and one custom event.
	spaNavigations = 4
	reloads        = 1
	customEvent    = "Cluster test"
	// visitorTolerance is the relative error allowed on unique visitors of the load, which
	// are HyperLogLog estimates (about 0.8% standard error; 2% is beyond 2 sigma).
	visitorTolerance = 0.02
	// The load: beacons per second through the gateway, for about loadSeconds.
	loadRate    = 60
	loadSeconds = 25
)

const mCollectorEvents = "glimpse_collector_events_total"

// TestClusterEndToEnd brings the fleet up with deploy/local/cluster.sh, sends a load
// generator's traffic and a real tracker's visit from Chromium through the gateway, kills a
// collector and a processor with SIGKILL mid-run (as the browser visit starts) and starts
// them again with `cluster.sh start`, resends what got no 2xx, and then requires the query API (through the
// gateway, with an admin key) to report exactly what was sent.
func TestClusterEndToEnd(t *testing.T) {
	requireEngines(t)
	node, chromium := requireBrowser(t)
	started := time.Now()

	// cluster.sh takes the binary as GLIMPSE_BIN, so the shared bin/glimpse is left alone.
	bin := testkit.BuildForTest(t)
	c := newCluster(t, bin)
	t.Logf("cluster: base port %d, keyspace %s, topic %s, group %s, private Consul %s, state %s",
		c.BasePort, c.Keyspace, c.Topic, c.Group, c.Consul, c.Dir)

	// The keyspace and sites exist before the collectors start, so that they count the
	// sites' first events (a running collector notices new sites only on its next refresh).
	// cluster.sh up migrates again, which then changes nothing.
	c.Glimpse("migrate")
	c.Glimpse("sites", "add", loadSite)
	// The test page is served from 127.0.0.1, so that is the hostname the site allows.
	c.Glimpse("sites", "add", browserSite, "--hostnames=127.0.0.1")
	c.Up()
	t.Logf("cluster up %s after the start; gateway %s", time.Since(started).Round(100*time.Millisecond), c.Gateway)
	c.Key()
	waitRoutes(t, c)

	// The page the browser visits: the tracker snippet pointing at the gateway.
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, `<!doctype html><html><head><meta charset="utf-8"><title>cluster test</title>
<script defer data-site=%q data-local data-api="%s/api/event" src="%s/js/glimpse.js"></script></head>
<body><h1>%s</h1></body></html>`, browserSite, c.Gateway, c.Gateway, r.URL.Path)
	}))
	defer page.Close()

	// The load, in the background, for about loadSeconds.
	seed := uint64(time.Now().UnixNano())
	plan := loadgen.NewPlan(loadgen.Options{Sites: []string{loadSite}, Events: loadRate * loadSeconds, Seed: seed})
	t.Logf("load: %d beacons of %d visits at %d/s (seed %d), and a browser visit, through the gateway", plan.Events(), len(plan.Visits), loadRate, seed)
	loadDone := make(chan *loadgen.Report, 1)
	loadStart := time.Now()
	go func() {
		loadDone <- loadgen.Send(context.Background(), plan, loadgen.SendOptions{Target: c.Gateway, Concurrency: 8, Rate: loadRate, Timeout: 10 * time.Second})
	}()

	// Mid-run, once both collectors take traffic and a third of the load is in: SIGKILL one
	// collector and one processor, then start them again as an operator would.
	testkit.WaitFor(t, time.Minute, "both collectors to take a third of the load", func() (bool, string) {
		a := c.Metric("collector-1", mCollectorEvents, "result", "accepted")
		b := c.Metric("collector-2", mCollectorEvents, "result", "accepted")
		return a >= 50 && b >= 50 && a+b >= float64(plan.Events()/3), fmt.Sprintf("collector-1 %v, collector-2 %v", a, b)
	})
	// The browser's visit starts now too, so that its beacons meet the kill and the restart.
	browserDone := make(chan browserResult, 1)
	go func() { browserDone <- runBrowser(node, chromium, page.URL+"/start", c.Gateway) }()
	killAt := time.Now()
	c.Kill("collector-1")
	c.Kill("processor-1")
	t.Logf("killed collector-1 and processor-1 with SIGKILL %s into the load", killAt.Sub(loadStart).Round(100*time.Millisecond))
	time.Sleep(3 * time.Second) // the survivors alone
	c.MustRun("start", "collector-1")
	c.MustRun("start", "processor-1")
	t.Logf("collector-1 and processor-1 ready again %s after the kill", time.Since(killAt).Round(100*time.Millisecond))
	testkit.WaitFor(t, 30*time.Second, "the restarted collector to take traffic", func() (bool, string) {
		v := c.Metric("collector-1", mCollectorEvents, "result", "accepted")
		return v >= 10, fmt.Sprintf("%v accepted", v)
	})

	var rep *loadgen.Report
	select {
	case rep = <-loadDone:
	case <-time.After(2 * time.Minute):
		t.Fatal("the load did not finish within 2 minutes")
	}
	if rep.Sent != int64(plan.Events()) {
		t.Fatalf("the load sent %d of %d beacons", rep.Sent, plan.Events())
	}
	t.Logf("load: %d beacons of %d visits in %s (%.0f/s); %d got no 2xx: %v",
		rep.Sent, len(plan.Visits), rep.Elapsed.Round(100*time.Millisecond), rep.Rate(), rep.Failed, rep.Errors)
	// A tracker sends a beacon again after a 5xx or a network error, with the same event id:
	// do the same with the failed ones. Each must then count once, whether or not its first
	// attempt reached the bus.
	acked := rep.Acked
	if rep.Failed > 0 {
		again := testkit.FailedBeacons(plan, rep)
		rep2 := loadgen.Send(context.Background(), again, loadgen.SendOptions{Target: c.Gateway, Concurrency: 2, Retries: 5})
		if rep2.Failed != 0 {
			t.Fatalf("resending %d failed beacons: %d failed again: %v", again.Events(), rep2.Failed, rep2.Errors)
		}
		acked += rep2.Acked
		t.Logf("resent %d beacons, all acknowledged", again.Events())
	}
	if acked != int64(plan.Events()) {
		t.Fatalf("%d of %d beacons acknowledged", acked, plan.Events())
	}

	var br browserResult
	select {
	case br = <-browserDone:
	case <-time.After(2 * time.Minute):
		t.Fatal("the browser did not finish within 2 minutes")
	}
	if br.err != nil {
		t.Fatalf("browser visit: %v\n%s", br.err, br.log)
	}
	t.Logf("browser: acknowledged %v; requests that failed or were aborted (the tracker resends failed ones): %v", br.Acknowledged, br.Failures)

	// The numbers, through the gateway, once the processors caught up.
	want := plan.Expect(nil)[loadSite]
	waitCounted(t, c, loadSite, want.Pageviews, want.Events, 2*time.Minute)
	checkLoad(t, c, want)
	checkBrowser(t, c, br)
	if time.Now().UTC().Format("2006-01-02") != started.UTC().Format("2006-01-02") {
		t.Skip("the run crossed midnight UTC (visitor ids rotate daily); rerun")
	}
	t.Logf("events processed by the restarted processor-1 %v and by processor-2 %v (since their starts); duplicates dropped %v and %v; whole run %s",
		c.Metric("processor-1", "glimpse_processor_events_processed_total"),
		c.Metric("processor-2", "glimpse_processor_events_processed_total"),
		c.Metric("processor-1", "glimpse_processor_duplicates_dropped_total"),
		c.Metric("processor-2", "glimpse_processor_duplicates_dropped_total"),
		time.Since(started).Round(100*time.Millisecond))
}

// requireBrowser returns node and chromium, installing the browser tests' npm dependencies
// when they are missing; it skips when node or chromium is not installed.
func requireBrowser(t *testing.T) (node, chromium string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the cluster test drives Chromium with playwright-core (apt-get install -y nodejs npm)")
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("%s is missing: apt-get install -y chromium (or set CHROMIUM)", chromium)
	}
	dir := testkit.RepoPath(t, "test/browser")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in test/browser (for playwright-core): %v\n%s", err, out)
		}
	}
	return node, chromium
}

// browserResult is what browser.mjs reports.
type browserResult struct {
	Acknowledged map[string]int `json:"acknowledged"`
	Expected     map[string]int `json:"expected"`
	Failures     []string       `json:"failures"`
	Errors       []string       `json:"errors"`
	err          error
	log          string
}

func runBrowser(node, chromium, pageURL, gateway string) browserResult {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "browser.mjs", pageURL, gateway, fmt.Sprint(spaNavigations), fmt.Sprint(reloads))
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var r browserResult
	if err := cmd.Run(); err != nil {
		r.err = err
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r.err = errors.New("browser.mjs did not finish within 2 minutes")
		}
	} else if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &r); err != nil {
		r.err = fmt.Errorf("browser.mjs printed no result (%v)", err)
	}
	r.log = stdout.String() + stderr.String()
	return r
}

// waitRoutes waits until the gateway lists both collectors and both query services; its
// registry cache of a service fills on the first request, so one is sent for each (a
// beacon of a site nobody added is dropped, and a realtime call of one is refused).
func waitRoutes(t *testing.T, c *Cluster) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	testkit.WaitFor(t, 30*time.Second, "the gateway to list 2 collectors and 2 query services", func() (bool, string) {
		req, _ := http.NewRequest(http.MethodPost, c.Gateway+"/api/event", strings.NewReader(`{"n":"pageview","u":"https://warmup.invalid/","d":"warmup.invalid"}`))
		req.Header.Set("Content-Type", "text/plain")
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
		if resp, err := client.Get(c.Gateway + "/api/v1/realtime?site_id=warmup.invalid"); err == nil {
			resp.Body.Close()
		}
		col := c.Metric("gateway", "glimpse_registry_instances", "service", registry.Collector)
		qry := c.Metric("gateway", "glimpse_registry_instances", "service", registry.Query)
		return col == 2 && qry == 2, fmt.Sprintf("%v collectors, %v query services", col, qry)
	})
}

// waitCounted waits until a site's page views and custom events reach the expected numbers
// and fails at once when either goes beyond them (something counted twice).
func waitCounted(t *testing.T, c *Cluster, site string, pageviews, events int, timeout time.Duration) {
	t.Helper()
	testkit.WaitFor(t, timeout, site+" page views and events to be counted", func() (bool, string) {
		r := c.Query(t, map[string]any{"site_id": site, "metrics": []string{"pageviews", "events"}, "date_range": testkit.TodayRange()})
		if len(r.Results) == 0 {
			return false, "no results yet"
		}
		pv, ev := int(r.Results[0].Metrics[0]), int(r.Results[0].Metrics[1])
		if pv > pageviews || ev > events {
			t.Fatalf("%s: pageviews=%d events=%d exceed what was sent (%d, %d): counted twice", site, pv, ev, pageviews, events)
		}
		return pv == pageviews && ev == events, fmt.Sprintf("pageviews=%d events=%d, want %d %d", pv, ev, pageviews, events)
	})
}

// checkLoad compares the load site's totals and top pages with the plan's.
func checkLoad(t *testing.T, c *Cluster, want *loadgen.Counts) {
	t.Helper()
	r := c.Query(t, map[string]any{"site_id": loadSite, "metrics": []string{"visitors", "visits", "pageviews", "events", "bounce_rate"}, "date_range": testkit.TodayRange()})
	if len(r.Results) != 1 {
		t.Fatalf("load totals: want one row, got %+v", r)
	}
	m := r.Results[0].Metrics
	if math.Abs(m[0]-float64(want.Visitors)) > float64(want.Visitors)*visitorTolerance {
		t.Errorf("load visitors = %v, want %d within %.0f%%", m[0], want.Visitors, visitorTolerance*100)
	}
	for i, w := range []float64{float64(want.Visits), float64(want.Pageviews), float64(want.Events), want.BounceRate()} {
		name := []string{"visits", "pageviews", "events", "bounce_rate"}[i]
		if m[i+1] != w {
			t.Errorf("load %s = %v, want %v", name, m[i+1], w)
		}
	}
	t.Logf("load site: visitors %v (exact %d), visits %v, pageviews %v, events %v, bounce rate %v%%", m[0], want.Visitors, m[1], m[2], m[3], m[4])

	// Top pages: every page with its count, in the promised order (page views descending,
	// then page).
	top := c.Query(t, map[string]any{"site_id": loadSite, "metrics": []string{"pageviews"}, "dimensions": []string{"event:page"}, "date_range": testkit.TodayRange(), "limit": 1000})
	wantTop := loadgen.TopN(want.Pages, 0)
	var got, exp []string
	for _, row := range top.Results {
		got = append(got, fmt.Sprintf("%v=%v", row.Dimensions[0], row.Metrics[0]))
	}
	for _, kv := range wantTop {
		exp = append(exp, fmt.Sprintf("%s=%d", kv.Key, kv.Value))
	}
	if strings.Join(got, " ") != strings.Join(exp, " ") {
		t.Errorf("load top pages:\n got %v\nwant %v", got, exp)
	} else {
		t.Logf("load top pages as expected: %v", testkit.Head(got, 5))
	}
}

// checkBrowser compares what the browser's visit was counted as with what it sent.
func checkBrowser(t *testing.T, c *Cluster, br browserResult) {
	t.Helper()
	pages := map[string]int{}
	pageviews, events := 0, 0
	for key, n := range br.Expected {
		name, path, _ := strings.Cut(key, " ")
		if name == "pageview" {
			pages[path] += n
			pageviews += n
		} else {
			events += n
		}
	}
	if pageviews != 1+spaNavigations+reloads || events != 1 {
		t.Fatalf("browser.mjs expected %d page views and %d events; the visit makes %d and 1", pageviews, events, 1+spaNavigations+reloads)
	}
	waitCounted(t, c, browserSite, pageviews, events, time.Minute)
	r := c.Query(t, map[string]any{"site_id": browserSite, "metrics": []string{"visitors", "visits", "pageviews", "events"}, "date_range": testkit.TodayRange()})
	if len(r.Results) != 1 {
		t.Fatalf("browser totals: want one row, got %+v", r)
	}
	if got := r.Results[0].Metrics; got[0] != 1 || got[1] != 1 || got[2] != float64(pageviews) || got[3] != float64(events) {
		t.Errorf("browser site visitors, visits, pageviews, events = %v, want [1 1 %d %d]", got, pageviews, events)
	}
	byPage := c.Query(t, map[string]any{"site_id": browserSite, "metrics": []string{"pageviews"}, "dimensions": []string{"event:page"}, "date_range": testkit.TodayRange()}).Breakdown()
	if fmt.Sprint(sorted(byPage)) != fmt.Sprint(sorted(pages)) {
		t.Errorf("browser page views by page = %v, want %v", sorted(byPage), sorted(pages))
	}
	byName := c.Query(t, map[string]any{"site_id": browserSite, "metrics": []string{"events"}, "dimensions": []string{"event:name"}, "date_range": testkit.TodayRange()}).Breakdown()
	if byName[customEvent] != 1 {
		t.Errorf("browser custom events by name = %v, want %q once", byName, customEvent)
	}
	t.Logf("browser site: 1 visitor, 1 visit, %d page views %v, custom event %q once", pageviews, sorted(byPage), customEvent)
}

func sorted(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		if v != 0 {
			out = append(out, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(out)
	return out
}
