package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v4"
)

// The alerts and the Grafana dashboard of deploy/compose name metrics by hand. A metric
// renamed or removed in the code would leave a panel empty and an alert silent without any
// error, so these tests look every name up in the Go sources.

var (
	// metricLiteral is a full metric name written as a string, e.g. Name: "glimpse_store_errors_total".
	metricLiteral = regexp.MustCompile(`"(glimpse_[a-z0-9_]+)"`)
	// metricParts is a name given as Namespace, Subsystem and Name in a metric's options, or
	// to prometheus.BuildFQName.
	metricParts = []*regexp.Regexp{
		regexp.MustCompile(`Namespace:\s*"([a-z0-9_]+)",\s*Subsystem:\s*"([a-z0-9_]+)",\s*Name:\s*"([a-z0-9_]+)"`),
		regexp.MustCompile(`Namespace:\s*"([a-z0-9_]+)",\s*()Name:\s*"([a-z0-9_]+)"`),
		regexp.MustCompile(`BuildFQName\(\s*"([a-z0-9_]+)",\s*"([a-z0-9_]*)",\s*"([a-z0-9_]+)"\s*\)`),
	}
	// metricReference is a metric name inside a PromQL expression.
	metricReference = regexp.MustCompile(`\bglimpse_[a-z0-9_]+\b`)
)

// metricsDefinedIn returns the glimpse_* metric names that Go source defines.
func metricsDefinedIn(src string) []string {
	var names []string
	for _, m := range metricLiteral.FindAllStringSubmatch(src, -1) {
		names = append(names, m[1])
	}
	for _, re := range metricParts {
		for _, m := range re.FindAllStringSubmatch(src, -1) {
			parts := slices.DeleteFunc([]string{m[1], m[2], m[3]}, func(p string) bool { return p == "" })
			names = append(names, strings.Join(parts, "_"))
		}
	}
	return names
}

// definedMetrics returns the glimpse_* metric names defined in the non-test Go sources of the
// repository (cmd, internal, services).
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, dir := range []string{"../../cmd", "../../internal", "../../services"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, name := range metricsDefinedIn(string(src)) {
				names[name] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %d metric names in the sources: the patterns no longer match how metrics are defined", len(names))
	}
	return names
}

// metricDefined reports whether a name used in PromQL is a defined metric, or one of the
// series a histogram adds to its name.
func metricDefined(defined map[string]bool, name string) bool {
	if defined[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && defined[base] {
			return true
		}
	}
	return false
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadAlertRules(t *testing.T) []alertRule {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(composeDir, "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var rules []alertRule
	for _, g := range file.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("alerts.yml has no rules")
	}
	return rules
}

// dashboardPanel is the part of a Grafana panel these tests read.
type dashboardPanel struct {
	Type       string           `json:"type"`
	Title      string           `json:"title"`
	Datasource *panelDatasource `json:"datasource"`
	Targets    []struct {
		Expr       string           `json:"expr"`
		Datasource *panelDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // the panels of a collapsed row
}

type panelDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboardPanels(t *testing.T) []dashboardPanel {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(composeDir, "grafana", "dashboards", "glimpse.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string           `json:"uid"`
		Title  string           `json:"title"`
		Panels []dashboardPanel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("glimpse.json is not valid JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("glimpse.json: uid %q, title %q: Grafana needs both to provision it", dash.UID, dash.Title)
	}
	var flat []dashboardPanel
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			flat = append(flat, p)
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	return flat
}

func TestDeployMetricsExist(t *testing.T) {
	defined := definedMetrics(t)
	missing := map[string][]string{} // metric → where it is used
	check := func(where, expr string) {
		for _, name := range metricReference.FindAllString(expr, -1) {
			if !metricDefined(defined, name) && !slices.Contains(missing[name], where) {
				missing[name] = append(missing[name], where)
			}
		}
	}
	used := 0
	for _, r := range loadAlertRules(t) {
		used += len(metricReference.FindAllString(r.Expr, -1))
		check("alerts.yml "+r.Alert+r.Record, r.Expr)
	}
	for _, p := range loadDashboardPanels(t) {
		for _, tg := range p.Targets {
			used += len(metricReference.FindAllString(tg.Expr, -1))
			check("glimpse.json panel "+p.Title, tg.Expr)
		}
	}
	if used == 0 {
		t.Fatal("no glimpse_* metric found in the alerts and the dashboard: the files are not read as expected")
	}
	names := make([]string, 0, len(missing))
	for name := range missing {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Errorf("%s is used by %s but defined nowhere in cmd/, internal/ or services/ (renamed? update the dashboards and alerts with it)", name, strings.Join(missing[name], ", "))
	}
}

func TestMetricLookupRejectsUnknownNames(t *testing.T) {
	defined := definedMetrics(t)
	for _, name := range []string{"glimpse_store_errors_total", "glimpse_gateway_request_seconds_bucket", "glimpse_collector_events_total"} {
		if !metricDefined(defined, name) {
			t.Errorf("%s: want it found in the sources", name)
		}
	}
	for _, name := range []string{"glimpse_store_errors", "glimpse_gateway_request_seconds_total", "glimpse_no_such_metric_total"} {
		if metricDefined(defined, name) {
			t.Errorf("%s: found, but no such metric is defined", name)
		}
	}
}

// TestAlertsCoverTheFleet requires the alerts docs/operations.md describes, each with what a
// receiver needs: a duration where flapping matters, a severity and a summary.
func TestAlertsCoverTheFleet(t *testing.T) {
	rules := loadAlertRules(t)
	byName := map[string]alertRule{}
	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		if _, dup := byName[r.Alert]; dup {
			t.Errorf("alert %s is defined twice", r.Alert)
		}
		byName[r.Alert] = r
		if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
			t.Errorf("alert %s: severity %q: use warning or critical", r.Alert, sev)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("alert %s: needs a summary and a description annotation", r.Alert)
		}
	}
	want := map[string]string{ // alert → a metric its expression must use
		"GlimpseInstanceDown":    "up",
		"GlimpseServiceMissing":  "up",
		"GlimpseConsumerLagHigh": "glimpse_bus_consumer_lag",
		"GlimpseBreakerOpen":     "glimpse_gateway_breaker_state",
		"GlimpseHigh5xxRatio":    "glimpse_http_requests_total",
		"GlimpseStoreErrors":     "glimpse_store_errors_total",
		"GlimpseDeadLetters":     "glimpse_bus_dead_letters_total",
	}
	for alert, metric := range want {
		r, ok := byName[alert]
		if !ok {
			t.Errorf("alert %s is missing from alerts.yml", alert)
			continue
		}
		if !regexp.MustCompile(`\b` + metric + `\b`).MatchString(r.Expr) {
			t.Errorf("alert %s: expression %q does not use %s", alert, r.Expr, metric)
		}
	}
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range byName {
		if !strings.Contains(string(ops), name) {
			t.Errorf("alert %s is not explained in docs/operations.md", name)
		}
	}
}

// TestDashboardHasTheFleetPanels requires the panels an operator looks at first, each
// querying the provisioned Prometheus.
func TestDashboardHasTheFleetPanels(t *testing.T) {
	panels := loadDashboardPanels(t)
	raw, err := os.ReadFile(filepath.Join(composeDir, "grafana", "provisioning", "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(raw, &ds); err != nil {
		t.Fatalf("datasource provisioning: %v", err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].UID == "" {
		t.Fatalf("datasource provisioning: want one prometheus datasource with a uid, got %+v", ds.Datasources)
	}
	uid := ds.Datasources[0].UID

	want := map[string]string{ // panel title → a metric it must query
		"Ingest rate":                    "glimpse_collector_events_total",
		"Consumer lag":                   "glimpse_bus_consumer_lag",
		"Request latency p99 by service": "glimpse_http_request_duration_seconds_bucket",
		"Gateway latency p50 / p99":      "glimpse_gateway_request_seconds_bucket",
		"Breaker states":                 "glimpse_gateway_breaker_state",
		"5xx ratio by service":           "glimpse_http_requests_total",
		"Store errors":                   "glimpse_store_errors_total",
		"Dead letters":                   "glimpse_bus_dead_letters_total",
		"Sketch memory":                  "glimpse_processor_sketch_bytes",
		"Open sessions":                  "glimpse_processor_open_sessions",
	}
	seen := map[string]bool{}
	for _, p := range panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != uid {
			t.Errorf("panel %q: datasource %+v: want the provisioned uid %q", p.Title, p.Datasource, uid)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		metric, ok := want[p.Title]
		if !ok {
			continue
		}
		seen[p.Title] = true
		uses := false
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			uses = uses || regexp.MustCompile(`\b`+metric+`\b`).MatchString(tg.Expr)
		}
		if !uses {
			t.Errorf("panel %q does not query %s", p.Title, metric)
		}
	}
	for title := range want {
		if !seen[title] {
			t.Errorf("the dashboard has no panel %q", title)
		}
	}
}

func TestMetricPatternsReadEveryDefinitionStyle(t *testing.T) {
	src := `
		prometheus.CounterOpts{Name: "glimpse_a_total"}
		prometheus.CounterOpts{Namespace: "glimpse", Subsystem: "collector", Name: "events_total"}
		prometheus.GaugeOpts{Namespace: "glimpse", Name: "up_seconds"}
		prometheus.BuildFQName("glimpse", "http", "requests_total")
		prometheus.BuildFQName("glimpse", "", "bare")`
	got := map[string]bool{}
	for _, name := range metricsDefinedIn(src) {
		got[name] = true
	}
	for _, want := range []string{"glimpse_a_total", "glimpse_collector_events_total", "glimpse_up_seconds", "glimpse_http_requests_total", "glimpse_bare"} {
		if !got[want] {
			t.Errorf("%s not read from its definition; read %v", want, got)
		}
	}
}
