package e2e

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/test/testkit"
)

var mpSecretPattern = regexp.MustCompile(`^gmp_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$`)

// mpSend posts a Measurement Protocol body and returns the status and body of the answer.
func mpSend(t *testing.T, in *instance, site, secret, body string) (int, string) {
	t.Helper()
	u := in.BaseURL + "/mp/collect?" + url.Values{"measurement_id": {site}, "api_secret": {secret}}.Encode()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// breakdown queries one metric by one dimension and returns value → metric, leaving out
// rows whose metric is 0 (a page that holds only custom events has 0 page views, an exit
// page that moved on keeps a row of 0 visits).
func breakdown(t *testing.T, in *instance, site, metric, dim string) map[string]int {
	t.Helper()
	r := in.query(t, map[string]any{"site_id": site, "metrics": []string{metric}, "dimensions": []string{dim}, "date_range": testkit.TodayRange()})
	out := map[string]int{}
	for _, row := range r.Results {
		if row.Metrics[0] != 0 {
			out[testkit.DimString(row.Dimensions[0])] = int(row.Metrics[0])
		}
	}
	return out
}

// TestMPEventsThroughGlimpseAll creates a Measurement Protocol secret with the CLI, sends
// server-side events to `glimpse all` and reads exactly those numbers back, then exports
// the site and compares the zip with the query API's answers.
func TestMPEventsThroughGlimpseAll(t *testing.T) {
	started := time.Now()
	dataDir := t.TempDir()
	const site = "mp.example"
	mustCLI(t, dataDir, "sites", "add", site)
	secret := strings.TrimSpace(mustCLI(t, dataDir, "sites", "mp-secret", "create", site, "--quiet", "--name=e2e"))
	if !mpSecretPattern.MatchString(secret) {
		t.Fatalf("mp-secret create --quiet printed %q", secret)
	}
	revoked := strings.TrimSpace(mustCLI(t, dataDir, "sites", "mp-secret", "create", site, "--quiet"))
	mustCLI(t, dataDir, "sites", "mp-secret", "revoke", site, revoked)
	if out := mustCLI(t, dataDir, "sites", "mp-secret", "list", site); !strings.Contains(out, secret[4:16]) || strings.Contains(out, revoked[4:16]) {
		t.Fatalf("mp-secret list after a revoke:\n%s", out)
	}

	in := start(t, testkit.FreeAddr(t), dataDir, "--collector.open-sites=false")

	// Refused requests count nothing.
	for _, c := range []struct {
		site, secret, body string
		status             int
	}{
		{site, revoked, `{"client_id":"x","events":[{"name":"page_view","params":{"page_location":"https://mp.example/"}}]}`, http.StatusForbidden},
		{"unknown.example", secret, `{"client_id":"x","events":[{"name":"page_view","params":{"page_location":"https://mp.example/"}}]}`, http.StatusNotFound},
		{site, secret, `{"client_id":"x","events":[{"name":"page_view","params":{"page_location":"https://mp.example/"}},{"name":"bad-name"}]}`, http.StatusBadRequest},
	} {
		if code, body := mpSend(t, in, c.site, c.secret, c.body); code != c.status || !strings.Contains(body, `"error"`) {
			t.Errorf("measurement_id %s: HTTP %d %s; want %d with a JSON error", c.site, code, body, c.status)
		}
	}

	// Client a: two page views and a purchase, sent twice with the same timestamp_micros
	// (a retry): counted once. Client b: one page view and a sign-up.
	ts := time.Now().UnixMicro()
	clientA := fmt.Sprintf(`{"client_id":"client-a","timestamp_micros":%d,"events":[
		{"name":"page_view","params":{"page_location":"https://mp.example/pricing?utm_source=newsletter","page_referrer":"https://www.google.com/"}},
		{"name":"page_view","params":{"page_location":"https://mp.example/checkout"}},
		{"name":"purchase","params":{"page_location":"https://mp.example/checkout","value":9.99,"currency":"EUR","plan":"pro"}}]}`, ts)
	clientB := `{"client_id":"client-b","events":[
		{"name":"page_view","params":{"page_location":"https://mp.example/"}},
		{"name":"sign_up","params":{"plan":"free","engagement_time_msec":1500}}]}`
	for _, body := range []string{clientA, clientB, clientA} {
		if code, answer := mpSend(t, in, site, secret, body); code != http.StatusNoContent {
			t.Fatalf("HTTP %d: %s", code, answer)
		}
	}

	totals := func() (map[string]float64, string) {
		r := in.query(t, map[string]any{"site_id": site, "metrics": []string{"visitors", "visits", "pageviews", "events"}, "date_range": testkit.TodayRange()})
		m := r.Results[0].Metrics
		got := map[string]float64{"visitors": m[0], "visits": m[1], "pageviews": m[2], "events": m[3]}
		return got, fmt.Sprint(got)
	}
	want := map[string]float64{"visitors": 2, "visits": 2, "pageviews": 3, "events": 2}
	waitFor(t, 30*time.Second, "the MP events to be counted", func() (bool, string) {
		got, s := totals()
		return got["pageviews"] >= want["pageviews"] && got["events"] >= want["events"], s
	})
	time.Sleep(time.Second) // a late duplicate would show up by now
	got, _ := totals()
	for k, v := range want {
		testkit.CheckEqual(t, k, got[k], v)
	}
	checks := []struct {
		metric, dim string
		want        map[string]int
	}{
		{"pageviews", "event:page", map[string]int{"/": 1, "/pricing": 1, "/checkout": 1}},
		{"events", "event:name", map[string]int{"purchase": 1, "sign_up": 1}},
		{"visitors", "event:name", map[string]int{"pageview": 2, "purchase": 1, "sign_up": 1}},
		{"visitors", "event:page", map[string]int{"/": 1, "/pricing": 1, "/checkout": 1, "": 1}}, // sign_up has no page
		{"events", "event:props:plan", map[string]int{"pro": 1, "free": 1}},
		{"visits", "visit:source", map[string]int{"newsletter": 1, "": 1}},
		{"visits", "visit:utm_source", map[string]int{"newsletter": 1, "": 1}},
		{"visits", "visit:entry_page", map[string]int{"/pricing": 1, "/": 1}},
		{"visits", "visit:exit_page", map[string]int{"/checkout": 1, "/": 1}},
	}
	for _, c := range checks {
		if got := breakdown(t, in, site, c.metric, c.dim); fmt.Sprint(sortedMap(got)) != fmt.Sprint(sortedMap(c.want)) {
			t.Errorf("%s by %s = %v, want %v", c.metric, c.dim, got, c.want)
		}
	}

	t.Run("Export", func(t *testing.T) { checkExport(t, in, site) })
	testkit.SkipIfDayChanged(t, started)
}

func sortedMap(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+strconv.Itoa(v))
	}
	sort.Strings(out)
	return out
}

// checkExport downloads the site's export and compares every CSV with the JSON answer of the
// same query.
func checkExport(t *testing.T, in *instance, site string) {
	dr := testkit.TodayRange()
	u := in.BaseURL + "/api/v1/export?" + url.Values{"site_id": {site}, "date_range": {dr[0] + "," + dr[1]}}.Encode()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+in.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("export: HTTP %d %s: %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("export is not a zip: %v", err)
	}
	files := map[string][][]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(rc).ReadAll()
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		files[f.Name] = recs
	}
	manifest := files["manifest.csv"]
	if len(manifest) < 2 {
		t.Fatalf("manifest.csv: %q", manifest)
	}
	for _, line := range manifest[1:] {
		file, dims, metrics := line[0], strings.Fields(line[1]), strings.Fields(line[2])
		q := map[string]any{"site_id": site, "metrics": metrics, "dimensions": dims, "date_range": dr}
		switch file {
		case "timeseries.csv":
			q["include"] = map[string]bool{"empty_buckets": true}
		case "custom_events.csv":
			q["filters"] = [][]any{{"is_not", "event:name", []string{"pageview"}}}
		}
		r := in.query(t, q)
		want := [][]string{append(append([]string{}, dims...), metrics...)}
		for _, row := range r.Results {
			rec := []string{}
			for _, d := range row.Dimensions {
				rec = append(rec, testkit.DimString(d))
			}
			for _, m := range row.Metrics {
				rec = append(rec, strconv.FormatFloat(m, 'f', -1, 64))
			}
			want = append(want, rec)
		}
		if fmt.Sprint(files[file]) != fmt.Sprint(want) {
			t.Errorf("%s = %q; the query API answers %q", file, files[file], want)
		}
	}
	if got := files["pages.csv"]; len(got) != 5 {
		t.Errorf("pages.csv has %d lines, want a header, 3 pages and the empty page of sign_up: %q", len(got), got)
	}
	if got := files["custom_events.csv"]; len(got) != 3 {
		t.Errorf("custom_events.csv has %d lines, want a header, purchase and sign_up: %q", len(got), got)
	}
}
