package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/bus/kafka"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/test/testkit"
)

// TestSealedDaysOnCassandra publishes twelve past days of traffic to Kafka, as collectors
// would have, lets a processor write it to Cassandra (recording its partitions' seals), and
// asks two query services the same questions: one reading every day from the shards' rows
// (--query.sealed-days=false), one merging finished days. Their answers must be equal
// before the merge is stored, after it (read from the merged rows), and from a query
// service started afterwards.
func TestSealedDaysOnCassandra(t *testing.T) {
	f := NewFleet(t, FleetOptions{NoConsul: true, Partitions: 4})
	const site = "sealed.example"
	f.AddSite(site)
	n := publishPastDays(t, f, site, 12)

	proc := f.StartProcessor(append(f.BusFlags(), f.StoreFlags()...)...)
	testkit.WaitFor(t, 2*time.Minute, "the processor to fold every event", func() (bool, string) {
		got := proc.Metric("glimpse_processor_events_processed_total")
		return int(got) >= n, fmt.Sprintf("%v of %d", got, n)
	})

	plain := f.StartQuery(append(f.StoreFlags(), "--query.auth=false", "--query.sealed-days=false")...)
	// Without the cache of finished days, so every answer comes from the store's rows.
	sealed := f.StartQuery(append(f.StoreFlags(), "--query.auth=false", "--query.cache-bytes=0")...)
	qs := sealedDayQueries(site)
	ask := func(p *Proc) map[string]string {
		t.Helper()
		return answers(t, testkit.API{URL: p.URL}, qs)
	}
	same := func(label string, p *Proc) {
		t.Helper()
		a, b := ask(plain), ask(p)
		if diffs := diffAnswers(a, b); len(diffs) > 0 {
			t.Fatalf("%s: %d of %d answers differ (shards' rows first, then merged days):\n%s", label, len(diffs), len(qs), strings.Join(diffs, "\n"))
		}
	}
	same("before any merge", sealed)
	// The seals are recorded at the processor's checkpoints and read every 15 s.
	testkit.WaitFor(t, time.Minute, "finished days merged and stored", func() (bool, string) {
		ask(sealed)
		got := sealed.Metric("glimpse_query_sealed_days_merged_total")
		return got >= 9, fmt.Sprintf("%v days merged", got)
	})
	same("merged", sealed)
	if got := sealed.Metric("glimpse_query_sealed_days_read_total"); got == 0 {
		t.Fatal("no finished day was read from its merged rows")
	}
	if got := sealed.Metric("glimpse_query_sealed_days_write_errors_total"); got != 0 {
		t.Fatalf("%v merges could not be stored", got)
	}
	// With the cache (the default): the merged rows fill it, and later answers come from it.
	fresh := f.StartQuery(append(f.StoreFlags(), "--query.auth=false")...)
	same("a new query service", fresh)
	same("a new query service, from its cache", fresh)
	if got := fresh.Metric("glimpse_query_sealed_days_read_total"); got < 9 {
		t.Fatalf("a new query service read %v finished days from merged rows, want every one", got)
	}
	// The merge is what makes a long range cheap: far fewer rows read.
	top := qs["by event:page"]
	rp, rs := rowsRead(t, plain, top), rowsRead(t, fresh, top)
	t.Logf("top pages over 12 days: %d rows from the shards, %d with merged days", rp, rs)
	if rs*2 > rp {
		t.Fatalf("top pages read %d rows with merged days and %d without: want far fewer", rs, rp)
	}
}

func rowsRead(t *testing.T, p *Proc, q map[string]any) int {
	t.Helper()
	r := testkit.API{URL: p.URL}.Query(t, q)
	n, _ := r.Meta["rows_read"].(float64)
	return int(n)
}

// sealedDayQueries ask for the twelve past days: totals, breakdowns and a time series, with
// unique visitors (both services merge the same sketches, so even estimates must agree).
func sealedDayQueries(site string) map[string]map[string]any {
	qs := map[string]map[string]any{
		"totals":      {"metrics": []string{"visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration"}},
		"not google":  {"metrics": []string{"visitors", "visits"}, "dimensions": []string{"visit:source"}, "filters": []any{[]any{"is_not", "visit:source", []string{"Google"}}}},
		"blog by day": {"metrics": []string{"visitors", "pageviews"}, "dimensions": []string{"time:day"}, "filters": []any{[]any{"contains", "event:page", []string{"/blog"}}}},
	}
	for _, dim := range []string{"event:page", "visit:entry_page", "visit:exit_page", "visit:source", "visit:device", "event:name", "time:day", "time:week"} {
		qs["by "+dim] = map[string]any{"metrics": []string{"visitors", "visits", "pageviews", "bounce_rate"}, "dimensions": []string{dim}}
	}
	today := time.Now().UTC()
	for _, q := range qs {
		q["site_id"] = site
		q["date_range"] = []string{today.AddDate(0, 0, -13).Format(time.DateOnly), today.AddDate(0, 0, -1).Format(time.DateOnly)}
		q["limit"] = 1000
	}
	return qs
}

// publishPastDays publishes the visits of a few hundred visitors over the given number of
// whole past days to the fleet's topic, in time order and keyed by visitor as collectors
// publish, and returns how many events it published.
func publishPastDays(t *testing.T, f *Fleet, site string, days int) int {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	pages := []string{"/", "/pricing", "/docs", "/blog", "/blog/one", "/blog/two", "/about", "/signup"}
	sources := []string{"", "Google", "Bing", "news.ycombinator.com", "Twitter"}
	devices := []string{"Desktop", "Mobile", "Tablet"}
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -days)
	var evs []*event.Event
	for v := range 400 {
		vid := uint64(v+1) * 0x9e3779b97f4a7c15
		for range 1 + rng.IntN(3) {
			at := start.Add(time.Duration(rng.Int64N(int64(days) * int64(24*time.Hour))))
			src, dev := sources[rng.IntN(len(sources))], devices[rng.IntN(len(devices))]
			for range 1 + rng.IntN(5) {
				e := &event.Event{Site: site, VisitorID: vid, Time: at.UnixMilli(), Name: event.PageviewName,
					Hostname: site, Path: pages[rng.IntN(len(pages))], Source: src, Device: dev, Browser: "Firefox", OS: "Linux"}
				if rng.IntN(5) == 0 {
					e.Name = "Signup"
				}
				evs = append(evs, e)
				at = at.Add(time.Duration(10+rng.IntN(600)) * time.Second)
			}
		}
	}
	slices.SortStableFunc(evs, func(a, b *event.Event) int { return int(a.Time - b.Time) })
	cfg := kafka.DefaultConfig()
	cfg.Brokers, cfg.Partitions = []string{f.Kafka}, f.Partitions
	b, err := kafka.New(cfg, kafka.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msgs := make([]bus.Message, 0, len(evs))
	for _, e := range evs {
		v, err := event.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, bus.Message{Key: e.Key(), Value: v})
	}
	for i := 0; i < len(msgs); i += 1000 {
		if err := b.Publish(ctx, f.Topic, msgs[i:min(i+1000, len(msgs))]...); err != nil {
			t.Fatalf("publish to %s: %v", f.Topic, err)
		}
	}
	raw, _ := json.Marshal(map[string]any{"events": len(evs), "from": start, "days": days})
	t.Logf("published %s", raw)
	return len(evs)
}
