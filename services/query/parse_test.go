package query

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
)

func TestParseErrors(t *testing.T) {
	const ok = `"site_id":"example.com","metrics":["visitors"],"date_range":"7d"`
	cases := []struct {
		body string
		want string // substring of the message; every case is a 400
	}{
		{``, "not valid JSON"},
		{`{"site_id":`, "not valid JSON"},
		{`[1,2]`, "must be a JSON object"},
		{`"x"`, "must be a JSON object"},
		{`null`, "must be a JSON object"},
		{`{` + ok + `} {}`, "not valid JSON"},
		{`{` + ok + `,"metric":["visits"]}`, `unknown field "metric"; a query has the fields site_id, metrics`},
		{`{"metrics":["visitors"],"date_range":"7d"}`, "site_id is required"},
		{`{"site_id":7,"metrics":["visitors"],"date_range":"7d"}`, "site_id must be a string"},
		{`{"site_id":"` + strings.Repeat("a", 256) + `","metrics":["visitors"],"date_range":"7d"}`, "at most 255 bytes"},
		{`{"site_id":"x","date_range":"7d"}`, "metrics is required: a non-empty array of visitors, visits, pageviews"},
		{`{"site_id":"x","metrics":[],"date_range":"7d"}`, "metrics is required"},
		{`{"site_id":"x","metrics":"visitors","date_range":"7d"}`, "metrics must be an array of metric names, got a string"},
		{`{"site_id":"x","metrics":["uniques"],"date_range":"7d"}`, `unknown metric "uniques"; valid metrics are visitors, visits, pageviews, views_per_visit, bounce_rate, visit_duration, events`},
		{`{"site_id":"x","metrics":["visits","visits"],"date_range":"7d"}`, `metric "visits" is listed twice`},
		{`{` + ok + `,"dimensions":["visit:planet"]}`, `unknown dimension "visit:planet"; valid dimensions are event:page`},
		{`{` + ok + `,"dimensions":["event:props:"]}`, `unknown dimension "event:props:"`},
		{`{` + ok + `,"dimensions":["event:page","event:page"]}`, "listed twice"},
		{`{` + ok + `,"dimensions":["time:day","time:hour"]}`, "at most one time dimension"},
		{`{` + ok + `,"dimensions":["event:page","visit:source","visit:os","time:day"]}`, "at most 3 dimensions"},
		{`{` + ok + `,"dimensions":[1]}`, "dimensions must be an array of dimension names"},
		{`{` + ok + `,"filters":{"page":"/"}}`, "filters must be an array of filters"},
		{`{` + ok + `,"filters":[["is","event:page"]]}`, `filters[0]: a filter is ["is"|"is_not"|"contains"`},
		{`{` + ok + `,"filters":[["equals","event:page",["/"]]]}`, `filters[0]: unknown filter operator "equals"`},
		{`{` + ok + `,"filters":[["has_done",["is","event:name",["Signup"]]]]}`, `the "has_done" filter operator is not supported`},
		{`{` + ok + `,"filters":[["or",[]]]}`, `"or" takes one array of filters`},
		{`{` + ok + `,"filters":[["not",["is","event:page",["/"]],["is","event:page",["/a"]]]]}`, `"not" takes one filter: ["not", filter]`},
		{`{` + ok + `,"filters":[["not",["or",[["not",["not",["not",["is","event:page",["/"]]]]]]]]]}`, `nest at most 4 deep`},
		{`{` + ok + `,"filters":[["is","visit:planet",["x"]]]}`, `filters[0]: unknown dimension "visit:planet"`},
		{`{` + ok + `,"filters":[["is","time:day",["2026-01-01"]]]}`, "time dimensions cannot be filtered; choose the time span with date_range"},
		{`{` + ok + `,"filters":[["is","event:page","/"]]}`, "the third element must be an array of strings"},
		{`{` + ok + `,"filters":[["is","event:page",[]]]}`, "between 1 and 100 values"},
		{`{` + ok + `,"filters":[["is","event:page",[1]]]}`, "the third element must be an array of strings"},
		{`{` + ok + `,"filters":[["matches","event:page",["(["]]]}`, `"([" is not a valid regular expression (RE2 syntax)`},
		{`{` + ok + `,"filters":[["is","event:page",["/"],{"exact":true}]]}`, `the only filter option is "case_sensitive"`},
		{`{` + ok + `,"filters":[["and",[["is","event:page",["/"]],["is","x",["/"]]]]]}`, `filters[0][1][1]: unknown dimension "x"`},
		{`{` + ok + `,"filters":[["and",[]]]}`, `"and" takes one array of filters`},
		{`{"site_id":"x","metrics":["visitors"]}`, "date_range is required; date_range must be"},
		{`{"site_id":"x","metrics":["visitors"],"date_range":"week"}`, `date_range "week" is not understood; date_range must be "day" (today), "7d"`},
		{`{"site_id":"x","metrics":["visitors"],"date_range":"0d"}`, "is not understood"},
		{`{"site_id":"x","metrics":["visitors"],"date_range":"99999d"}`, "is not understood"},
		{`{"site_id":"x","metrics":["visitors"],"date_range":["2026-01-01"]}`, "date_range must be"},
		{`{"site_id":"x","metrics":["visitors"],"date_range":["2026-01-01","2026-02-30"]}`, `"2026-02-30" is not a date; expected YYYY-MM-DD`},
		{`{"site_id":"x","metrics":["visitors"],"date_range":["01/02/2026","2026-02-01"]}`, `"01/02/2026" is not a date`},
		{`{"site_id":"x","metrics":["visitors"],"date_range":["2026-02-01","2026-01-01"]}`, "ends (2026-01-01) before it starts (2026-02-01)"},
		{`{"site_id":"x","metrics":["visitors"],"date_range":["2026-02-01","2026-02-01T10:00:00Z"]}`, "both ends as dates or both as timestamps"},
		{`{"site_id":"x","metrics":["visitors"],"date_range":["2026-02-01T10:00:30Z","2026-02-01T11:00:00Z"]}`, "whole minutes"},
		{`{"site_id":"x","metrics":["visitors"],"date_range":["2026-02-01T10:00:00Z","2026-02-01T10:00:00Z"]}`, "must end after it starts"},
		{`{"site_id":"x","metrics":["visitors"],"date_range":["1969-12-31","2026-01-01"]}`, "between 1970-01-01 and 9999-12-31"},
		{`{"site_id":"x","metrics":["visitors"],"date_range":["2000-01-01","2026-01-01"]}`, "spans more than 3660 days"},
		{`{"site_id":"x","metrics":["visitors"],"date_range":"60d","dimensions":["time:minute"]}`, "time:minute over this date_range makes 86400 buckets, more than the 50000 allowed"},
		{`{` + ok + `,"order_by":[["pageviews","desc"]]}`, `order_by[0]: "pageviews" is not one of this query's metrics or dimensions (visitors)`},
		{`{` + ok + `,"order_by":[["visitors","down"]]}`, `direction must be "asc" or "desc"`},
		{`{` + ok + `,"order_by":["visitors","desc"]}`, `order_by[0] must be a [field, "asc"|"desc"] pair`},
		{`{` + ok + `,"order_by":"visitors"}`, "order_by must be an array"},
		{`{` + ok + `,"limit":0}`, "limit must be between 1 and 100000, got 0"},
		{`{` + ok + `,"limit":100001}`, "limit must be between 1 and 100000"},
		{`{` + ok + `,"limit":1.5}`, "limit must be a whole number"},
		{`{` + ok + `,"offset":-1}`, "offset must not be negative"},
		{`{` + ok + `,"limit":5,"pagination":{"limit":5}}`, "either limit/offset or pagination"},
		{`{` + ok + `,"pagination":{"page":2}}`, `unknown pagination option "page"`},
		{`{` + ok + `,"include":{"time_labels":true}}`, "include.time_labels needs a time dimension"},
		{`{` + ok + `,"include":{"empty_buckets":true},"dimensions":["time:day","event:page"]}`, "include.empty_buckets needs the time dimension to be the only dimension"},
		{`{` + ok + `,"include":{"comparisons":true}}`, `include.comparisons must be {"mode": "previous_period"}`},
		{`{` + ok + `,"include":{"time_labels":"yes"}}`, "include.time_labels must be true or false"},
		{`{` + ok + `,"include":[]}`, "include must be an object"},
	}
	for _, c := range cases {
		_, err := ParseQuery([]byte(c.body), testNow, DefaultConfig())
		var qe *Error
		if !errors.As(err, &qe) {
			t.Errorf("%s: error %v, want an *Error", c.body, err)
			continue
		}
		if qe.Status != 400 || !strings.Contains(qe.Msg, c.want) {
			t.Errorf("%s:\n got %d %q\nwant 400 containing %q", c.body, qe.Status, qe.Msg, c.want)
		}
	}
}

func TestParseNormalises(t *testing.T) {
	q, err := ParseQuery([]byte(`{"site_id":" example.com ","metrics":["pageviews","visitors"],"date_range":"7d",
		"dimensions":["event:page","time:day"],"filters":[["and",[["is","visit:country",["DE"]],["contains","event:page",["/Blog"],{"case_sensitive":false}]]]],
		"pagination":{"limit":50,"offset":10},"include":{"imports":true,"total_rows":true}}`), testNow, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	e := echo(q)
	got, _ := json.Marshal(e)
	want := `{"site_id":"example.com","metrics":["pageviews","visitors"],"dimensions":["event:page","time:day"],` +
		`"filters":[["is","visit:country",["DE"]],["contains","event:page",["/Blog"],{"case_sensitive":false}]],` +
		`"date_range":["2026-03-09T00:00:00Z","2026-03-15T23:59:59Z"],` +
		`"order_by":[["time:day","asc"],["pageviews","desc"],["event:page","asc"]],` +
		`"pagination":{"limit":50,"offset":10},"include":{"time_labels":false,"empty_buckets":false}}`
	if string(got) != want {
		t.Errorf("echo\n got %s\nwant %s", got, want)
	}
	if len(q.warnings) != 1 || !strings.Contains(q.warnings[0], "imports") {
		t.Errorf("warnings %q", q.warnings)
	}
	if !q.Filters[1].Match("/blog/go") || q.Filters[1].Match("/docs") {
		t.Error("case-insensitive contains does not match as it should")
	}
	// explicit order_by comes first; the dimensions complete it
	q, err = ParseQuery([]byte(`{"site_id":"x","metrics":["visitors","visits"],"date_range":"day","dimensions":["visit:source","event:page"],"order_by":[["visits","asc"]]}`), testNow, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if got := echo(q).OrderBy; len(got) != 3 || got[0] != [2]string{"visits", "asc"} || got[1] != [2]string{"visit:source", "asc"} || got[2] != [2]string{"event:page", "asc"} {
		t.Errorf("order_by %v", got)
	}
	if q.Limit != DefaultConfig().DefaultLimit {
		t.Errorf("limit %d", q.Limit)
	}
}

func TestDateRanges(t *testing.T) {
	// testNow is 2026-03-15 14:27:30 UTC
	cases := []struct {
		in       string
		from, to string // to is exclusive
	}{
		{`"day"`, "2026-03-15 00:00:00", "2026-03-16 00:00:00"},
		{`"7d"`, "2026-03-09 00:00:00", "2026-03-16 00:00:00"},
		{`"30d"`, "2026-02-14 00:00:00", "2026-03-16 00:00:00"},
		{`"1d"`, "2026-03-15 00:00:00", "2026-03-16 00:00:00"},
		{`"month"`, "2026-03-01 00:00:00", "2026-04-01 00:00:00"},
		{`"realtime"`, "2026-03-15 13:58:00", "2026-03-15 14:28:00"},
		{`["2026-01-01","2026-01-31"]`, "2026-01-01 00:00:00", "2026-02-01 00:00:00"},
		{`["2026-01-05","2026-01-05"]`, "2026-01-05 00:00:00", "2026-01-06 00:00:00"},
		{`["2024-02-28","2024-02-29"]`, "2024-02-28 00:00:00", "2024-03-01 00:00:00"},
		{`["2026-01-05T10:00:00Z","2026-01-05T12:30:00Z"]`, "2026-01-05 10:00:00", "2026-01-05 12:30:00"},
		{`["2026-01-05T10:00:00+02:00","2026-01-05T12:00:00+02:00"]`, "2026-01-05 08:00:00", "2026-01-05 10:00:00"},
	}
	for _, c := range cases {
		r, err := parseDateRange(json.RawMessage(c.in), testNow)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if !r.From.Equal(at(c.from)) || !r.To.Equal(at(c.to)) {
			t.Errorf("%s: [%s, %s), want [%s, %s)", c.in, r.From, r.To, c.from, c.to)
		}
		if r.From.Location() != time.UTC || r.To.Location() != time.UTC {
			t.Errorf("%s: not UTC", c.in)
		}
	}
	// "month" on the last day of a month, just before midnight
	r, _ := parseDateRange(json.RawMessage(`"month"`), time.Date(2026, 1, 31, 23, 59, 59, 0, time.UTC))
	if !r.From.Equal(at("2026-01-01 00:00:00")) || !r.To.Equal(at("2026-02-01 00:00:00")) {
		t.Errorf("month at the end of January: %s – %s", r.From, r.To)
	}
}

func TestTimeBuckets(t *testing.T) {
	ts := at("2026-03-15 14:27:30").Unix() // a Sunday
	cases := map[string]string{
		"time:minute": "2026-03-15 14:27:00",
		"time:hour":   "2026-03-15 14:00:00",
		"time:day":    "2026-03-15",
		"time:week":   "2026-03-09", // weeks start on Monday
		"time:month":  "2026-03-01",
	}
	for d, want := range cases {
		if got := formatLabel(d, bucketStart(d, ts)); got != want {
			t.Errorf("%s: %s, want %s", d, got, want)
		}
	}
	if got := formatLabel("time:week", bucketStart("time:week", at("2026-03-16 00:00:00").Unix())); got != "2026-03-16" {
		t.Errorf("a Monday starts its own week: %s", got)
	}
	from, to := at("2026-01-30 00:00:00"), at("2026-03-03 00:00:00")
	for _, d := range []string{"time:minute", "time:hour", "time:day", "time:week", "time:month"} {
		if n, labels := countTimeLabels(d, from, to), timeLabels(d, from, to); n != int64(len(labels)) {
			t.Errorf("%s: count %d, %d labels", d, n, len(labels))
		}
	}
	if got := timeLabels("time:month", from, to); len(got) != 3 {
		t.Errorf("months %v", got)
	}
}

// FuzzParseQuery checks that no body makes the parser, the planner or the engine panic.
func FuzzParseQuery(f *testing.F) {
	seeds := []string{
		`{"site_id":"example.com","metrics":["visitors","visits","pageviews","views_per_visit","bounce_rate","visit_duration","events"],"date_range":"7d"}`,
		`{"site_id":"example.com","metrics":["visitors"],"date_range":["2026-01-01","2026-01-31"],"dimensions":["time:day","event:page"],"order_by":[["visitors","desc"]],"limit":10}`,
		`{"site_id":"example.com","metrics":["visits"],"date_range":"realtime","dimensions":["time:minute"],"include":{"time_labels":true,"empty_buckets":true}}`,
		`{"site_id":"example.com","metrics":["visits"],"date_range":"month","filters":[["and",[["matches","event:page",["^/b"]],["is_not","visit:source",["",null]]]]]}`,
		`{"site_id":"example.com","metrics":["pageviews"],"date_range":["2026-01-01T10:00:00+01:00","2026-01-02T00:00:00Z"],"dimensions":["event:props:plan"],"filters":[["contains","event:props:plan",["PRO"],{"case_sensitive":false}]],"pagination":{"limit":1,"offset":3}}`,
		`{"site_id":"x","metrics":["visitors"],"date_range":"3660d","dimensions":["time:week"]}`,
		`{"site_id":"x","metrics":[],"date_range":7}`,
		`{"filters":[[[[[[]]]]]]}`,
		`[`, ``, `null`, `{"site_id":"\u0000"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	st := memstore.New()
	defer st.Close()
	svc, err := New(DefaultConfig(), Deps{Store: st, Now: func() time.Time { return testNow }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := ParseQuery(body, testNow, DefaultConfig())
		if err != nil {
			var qe *Error
			if !errors.As(err, &qe) || qe.Status != 400 || qe.Msg == "" {
				t.Fatalf("error %v is not a 400 with a message", err)
			}
			return
		}
		if q.SiteID == "" || len(q.Metrics) == 0 || !q.Range.To.After(q.Range.From) || q.Limit < 1 {
			t.Fatalf("accepted an incomplete query: %+v", q)
		}
		if _, err := svc.Execute(context.Background(), q); err != nil {
			t.Fatalf("empty store: %v", err)
		}
	})
}
