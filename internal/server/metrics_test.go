package server

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/telemetry"
)

func newInstrumented(t testing.TB, log *slog.Logger) (http.Handler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewHTTPMetrics(reg, "collector")
	if err != nil {
		t.Fatal(err)
	}
	return m.Instrument(routes(log)), reg
}

// routes is a top mux like a collector's: its handler routes again with a ServeMux of
// its own.
func routes(log *slog.Logger) *Mux {
	collector := http.NewServeMux()
	collector.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if log != nil {
			log.WarnContext(r.Context(), "handled")
		}
		w.WriteHeader(http.StatusAccepted)
	})
	mux := NewMux()
	mux.Handle("/api/event", collector)
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok") // no WriteHeader: 200
	})
	return mux
}

func TestInstrumentLabelsByPatternNotPath(t *testing.T) {
	h, reg := newInstrumented(t, nil)
	for _, path := range []string{"/api/event", "/api/event", "/api/v1/query", "/api/v1/realtime?site=x", "/nope/1", "/nope/2"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, path, nil))
	}
	got := series(t, reg, "glimpse_http_requests_total")
	want := map[string]float64{
		"code=200,route=/api/v1/,service=collector":   2,
		"code=202,route=/api/event,service=collector": 2,
		"code=404,route=unmatched,service=collector":  2,
	}
	if len(got) != len(want) {
		t.Fatalf("requests series = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if n := len(series(t, reg, "glimpse_http_request_duration_seconds")); n != 3 {
		t.Fatalf("duration series = %d, want one per route (3)", n)
	}
}

// series returns the value (counter) or sample count (histogram) of each series of name,
// keyed by its labels as "k=v,k=v" in name order.
func series(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue()
			if h := m.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			out[strings.Join(labels, ",")] = v
		}
	}
	return out
}

func TestInstrumentRequestID(t *testing.T) {
	var logs bytes.Buffer
	log, err := telemetry.NewLogger(&logs, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newInstrumented(t, log)

	cases := []struct {
		sent string
		keep bool
	}{
		{"lb-1234.abc", true},
		{"trace/42:x=y", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"has space", false},
		{"ctl\x01", false},
		{"nön-ascii", false},
		{"", false},
	}
	for _, c := range cases {
		logs.Reset()
		req := httptest.NewRequest(http.MethodPost, "/api/event", nil)
		if c.sent != "" {
			req.Header.Set(RequestIDHeader, c.sent)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get(RequestIDHeader)
		if c.keep && got != c.sent {
			t.Errorf("sent %q: response id %q, want it kept", c.sent, got)
		}
		if !c.keep && (got == c.sent || !SaneRequestID(got)) {
			t.Errorf("sent %q: response id %q, want a new sane one", c.sent, got)
		}
		if !strings.Contains(logs.String(), `"request_id":"`+got+`"`) {
			t.Errorf("sent %q: log line %q lacks request_id %q", c.sent, logs.String(), got)
		}
	}
}

func TestRequestIDMiddlewareKeepsOuterID(t *testing.T) {
	var seen string
	inner := RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = telemetry.RequestID(r.Context())
	}))
	mux := NewMux()
	mux.Handle("/", inner)
	m, err := NewHTTPMetrics(nil, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Instrument(mux).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	if id := rec.Header().Get(RequestIDHeader); id == "" || seen != id {
		t.Fatalf("inner handler saw %q, response says %q", seen, id)
	}
	// Alone, RequestID still gives one.
	rec = httptest.NewRecorder()
	inner.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	if id := rec.Header().Get(RequestIDHeader); id == "" || seen != id {
		t.Fatalf("alone: handler saw %q, response says %q", seen, id)
	}
}

func TestNewHTTPMetricsTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewHTTPMetrics(reg, "all"); err != nil {
		t.Fatal(err)
	}
	if _, err := NewHTTPMetrics(reg, "all"); err == nil {
		t.Fatal("second registration on one registry succeeded, want an error")
	}
}

// BenchmarkInstrument measures what the middleware adds to a beacon: compare with
// BenchmarkBareMux.
func BenchmarkInstrument(b *testing.B) {
	h, _ := newInstrumented(b, nil)
	benchHandler(b, h)
}

func BenchmarkBareMux(b *testing.B) {
	benchHandler(b, routes(nil))
}

func benchHandler(b *testing.B, h http.Handler) {
	req := httptest.NewRequest(http.MethodPost, "/api/event", nil)
	req.Header.Set(RequestIDHeader, "lb-1234.abc")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.ServeHTTP(w, req)
	}
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
