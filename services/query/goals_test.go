package query

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
	"github.com/glimpse-analytics/glimpse/services/processor"
)

// goalTraffic is one day of known traffic on g.test, fed through the real processor:
//
//	v1 Google  /  →  /blog/go, Signup on /blog/go
//	v2 Google  /pricing, Purchase 10.50 EUR on /pricing
//	v3 Bing    /blog/a/b  →  /pricing
//	v4 Direct  /, Signup, Purchase 5 USD
//	v5 Direct  /docs
//	v6 Bing    /blog/x, Purchase 2.25 EUR, Purchase 1 EUR
//
// Goals: Signup (v1 v4), Purchase (v2 v4 v6: 4 events), "Visit /blog/*" (v1 v6; not
// /blog/a/b, a second segment), Pricing = page /pricing (v2 v3).
func goalTraffic(t *testing.T, currency string) *memstore.Store {
	t.Helper()
	type step struct {
		name, path string
		rev        *event.Revenue
	}
	visitors := []struct {
		source string
		steps  []step
	}{
		{"Google", []step{{"pageview", "/", nil}, {"pageview", "/blog/go", nil}, {"Signup", "/blog/go", nil}}},
		{"Google", []step{{"pageview", "/pricing", nil}, {"Purchase", "/pricing", &event.Revenue{Amount: "10.5", Currency: "EUR"}}}},
		{"Bing", []step{{"pageview", "/blog/a/b", nil}, {"pageview", "/pricing", nil}}},
		{"", []step{{"pageview", "/", nil}, {"Signup", "/", nil}, {"Purchase", "/", &event.Revenue{Amount: "5", Currency: "USD"}}}},
		{"", []step{{"pageview", "/docs", nil}}},
		{"Bing", []step{{"pageview", "/blog/x", nil}, {"Purchase", "/blog/x", &event.Revenue{Amount: "2.25", Currency: "EUR"}}, {"Purchase", "/blog/x", &event.Revenue{Amount: "1", Currency: "EUR"}}}},
	}
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	p, err := processor.OpenPartition(ctx, processor.DefaultConfig(), processor.Deps{Store: st, Log: slog.New(slog.DiscardHandler)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	for i, v := range visitors {
		ts := at("2026-03-10 09:00:00").Add(time.Duration(i) * time.Hour)
		for j, s := range v.steps {
			e := &event.Event{
				Site: "g.test", VisitorID: uint64(i + 1), Time: ts.UnixMilli() + int64(j)*60_000, Name: s.name,
				Hostname: "g.test", Path: s.path, Source: v.source, Interactive: true, Revenue: s.rev,
			}
			p.Apply(off, e)
			off++
		}
	}
	if _, err := p.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	site := sites.Site{Domain: "g.test", Currency: currency, Goals: []sites.Goal{
		{Event: "Signup"}, {Event: "Purchase"}, {Page: "/blog/*"}, {Page: "/pricing", Name: "Pricing"},
	}}
	if _, err := sites.NewDirectory(st, sites.Options{}).Add(ctx, site); err != nil {
		t.Fatal(err)
	}
	return st
}

// Conversion rates on known traffic, event and page goals, with and without filters and a
// breakdown by source; the rollup and the scan paths give the same answers.
func TestGoalConversions(t *testing.T) {
	st := goalTraffic(t, "")
	rollup := newTestService(t, st)
	scan := newTestService(t, st, func(c *Config) { c.ForceScan = true })
	day := `"date_range":["2026-03-10","2026-03-10"]`
	cases := []struct {
		query string
		want  [][]any
		path  string // the path the rollup service takes, "" for either
		// scanned is how many events the forced scan reads (0: not checked): 14 stored
		// events, read once for all goals and once for the visitors of conversion_rate
		scanned int64
	}{
		{`{"site_id":"g.test","metrics":["visitors","events","conversion_rate"],` + day + `,"dimensions":["event:goal"]}`,
			[][]any{{"Purchase", "3", "4", "50"}, {"Pricing", "2", "2", "33.33"}, {"Signup", "2", "2", "33.33"}, {"Visit /blog/*", "2", "2", "33.33"}}, PathRollup, 28},
		// one goal as a filter: the overall conversion rate
		{`{"site_id":"g.test","metrics":["visitors","events","conversion_rate"],` + day + `,"filters":[["is","event:goal",["Signup"]]]}`,
			[][]any{{"2", "2", "33.33"}}, PathRollup, 0},
		// two goals: a visitor who completed both counts once (v4)
		{`{"site_id":"g.test","metrics":["visitors","events","conversion_rate"],` + day + `,"filters":[["is","event:goal",["Signup","Purchase"]]]}`,
			[][]any{{"4", "6", "66.67"}}, "", 0},
		{`{"site_id":"g.test","metrics":["conversion_rate","visitors"],` + day + `,"filters":[["contains","event:goal",["visit"],{"case_sensitive":false}]]}`,
			[][]any{{"33.33", "2"}}, "", 0},
		// by source: the rate is of the source's own visitors (Google v1 v2, Direct v4 v5)
		{`{"site_id":"g.test","metrics":["visitors","conversion_rate"],` + day + `,"filters":[["is","event:goal",["Signup"]]],"dimensions":["visit:source"]}`,
			[][]any{{"", "1", "50"}, {"Google", "1", "50"}}, PathScan, 0},
		{`{"site_id":"g.test","metrics":["visitors","conversion_rate"],` + day + `,"dimensions":["visit:source","event:goal"],"filters":[["is_not","event:goal",["Purchase"]]]}`,
			[][]any{{"", "Signup", "1", "50"}, {"Bing", "Pricing", "1", "50"}, {"Bing", "Visit /blog/*", "1", "50"}, {"Google", "Pricing", "1", "50"}, {"Google", "Signup", "1", "50"}, {"Google", "Visit /blog/*", "1", "50"}}, PathScan, 0},
		// a visit filter with a goal breakdown
		{`{"site_id":"g.test","metrics":["visitors","conversion_rate"],` + day + `,"dimensions":["event:goal"],"filters":[["is","visit:source",["Bing"]]]}`,
			[][]any{{"Pricing", "1", "50"}, {"Purchase", "1", "50"}, {"Visit /blog/*", "1", "50"}}, PathScan, 0},
		{`{"site_id":"g.test","metrics":["events"],` + day + `,"dimensions":["event:goal","time:day"],"filters":[["matches","event:goal",["^P"]]]}`,
			[][]any{{"Purchase", "2026-03-10", "4"}, {"Pricing", "2026-03-10", "2"}}, PathRollup, 0},
		// no traffic in range
		{`{"site_id":"g.test","metrics":["visitors","conversion_rate"],"date_range":["2026-03-11","2026-03-11"],"filters":[["is","event:goal",["Signup"]]]}`,
			[][]any{{"0", "0"}}, "", 0},
	}
	for _, c := range cases {
		ra, rb := rollup.query(t, c.query), scan.query(t, c.query)
		if c.path != "" && ra.Meta.Path != c.path {
			t.Errorf("%s: answered from %s (%s), want %s", c.query, ra.Meta.Path, ra.Meta.PathReason, c.path)
		}
		if rb.Meta.Path != PathScan {
			t.Errorf("%s: the forced scan answered from %s", c.query, rb.Meta.Path)
		}
		a, b := rowsOf(ra), rowsOf(rb)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s\nrollup %v\nscan   %v", c.query, a, b)
		}
		if c.scanned != 0 && rb.Meta.EventsScanned != c.scanned {
			t.Errorf("%s: the scan read %d events, want %d", c.query, rb.Meta.EventsScanned, c.scanned)
		}
		if !reflect.DeepEqual(b, c.want) {
			t.Errorf("%s\n got %v\nwant %v", c.query, b, c.want)
		}
	}
}

// Bad goal definitions and metric combinations are answered 400 with a message that says
// what to do.
func TestGoalQueryErrors(t *testing.T) {
	st := goalTraffic(t, "")
	svc := newTestService(t, st)
	day := `"date_range":["2026-03-10","2026-03-10"]`
	cases := []struct{ query, want string }{
		{`{"site_id":"g.test","metrics":["conversion_rate"],` + day + `}`, `add "event:goal" to dimensions`},
		{`{"site_id":"g.test","metrics":["bounce_rate"],` + day + `,"dimensions":["event:goal"]}`, "bounce_rate cannot be reported for goals"},
		{`{"site_id":"g.test","metrics":["visitors"],` + day + `,"filters":[["is","event:goal",["Sign up"]]]}`, `site g.test has no goal named "Sign up"; its goals are "Signup", "Purchase"`},
		{`{"site_id":"g.test","metrics":["visitors"],` + day + `,"filters":[["is_not","event:goal",["Signup"]]]}`, "without event:goal among the dimensions"},
		{`{"site_id":"g.test","metrics":["visitors"],` + day + `,"filters":[["or",[["is","event:goal",["Signup"]],["is","visit:source",["Bing"]]]]]}`, "cannot compare other dimensions"},
		{`{"site_id":"other.test","metrics":["visitors"],` + day + `,"dimensions":["event:goal"]}`, "site other.test has no goals; add one with glimpse sites goals add"},
		{`{"site_id":"g.test","metrics":["revenue"],` + day + `}`, `unknown metric "revenue"`},
	}
	for _, c := range cases {
		w := svc.post(c.query)
		var body errorBody
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: %v: %s", c.query, err, w.Body)
		}
		if w.Code != http.StatusBadRequest || !strings.Contains(body.Error, c.want) {
			t.Errorf("%s: %d %s\nwant 400 saying %q", c.query, w.Code, body.Error, c.want)
		}
	}
}

// Revenue is summed exactly, per goal or overall; in the reporting currency with a rates
// table, by currency without one.
func TestRevenue(t *testing.T) {
	day := `"date_range":["2026-03-10","2026-03-10"]`
	byGoal := `{"site_id":"g.test","metrics":["total_revenue","average_revenue","events"],` + day + `,"dimensions":["event:goal"],"filters":[["is","event:goal",["Purchase","Signup"]]]}`
	overall := `{"site_id":"g.test","metrics":["total_revenue","average_revenue"],` + day + `}`
	bySource := `{"site_id":"g.test","metrics":["total_revenue"],` + day + `,"dimensions":["visit:source"]}`
	obj := func(kv ...string) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = json.Number(kv[i+1])
		}
		return m
	}

	rates := filepath.Join(t.TempDir(), "rates.csv")
	if err := os.WriteFile(rates, []byte("currency,rate\n# 1 unit in EUR\nEUR,1\nUSD,0.8\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("rates table", func(t *testing.T) {
		svc := newTestService(t, goalTraffic(t, "EUR"), func(c *Config) { c.FXRates = rates })
		// EUR 13.75 + USD 5 × 0.8 = 17.75 over 4 events: 4.4375
		r := svc.query(t, byGoal)
		if got, want := rowsOf(r), [][]any{{"Purchase", "17.75", "4.44", "4"}, {"Signup", "0", "0", "2"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s\n got %v\nwant %v", byGoal, got, want)
		}
		if r.Meta.Path != PathScan || len(r.Meta.Warnings) != 0 {
			t.Errorf("meta %+v", r.Meta)
		}
		if got, want := rowsOf(svc.query(t, overall)), [][]any{{"17.75", "4.44"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("overall: got %v, want %v", got, want)
		}
		if got, want := rowsOf(svc.query(t, bySource)), [][]any{{"Google", "10.5"}, {"", "4"}, {"Bing", "3.25"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("by source: got %v, want %v", got, want)
		}
	})
	t.Run("no rate", func(t *testing.T) {
		svc := newTestService(t, goalTraffic(t, "EUR"))
		r := svc.query(t, overall)
		if got, want := rowsOf(r), [][]any{{obj("EUR", "13.75", "USD", "5"), obj("EUR", "4.58", "USD", "5")}}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		if len(r.Meta.Warnings) != 1 || !strings.Contains(r.Meta.Warnings[0], "no exchange rate from USD to EUR") {
			t.Errorf("warnings %q", r.Meta.Warnings)
		}
		// one currency, the site's own: no table needed
		q := `{"site_id":"g.test","metrics":["total_revenue"],` + day + `,"filters":[["is","visit:source",["Bing","Google"]]]}`
		if got, want := rowsOf(svc.query(t, q)), [][]any{{"13.75"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, want %v", q, got, want)
		}
	})
	t.Run("no reporting currency", func(t *testing.T) {
		svc := newTestService(t, goalTraffic(t, ""), func(c *Config) { c.FXRates = rates })
		r := svc.query(t, byGoal)
		if got, want := rowsOf(r), [][]any{{"Purchase", obj("EUR", "13.75", "USD", "5"), obj("EUR", "4.58", "USD", "5"), "4"}, {"Signup", obj(), obj(), "2"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		if len(r.Meta.Warnings) != 1 || !strings.Contains(r.Meta.Warnings[0], "no reporting currency") {
			t.Errorf("warnings %q", r.Meta.Warnings)
		}
		w := svc.post(strings.Replace(overall, `"total_revenue",`, `"total_revenue","bounce_rate",`, 1))
		if w.Code != http.StatusOK {
			t.Errorf("revenue with visit metrics: %d %s", w.Code, w.Body)
		}
	})
}

func TestParseMicros(t *testing.T) {
	for in, want := range map[string]string{"9.99": "9990000", "10": "10000000", "0.000001": "1", "123456789012345.5": "123456789012345500000"} {
		got, ok := parseMicros(in)
		if !ok || got.String() != want {
			t.Errorf("parseMicros(%q) = %v, %v; want %s", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", ".", "1.2345678", "-1", "0", "abc"} {
		if _, ok := parseMicros(bad); ok {
			t.Errorf("parseMicros(%q) accepted", bad)
		}
	}
}

func TestLoadFXRates(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	r, err := LoadFXRates(write("ok.json", `{"eur": 1, "USD": "0.8", "GBP": 1.17}`))
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := r.factor("USD", "EUR"); !ok || f.FloatString(2) != "0.80" {
		t.Errorf("USD→EUR %v %v", f, ok)
	}
	if f, ok := r.factor("EUR", "GBP"); !ok || f.FloatString(4) != "0.8547" {
		t.Errorf("EUR→GBP %v %v", f, ok)
	}
	if _, ok := r.factor("JPY", "EUR"); ok {
		t.Error("a rate for JPY")
	}
	for name, body := range map[string]string{
		"neg.csv":    "USD,-1\n",
		"zero.json":  `{"USD": 0}`,
		"code.csv":   "DOLLAR,1\n",
		"dup.csv":    "USD,1\nUSD,2\n",
		"fields.csv": "USD,1,2\n",
		"empty.json": `{}`,
		"arr.json":   `[1]`,
		"frac.csv":   "USD,1/3\n",
	} {
		if _, err := LoadFXRates(write(name, body)); err == nil || !strings.Contains(err.Error(), "query.fx-rates") {
			t.Errorf("%s: %v", name, err)
		}
	}
	cfg := DefaultConfig()
	cfg.FXRates = filepath.Join(dir, "missing.csv")
	if _, err := New(cfg, Deps{Store: memstore.New()}); err == nil || !strings.Contains(err.Error(), "query.fx-rates") {
		t.Error("a service with a missing rates file")
	}
}

// On the synthetic traffic of the agreement test, goal queries give the same answers from
// rollups and from the scan.
func TestGoalsRollupAndScanAgree(t *testing.T) {
	st := buildStore(t, synthetic(7, 50), 3).load(t)
	site := sites.Site{Domain: "a.test", Goals: []sites.Goal{
		{Event: "Signup"}, {Event: "Download"}, {Page: "/blog/**", Name: "Blog"}, {Page: "/pricing"}, {Page: "/*"},
	}}
	if _, err := sites.NewDirectory(st, sites.Options{}).Add(context.Background(), site); err != nil {
		t.Fatal(err)
	}
	rollup := newTestService(t, st)
	scan := newTestService(t, st, func(c *Config) { c.ForceScan = true; c.VisitMargin = 3 * time.Hour })
	ranges := []string{`"day"`, `"month"`, `["2026-03-08","2026-03-10"]`}
	shapes := []string{
		`"dimensions":["event:goal"]`,
		`"dimensions":["event:goal","time:day"]`,
		`"filters":[["is","event:goal",["Signup"]]]`,
		`"filters":[["is","event:goal",["Blog","Download"]]]`,
		`"filters":[["matches","event:goal",["^Visit"]]],"dimensions":["time:day"]`,
		`"filters":[["is","event:goal",["Signup"]]],"dimensions":["visit:source"]`,
		`"filters":[["is","visit:device",["Mobile"]]],"dimensions":["event:goal"]`,
	}
	rolled := 0
	for _, rg := range ranges {
		for _, sh := range shapes {
			body := `{"site_id":"a.test","metrics":["visitors","events","conversion_rate"],"date_range":` + rg + `,` + sh + `}`
			a, b := rollup.query(t, body), scan.query(t, body)
			if a.Meta.Path == PathRollup {
				rolled++
			}
			ra, rb := rowsOf(a), rowsOf(b)
			if !reflect.DeepEqual(ra, rb) {
				t.Errorf("%s\nrollup %v\nscan   %v", body, ra, rb)
			}
			if len(rb) == 0 || rb[0][len(rb[0])-3] == "0" && rg == `"month"` {
				t.Errorf("%s: no conversions in %v", body, rb)
			}
		}
	}
	if rolled < len(ranges)*3 {
		t.Errorf("only %d goal queries were answered from rollups", rolled)
	}
}
