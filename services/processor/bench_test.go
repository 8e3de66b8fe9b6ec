package processor

import (
	"container/heap"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// stream generates a realistic, time-ordered event stream without end: visits arrive as a
// Poisson process, returning visitors come back, pages follow a Zipf law, a quarter of the
// events are custom events, some with props.
type stream struct {
	rng     *rand.Rand
	zipf    *rand.Zipf
	now     time.Time
	rate    float64 // visits per second of event time
	pending visitHeap
	pages   []string
}

type genVisit struct {
	at     time.Time
	left   int
	first  bool
	vid    uint64
	site   string
	attrs  event.Event
	page   int
	events int
}

type visitHeap []*genVisit

func (h visitHeap) Len() int           { return len(h) }
func (h visitHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h visitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *visitHeap) Push(x any)        { *h = append(*h, x.(*genVisit)) }
func (h *visitHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

var (
	benchSources   = []string{"", "Google", "Bing", "DuckDuckGo", "Hacker News", "Twitter", "newsletter", "blog.example.org", "reddit.com", "github.com"}
	benchBrowsers  = []string{"Chrome", "Firefox", "Safari", "Edge", "Samsung Internet", "Opera", "Brave"}
	benchOS        = []string{"Windows", "Mac", "Linux", "iOS", "Android"}
	benchDevices   = []string{"Desktop", "Mobile", "Tablet"}
	benchCountries = strings.Fields("US DE FR GB NL SE NO DK FI PL CZ AT CH IT ES PT BE IE CA MX BR AR CL JP KR CN IN ID AU NZ ZA NG EG TR IL AE SA RU UA RO HU GR BG RS HR SI SK LT LV")
	benchNames     = []string{"Signup", "Download", "Outbound Link: Click", "Play", "Scroll"}
)

// newStream generates visitsPerSec visits per second of event time, from about visitors
// distinct visitors, over pages distinct pages.
func newStream(seed uint64, visitsPerSec float64, pages int) *stream {
	rng := rand.New(rand.NewPCG(seed, 99))
	s := &stream{rng: rng, zipf: rand.NewZipf(rng, 1.1, 1, uint64(pages-1)), now: base, rate: visitsPerSec}
	for i := range pages {
		s.pages = append(s.pages, fmt.Sprintf("/section-%d/page-%d", i%17, i))
	}
	s.arrive()
	return s
}

func (s *stream) pick(xs []string) string { return xs[s.rng.IntN(len(xs))] }

// arrive schedules the next new visit.
func (s *stream) arrive() {
	gap := time.Duration(s.rng.ExpFloat64() / s.rate * float64(time.Second))
	v := &genVisit{at: s.now.Add(gap), first: true, left: 1 + s.rng.IntN(8)}
	v.vid = uint64(s.rng.IntN(2_000_000)+1) * 0x9e3779b97f4a7c15
	v.site = fmt.Sprintf("site-%d.example", v.vid%3)
	v.attrs = event.Event{
		Source: s.pick(benchSources), Browser: s.pick(benchBrowsers), BrowserVersion: strconv.Itoa(100 + s.rng.IntN(30)),
		OS: s.pick(benchOS), Device: s.pick(benchDevices), Country: s.pick(benchCountries),
	}
	if v.attrs.Source != "" && v.attrs.Source != "newsletter" {
		v.attrs.Referrer = strings.ToLower(strings.ReplaceAll(v.attrs.Source, " ", "")) + ".com/"
	}
	if s.rng.IntN(5) == 0 {
		v.attrs.UTMSource, v.attrs.UTMMedium, v.attrs.UTMCampaign = "newsletter", "email", fmt.Sprintf("campaign-%d", s.rng.IntN(20))
	}
	v.page = int(s.zipf.Uint64())
	heap.Push(&s.pending, v)
}

// next returns the next event in time order.
func (s *stream) next() *event.Event {
	for {
		v := s.pending[0]
		if v.first {
			// keep exactly one scheduled arrival ahead
			v.first = false
			s.now = v.at
			s.arrive()
		}
		s.now = v.at
		e := &event.Event{Site: v.site, VisitorID: v.vid, Time: v.at.UnixMilli(), Hostname: v.site, Path: s.pages[v.page]}
		if v.events == 0 {
			e.Source, e.Referrer, e.UTMSource, e.UTMMedium, e.UTMCampaign = v.attrs.Source, v.attrs.Referrer, v.attrs.UTMSource, v.attrs.UTMMedium, v.attrs.UTMCampaign
			e.Browser, e.BrowserVersion, e.OS, e.Device, e.Country = v.attrs.Browser, v.attrs.BrowserVersion, v.attrs.OS, v.attrs.Device, v.attrs.Country
		}
		if v.events > 0 && s.rng.IntN(4) == 0 {
			e.Name = s.pick(benchNames)
			e.Interactive = s.rng.IntN(5) > 0
			if s.rng.IntN(2) == 0 {
				e.Props = map[string]string{"plan": s.pick([]string{"free", "pro", "team"})}
			}
		} else {
			e.Name = event.PageviewName
			if v.events > 0 {
				v.page = int(s.zipf.Uint64())
				e.Path = s.pages[v.page]
			}
		}
		v.events++
		if v.left--; v.left == 0 {
			heap.Pop(&s.pending)
		} else {
			v.at = v.at.Add(5*time.Second + time.Duration(s.rng.Int64N(int64(4*time.Minute))))
			heap.Fix(&s.pending, 0)
		}
		return e
	}
}

// discardStore drops every write and holds nothing: it measures the processor alone.
type discardStore struct{}

func (discardStore) WriteRows(context.Context, []store.Row) error { return nil }
func (discardStore) GetRows(context.Context, []store.RowKey) ([]store.Row, error) {
	return nil, nil
}
func (discardStore) ScanRows(context.Context, store.RowRange, func(store.Row) error) error {
	return nil
}
func (discardStore) WriteEvents(context.Context, []store.StoredEvent) error { return nil }
func (discardStore) ScanEvents(context.Context, store.EventRange, func(store.StoredEvent) error) error {
	return nil
}
func (discardStore) GetMeta(context.Context, string, string) ([]byte, bool, error) {
	return nil, false, nil
}
func (discardStore) PutMeta(context.Context, string, string, []byte) error { return nil }
func (discardStore) PutMetaIfAbsent(_ context.Context, _, _ string, v []byte) ([]byte, error) {
	return v, nil
}
func (discardStore) DeleteMeta(context.Context, string, string) error { return nil }
func (discardStore) ListMeta(context.Context, string, func(string, []byte) error) error {
	return nil
}
func (discardStore) Close() error { return nil }

const benchChunk = 50_000

// BenchmarkAggregate measures events per second through Apply (sessionise, fold into
// rows, encode the stored event). Flushes every 50k events happen with the timer stopped.
func BenchmarkAggregate(b *testing.B) {
	benchAggregate(b, discardStore{}, false)
}

// BenchmarkAggregateAndFlush includes the flushes into an in-memory store.
func BenchmarkAggregateAndFlush(b *testing.B) {
	benchAggregate(b, newTestStore(b), true)
}

func benchAggregate(b *testing.B, st store.Store, timeFlush bool) {
	p, err := OpenPartition(context.Background(), DefaultConfig(), Deps{Store: st, Log: quiet()}, 0)
	if err != nil {
		b.Fatal(err)
	}
	s := newStream(1, 20, 500)
	evs := make([]*event.Event, benchChunk)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		n := min(benchChunk, b.N-done)
		for i := range n {
			evs[i] = s.next()
		}
		b.StartTimer()
		for i := range n {
			p.Apply(int64(done+i), evs[i])
		}
		done += n
		if !timeFlush {
			b.StopTimer()
		}
		if err := p.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(p.OpenSessions()), "sessions")
	b.ReportMetric(float64(p.CachedRows()), "rows")
}

// TestMemoryOfTenMillionEvents pushes GLIMPSE_PROCESSOR_MEMCHECK events (e.g. 10000000)
// through Apply and Flush and reports the heap. It is skipped unless the variable is set.
func TestMemoryOfTenMillionEvents(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("GLIMPSE_PROCESSOR_MEMCHECK"))
	if n <= 0 {
		t.Skip("set GLIMPSE_PROCESSOR_MEMCHECK=<events> to run")
	}
	rate, _ := strconv.ParseFloat(os.Getenv("GLIMPSE_PROCESSOR_MEMCHECK_RATE"), 64)
	if rate <= 0 {
		rate = 20 // visits per second of event time: 10M events span about 1.3 days
	}
	p, err := OpenPartition(context.Background(), DefaultConfig(), Deps{Store: discardStore{}, Log: quiet()}, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := newStream(2, rate, 2000)
	t0 := time.Now()
	var peak uint64
	var ms runtime.MemStats
	for i := range n {
		p.Apply(int64(i), s.next())
		if i%benchChunk == benchChunk-1 {
			if err := p.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if i%(20*benchChunk) == 20*benchChunk-1 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
				t.Logf("%9d events  %6.0f/s  heap in use %4d MiB  sessions %6d  rows %7d  event time %s",
					i+1, float64(i+1)/time.Since(t0).Seconds(), ms.HeapInuse>>20, p.OpenSessions(), p.CachedRows(), s.now.Sub(base).Round(time.Minute))
			}
		}
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	if path := os.Getenv("GLIMPSE_PROCESSOR_MEMCHECK_HEAP"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	runtime.ReadMemStats(&ms)
	t.Logf("done: %d events in %s (%.0f/s); heap after GC %d MiB, peak heap in use %d MiB, sys %d MiB",
		n, time.Since(t0).Round(time.Millisecond), float64(n)/time.Since(t0).Seconds(), ms.HeapAlloc>>20, peak>>20, ms.Sys>>20)
	runtime.KeepAlive(p)
}
