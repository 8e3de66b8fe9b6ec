package query

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
	"github.com/glimpse-analytics/glimpse/internal/store/pebblestore"
	"github.com/glimpse-analytics/glimpse/services/processor"
)

// This file checks the query engine against a brute-force oracle: random traffic goes
// through the real processor into a memstore and a Pebble store, random queries (every
// dimension as a breakdown, random filters over every dimension with every operator,
// nested and/or/not, with and without case) are answered on both paths, and every answer
// is compared with what the definitions of docs/metrics.md give when computed plainly from
// the raw events.
//
// GLIMPSE_BRUTE_QUERIES sets the number of queries (default bruteDefaultQueries) and
// GLIMPSE_BRUTE_SEED the seed (default bruteDefaultSeed); a failure prints both.

const (
	bruteSite           = "brute.test"
	bruteDefaultQueries = 800
	bruteDefaultSeed    = 20260315
	bruteMaxFailures    = 10
)

// bruteDimensions are the dimensions breakdowns and filters draw from: all but time.
var bruteDimensions = []string{
	"event:page", "event:hostname", "event:name", "event:props:plan", "event:props:author",
	"visit:entry_page", "visit:exit_page", "visit:source", "visit:referrer",
	"visit:utm_source", "visit:utm_medium", "visit:utm_campaign", "visit:utm_term", "visit:utm_content",
	"visit:browser", "visit:browser_version", "visit:os", "visit:os_version", "visit:device",
	"visit:country", "visit:region", "visit:city", "visit:duration_bucket",
}

var bruteTimeDimensions = []string{"time:hour", "time:day", "time:week", "time:month", "time:minute"}

// bruteRanges covers whole days (day rows), whole hours (hour rows), a range in minutes
// (scanned), today and the last minutes.
var bruteRanges = []string{
	`["2026-03-13","2026-03-13"]`,
	`["2026-03-12","2026-03-15"]`,
	`"day"`,
	`"7d"`,
	`["2026-03-13T09:00:00Z","2026-03-13T17:00:00Z"]`,
	`["2026-03-14T22:00:00Z","2026-03-15T03:00:00Z"]`,
	`["2026-03-13T09:10:00Z","2026-03-14T20:35:00Z"]`,
	`"realtime"`,
}

func bruteEnvInt(t *testing.T, name string, def uint64) uint64 {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: want a whole number", name, s)
	}
	return n
}

// ---- traffic ----

// bruteTraffic makes the visits of site by 60 visitors between 2026-03-12 and testNow: one to
// four visits each, one to seven page views and custom events per visit a few seconds to
// six minutes apart (so a visit lasts well under the scan's one-hour margin), engagement
// events after some page views, visits crossing midnight, and attributes drawn from small
// sets with case variants so that filters match some values and not others.
func bruteTraffic(site string, seed uint64) []*event.Event {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	begin := time.Date(2026, 3, 12, 0, 0, 0, 0, time.UTC).UnixMilli()
	end := testNow.UnixMilli()
	minute := int64(time.Minute / time.Millisecond)
	var out []*event.Event
	for v := 1; v <= 60; v++ {
		vid := uint64(v)*0x2545f4914f6cdd1d + 7
		t := begin + rng.Int64N(end-begin)
		if v%7 == 0 { // just before midnight, so the visit crosses into the next day
			t = time.UnixMilli(t).UTC().Truncate(24*time.Hour).UnixMilli() + 23*60*minute + 40*minute + rng.Int64N(15*minute)
		}
		for n := 1 + rng.IntN(4); n > 0 && t < end; n-- {
			first := event.Event{
				Site: site, VisitorID: vid,
				Source:      pick("", "Google", "Bing", "DuckDuckGo", "news.ycombinator.com"),
				Referrer:    pick("", "google.com/", "news.ycombinator.com/item", "Bing.com/search"),
				UTMSource:   pick("", "", "newsletter", "Twitter"),
				UTMMedium:   pick("", "email", "social"),
				UTMCampaign: pick("", "spring", "Spring-Sale"),
				UTMTerm:     pick("", "", "analytics"),
				UTMContent:  pick("", "banner", "Link"),
				Browser:     pick("Firefox", "Chrome", "Safari", "Edge"), BrowserVersion: pick("120", "121.0", "17.2"),
				OS: pick("Linux", "Mac", "iOS", "Windows", "Android"), OSVersion: pick("14", "10", "17.1", ""),
				Device:  pick("Desktop", "Mobile", "Tablet"),
				Country: pick("DE", "FR", "US", ""), Region: pick("Berlin", "Île-de-France", "California", ""),
				City: pick("Berlin", "Paris", "San Francisco", ""),
			}
			events := 1 + rng.IntN(7)
			for i := 0; i < events && t < end; i++ {
				e := first
				if i > 0 { // later events come from inside the site: the visit's first event sets its source
					e.Source, e.Referrer = "", ""
				}
				e.Time = t
				e.Hostname = pick(bruteSite, bruteSite, "www."+bruteSite, "Blog.Brute.test")
				e.Path = pick("/", "/pricing", "/Pricing", "/blog", "/blog/go-1.26", "/blog/hll", "/docs", "/docs/api", "/about")
				switch r := rng.IntN(10); {
				case r < 7:
					e.Name = event.PageviewName
					if rng.IntN(3) == 0 {
						e.Props = map[string]string{"author": pick("ann", "Bo", "bob")}
					}
				default:
					e.Name = pick("Signup", "Download", "Outbound Link: Click", "404")
					e.Interactive = rng.IntN(3) > 0
					e.Props = map[string]string{"plan": pick("free", "pro", "Pro")}
				}
				out = append(out, &e)
				gap := 5_000 + rng.Int64N(6*minute)
				if e.Name == event.PageviewName && rng.IntN(3) == 0 && t+gap/2 < end {
					g := e
					g.Name, g.Props, g.Interactive = event.EngagementName, nil, true
					g.Time, g.EngagementMS = t+gap/2, gap/2
					out = append(out, &g)
				}
				t += gap
			}
			t += 40*minute + rng.Int64N(20*60*minute)
		}
	}
	slices.SortStableFunc(out, func(a, b *event.Event) int { return cmp.Compare(a.Time, b.Time) })
	return out
}

// feedProcessor applies evs in time order to two processor partitions (by visitor id, as
// the bus key does) writing into st, flushing now and then as the processor does.
func feedProcessor(t *testing.T, st store.Store, evs []*event.Event) {
	t.Helper()
	ctx := context.Background()
	const shards = 2
	parts := make([]*processor.Partition, shards)
	for i := range parts {
		p, err := processor.OpenPartition(ctx, processor.DefaultConfig(), processor.Deps{Store: st, Log: slog.New(slog.DiscardHandler)}, int32(i))
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = p
	}
	offsets := make([]int64, shards)
	for i, e := range evs {
		s := e.VisitorID % shards
		if !parts[s].Apply(offsets[s], e) {
			t.Fatalf("the processor did not count event %d (%+v)", i, e)
		}
		offsets[s]++
		if i%173 == 172 {
			if err := parts[s].Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range parts {
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
}

// ---- the oracle ----

// oracleVisit is a visit as docs/metrics.md defines it, built from the raw events.
type oracleVisit struct {
	events      []*event.Event // in time order, engagement events included
	start, last int64
	entry, exit string
	pageviews   int
	interactive bool
}

func (v *oracleVisit) first() *event.Event { return v.events[0] }
func (v *oracleVisit) bounce() bool        { return v.pageviews == 1 && !v.interactive }

// oracleVisits groups evs per visitor into runs without a gap over 30 minutes.
func oracleVisits(evs []*event.Event) []*oracleVisit {
	byVisitor := map[uint64][]*event.Event{}
	var order []uint64
	for _, e := range evs {
		if byVisitor[e.VisitorID] == nil {
			order = append(order, e.VisitorID)
		}
		byVisitor[e.VisitorID] = append(byVisitor[e.VisitorID], e)
	}
	var out []*oracleVisit
	for _, vid := range order {
		list := slices.Clone(byVisitor[vid])
		slices.SortStableFunc(list, func(a, b *event.Event) int { return cmp.Compare(a.Time, b.Time) })
		var cur *oracleVisit
		for _, e := range list {
			if cur == nil || e.Time-cur.last > 30*60*1000 {
				cur = &oracleVisit{start: e.Time}
				out = append(out, cur)
			}
			cur.events = append(cur.events, e)
			cur.last = e.Time
			switch {
			case e.Name == event.EngagementName:
			case e.Name == event.PageviewName:
				if cur.pageviews == 0 {
					cur.entry = e.Path
				}
				cur.exit = e.Path
				cur.pageviews++
			case e.Interactive:
				cur.interactive = true
			}
		}
	}
	return out
}

// oracleValue is the value of dimension d for event e of visit v.
func oracleValue(d string, e *event.Event, v *oracleVisit) string {
	f := v.first()
	switch d {
	case "event:page":
		return e.Path
	case "event:hostname":
		return e.Hostname
	case "event:name":
		return e.Name
	case "visit:entry_page":
		return v.entry
	case "visit:exit_page":
		return v.exit
	case "visit:source":
		return f.Source
	case "visit:referrer":
		return f.Referrer
	case "visit:utm_source":
		return f.UTMSource
	case "visit:utm_medium":
		return f.UTMMedium
	case "visit:utm_campaign":
		return f.UTMCampaign
	case "visit:utm_term":
		return f.UTMTerm
	case "visit:utm_content":
		return f.UTMContent
	case "visit:browser":
		return f.Browser
	case "visit:browser_version":
		return f.BrowserVersion
	case "visit:os":
		return f.OS
	case "visit:os_version":
		return f.OSVersion
	case "visit:device":
		return f.Device
	case "visit:country":
		return f.Country
	case "visit:region":
		return f.Region
	case "visit:city":
		return f.City
	case "visit:duration_bucket":
		secs := (v.last - v.start) / 1000
		bucket := 0
		for _, lo := range []int{10, 30, 60, 180, 600, 1800} {
			if secs >= int64(lo) {
				bucket = lo
			}
		}
		return strconv.Itoa(bucket)
	}
	if key, ok := strings.CutPrefix(d, "event:props:"); ok {
		return e.Props[key]
	}
	panic("oracle: no value for " + d)
}

// oracleLabel is the label of the bucket of time dimension d holding ms.
func oracleLabel(d string, ms int64) string {
	t := time.UnixMilli(ms).UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch d {
	case "time:minute":
		return t.Truncate(time.Minute).Format("2006-01-02 15:04:05")
	case "time:hour":
		return t.Truncate(time.Hour).Format("2006-01-02 15:04:05")
	case "time:month":
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).Format("2006-01-02")
	case "time:day":
		return day.Format("2006-01-02")
	case "time:week":
		back := (int(day.Weekday()) + 6) % 7 // days since Monday
		return day.AddDate(0, 0, -back).Format("2006-01-02")
	}
	panic("oracle: no label for " + d)
}

// bruteFilter is a filter as the test builds it: a comparison or and/or/not.
type bruteFilter struct {
	op         string
	dim        string
	values     []string
	ignoreCase bool
	operands   []*bruteFilter
}

func (f *bruteFilter) json() any {
	switch f.op {
	case "and", "or":
		subs := make([]any, len(f.operands))
		for i, o := range f.operands {
			subs[i] = o.json()
		}
		return []any{f.op, subs}
	case "not":
		return []any{f.op, f.operands[0].json()}
	}
	out := []any{f.op, f.dim, f.values}
	if f.ignoreCase {
		out = append(out, map[string]bool{"case_sensitive": false})
	}
	return out
}

// holds evaluates f for event e of visit v.
func (f *bruteFilter) holds(e *event.Event, v *oracleVisit) bool {
	switch f.op {
	case "and":
		for _, o := range f.operands {
			if !o.holds(e, v) {
				return false
			}
		}
		return true
	case "or":
		for _, o := range f.operands {
			if o.holds(e, v) {
				return true
			}
		}
		return false
	case "not":
		return !f.operands[0].holds(e, v)
	}
	value := oracleValue(f.dim, e, v)
	hit := false
	for _, x := range f.values {
		switch f.op {
		case "is", "is_not":
			hit = hit || value == x || (f.ignoreCase && strings.ToLower(value) == strings.ToLower(x))
		case "contains", "contains_not":
			if f.ignoreCase {
				hit = hit || strings.Contains(strings.ToLower(value), strings.ToLower(x))
			} else {
				hit = hit || strings.Contains(value, x)
			}
		case "matches", "matches_not":
			if f.ignoreCase {
				x = "(?i)" + x
			}
			hit = hit || regexp.MustCompile(x).MatchString(value)
		}
	}
	if strings.HasSuffix(f.op, "_not") {
		return !hit
	}
	return hit
}

// oracleGroup adds up one result row.
type oracleGroup struct {
	pageviews, events, visits, bounces, durationMS int64
	visitors                                       map[uint64]bool
}

// oracleAnswer computes the rows of a query, keyed by their dimension values joined by
// "\x00", each with the metrics of bruteMetrics.
func oracleAnswer(visits []*oracleVisit, dimensions []string, filters []*bruteFilter, from, to int64) map[string][]float64 {
	groups := map[string]*oracleGroup{}
	group := func(k string) *oracleGroup {
		g := groups[k]
		if g == nil {
			g = &oracleGroup{visitors: map[uint64]bool{}}
			groups[k] = g
		}
		return g
	}
	key := func(e *event.Event, v *oracleVisit, at int64) string {
		parts := make([]string, len(dimensions))
		for i, d := range dimensions {
			if strings.HasPrefix(d, "time:") {
				parts[i] = oracleLabel(d, at)
			} else {
				parts[i] = oracleValue(d, e, v)
			}
		}
		return strings.Join(parts, "\x00")
	}
	for _, v := range visits {
		var kept []*event.Event
		for _, e := range v.events {
			if e.Name == event.EngagementName {
				continue // in no metric, no breakdown, no filter
			}
			ok := true
			for _, f := range filters {
				ok = ok && f.holds(e, v)
			}
			if ok {
				kept = append(kept, e)
			}
		}
		for _, e := range kept {
			if e.Time < from || e.Time >= to {
				continue
			}
			g := group(key(e, v, e.Time))
			if e.Name == event.PageviewName {
				g.pageviews++
			} else {
				g.events++
			}
			g.visitors[e.VisitorID] = true
		}
		if v.start < from || v.start >= to {
			continue
		}
		counted := map[string]bool{}
		for _, e := range kept {
			k := key(e, v, v.start)
			if counted[k] {
				continue
			}
			counted[k] = true
			g := group(k)
			g.visits++
			if v.bounce() {
				g.bounces++
			}
			g.durationMS += v.last - v.start
		}
	}
	if len(dimensions) == 0 && len(groups) == 0 {
		group("")
	}
	out := map[string][]float64{}
	for k, g := range groups {
		var bounceRate, perVisit, duration float64
		if g.visits > 0 {
			bounceRate = math.Round(10000*float64(g.bounces)/float64(g.visits)) / 100
			perVisit = math.Round(100*float64(g.pageviews)/float64(g.visits)) / 100
			duration = math.Round(float64(g.durationMS) / 1000 / float64(g.visits))
		}
		out[k] = []float64{float64(len(g.visitors)), float64(g.visits), float64(g.pageviews), float64(g.events), bounceRate, duration, perVisit}
	}
	return out
}

// bruteMetrics is the metric order of every query and of oracleAnswer.
const bruteMetrics = `["visitors","visits","pageviews","events","bounce_rate","visit_duration","views_per_visit"]`

// ---- random queries ----

type bruteQueries struct {
	rng    *rand.Rand
	values map[string][]string // every value each dimension takes in the traffic
}

func newBruteQueries(seed uint64, visits []*oracleVisit) *bruteQueries {
	g := &bruteQueries{rng: rand.New(rand.NewPCG(seed, 1)), values: map[string][]string{}}
	for _, v := range visits {
		for _, e := range v.events {
			if e.Name == event.EngagementName {
				continue
			}
			for _, d := range bruteDimensions {
				if x := oracleValue(d, e, v); !slices.Contains(g.values[d], x) {
					g.values[d] = append(g.values[d], x)
				}
			}
		}
	}
	for _, vs := range g.values {
		slices.Sort(vs)
	}
	return g
}

func (g *bruteQueries) dimension() string {
	return bruteDimensions[g.rng.IntN(len(bruteDimensions))]
}

// flipCase changes the case of some letters of s.
func (g *bruteQueries) flipCase(s string) string {
	b := []rune(s)
	for i, r := range b {
		if g.rng.IntN(2) == 0 {
			if u := strings.ToUpper(string(r)); u != string(r) {
				b[i] = []rune(u)[0]
			} else {
				b[i] = []rune(strings.ToLower(string(r)))[0]
			}
		}
	}
	return string(b)
}

// part returns a piece of a value the dimension takes (possibly all of it, possibly empty).
func (g *bruteQueries) part(d string) string {
	vs := g.values[d]
	v := []rune(vs[g.rng.IntN(len(vs))])
	if len(v) == 0 || g.rng.IntN(4) == 0 {
		return string(v)
	}
	i := g.rng.IntN(len(v))
	j := i + 1 + g.rng.IntN(len(v)-i)
	return string(v[i:j])
}

func (g *bruteQueries) leaf(d string) *bruteFilter {
	ops := []string{"is", "is_not", "contains", "contains_not", "matches", "matches_not"}
	f := &bruteFilter{op: ops[g.rng.IntN(len(ops))], dim: d, ignoreCase: g.rng.IntN(3) == 0}
	for n := 1 + g.rng.IntN(2); n > 0; n-- {
		var x string
		switch f.op {
		case "is", "is_not":
			vs := g.values[d]
			x = vs[g.rng.IntN(len(vs))]
			if g.rng.IntN(8) == 0 {
				x += "-nowhere"
			}
		case "contains", "contains_not":
			x = g.part(d)
		default:
			x = regexp.QuoteMeta(g.part(d))
			switch g.rng.IntN(5) {
			case 0:
				x = "^" + x
			case 1:
				x += "$"
			case 2:
				x = "^" + x + "$"
			case 3:
				x = "^(" + x + "|" + regexp.QuoteMeta(g.part(d)) + ")"
			}
		}
		if f.ignoreCase {
			x = g.flipCase(x)
		}
		f.values = append(f.values, x)
	}
	return f
}

// filter makes a random filter: a comparison, or (less often, and never deeper than depth
// allows) and/or/not over comparisons, half of the time all on the dimension d.
func (g *bruteQueries) filter(d string, depth int) *bruteFilter {
	if depth >= 2 || g.rng.IntN(3) > 0 {
		return g.leaf(d)
	}
	sub := func() *bruteFilter {
		if g.rng.IntN(2) == 0 {
			return g.filter(d, depth+1)
		}
		return g.filter(g.dimension(), depth+1)
	}
	switch g.rng.IntN(3) {
	case 0:
		return &bruteFilter{op: "not", operands: []*bruteFilter{sub()}}
	case 1:
		return &bruteFilter{op: "or", operands: []*bruteFilter{sub(), sub()}}
	}
	return &bruteFilter{op: "and", operands: []*bruteFilter{sub(), sub(), sub()}}
}

// query makes random dimensions and filters; one filter on the breakdown's dimension, or
// none at all, is frequent so that the rollup path gets its share.
func (g *bruteQueries) query() (dimensions []string, filters []*bruteFilter) {
	var main string
	switch r := g.rng.IntN(10); {
	case r < 2:
	case r < 3:
		dimensions = []string{bruteTimeDimensions[g.rng.IntN(len(bruteTimeDimensions))]}
	case r < 7:
		main = g.dimension()
		dimensions = []string{main}
	case r < 9:
		main = g.dimension()
		dimensions = []string{main, bruteTimeDimensions[g.rng.IntN(len(bruteTimeDimensions))]}
		if g.rng.IntN(2) == 0 {
			dimensions[0], dimensions[1] = dimensions[1], dimensions[0]
		}
	default:
		main = g.dimension()
		if other := g.dimension(); other != main {
			dimensions = []string{main, other}
		} else {
			dimensions = []string{main}
		}
	}
	switch r := g.rng.IntN(10); {
	case r < 2:
	case r < 6:
		d := main
		if d == "" || g.rng.IntN(3) == 0 {
			d = g.dimension()
		}
		filters = []*bruteFilter{g.filter(d, 0)}
	default:
		for n := 2 + g.rng.IntN(2); n > 0; n-- {
			filters = append(filters, g.filter(g.dimension(), 0))
		}
	}
	return dimensions, filters
}

// ---- the check ----

func TestFiltersAndBreakdownsAgainstBruteForce(t *testing.T) {
	seed := bruteEnvInt(t, "GLIMPSE_BRUTE_SEED", bruteDefaultSeed)
	queries := int(bruteEnvInt(t, "GLIMPSE_BRUTE_QUERIES", bruteDefaultQueries))
	evs := bruteTraffic(bruteSite, seed)
	visits := oracleVisits(evs)
	t.Logf("seed %d: %d events, %d visits, %d queries", seed, len(evs), len(visits), queries)
	// Another site's traffic, by the same visitor ids, is stored alongside and must never
	// show in the answers.
	all := append(slices.Clone(evs), bruteTraffic("other.test", seed+1)...)
	slices.SortStableFunc(all, func(a, b *event.Event) int { return cmp.Compare(a.Time, b.Time) })

	mem := memstore.New()
	t.Cleanup(func() { mem.Close() })
	feedProcessor(t, mem, all)
	peb, err := pebblestore.Open(t.TempDir(), pebblestore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peb.Close() })
	feedProcessor(t, peb, all)

	type target struct {
		name string
		svc  testService
	}
	var targets []target
	for _, st := range []struct {
		name string
		st   store.Store
	}{{"memstore", mem}, {"pebble", peb}} {
		targets = append(targets,
			target{st.name + "/planned", newTestService(t, st.st)},
			target{st.name + "/scan", newTestService(t, st.st, func(c *Config) { c.ForceScan = true })})
	}

	gen := newBruteQueries(seed, visits)
	var (
		failures, rollups, empty, nonEmpty int
		opsSeen                            = map[string]bool{}
	)
	for i := 0; i < queries && failures < bruteMaxFailures; i++ {
		dimensions, filters := gen.query()
		rng := bruteRanges[gen.rng.IntN(len(bruteRanges))]
		fjson := make([]any, len(filters))
		for j, f := range filters {
			fjson[j] = f.json()
			collectOps(f, opsSeen)
		}
		dj, _ := json.Marshal(append([]string{}, dimensions...))
		fj, _ := json.Marshal(fjson)
		body := fmt.Sprintf(`{"site_id":%q,"metrics":%s,"date_range":%s,"dimensions":%s,"filters":%s}`, bruteSite, bruteMetrics, rng, dj, fj)
		q, err := ParseQuery([]byte(body), testNow, DefaultConfig())
		if err != nil {
			t.Fatalf("seed %d, query %d: %s: %v", seed, i, body, err)
		}
		want := oracleAnswer(visits, dimensions, filters, q.Range.From.UnixMilli(), q.Range.To.UnixMilli())
		if len(want) == 0 || (len(dimensions) == 0 && want[""][1] == 0 && want[""][2] == 0 && want[""][3] == 0) {
			empty++
		} else {
			nonEmpty++
		}
		for _, tg := range targets {
			resp := tg.svc.query(t, body)
			if resp.Meta.Path == PathRollup {
				rollups++
			}
			if msg := compareBrute(resp, want); msg != "" {
				failures++
				t.Errorf("seed %d, query %d on %s (%s path%s):\n%s\n%s", seed, i, tg.name, resp.Meta.Path, granularityNote(resp), body, msg)
			}
		}
	}
	t.Logf("%d queries: %d answered from rollups (of %d answers), %d with rows, %d without", queries, rollups, 4*queries, nonEmpty, empty)
	if failures >= bruteMaxFailures {
		t.Fatalf("seed %d: stopped after %d failures; rerun with GLIMPSE_BRUTE_SEED=%d", seed, failures, seed)
	}
	// the check means something only when it saw every path and filters both keep and drop
	if queries >= 100 {
		if rollups < queries/5 {
			t.Errorf("only %d of %d answers came from rollups", rollups, 4*queries)
		}
		if empty < queries/20 || nonEmpty < queries/2 {
			t.Errorf("%d queries had rows, %d had none: the filters do not discriminate", nonEmpty, empty)
		}
		for _, op := range []string{"is", "is_not", "contains", "contains_not", "matches", "matches_not", "and", "or", "not"} {
			if !opsSeen[op] {
				t.Errorf("no query used %q", op)
			}
		}
	}
}

func collectOps(f *bruteFilter, seen map[string]bool) {
	seen[f.op] = true
	for _, o := range f.operands {
		collectOps(o, seen)
	}
}

func granularityNote(r *Response) string {
	if r.Meta.Granularity != "" {
		return ", " + r.Meta.Granularity + " rows"
	}
	return ": " + r.Meta.PathReason
}

// bruteExactVisitors is the most visitors a rollup answer must count exactly. Its sketches
// count distinct 25-bit hashes of the visitor ids up to 8192 of them (internal/sketch), so
// they are exact but for hash collisions, which among 200 ids happen about once in 1700
// sets; the traffic has 60 visitors per site.
const bruteExactVisitors = 200

// compareBrute compares an answer with the oracle's rows and returns what differs, or "".
// Visitors are exact on the scan path and HyperLogLog estimates on the rollup path: exact
// up to bruteExactVisitors, and beyond it off by at most the sketch's error (about 0.8%
// standard error, here allowed 4 of them, and at least 1).
func compareBrute(r *Response, want map[string][]float64) string {
	var diffs []string
	got := map[string]bool{}
	if r.Meta.TotalRows != len(r.Results) {
		diffs = append(diffs, fmt.Sprintf("total_rows %d for %d rows", r.Meta.TotalRows, len(r.Results)))
	}
	for _, row := range r.Results {
		k := strings.Join(row.Dimensions, "\x00")
		if got[k] {
			diffs = append(diffs, fmt.Sprintf("row %q twice", row.Dimensions))
		}
		got[k] = true
		w, ok := want[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected row %q %v", row.Dimensions, row.Metrics))
			continue
		}
		for i, m := range row.Metrics {
			n, _ := m.(json.Number)
			x, err := n.Float64()
			if err != nil {
				diffs = append(diffs, fmt.Sprintf("row %q: metric %d is %v", row.Dimensions, i, m))
				continue
			}
			tolerance := 1e-9
			if i == 0 && r.Meta.Path == PathRollup && w[0] > bruteExactVisitors {
				tolerance = max(1, math.Ceil(0.032*w[0]))
			}
			if math.Abs(x-w[i]) > tolerance {
				diffs = append(diffs, fmt.Sprintf("row %q: got %v, want %v", row.Dimensions, row.Metrics, w))
				break
			}
		}
	}
	var missing []string
	for k := range want {
		if !got[k] {
			missing = append(missing, fmt.Sprintf("%q %v", strings.Split(k, "\x00"), want[k]))
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		diffs = append(diffs, "missing row "+m)
	}
	if len(diffs) > 12 {
		diffs = append(diffs[:12], fmt.Sprintf("... and %d more differences", len(diffs)-12))
	}
	return strings.Join(diffs, "\n")
}

// Logical filters are echoed as sent; one filter over a single rolled-up dimension keeps
// the rollup path, while filters the rollup rows cannot tell apart are scanned.
func TestLogicalFilterPlans(t *testing.T) {
	cases := []struct{ dimensions, filters, path string }{
		{`[]`, `[["or",[["is","visit:source",["Google"]],["contains","visit:source",["Bing"]]]]]`, PathRollup},
		{`["visit:source"]`, `[["not",["matches","visit:source",["^G"]]]]`, PathRollup},
		{`[]`, `[["or",[["is","visit:source",["Google"]],["is","visit:device",["Mobile"]]]]]`, PathScan},
		{`["event:page"]`, `[["not",["or",[["is","event:page",["/"]],["and",[["contains","event:page",["blog"]],["is_not","event:page",["/blog"]]]]]]]]`, PathRollup},
		{`[]`, `[["not",["is","event:page",["/"]]]]`, PathScan}, // visits of several pages would add up twice
		{`["event:props:plan"]`, `[["is","event:props:plan",["pro"]]]`, PathRollup},
		{`["event:props:plan"]`, `[["is_not","event:props:plan",["pro"]]]`, PathScan}, // keeps events without the property
		{`["event:props:plan"]`, `[]`, PathScan},
	}
	for _, c := range cases {
		body := `{"site_id":"a.test","metrics":["visitors","visits"],"date_range":["2026-03-13","2026-03-13"],"dimensions":` + c.dimensions + `,"filters":` + c.filters + `}`
		q, err := ParseQuery([]byte(body), testNow, DefaultConfig())
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if p := makePlan(q, false); p.path != c.path {
			t.Errorf("%s: %s path (%s), want %s", body, p.path, p.reason, c.path)
		}
		echoed, err := json.Marshal(echo(q).Filters)
		if err != nil {
			t.Fatal(err)
		}
		if string(echoed) != c.filters {
			t.Errorf("filters echoed as %s, sent %s", echoed, c.filters)
		}
	}
}
