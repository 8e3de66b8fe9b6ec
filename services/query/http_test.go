package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
)

func errorOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error content type %q", ct)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\": ...}", w.Body)
	}
	return e.Error
}

func TestHTTPErrors(t *testing.T) {
	svc := newTestService(t, memstore.New(), func(c *Config) { c.MaxBodyBytes = 200 })
	post := func(ct, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, QueryPath, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		return svc.do(req)
	}
	cases := []struct {
		name   string
		w      *httptest.ResponseRecorder
		status int
		msg    string
	}{
		{"bad query", post("application/json", `{"site_id":"x","metrics":["nope"],"date_range":"7d"}`), 400, `unknown metric "nope"`},
		{"multipart body", post("multipart/form-data; boundary=x", `{}`), 415, `"Content-Type: application/json"`},
		{"too large", post("application/json", `{"site_id":"`+strings.Repeat("x", 300)+`"}`), 413, "larger than 200 bytes (query.max-body-bytes)"},
		{"wrong method", svc.do(httptest.NewRequest(http.MethodDelete, QueryPath, nil)), 405, "use POST /api/v1/query"},
		{"unknown path", svc.do(httptest.NewRequest(http.MethodGet, "/api/v1/stats", nil)), 404, "no such endpoint"},
		{"bad format", svc.do(httptest.NewRequest(http.MethodPost, QueryPath+"?format=xml", strings.NewReader(`{}`))), 400, `format must be "json" or "csv"`},
		{"GET without query", svc.do(httptest.NewRequest(http.MethodGet, QueryPath, nil)), 400, "JSON in the \"query\" URL parameter"},
		{"realtime without site", svc.do(httptest.NewRequest(http.MethodGet, RealtimePath, nil)), 400, "site_id is required"},
		{"realtime POST", svc.do(httptest.NewRequest(http.MethodPost, RealtimePath+"?site_id=x", nil)), 405, "use GET"},
	}
	for _, c := range cases {
		if c.w.Code != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, c.w.Code, c.status, c.w.Body)
			continue
		}
		if msg := errorOf(t, c.w); !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %q does not contain %q", c.name, msg, c.msg)
		}
	}
	// a body without Content-Type is read as JSON
	if w := post("", `{"site_id":"x","metrics":["visitors"],"date_range":"7d"}`); w.Code != 200 {
		t.Errorf("no content type: %d %s", w.Code, w.Body)
	}
	if got := counterValue(svc.metrics.requests.WithLabelValues(endpointQuery, "none", "400")); got != 3 {
		t.Errorf("400s counted: %v, want 3", got)
	}
}

// failingStore fails every read with err.
type failingStore struct {
	*memstore.Store
	err error
}

func (f failingStore) ScanRows(context.Context, store.RowRange, func(store.Row) error) error {
	return f.err
}

// VisitRows overrides the embedded store's: the query service prefers it to ScanRows.
func (f failingStore) VisitRows(context.Context, store.RowRange, func(*store.Row) error) error {
	return f.err
}

func (f failingStore) ScanEvents(context.Context, store.EventRange, func(store.StoredEvent) error) error {
	return f.err
}

func TestStoreUnavailableIs503(t *testing.T) {
	closed := memstore.New()
	closed.Close() // a closed memstore answers with an error wrapping store.ErrUnavailable
	for _, st := range []store.Store{closed, failingStore{memstore.New(), context.DeadlineExceeded}} {
		svc := newTestService(t, st)
		for _, body := range []string{
			`{"site_id":"x","metrics":["visitors"],"date_range":"7d"}`,                             // rollup
			`{"site_id":"x","metrics":["visitors"],"date_range":"7d","dimensions":["visit:city"]}`, // scan
		} {
			w := svc.post(body)
			if w.Code != 503 || w.Header().Get("Retry-After") == "" {
				t.Errorf("status %d (Retry-After %q), want 503", w.Code, w.Header().Get("Retry-After"))
			}
			msg := errorOf(t, w)
			if !strings.Contains(msg, "try again in a few seconds") && !strings.Contains(msg, "did not finish within 30s (query.timeout)") {
				t.Errorf("message %q", msg)
			}
		}
		req := httptest.NewRequest(http.MethodGet, RealtimePath+"?site_id=x", nil)
		if w := svc.do(req); w.Code != 503 {
			t.Errorf("realtime: status %d, want 503", w.Code)
		}
	}
	// anything else the store says is a 500 that does not leak the details
	svc := newTestService(t, failingStore{memstore.New(), errAny})
	w := svc.post(`{"site_id":"x","metrics":["visitors"],"date_range":"7d"}`)
	if w.Code != 500 || strings.Contains(w.Body.String(), errAny.Error()) {
		t.Errorf("status %d: %s", w.Code, w.Body)
	}
}

var errAny = errors.New("secret internals")

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func TestCSV(t *testing.T) {
	events := scanFixture()
	events[3].Path = "=HYPERLINK(\"x\")" // visitor-controlled text must not become a formula
	st := buildStore(t, events, 2).load(t)
	svc := newTestService(t, st)
	body := `{"site_id":"s.test","metrics":["visitors","pageviews","bounce_rate"],"date_range":["2026-03-10","2026-03-10"],"dimensions":["event:page"]}`
	want := "event:page,visitors,pageviews,bounce_rate\n" +
		"/,2,2,0\n" +
		"/pricing,2,2,50\n" +
		"\"'=HYPERLINK(\"\"x\"\")\",1,1,100\n" +
		"/blog,0,0,0\n"
	check := func(name string, w *httptest.ResponseRecorder) {
		t.Helper()
		if w.Code != 200 {
			t.Fatalf("%s: status %d: %s", name, w.Code, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/csv; charset=utf-8" {
			t.Errorf("%s: content type %q", name, ct)
		}
		if cd := w.Header().Get("Content-Disposition"); cd != `attachment; filename="glimpse-s.test-2026-03-10-2026-03-10.csv"` {
			t.Errorf("%s: content disposition %q", name, cd)
		}
		if w.Header().Get("X-Glimpse-Path") != PathRollup || w.Header().Get("X-Glimpse-Total-Rows") != "4" {
			t.Errorf("%s: headers %v", name, w.Header())
		}
		if got := w.Body.String(); got != want {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
	req := httptest.NewRequest(http.MethodPost, QueryPath+"?format=csv", strings.NewReader(body))
	check("format=csv", svc.do(req))
	req = httptest.NewRequest(http.MethodPost, QueryPath, strings.NewReader(body))
	req.Header.Set("Accept", "text/csv, application/json;q=0.5")
	check("Accept", svc.do(req))
	req = httptest.NewRequest(http.MethodGet, QueryPath+"?format=csv&query="+url.QueryEscape(body), nil)
	check("GET", svc.do(req))
	// ?format=json wins over Accept
	req = httptest.NewRequest(http.MethodPost, QueryPath+"?format=json", strings.NewReader(body))
	req.Header.Set("Accept", "text/csv")
	if w := svc.do(req); !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Errorf("format=json answered %q", w.Header().Get("Content-Type"))
	}
}

func TestJSONShape(t *testing.T) {
	st := buildStore(t, scanFixture(), 2).load(t)
	svc := newTestService(t, st)
	w := svc.post(`{"site_id":"s.test","metrics":["visitors","bounce_rate","visit_duration"],"date_range":["2026-03-10","2026-03-10"],"dimensions":["visit:source"],"limit":1}`)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"results": []any{map[string]any{"dimensions": []any{"Google"}, "metrics": []any{2.0, 0.0, 780.0}}},
		"meta": map[string]any{"path": "rollup", "granularity": "day", "rows_read": 2.0, "events_scanned": 0.0,
			"total_rows": 2.0, "warnings": []any{}},
		"query": map[string]any{
			"site_id": "s.test", "metrics": []any{"visitors", "bounce_rate", "visit_duration"}, "dimensions": []any{"visit:source"},
			"filters": []any{}, "date_range": []any{"2026-03-10T00:00:00Z", "2026-03-10T23:59:59Z"},
			"order_by":   []any{[]any{"visitors", "desc"}, []any{"visit:source", "asc"}},
			"pagination": map[string]any{"limit": 1.0, "offset": 0.0},
			"include":    map[string]any{"time_labels": false, "empty_buckets": false},
		},
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("\n got %s\nwant %s", gotJSON, wantJSON)
	}
	// integers are written as integers
	if !strings.Contains(w.Body.String(), `"metrics":[2,0,780]`) {
		t.Errorf("body %s", w.Body)
	}
}

func TestRealtime(t *testing.T) {
	now := testNow
	var evs []testEvent
	for i, ago := range []time.Duration{10 * time.Second, 2 * time.Minute, 4*time.Minute + 20*time.Second, 5*time.Minute + 1*time.Second, 20 * time.Minute} {
		evs = append(evs, testEvent{Site: "rt.test", VisitorID: uint64(i + 1), Time: now.Add(-ago).UnixMilli(), Name: "pageview", Path: "/"})
	}
	evs = append(evs, testEvent{Site: "rt.test", VisitorID: 1, Time: now.Add(-3 * time.Minute).UnixMilli(), Name: "pageview", Path: "/a"})
	svc := newTestService(t, buildStore(t, evs, 2).load(t))
	w := svc.do(httptest.NewRequest(http.MethodGet, RealtimePath+"?site_id=rt.test", nil))
	// now is 14:27:30; the last five minutes are the buckets 14:23 … 14:27, so 14:22:29 is out
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"visitors":3}` {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	r := svc.query(t, `{"site_id":"rt.test","metrics":["visitors","pageviews"],"date_range":"realtime","dimensions":["time:minute"]}`)
	if r.Meta.Path != PathRollup || r.Meta.Granularity != "minute" || len(r.Results) != 6 {
		t.Errorf("realtime series: %+v %v", r.Meta, rowsOf(r))
	}
	if got := counterValue(svc.metrics.requests.WithLabelValues(endpointRealtime, PathRollup, "200")); got != 1 {
		t.Errorf("realtime requests counted %v", got)
	}
}

func TestLifecycleAndConfig(t *testing.T) {
	svc := newTestService(t, memstore.New())
	ctx, cancel := context.WithCancel(context.Background())
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- svc.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := svc.Stop(context.Background()); err != nil || svc.Name() != "query" {
		t.Fatal(err)
	}
	bad := DefaultConfig()
	bad.MaxLimit = 1
	bad.MaxScanEvents = 0
	if _, err := New(bad, Deps{Store: memstore.New()}); err == nil || !strings.Contains(err.Error(), "query.max-scan-events") || !strings.Contains(err.Error(), "query.max-limit") {
		t.Errorf("New with a bad config: %v", err)
	}
	if _, err := New(DefaultConfig(), Deps{}); err == nil {
		t.Error("New without a store succeeded")
	}
}
