package testkit

import (
	"fmt"
	"math"
	"sort"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/loadgen"
)

// CheckEqual reports an error unless got is want.
func CheckEqual(t testing.TB, name string, got, want float64) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// CheckNear reports an error unless got is within tolerance (a fraction) of want.
func CheckNear(t testing.TB, name string, got, want, tolerance float64) {
	t.Helper()
	if math.Abs(got-want) > want*tolerance {
		t.Errorf("%s = %v, want %v within %.0f%%", name, got, want, tolerance*100)
	}
}

// SortedKV renders a map as sorted "key"=value strings, for comparing and printing
// breakdowns.
func SortedKV(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, fmt.Sprintf("%q=%d", k, v))
	}
	sort.Strings(out)
	return out
}

// Head is the first n elements of s (all of them when there are fewer), to keep failure
// messages short.
func Head(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// FailedBeacons is a plan of the beacons of p that got no 2xx in rep, in their visits'
// order, to send again with the same bodies (what the tracker does after a 5xx).
func FailedBeacons(p *loadgen.Plan, rep *loadgen.Report) *loadgen.Plan {
	var visits []loadgen.Visit
	for vi, v := range p.Visits {
		var again []loadgen.Beacon
		for bi, b := range v.Beacons {
			if !rep.Outcome[vi][bi] {
				again = append(again, b)
			}
		}
		if len(again) > 0 {
			w := v
			w.Beacons = again
			visits = append(visits, w)
		}
	}
	q := &loadgen.Plan{Visits: visits}
	return q.Slice(0, len(visits))
}

// Breakdown is one dimension of a site's traffic: the query that breaks it down and the
// numbers the answer must hold.
type Breakdown struct {
	Dim, Metric string
	Want        map[string]int
}

// Breakdowns are the dimensions of a load plan's expected counts that the suites compare
// with the query API's breakdowns, exactly.
func Breakdowns(want *loadgen.Counts) []Breakdown {
	return []Breakdown{
		{"event:page", "pageviews", want.Pages},
		{"visit:source", "visits", want.Sources},
		{"visit:entry_page", "visits", want.EntryPages},
		{"visit:exit_page", "visits", want.ExitPages},
		{"visit:device", "visits", want.Devices},
	}
}
