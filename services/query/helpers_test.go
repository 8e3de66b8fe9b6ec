package query

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/sketch"
	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
	"github.com/glimpse-analytics/glimpse/internal/store/pebblestore"
)

// testNow is the fixed clock of the tests: a Sunday afternoon.
var testNow = time.Date(2026, 3, 15, 14, 27, 30, 0, time.UTC)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

type testService struct {
	*Service
	reg *prometheus.Registry
}

func newTestService(t testing.TB, st store.Store, mutate ...func(*Config)) testService {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Auth = false // auth_test.go tests it
	for _, m := range mutate {
		m(&cfg)
	}
	reg := prometheus.NewRegistry()
	s, err := New(cfg, Deps{Store: st, Metrics: reg, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return testService{s, reg}
}

// do sends req to the service's handler.
func (s testService) do(req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}

func (s testService) post(body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, QueryPath, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	return s.do(req)
}

// query posts body and decodes a 200 answer.
func (s testService) query(t testing.TB, body string) *Response {
	t.Helper()
	w := s.post(body)
	if w.Code != http.StatusOK {
		t.Fatalf("query %s: status %d: %s", body, w.Code, w.Body.String())
	}
	var r Response
	dec := json.NewDecoder(w.Body)
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// rows renders results compactly for comparisons: one string per row.
func rowsOf(r *Response) [][]any {
	out := make([][]any, 0, len(r.Results))
	for _, row := range r.Results {
		line := []any{}
		for _, d := range row.Dimensions {
			line = append(line, d)
		}
		for _, m := range row.Metrics {
			if n, ok := m.(json.Number); ok {
				line = append(line, n.String())
			} else {
				line = append(line, m)
			}
		}
		out = append(out, line)
	}
	return out
}

// ---- synthetic data, built consistently with docs/metrics.md ----

// testEvent is an event before sessionization; visit attributes are those of its visit's
// first event once built.
type testEvent = event.Event

const sessionGap = 30 * time.Minute

// built is what a processor would have written for a list of events.
type built struct {
	rows   []store.Row
	events []store.StoredEvent
}

// buildStore sessionizes evs (per site and visitor, 30-minute gaps), applies visit
// attributes, and produces the stored events and the rollup rows docs/metrics.md defines:
// minute totals; hour and day rows for the totals and every dims.Rolled dimension; one row
// per shard (visitor id mod shards).
func buildStore(t testing.TB, evs []testEvent, shards int) built {
	t.Helper()
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b testEvent) int {
		if c := cmp.Compare(a.Site, b.Site); c != 0 {
			return c
		}
		if c := cmp.Compare(a.VisitorID, b.VisitorID); c != 0 {
			return c
		}
		return cmp.Compare(a.Time, b.Time)
	})
	type visit struct {
		id     uint64
		events []*testEvent
		info   dims.Visit
	}
	var visits []*visit
	var cur *visit
	for i := range evs {
		e := &evs[i]
		if cur == nil || cur.events[0].Site != e.Site || cur.events[0].VisitorID != e.VisitorID ||
			e.Time-cur.events[len(cur.events)-1].Time > sessionGap.Milliseconds() {
			cur = &visit{id: uint64(len(visits) + 1)}
			visits = append(visits, cur)
		}
		cur.events = append(cur.events, e)
	}
	var out built
	offsets := map[int32]int64{}
	type acc struct {
		store.Aggregate
		sk *sketch.Sketch
	}
	rows := map[store.RowKey]*acc{}
	row := func(k store.RowKey) *acc {
		a := rows[k]
		if a == nil {
			a = &acc{}
			rows[k] = a
		}
		return a
	}
	for _, v := range visits {
		first := v.events[0]
		for _, e := range v.events[1:] { // visit attributes come from the first event
			e.Source, e.Referrer = first.Source, first.Referrer
			e.UTMSource, e.UTMMedium, e.UTMCampaign, e.UTMTerm, e.UTMContent = first.UTMSource, first.UTMMedium, first.UTMCampaign, first.UTMTerm, first.UTMContent
			e.Browser, e.BrowserVersion, e.OS, e.OSVersion, e.Device = first.Browser, first.BrowserVersion, first.OS, first.OSVersion, first.Device
			e.Country, e.Region, e.City = first.Country, first.Region, first.City
		}
		v.info.First = first
		pv, interactive := 0, false
		for _, e := range v.events {
			if e.IsPageview() {
				if pv == 0 {
					v.info.EntryPage = e.Path
				}
				v.info.ExitPage = e.Path
				pv++
			} else if e.Interactive {
				interactive = true
			}
		}
		start := first.Time
		dur := v.events[len(v.events)-1].Time - start
		var bounce int64
		if pv == 1 && !interactive {
			bounce = 1
		}
		shard := int32(first.VisitorID % uint64(shards))
		for _, e := range v.events {
			p, err := event.Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			out.events = append(out.events, store.StoredEvent{
				Shard: shard, Offset: offsets[shard], SessionID: v.id, SessionStart: start,
				Payload: p, Time: e.Time, Site: e.Site,
			})
			offsets[shard]++
		}
		for _, g := range []store.Granularity{store.Minute, store.Hour, store.Day} {
			dimList := []string{store.TotalsDimension}
			if g != store.Minute {
				dimList = append(dimList, dims.Rolled...)
			}
			key := func(d string, ms int64, val string) store.RowKey {
				return store.RowKey{Site: first.Site, Granularity: g, Dimension: d, Bucket: g.Truncate(ms), Value: val, Shard: shard}
			}
			for _, d := range dimList {
				// the visit, under every value it has
				var vals []string
				switch {
				case d == store.TotalsDimension:
					vals = []string{""}
				case dims.IsEvent(d):
					for _, e := range v.events {
						ev, _ := dims.EventValue(d, e)
						if !slices.Contains(vals, ev) {
							vals = append(vals, ev)
						}
					}
				default:
					vv, _ := dims.VisitValue(d, &v.info)
					vals = []string{vv}
				}
				for _, val := range vals {
					a := row(key(d, start, val))
					a.Visits++
					a.Bounces += bounce
					a.DurationMS += dur
				}
				// each event, in its own bucket
				for _, e := range v.events {
					val := ""
					switch {
					case d == store.TotalsDimension:
					case dims.IsEvent(d):
						val, _ = dims.EventValue(d, e)
					default:
						val, _ = dims.VisitValue(d, &v.info)
					}
					a := row(key(d, e.Time, val))
					if e.IsPageview() {
						a.Pageviews++
					} else {
						a.Events++
					}
					if a.sk == nil {
						a.sk = sketch.New()
					}
					a.sk.Add(e.VisitorID)
				}
			}
		}
	}
	for k, a := range rows {
		r := store.Row{RowKey: k, Aggregate: a.Aggregate, Offset: 1}
		if a.sk != nil {
			r.Visitors = a.sk.Binary()
		}
		out.rows = append(out.rows, r)
	}
	return out
}

// load writes b into a new memstore.
func (b built) load(t testing.TB) *memstore.Store {
	t.Helper()
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := st.WriteRows(ctx, b.rows); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteEvents(ctx, b.events); err != nil {
		t.Fatal(err)
	}
	return st
}

func readAll(t testing.TB, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// openEngine opens an empty store of the named engine ("mem" or "pebble"), closed when the
// test ends, and writes rows into it.
func openEngine(t testing.TB, engine string, rows []store.Row) store.Store {
	t.Helper()
	var st store.Store
	switch engine {
	case "mem":
		st = memstore.New()
	case "pebble":
		ps, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		st = ps
	default:
		t.Fatalf("no engine %q", engine)
	}
	t.Cleanup(func() { st.Close() })
	for i := 0; i < len(rows); i += 5000 {
		if err := st.WriteRows(context.Background(), rows[i:min(i+5000, len(rows))]); err != nil {
			t.Fatal(err)
		}
	}
	return st
}
