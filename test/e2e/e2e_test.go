package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/loadgen"
	"github.com/glimpse-analytics/glimpse/test/testkit"
)

// TestEndToEnd sends more than 10,000 beacons from more than 1,000 visitors through the
// gateway of a real `glimpse all` and checks every number the query API reports.
func TestEndToEnd(t *testing.T) {
	started := time.Now()
	in := start(t, testkit.FreeAddr(t), t.TempDir())
	sites := []string{"e2e-one.example", "e2e-two.example", "e2e-three.example"}
	plan := loadgen.NewPlan(loadgen.Options{Sites: sites, Events: 10_000, Seed: 42})
	if len(plan.Visits) < 1000 {
		t.Fatalf("plan has %d visitors, want >= 1000", len(plan.Visits))
	}
	rep := loadgen.Send(context.Background(), plan, loadgen.SendOptions{Target: in.BaseURL, Concurrency: 32})
	t.Logf("sent %d beacons in %s (%.0f/s), p50 %s p99 %s", rep.Sent, rep.Elapsed, rep.Rate(), rep.Percentile(50), rep.Percentile(99))
	if rep.Failed != 0 || rep.Acked != int64(plan.Events()) {
		t.Fatalf("acknowledged %d of %d beacons; failures: %v", rep.Acked, plan.Events(), rep.Errors)
	}
	expected := plan.Expect(nil)
	dateRange := testkit.TodayRange()

	t.Run("curl-style request", func(t *testing.T) {
		// the README's example: curl -X POST .../api/v1/query -d '{...}' (curl's default
		// content type is application/x-www-form-urlencoded)
		body := `{"site_id":"e2e-one.example","metrics":["visitors","visits","pageviews","bounce_rate","visit_duration"],"date_range":"day"}`
		req, _ := http.NewRequest(http.MethodPost, in.BaseURL+"/api/v1/query", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+in.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			raw, _ := io.ReadAll(resp.Body)
			t.Fatalf("HTTP %d: %s", resp.StatusCode, raw)
		}
	})

	for _, site := range sites {
		want := expected[site]
		waitFor(t, 30*time.Second, site+" page views", func() (bool, string) {
			r := in.query(t, map[string]any{"site_id": site, "metrics": []string{"pageviews", "events"}, "date_range": dateRange})
			if len(r.Results) == 0 {
				return false, "no results"
			}
			m := r.Results[0].Metrics
			return int(m[0]) == want.Pageviews && int(m[1]) == want.Events, fmt.Sprintf("pageviews=%v events=%v, want %d %d", m[0], m[1], want.Pageviews, want.Events)
		})
		testkit.SkipIfDayChanged(t, started)

		t.Run(site+"/totals", func(t *testing.T) {
			metrics := []string{"visitors", "visits", "pageviews", "events", "bounce_rate", "views_per_visit", "visit_duration"}
			for _, forceScan := range []bool{false, true} {
				q := map[string]any{"site_id": site, "metrics": metrics, "date_range": dateRange}
				if forceScan {
					// a filter no rollup holds makes the engine scan stored events
					q["filters"] = []any{[]any{"is_not", "visit:browser", []string{"no such browser"}}}
				}
				r := in.query(t, q)
				if len(r.Results) != 1 {
					t.Fatalf("scan=%v: want one result row, got %+v", forceScan, r)
				}
				m := r.Results[0].Metrics
				testkit.CheckNear(t, "visitors", m[0], float64(want.Visitors), 0.02)
				testkit.CheckEqual(t, "visits", m[1], float64(want.Visits))
				testkit.CheckEqual(t, "pageviews", m[2], float64(want.Pageviews))
				testkit.CheckEqual(t, "events", m[3], float64(want.Events))
				testkit.CheckEqual(t, "bounce_rate", m[4], want.BounceRate())
				testkit.CheckEqual(t, "views_per_visit", m[5], want.ViewsPerVisit())
				if m[6] < 0 || m[6] > time.Since(started).Seconds()+1 {
					t.Errorf("visit_duration %v s is impossible for a run of %s", m[6], time.Since(started))
				}
			}
		})
		t.Run(site+"/visit:duration_bucket", func(t *testing.T) {
			// every visit falls in exactly one length bucket; the loadgen visits here last
			// seconds, so all of them are in the shortest buckets
			r := in.query(t, map[string]any{"site_id": site, "metrics": []string{"visits"}, "dimensions": []string{"visit:duration_bucket"}, "date_range": dateRange})
			total := 0
			for _, row := range r.Results {
				b := testkit.DimString(row.Dimensions[0])
				if b != "0" && b != "10" && b != "30" && b != "60" {
					t.Errorf("bucket %q for visits of a few seconds", b)
				}
				total += int(row.Metrics[0])
			}
			if total != want.Visits {
				t.Fatalf("visits by duration bucket add up to %d, want %d: %v", total, want.Visits, r.Results)
			}
		})
		for _, b := range testkit.Breakdowns(want) {
			t.Run(site+"/"+b.Dim, func(t *testing.T) {
				for _, forceScan := range []bool{false, true} {
					q := map[string]any{"site_id": site, "metrics": []string{b.Metric}, "dimensions": []string{b.Dim}, "date_range": dateRange, "limit": 100}
					if forceScan {
						q["filters"] = []any{[]any{"is_not", "visit:browser", []string{"no such browser"}}}
					}
					r := in.query(t, q)
					got := map[string]int{}
					for _, row := range r.Results {
						got[testkit.DimString(row.Dimensions[0])] = int(row.Metrics[0])
					}
					if fmt.Sprint(testkit.SortedKV(got)) != fmt.Sprint(testkit.SortedKV(b.Want)) {
						t.Fatalf("scan=%v %s by %s:\n got %v\nwant %v", forceScan, b.Metric, b.Dim, testkit.SortedKV(got), testkit.SortedKV(b.Want))
					}
					// and in the order the API promises: metric descending, then value
					top := loadgen.TopN(b.Want, 0)
					for i, row := range r.Results {
						if testkit.DimString(row.Dimensions[0]) != top[i].Key || int(row.Metrics[0]) != top[i].Value {
							t.Fatalf("row %d is %v, want %v", i, row, top[i])
						}
					}
				}
			})
		}
	}
}

// TestCrashRecovery kills `glimpse all` with SIGKILL in the middle of a stream of beacons,
// restarts it on the same data, finishes the stream, and checks that every beacon that got
// a 2xx is counted exactly once — and none twice.
func TestCrashRecovery(t *testing.T) {
	started := time.Now()
	dataDir := t.TempDir()
	addr := testkit.FreeAddr(t)
	site := "crash.example"
	plan := loadgen.NewPlan(loadgen.Options{Sites: []string{site}, Events: 6000, Seed: 7, UniquePaths: true})
	half := len(plan.Visits) / 2

	first := start(t, addr, dataDir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	killed := make(chan struct{})
	reports := make(chan *loadgen.Report, 1)
	go func() {
		reports <- loadgen.Send(ctx, plan.Slice(0, half), loadgen.SendOptions{Target: first.BaseURL, Concurrency: 16, Timeout: 5 * time.Second,
			Progress: func(sent, acked, failed int64) {
				if acked >= int64(plan.Slice(0, half).Events()/2) {
					select {
					case <-killed:
					default:
						close(killed)
					}
				}
			}})
	}()
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		t.Fatal("stream did not reach the kill point")
	}
	first.kill()
	cancel() // the rest of the first half fails fast; it is not resent
	repA := <-reports
	t.Logf("first half: %d acknowledged, %d failed before/at the kill", repA.Acked, repA.Failed)
	if repA.Acked == 0 {
		t.Fatal("nothing was acknowledged before the kill")
	}

	second := start(t, addr, dataDir)
	repB := loadgen.Send(context.Background(), plan.Slice(half, len(plan.Visits)), loadgen.SendOptions{Target: second.BaseURL, Concurrency: 16})
	if repB.Failed != 0 {
		t.Fatalf("after the restart %d beacons failed: %v", repB.Failed, repB.Errors)
	}

	// Which paths must be counted once (acknowledged), and which may be (sent, no answer).
	mustOnce, mayOnce := map[string]bool{}, map[string]bool{}
	mark := func(p *loadgen.Plan, rep *loadgen.Report) {
		for vi, v := range p.Visits {
			for bi, b := range v.Beacons {
				if b.Name != "pageview" {
					continue
				}
				if rep.Outcome[vi][bi] {
					mustOnce[b.Path] = true
				} else {
					mayOnce[b.Path] = true
				}
			}
		}
	}
	mark(plan.Slice(0, half), repA)
	mark(plan.Slice(half, len(plan.Visits)), repB)

	var counts map[string]int
	waitFor(t, 60*time.Second, "every acknowledged page view", func() (bool, string) {
		r := second.query(t, map[string]any{"site_id": site, "metrics": []string{"pageviews"}, "dimensions": []string{"event:page"},
			"date_range": testkit.TodayRange(), "limit": 10000})
		counts = map[string]int{}
		for _, row := range r.Results {
			counts[testkit.DimString(row.Dimensions[0])] = int(row.Metrics[0])
		}
		missing := 0
		for p := range mustOnce {
			if counts[p] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d acknowledged page views not counted yet", missing)
	})
	testkit.SkipIfDayChanged(t, started)
	var twice, unknown, lateStored []string
	for p, n := range counts {
		switch {
		case n > 1:
			twice = append(twice, fmt.Sprintf("%s×%d", p, n))
		case !mustOnce[p] && !mayOnce[p]:
			unknown = append(unknown, p)
		case !mustOnce[p]:
			lateStored = append(lateStored, p)
		}
	}
	if len(twice) > 0 || len(unknown) > 0 {
		t.Fatalf("counted twice: %v; never sent: %v", twice, unknown)
	}
	t.Logf("%d acknowledged page views each counted once; %d unacknowledged ones were stored before the kill", len(mustOnce), len(lateStored))

	// A clean restart changes nothing.
	second.stop()
	third := start(t, addr, dataDir)
	r := third.query(t, map[string]any{"site_id": site, "metrics": []string{"pageviews"}, "date_range": testkit.TodayRange()})
	if got, want := int(r.Results[0].Metrics[0]), len(mustOnce)+len(lateStored); got != want {
		t.Fatalf("after a clean restart pageviews = %d, want %d", got, want)
	}
}

// TestHelpListsSettings checks that --help is true to the flags: every target documents its
// settings with defaults and environment variables.
func TestHelpListsSettings(t *testing.T) {
	for _, target := range []string{"all", "gateway", "collector", "processor", "query", "loadgen"} {
		out, err := runBinary(t, target, "--help")
		if err != nil {
			t.Fatalf("glimpse %s --help: %v\n%s", target, err, out)
		}
		if !strings.Contains(out, "Usage: glimpse "+target) || !strings.Contains(out, "env GLIMPSE_") {
			t.Fatalf("glimpse %s --help does not list its settings:\n%s", target, out)
		}
	}
	out, _ := runBinary(t, "all", "--help")
	for _, flag := range []string{"--addr", "--data-dir", "--collector.", "--processor.", "--query.", "--gateway."} {
		if !strings.Contains(out, flag) {
			t.Errorf("glimpse all --help lacks %s", flag)
		}
	}
	if out, err := runBinary(t, "all", "--no-such-flag"); err == nil || !strings.Contains(out, "no-such-flag") {
		t.Errorf("an unknown flag must fail naming it; got err=%v\n%s", err, out)
	}
	if out, err := runBinary(t, "nonsense"); err == nil || !strings.Contains(out, "unknown target") {
		t.Errorf("an unknown target must fail; got err=%v\n%s", err, out)
	}
}

func runBinary(t *testing.T, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "GLIMPSE_DATA_DIR="+filepath.Join(t.TempDir(), "data"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}
