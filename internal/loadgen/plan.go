// Package loadgen generates realistic synthetic traffic — sites, visitors with their own IP
// addresses and browsers, visits of several pages, referrers, UTM tags and custom events —
// sends it to a running Glimpse, and knows exactly which numbers the query API must return
// for it. End-to-end tests and benchmarks use it; `glimpse loadgen` is its command line.
package loadgen

import (
	"fmt"
	"math/rand/v2"
	"sort"
)

// Beacon is one event as the tracker would send it.
type Beacon struct {
	Site     string
	Name     string // "pageview" or a custom event name
	URL      string
	Path     string // the path the collector is expected to record
	Referrer string
	Props    map[string]string
	// ID is sent as the event id ("eid"): "<seed>-<visit>-<beacon>", unique in the plan and
	// the same on every resend, so the server counts a resent beacon once. The same plan
	// sent again to the same site (same seed and VisitorOffset) within 30 minutes is
	// therefore a resend too; use another Seed or VisitorOffset for new traffic.
	ID string
}

// Visit is one visitor's sequence of beacons, sent in order.
type Visit struct {
	Site      string
	IP        string // sent as X-Forwarded-For
	UserAgent string
	Device    string // the device class the collector is expected to derive
	Source    string // the source the collector is expected to derive from the first beacon
	Beacons   []Beacon
}

// Options shape a plan.
type Options struct {
	Sites       []string // site ids, visits spread round robin; default ["example.com"]
	Events      int      // at least this many beacons in total
	Seed        uint64   // same seed, same plan
	UniquePaths bool     // every page view gets its own path (for exactly-once checks)
	// VisitorOffset shifts visitor addresses so separate plans sent to one site in the same
	// day do not share visitors.
	VisitorOffset int
}

// userAgents are real browser strings with the device class the collector should derive.
var userAgents = []struct{ ua, device string }{
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36", "Desktop"},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Desktop"},
	{"Mozilla/5.0 (X11; Linux x86_64; rv:129.0) Gecko/20100101 Firefox/129.0", "Desktop"},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Mobile"},
	{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Mobile Safari/537.36", "Mobile"},
	{"Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Tablet"},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36 Edg/128.0.0.0", "Desktop"},
}

// referrers are first-page referrers with the source the collector should derive; a
// query-string entry is a UTM-tagged landing URL instead of a referrer.
var referrers = []struct{ referrer, utm, source string }{
	{"", "", ""},
	{"https://www.google.com/", "", "Google"},
	{"https://news.ycombinator.com/item?id=1", "", "Hacker News"},
	{"https://t.co/abc123", "", "Twitter"},
	{"https://blog.example.org/posts/glimpse", "", "blog.example.org"},
	{"", "utm_source=newsletter&utm_medium=email&utm_campaign=launch", "newsletter"},
}

var pages = []string{"/", "/pricing", "/docs", "/docs/install", "/docs/api", "/blog", "/blog/hello-world",
	"/blog/scaling", "/about", "/contact", "/signup", "/login", "/features", "/changelog", "/careers"}

// Plan is a deterministic set of visits.
type Plan struct {
	Visits []Visit
	events int
}

// Events is the number of beacons in the plan.
func (p *Plan) Events() int { return p.events }

// Slice returns the plan of visits [from, to), for sending a plan in parts.
func (p *Plan) Slice(from, to int) *Plan {
	q := &Plan{Visits: p.Visits[from:to]}
	for _, v := range q.Visits {
		q.events += len(v.Beacons)
	}
	return q
}

// NewPlan generates visits until at least o.Events beacons exist. Every visit comes from its
// own visitor (address + browser), so visits equal visitors.
func NewPlan(o Options) *Plan {
	if len(o.Sites) == 0 {
		o.Sites = []string{"example.com"}
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	p := &Plan{}
	uniq := 0
	for i := 0; p.events < o.Events; i++ {
		site := o.Sites[i%len(o.Sites)]
		ua := userAgents[rng.IntN(len(userAgents))]
		ref := referrers[rng.IntN(len(referrers))]
		v := Visit{Site: site, IP: visitorIP(i + o.VisitorOffset), UserAgent: ua.ua, Device: ua.device, Source: ref.source}
		n := 1
		if rng.Float64() >= 0.35 { // about a third of visits bounce
			n = 2 + rng.IntN(5)
		}
		for j := 0; j < n; j++ {
			path := pages[zipf(rng, len(pages))]
			if o.UniquePaths {
				uniq++
				path = fmt.Sprintf("/u/%d", uniq)
			}
			u := "https://" + site + path
			b := Beacon{Site: site, Name: "pageview", URL: u, Path: path}
			if j == 0 {
				b.Referrer = ref.referrer
				if ref.utm != "" {
					b.URL = u + "?" + ref.utm
				}
			} else {
				b.Referrer = "https://" + site + v.Beacons[j-1].Path
			}
			v.Beacons = append(v.Beacons, b)
			if j == 0 && rng.Float64() < 0.15 { // a signup right after landing
				plan := []string{"free", "pro"}[rng.IntN(2)]
				v.Beacons = append(v.Beacons, Beacon{Site: site, Name: "Signup", URL: u, Path: path, Props: map[string]string{"plan": plan}})
			}
		}
		for bi := range v.Beacons {
			v.Beacons[bi].ID = fmt.Sprintf("%d-%d-%d", o.Seed, i, bi)
		}
		p.events += len(v.Beacons)
		p.Visits = append(p.Visits, v)
	}
	return p
}

// visitorIP maps a visitor number to a distinct address in 198.18.0.0/15, the range set
// aside for benchmarking (RFC 2544).
func visitorIP(i int) string {
	i %= 1 << 17
	return fmt.Sprintf("198.%d.%d.%d", 18+(i>>16), (i>>8)&0xff, i&0xff)
}

// zipf picks an index with a skew towards the front, as real page popularity is.
func zipf(rng *rand.Rand, n int) int {
	for {
		i := int(rng.ExpFloat64() * float64(n) / 4)
		if i < n {
			return i
		}
	}
}

// Counts are the numbers the query API must report for one site over the whole plan.
type Counts struct {
	Visitors  int `json:"visitors"`
	Visits    int `json:"visits"`
	Pageviews int `json:"pageviews"`
	Events    int `json:"events"`
	Bounces   int `json:"bounces"`
	// Pageviews by page, visits by source, entry and exit page, device.
	Pages      map[string]int `json:"pages"`
	Sources    map[string]int `json:"sources"`
	EntryPages map[string]int `json:"entry_pages"`
	ExitPages  map[string]int `json:"exit_pages"`
	Devices    map[string]int `json:"devices"`
}

// BounceRate is the bounce rate in percent as the query API rounds it.
func (c Counts) BounceRate() float64 {
	if c.Visits == 0 {
		return 0
	}
	return round2(100 * float64(c.Bounces) / float64(c.Visits))
}

// ViewsPerVisit as the query API rounds it.
func (c Counts) ViewsPerVisit() float64 {
	if c.Visits == 0 {
		return 0
	}
	return round2(float64(c.Pageviews) / float64(c.Visits))
}

func round2(f float64) float64 {
	s := fmt.Sprintf("%.2f", f)
	var out float64
	fmt.Sscan(s, &out)
	return out
}

// Expect returns the expected numbers per site for the visits whose beacons all got a 2xx
// (pass nil to count every visit).
func (p *Plan) Expect(acked func(visit, beacon int) bool) map[string]*Counts {
	out := map[string]*Counts{}
	for vi, v := range p.Visits {
		c := out[v.Site]
		if c == nil {
			c = &Counts{Pages: map[string]int{}, Sources: map[string]int{}, EntryPages: map[string]int{}, ExitPages: map[string]int{}, Devices: map[string]int{}}
			out[v.Site] = c
		}
		var pvs, interactions int
		var entry, exit string
		for bi, b := range v.Beacons {
			if acked != nil && !acked(vi, bi) {
				continue
			}
			if b.Name == "pageview" {
				pvs++
				c.Pageviews++
				c.Pages[b.Path]++
				if entry == "" {
					entry = b.Path
				}
				exit = b.Path
			} else {
				interactions++
				c.Events++
			}
		}
		if pvs+interactions == 0 {
			continue
		}
		c.Visitors++
		c.Visits++
		c.Sources[v.Source]++
		c.Devices[v.Device]++
		if entry != "" {
			c.EntryPages[entry]++
			c.ExitPages[exit]++
		}
		if pvs == 1 && interactions == 0 {
			c.Bounces++
		}
	}
	return out
}

// TopN returns the n largest entries of m, ties broken by key, as the query API orders them.
func TopN(m map[string]int, n int) []KV {
	kvs := make([]KV, 0, len(m))
	for k, v := range m {
		kvs = append(kvs, KV{k, v})
	}
	sort.Slice(kvs, func(i, j int) bool {
		if kvs[i].Value != kvs[j].Value {
			return kvs[i].Value > kvs[j].Value
		}
		return kvs[i].Key < kvs[j].Key
	})
	if n > 0 && len(kvs) > n {
		kvs = kvs[:n]
	}
	return kvs
}

// KV is one entry of a breakdown.
type KV struct {
	Key   string
	Value int
}

// body is the JSON the tracker sends for b.
func (b Beacon) body() map[string]any {
	m := map[string]any{"n": b.Name, "u": b.URL, "d": b.Site}
	if b.Referrer != "" {
		m["r"] = b.Referrer
	}
	if len(b.Props) > 0 {
		m["p"] = b.Props
	}
	if b.ID != "" {
		m["eid"] = b.ID
	}
	return m
}
