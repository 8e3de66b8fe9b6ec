package query

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// synthetic generates visits over the 16 days before testNow: several per visitor, one to
// six events each, some crossing midnight, some in the last half hour, none in the future.
func synthetic(seed uint64, visitors int) []testEvent {
	rng := rand.New(rand.NewPCG(seed, 42))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	var out []testEvent
	end := testNow.UnixMilli()
	for v := 1; v <= visitors; v++ {
		vid := uint64(v) * 0x9e3779b97f4a7c15
		t := testNow.Add(-16 * 24 * time.Hour).UnixMilli()
		if v%10 == 0 { // a few visitors are active right now
			t = testNow.Add(-40 * time.Minute).UnixMilli()
		}
		t += rng.Int64N(int64(3 * 24 * time.Hour / time.Millisecond))
		for t < end {
			first := testEvent{
				Site: "a.test", VisitorID: vid,
				Source:    pick("", "Google", "Bing", "news.ycombinator.com"),
				Referrer:  pick("", "google.com/", "news.ycombinator.com/item"),
				UTMSource: pick("", "", "newsletter"), UTMMedium: pick("", "email"), UTMCampaign: pick("", "spring"),
				Browser: pick("Firefox", "Chrome", "Safari"), OS: pick("Linux", "Mac", "iOS"),
				Device: pick("Desktop", "Mobile", "Tablet"), Country: pick("DE", "FR", "US", ""), City: pick("Berlin", "Paris", ""),
			}
			n := 1 + rng.IntN(6)
			for i := 0; i < n && t < end; i++ {
				e := first
				if i > 0 {
					e = testEvent{Site: "a.test", VisitorID: vid, Source: "ignored", Device: "ignored"} // the visit's attributes win
				}
				e.Time = t
				e.Hostname = "a.test"
				e.Path = pick("/", "/pricing", "/blog", "/blog/go", "/docs", "/about")
				if rng.IntN(4) == 0 {
					e.Name = pick("Signup", "Scroll", "Download")
					e.Interactive = rng.IntN(3) > 0
					e.Props = map[string]string{"plan": pick("free", "pro")}
				} else {
					e.Name = "pageview"
				}
				out = append(out, e)
				t += 10_000 + rng.Int64N(int64(20*time.Minute/time.Millisecond))
			}
			t += int64(31*time.Minute/time.Millisecond) + rng.Int64N(int64(2*24*time.Hour/time.Millisecond))
		}
	}
	return out
}

// The rollup path and the scan path give the same answers for the same data: every query a
// rollup can answer is answered both ways and compared.
func TestRollupAndScanAgree(t *testing.T) {
	st := buildStore(t, synthetic(7, 50), 3).load(t)
	rollup := newTestService(t, st)
	scan := newTestService(t, st, func(c *Config) { c.ForceScan = true; c.VisitMargin = 3 * time.Hour })

	ranges := []string{`"day"`, `"month"`, `"realtime"`, `["2026-03-08","2026-03-10"]`, `["2026-03-12T06:00:00Z","2026-03-12T18:00:00Z"]`}
	dimSets := []string{
		`[]`, `["time:hour"]`, `["time:day"]`, `["time:week"]`, `["time:month"]`,
		`["event:page"]`, `["event:name"]`, `["visit:source"]`, `["visit:entry_page"]`, `["visit:exit_page"]`,
		`["visit:device"]`, `["visit:utm_campaign"]`, `["visit:country","time:day"]`, `["time:hour","event:page"]`,
	}
	filterSets := []string{
		`[]`,
		`[["is","visit:source",["Google","Bing"]]]`,
		`[["is_not","visit:device",["Mobile"]]]`,
		`[["is","event:page",["/pricing"]]]`,
		`[["contains","event:page",["/blog"]]]`,
		`[["matches","visit:entry_page",["^/(blog|docs)"]]]`,
	}
	compared, scanned := 0, 0
	for _, rg := range ranges {
		for _, ds := range dimSets {
			for _, fs := range filterSets {
				body := fmt.Sprintf(`{"site_id":"a.test","metrics":%s,"date_range":%s,"dimensions":%s,"filters":%s}`, allMetrics, rg, ds, fs)
				q, err := ParseQuery([]byte(body), testNow, DefaultConfig())
				if err != nil {
					t.Fatal(err)
				}
				if makePlan(q, false).path != PathRollup {
					scanned++
					continue
				}
				a := rollup.query(t, body)
				if a.Meta.Path != PathRollup {
					t.Fatalf("%s: answered from %s", body, a.Meta.Path)
				}
				b := scan.query(t, body)
				if b.Meta.Path != PathScan {
					t.Fatalf("forced scan answered from %s", b.Meta.Path)
				}
				compared++
				if ra, rb := rowsOf(a), rowsOf(b); !reflect.DeepEqual(ra, rb) {
					t.Errorf("%s\nrollup %v\nscan   %v", body, ra, rb)
				}
			}
		}
	}
	// the time:minute series over realtime, too
	for _, rg := range []string{`"realtime"`, `"day"`} {
		body := `{"site_id":"a.test","metrics":` + allMetrics + `,"date_range":` + rg + `,"dimensions":["time:minute"]}`
		a, b := rollup.query(t, body), scan.query(t, body)
		compared++
		if a.Meta.Path != PathRollup || a.Meta.Granularity != "minute" {
			t.Errorf("%s: %s %s", body, a.Meta.Path, a.Meta.Granularity)
		}
		if ra, rb := rowsOf(a), rowsOf(b); !reflect.DeepEqual(ra, rb) {
			t.Errorf("%s\nrollup %v\nscan   %v", body, ra, rb)
		}
	}
	t.Logf("%d queries compared, %d left to the scan path", compared, scanned)
	if compared < 150 {
		t.Errorf("only %d queries compared", compared)
	}
	// the data must not be trivially empty
	r := rollup.query(t, `{"site_id":"a.test","metrics":["visitors","visits"],"date_range":"realtime"}`)
	if rows := rowsOf(r); rows[0][0] == "0" {
		t.Errorf("no visitors in the realtime window: %v", rows)
	}
}
