package query

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
)

// unzipCSVs reads every file of a zip answer as CSV records.
func unzipCSVs(t *testing.T, body []byte) map[string][][]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("the answer is not a zip: %v", err)
	}
	out := map[string][][]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(rc).ReadAll()
		rc.Close()
		if err != nil {
			t.Fatalf("%s is not CSV: %v", f.Name, err)
		}
		out[f.Name] = recs
	}
	return out
}

// csvOfJSON renders a JSON query answer the way the CSV should show it.
func csvOfJSON(q *Query, r *Response) [][]string {
	out := [][]string{append(slices.Clone(q.Dimensions), q.Metrics...)}
	for _, row := range r.Results {
		line := []string{}
		for _, d := range row.Dimensions {
			line = append(line, csvSafe(d))
		}
		for _, m := range row.Metrics {
			n := m.(json.Number)
			line = append(line, n.String())
		}
		out = append(out, line)
	}
	return out
}

func exportURL(site, dateRange string) string {
	return ExportPath + "?" + url.Values{"site_id": {site}, "date_range": {dateRange}}.Encode()
}

func TestExportMatchesTheJSONAnswers(t *testing.T) {
	evs := synthetic(7, 60)
	evs[0].Path = "=HYPERLINK(\"x\")" // a value a spreadsheet would run
	st := buildStore(t, evs, 3).load(t)
	svc := newTestService(t, st)

	for _, dr := range []string{"30d", "2026-03-01,2026-03-15", `["2026-03-08","2026-03-10"]`} {
		w := svc.do(httptest.NewRequest(http.MethodGet, exportURL("a.test", dr), nil))
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", dr, w.Code, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/zip" {
			t.Errorf("Content-Type %q", ct)
		}
		if cd := w.Header().Get("Content-Disposition"); !strings.Contains(cd, `filename="glimpse-a.test-`) || !strings.HasSuffix(cd, `.zip"`) {
			t.Errorf("Content-Disposition %q", cd)
		}
		files := unzipCSVs(t, w.Body.Bytes())
		if len(files) != len(ExportReports)+1 {
			t.Errorf("%s: %d files, want %d reports and the manifest", dr, len(files), len(ExportReports))
		}
		dateRange, err := exportDateRange(dr)
		if err != nil {
			t.Fatal(err)
		}
		nonEmpty := 0
		for _, rep := range ExportReports {
			body := string(rep.Body("a.test", dateRange, DefaultConfig().MaxLimit))
			q, err := ParseQuery([]byte(body), testNow, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			want := csvOfJSON(q, svc.query(t, body))
			got, ok := files[rep.File]
			if !ok {
				t.Errorf("%s: %s missing from the zip", dr, rep.File)
				continue
			}
			if !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("%s: %s differs from the JSON answer of %s\n got %q\nwant %q", dr, rep.File, body, got, want)
			}
			if len(got) > 1 {
				nonEmpty++
			}
		}
		if nonEmpty < 10 {
			t.Errorf("%s: only %d reports have rows; the comparison proves little", dr, nonEmpty)
		}
		manifest := files[ExportManifest]
		if len(manifest) != len(ExportReports)+1 || manifest[1][0] != "timeseries.csv" || manifest[1][5] != "false" {
			t.Errorf("manifest %q", manifest)
		}
	}

	// The custom events report leaves page views out.
	files := unzipCSVs(t, svc.do(httptest.NewRequest(http.MethodGet, exportURL("a.test", "30d"), nil)).Body.Bytes())
	for _, rec := range files["custom_events.csv"][1:] {
		if rec[0] == "pageview" {
			t.Error("custom_events.csv lists page views")
		}
	}
	found := false
	for _, rec := range files["pages.csv"] {
		found = found || rec[0] == `'=HYPERLINK("x")`
	}
	if !found {
		t.Error("a formula-like page path is not defused in pages.csv")
	}
}

func TestExportMarksTruncatedReports(t *testing.T) {
	st := buildStore(t, synthetic(7, 60), 3).load(t)
	svc := newTestService(t, st, func(c *Config) { c.MaxLimit, c.DefaultLimit = 2, 2 })
	w := svc.do(httptest.NewRequest(http.MethodGet, exportURL("a.test", "30d"), nil))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	files := unzipCSVs(t, w.Body.Bytes())
	if n := len(files["pages.csv"]); n != 3 {
		t.Errorf("pages.csv has %d lines; want a header and query.max-limit (2) rows", n)
	}
	for _, rec := range files[ExportManifest][1:] {
		if rec[0] == "pages.csv" && (rec[3] != "2" || rec[5] != "true" || rec[4] == "2") {
			t.Errorf("manifest line %q; want 2 rows of more, truncated", rec)
		}
	}
}

func TestExportErrors(t *testing.T) {
	svc := newTestService(t, memstore.New())
	cases := []struct {
		name   string
		req    *http.Request
		status int
		msg    string
	}{
		{"POST", httptest.NewRequest(http.MethodPost, exportURL("a.test", "7d"), nil), 405, "use GET /api/v1/export"},
		{"no site", httptest.NewRequest(http.MethodGet, ExportPath+"?date_range=7d", nil), 400, "site_id is required"},
		{"no date_range", httptest.NewRequest(http.MethodGet, ExportPath+"?site_id=a.test", nil), 400, "date_range is required"},
		{"bad date_range", httptest.NewRequest(http.MethodGet, exportURL("a.test", "forever"), nil), 400, "date_range must be"},
		{"bad dates", httptest.NewRequest(http.MethodGet, exportURL("a.test", "2026-13-01,2026-01-02"), nil), 400, ""},
		{"bad JSON", httptest.NewRequest(http.MethodGet, exportURL("a.test", `["2026-01-01"`), nil), 400, "not valid JSON"},
	}
	for _, c := range cases {
		w := svc.do(c.req)
		if w.Code != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, w.Code, c.status, w.Body)
			continue
		}
		if msg := errorOf(t, w); !strings.Contains(msg, c.msg) {
			t.Errorf("%s: message %q does not contain %q", c.name, msg, c.msg)
		}
	}
}

func TestExportNeedsAKeyThatCoversTheSite(t *testing.T) {
	st := buildStore(t, synthetic(3, 10), 1).load(t)
	svc := newTestService(t, st, func(c *Config) { c.Auth = true })
	ctx := context.Background()
	keys := sites.NewKeyring(st, sites.Options{})
	siteKey, _, err := keys.Create(ctx, sites.KeySpec{Sites: []string{"a.test"}, Name: "exports"})
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _, err := keys.Create(ctx, sites.KeySpec{Sites: []string{"b.test"}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, exportURL("a.test", "30d"), nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		return svc.do(req)
	}
	if w := get(""); w.Code != http.StatusUnauthorized {
		t.Errorf("no key: status %d", w.Code)
	}
	if w := get(otherKey); w.Code != http.StatusForbidden {
		t.Errorf("another site's key: status %d", w.Code)
	}
	w := get(siteKey)
	if w.Code != http.StatusOK {
		t.Fatalf("the site's key: status %d: %s", w.Code, w.Body)
	}
	if _, err := io.ReadAll(w.Body); err != nil {
		t.Fatal(err)
	}
	id, _, _ := sites.ParseKey(siteKey)
	if got := svc.caller(ctx, withKey(siteKey)); got != "key "+id+" (exports)" {
		t.Errorf("export logged as made by %q", got)
	}
}

func withKey(key string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, ExportPath, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	return req
}
