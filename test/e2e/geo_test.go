package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/geo/geotest"
	"github.com/glimpse-analytics/glimpse/test/testkit"
)

// TestGeography runs `glimpse all --geoip.db` with a generated City database, sends page
// views from addresses in its networks (X-Forwarded-For from the test, a trusted proxy on
// 127.0.0.1) and checks visit:country, visit:region and visit:city on both query paths.
func TestGeography(t *testing.T) {
	started := time.Now()
	in := start(t, testkit.FreeAddr(t), t.TempDir(), "--geoip.db="+geotest.CityDB(t))
	const site = "geo-e2e.example"

	// one visitor per address, two page views each
	visitors := []string{
		"81.2.69.1", "81.2.69.2", "81.2.69.3", // GB, England, London
		"2a02:8100::1", "2a02:8100::2", // DE, Berlin, Berlin
		"1.128.0.1",                  // AU, Queensland, Brisbane (DB-IP layout)
		"89.160.20.1", "89.160.20.2", // SE, country only
		"8.8.8.8",  // in no network
		"10.1.2.3", // private
	}
	for _, ip := range visitors {
		for _, path := range []string{"/", "/pricing"} {
			sendFrom(t, in, site, "https://"+site+path, ip)
		}
	}
	wantPageviews := 2 * len(visitors)
	dateRange := testkit.TodayRange()
	waitFor(t, 30*time.Second, "page views", func() (bool, string) {
		r := in.query(t, map[string]any{"site_id": site, "metrics": []string{"pageviews"}, "date_range": dateRange})
		if len(r.Results) == 0 {
			return false, "no results"
		}
		return int(r.Results[0].Metrics[0]) == wantPageviews, fmt.Sprintf("pageviews=%v, want %d", r.Results[0].Metrics[0], wantPageviews)
	})
	testkit.SkipIfDayChanged(t, started)

	want := map[string]map[string]int{
		"visit:country": {"GB": 3, "DE": 2, "AU": 1, "SE": 2, "": 2},
		"visit:region":  {"England": 3, "Berlin": 2, "Queensland": 1, "": 4},
		"visit:city":    {"London": 3, "Berlin": 2, "Brisbane": 1, "": 4},
	}
	for _, dim := range []string{"visit:country", "visit:region", "visit:city"} {
		t.Run(dim, func(t *testing.T) {
			paths := map[string]bool{}
			for _, forceScan := range []bool{false, true} {
				q := map[string]any{"site_id": site, "metrics": []string{"visitors", "visits", "pageviews"},
					"dimensions": []string{dim}, "date_range": dateRange, "limit": 100}
				if forceScan {
					// a filter no rollup holds makes the engine scan stored events
					q["filters"] = []any{[]any{"is_not", "visit:browser", []string{"no such browser"}}}
				}
				r := in.query(t, q)
				paths[fmt.Sprint(r.Meta["path"])] = true
				got := map[string]int{}
				for _, row := range r.Results {
					v := testkit.DimString(row.Dimensions[0])
					got[v] = int(row.Metrics[0])
					if int(row.Metrics[1]) != got[v] || int(row.Metrics[2]) != 2*got[v] {
						t.Errorf("scan=%v %s=%q: visits %v and pageviews %v for %d visitors; want %d and %d",
							forceScan, dim, v, row.Metrics[1], row.Metrics[2], got[v], got[v], 2*got[v])
					}
				}
				if fmt.Sprint(testkit.SortedKV(got)) != fmt.Sprint(testkit.SortedKV(want[dim])) {
					t.Errorf("scan=%v (path %v) visitors by %s:\n got %v\nwant %v", forceScan, r.Meta["path"], dim, testkit.SortedKV(got), testkit.SortedKV(want[dim]))
				}
			}
			// country has rollups, so both query paths were compared; region and city are
			// always scanned
			if dim == "visit:country" && (!paths["rollup"] || !paths["scan"]) {
				t.Errorf("visit:country was answered by %v; want both the rollup and the scan path", paths)
			}
		})
	}

	t.Run("filter by country", func(t *testing.T) {
		r := in.query(t, map[string]any{"site_id": site, "metrics": []string{"visitors"}, "dimensions": []string{"visit:city"},
			"filters": []any{[]any{"is", "visit:country", []string{"DE"}}}, "date_range": dateRange})
		if len(r.Results) != 1 || testkit.DimString(r.Results[0].Dimensions[0]) != "Berlin" || r.Results[0].Metrics[0] != 2 {
			t.Fatalf("cities of DE: %+v; want Berlin with 2 visitors", r.Results)
		}
	})
}

// sendFrom sends one page view that a trusted proxy forwarded for ip.
func sendFrom(t *testing.T, in *instance, site, url, ip string) {
	t.Helper()
	body := `{"n":"pageview","u":"` + url + `","d":"` + site + `"}`
	req, _ := http.NewRequest(http.MethodPost, in.BaseURL+"/api/event", strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("User-Agent", chromeUA)
	req.Header.Set("X-Forwarded-For", ip)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Glimpse-Dropped") != "" {
		t.Fatalf("page view from %s: HTTP %d, dropped %q", ip, resp.StatusCode, resp.Header.Get("X-Glimpse-Dropped"))
	}
}
