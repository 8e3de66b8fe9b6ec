package query

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// scanFixture is one day (2026-03-10) of four visits, small enough to count by hand:
//
//	A  visitor 1, Google, DE, Desktop: 10:00 /  → 10:05 /pricing → 10:06 Signup on /pricing (interactive)
//	B  visitor 2, direct, FR, Mobile:  11:00 /blog                                    (bounce)
//	C  visitor 2, direct, FR, Mobile:  12:00 /pricing → 12:00:30 Scroll on /pricing (not interactive: bounce)
//	D  visitor 3, Google, US, Mobile:  23:50 /  → 00:10 next day /blog   (crosses midnight)
func scanFixture() []testEvent {
	pv := func(vid uint64, ts, path, src, cc, dev string) testEvent {
		return testEvent{Site: "s.test", VisitorID: vid, Time: at(ts).UnixMilli(), Name: "pageview", Hostname: "s.test", Path: path, Source: src, Country: cc, Device: dev, Browser: "Firefox", OS: "Linux"}
	}
	custom := func(vid uint64, ts, name, path string, interactive bool) testEvent {
		return testEvent{Site: "s.test", VisitorID: vid, Time: at(ts).UnixMilli(), Name: name, Hostname: "s.test", Path: path, Interactive: interactive, Props: map[string]string{"plan": "pro"}}
	}
	return []testEvent{
		pv(1, "2026-03-10 10:00:00", "/", "Google", "DE", "Desktop"),
		pv(1, "2026-03-10 10:05:00", "/pricing", "", "", ""),
		custom(1, "2026-03-10 10:06:00", "Signup", "/pricing", true),
		pv(2, "2026-03-10 11:00:00", "/blog", "", "FR", "Mobile"),
		pv(2, "2026-03-10 12:00:00", "/pricing", "", "FR", "Mobile"),
		custom(2, "2026-03-10 12:00:30", "Scroll", "/pricing", false),
		pv(3, "2026-03-10 23:50:00", "/", "Google", "US", "Mobile"),
		pv(3, "2026-03-11 00:10:00", "/blog", "", "", ""),
	}
}

const allMetrics = `["visitors","visits","pageviews","events","bounce_rate","visit_duration","views_per_visit"]`

func TestScanAnswers(t *testing.T) {
	st := buildStore(t, scanFixture(), 2).load(t)
	svc := newTestService(t, st, func(c *Config) { c.ForceScan = true })
	day := `"date_range":["2026-03-10","2026-03-10"]`
	cases := []struct {
		name  string
		query string
		want  [][]any
	}{
		{"totals", `{"site_id":"s.test","metrics":` + allMetrics + `,` + day + `}`,
			// visitors 3; visits A B C D; pageviews 2+1+1+1 (D's second is next day); events 2;
			// bounces B C; duration (360+0+30+1200)/4 = 397.5 → 398; 5/4 views per visit
			[][]any{{"3", "4", "5", "2", "50", "398", "1.25"}}},
		{"visit filter keeps whole visits", `{"site_id":"s.test","metrics":` + allMetrics + `,` + day + `,"filters":[["is","visit:source",["Google"]]]}`,
			[][]any{{"2", "2", "3", "1", "0", "780", "1.5"}}},
		{"event filter keeps matching events and their visits", `{"site_id":"s.test","metrics":` + allMetrics + `,` + day + `,"filters":[["is","event:page",["/pricing"]]]}`,
			// kept: A's /pricing view and Signup, C's view and Scroll; visits A and C, C bounced
			[][]any{{"2", "2", "2", "2", "50", "195", "1"}}},
		{"is_not on an event dimension", `{"site_id":"s.test","metrics":["visits","pageviews","events"],` + day + `,"filters":[["is_not","event:page",["/pricing"]]]}`,
			[][]any{{"3", "3", "0"}}},
		{"contains, case-insensitive", `{"site_id":"s.test","metrics":["visits","pageviews"],` + day + `,"filters":[["contains","event:page",["PRIC"],{"case_sensitive":false}]]}`,
			[][]any{{"2", "2"}}},
		{"matches on a visit dimension", `{"site_id":"s.test","metrics":["visits"],` + day + `,"filters":[["matches","visit:country",["^(DE|US)$"]]]}`,
			[][]any{{"2"}}},
		{"an and-expression must be one element of filters", `{"site_id":"s.test","metrics":["visits","pageviews"],` + day + `,"filters":["and",[["is","visit:device",["Mobile"]],["is","event:page",["/blog"]]]]}`,
			nil},
		{"breakdown by page", `{"site_id":"s.test","metrics":` + allMetrics + `,` + day + `,"dimensions":["event:page"]}`,
			[][]any{
				// "/" viewed by A and D; "/pricing" by A and C (C bounced); "/blog" by B in range and
				// by D after midnight: D counts as a visit of /blog, but its view is out of range
				{"/", "2", "2", "2", "0", "0", "780", "1"},
				{"/pricing", "2", "2", "2", "2", "50", "195", "1"},
				{"/blog", "1", "2", "1", "0", "50", "600", "0.5"},
			}},
		{"entry pages", `{"site_id":"s.test","metrics":["visits","pageviews","bounce_rate"],` + day + `,"dimensions":["visit:entry_page"]}`,
			[][]any{{"/", "2", "3", "0"}, {"/blog", "1", "1", "100"}, {"/pricing", "1", "1", "100"}}},
		{"exit pages see the visit after the range", `{"site_id":"s.test","metrics":["visits","pageviews"],` + day + `,"dimensions":["visit:exit_page"]}`,
			[][]any{{"/blog", "2", "2"}, {"/pricing", "2", "3"}}},
		{"hours", `{"site_id":"s.test","metrics":["visits","pageviews","events","visit_duration"],` + day + `,"dimensions":["time:hour"]}`,
			[][]any{
				{"2026-03-10 10:00:00", "1", "2", "1", "360"},
				{"2026-03-10 11:00:00", "1", "1", "0", "0"},
				{"2026-03-10 12:00:00", "1", "1", "1", "30"},
				{"2026-03-10 23:00:00", "1", "1", "0", "1200"},
			}},
		{"visit filter with an event breakdown", `{"site_id":"s.test","metrics":["visits","pageviews","events"],` + day + `,"dimensions":["event:page"],"filters":[["is","visit:country",["FR"]]]}`,
			[][]any{{"/blog", "1", "1", "0"}, {"/pricing", "1", "1", "1"}}},
		{"event filter with a visit breakdown", `{"site_id":"s.test","metrics":["visits","pageviews","events"],` + day + `,"dimensions":["visit:source"],"filters":[["is","event:name",["Signup"]]]}`,
			[][]any{{"Google", "1", "0", "1"}}},
		{"custom property breakdown", `{"site_id":"s.test","metrics":["events","visitors"],` + day + `,"dimensions":["event:props:plan"],"filters":[["is_not","event:name",["pageview"]]]}`,
			[][]any{{"pro", "2", "2"}}},
		{"next day: visits that started the day before are not counted", `{"site_id":"s.test","metrics":["visits","pageviews","visitors"],"date_range":["2026-03-11","2026-03-11"],"dimensions":["visit:entry_page"]}`,
			[][]any{{"/", "0", "1", "1"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.want == nil {
				w := svc.post(c.query)
				if w.Code != 400 {
					t.Fatalf("status %d, want 400: %s", w.Code, w.Body)
				}
				return
			}
			r := svc.query(t, c.query)
			if r.Meta.Path != PathScan {
				t.Errorf("path %q, want scan", r.Meta.Path)
			}
			if got := rowsOf(r); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestScanAndFilterExpression(t *testing.T) {
	st := buildStore(t, scanFixture(), 2).load(t)
	svc := newTestService(t, st)
	r := svc.query(t, `{"site_id":"s.test","metrics":["visits","pageviews"],"date_range":["2026-03-10","2026-03-10"],
		"filters":[["and",[["is","visit:device",["Mobile"]],["is","event:page",["/blog"]]]]]}`)
	// visits B (FR, Mobile, /blog) and D (US, Mobile, /blog after midnight); one /blog view in range
	if got, want := rowsOf(r), [][]any{{"2", "1"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if r.Meta.Path != PathScan || !strings.Contains(r.Meta.PathReason, "2 filters") {
		t.Errorf("meta %+v", r.Meta)
	}
	if len(r.Query.Filters) != 2 {
		t.Errorf("echoed filters %v, want the and-expression flattened", r.Query.Filters)
	}
}

// Without a margin, the scan cannot see where a visit that began before the range entered,
// and says so.
func TestScanEntryPageApproximation(t *testing.T) {
	st := buildStore(t, scanFixture(), 2).load(t)
	svc := newTestService(t, st, func(c *Config) { c.ForceScan = true; c.VisitMargin = 0 })
	r := svc.query(t, `{"site_id":"s.test","metrics":["pageviews"],"date_range":["2026-03-11","2026-03-11"],"dimensions":["visit:entry_page"]}`)
	if got, want := rowsOf(r), [][]any{{"/blog", "1"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if len(r.Meta.Warnings) != 1 || !strings.Contains(r.Meta.Warnings[0], "1 visits started more than 0s before") {
		t.Errorf("warnings %q", r.Meta.Warnings)
	}
}

func TestScanLimit(t *testing.T) {
	st := buildStore(t, scanFixture(), 2).load(t)
	svc := newTestService(t, st, func(c *Config) { c.MaxScanEvents = 5 })
	w := svc.post(`{"site_id":"s.test","metrics":["visitors"],"date_range":["2026-03-10","2026-03-10"],"dimensions":["visit:city"]}`)
	if w.Code != 422 || !strings.Contains(w.Body.String(), "more than 5 stored events (query.max-scan-events), because visit:city has no rollup") {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	// exactly at the bound is fine
	svc = newTestService(t, st, func(c *Config) { c.MaxScanEvents = 8 })
	r := svc.query(t, `{"site_id":"s.test","metrics":["visitors"],"date_range":["2026-03-10","2026-03-10"],"dimensions":["visit:city"]}`)
	if r.Meta.EventsScanned != 8 {
		t.Errorf("events scanned %d, want 8", r.Meta.EventsScanned)
	}
}

func TestScanSkipsUnreadableEvents(t *testing.T) {
	b := buildStore(t, scanFixture(), 1)
	b.events[0].Payload = []byte{9, '{', '}'} // written by a newer collector
	svc := newTestService(t, b.load(t), func(c *Config) { c.ForceScan = true })
	r := svc.query(t, `{"site_id":"s.test","metrics":["pageviews"],"date_range":["2026-03-10","2026-03-10"]}`)
	if got := fmt.Sprint(rowsOf(r)); got != "[[4]]" {
		t.Errorf("got %s", got)
	}
	if len(r.Meta.Warnings) != 1 || !strings.Contains(r.Meta.Warnings[0], "1 stored events could not be read") {
		t.Errorf("warnings %q", r.Meta.Warnings)
	}
}
