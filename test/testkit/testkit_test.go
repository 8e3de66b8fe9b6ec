package testkit

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const exposition = `# HELP glimpse_events_total Events.
# TYPE glimpse_events_total counter
glimpse_events_total{site="a.example",outcome="accepted"} 3
glimpse_events_total{site="b.example",outcome="accepted"} 4
glimpse_events_total{site="a.example",outcome="rejected"} 1
glimpse_events_total_created{site="a.example"} 1.7e9
glimpse_up 1
`

func TestMetricSumsMatchingSamples(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(exposition))
	}))
	defer srv.Close()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"glimpse_events_total", nil, 8},
		{"glimpse_events_total", []string{"outcome", "accepted"}, 7},
		{"glimpse_events_total", []string{"site", "a.example", "outcome", "rejected"}, 1},
		{"glimpse_events_total", []string{"site", "c.example"}, 0},
		{"glimpse_up", nil, 1},
		{"glimpse_missing", nil, 0},
	} {
		got, err := Metric(srv.URL, c.name, c.labels...)
		if err != nil || got != c.want {
			t.Errorf("Metric(%s, %v) = %v, %v; want %v", c.name, c.labels, got, err, c.want)
		}
	}
	if _, err := Metric(srv.URL+"/nowhere", "glimpse_up"); err == nil {
		t.Error("Metric on a page that answers 404 returned no error")
	}
}

func TestAPIQuerySendsKeyAndDecodes(t *testing.T) {
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		_, _ = w.Write([]byte(`{"results":[{"dimensions":["/a"],"metrics":[2]},{"dimensions":[7],"metrics":[3]}]}`))
	}))
	defer srv.Close()
	got := API{URL: srv.URL, Key: "glk_x"}.Query(t, map[string]any{"site_id": "a.example"}).Breakdown()
	if auth != "Bearer glk_x" {
		t.Errorf("Authorization = %q, want Bearer glk_x", auth)
	}
	if len(got) != 2 || got["/a"] != 2 || got["7"] != 3 {
		t.Errorf("Breakdown = %v, want map[/a:2 7:3]", got)
	}
}

func TestProcessCapturesOutputAndExitCode(t *testing.T) {
	p, err := StartProcess(exec.Command("sh", "-c", "echo hello; echo oops >&2; exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	code, ok := p.Wait(10 * time.Second)
	if !ok || code != 3 {
		t.Fatalf("Wait = %d, %v; want 3, true", code, ok)
	}
	if out := p.Output(); !strings.Contains(out, "hello") || !strings.Contains(out, "oops") {
		t.Errorf("Output = %q, want both streams", out)
	}
	if tail := p.Tail(5); tail != "…oops\n" {
		t.Errorf("Tail(5) = %q, want %q", tail, "…oops\n")
	}
}

func TestParseQuietKeyTakesLastLine(t *testing.T) {
	if got := ParseQuietKey(t, "migrated\nglk_abc_def\n"); got != "glk_abc_def" {
		t.Errorf("ParseQuietKey = %q", got)
	}
}
