// Command bulkload fills the embedded bus of a Glimpse data directory with millions of
// enriched events spread over the last days, as collectors would have published them, so a
// `glimpse all` started on that directory processes them through its real processor. The
// query and memory benchmarks in docs/benchmarks.md use it: HTTP ingest of ten million
// events would take most of an hour on a small machine and measure the collector, not the
// query path. With --kafka it publishes to a Kafka topic instead, for `glimpse processor
// --bus=kafka` to consume (test/bench/fleet.sh).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/bus/embedded"
	kafkabus "github.com/glimpse-analytics/glimpse/internal/bus/kafka"
	"github.com/glimpse-analytics/glimpse/internal/event"
)

func main() {
	dataDir := flag.String("data-dir", "./bench-data", "glimpse data directory to fill (its bus/ subdirectory)")
	events := flag.Int("events", 10_000_000, "events to publish")
	days := flag.Int("days", 30, "spread the events over this many whole UTC days, ending yesterday")
	site := flag.String("site", "bench.example", "site id of every event")
	topic := flag.String("topic", "glimpse-events", "bus topic (the collector's --collector.topic)")
	partitions := flag.Int("partitions", 8, "partitions of the topic if it is new (glimpse's --bus.partitions)")
	pages := flag.Int("pages", 200, "distinct page paths")
	seed := flag.Uint64("seed", 1, "seed of the generated traffic")
	kafka := flag.String("kafka", "", "comma-separated Kafka brokers: publish there (topic created with --partitions) instead of to the embedded bus")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var b bus.Bus
	var err error
	if *kafka != "" {
		cfg := kafkabus.DefaultConfig()
		cfg.Brokers = strings.Split(*kafka, ",")
		cfg.Partitions = *partitions
		b, err = kafkabus.New(cfg, kafkabus.Options{Logger: logger})
	} else {
		b, err = embedded.Open(filepath.Join(*dataDir, "bus"), embedded.Options{Partitions: *partitions, Logger: logger})
	}
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	gen := newGenerator(*seed, *site, *pages)
	end := time.Now().UTC().Truncate(24 * time.Hour)
	start := end.Add(-time.Duration(*days) * 24 * time.Hour)
	perDay := *events / *days
	t0 := time.Now()
	var published, pageviews int
	for d := 0; d < *days; d++ {
		want := perDay
		if d == *days-1 {
			want = *events - published
		}
		dayStart := start.Add(time.Duration(d) * 24 * time.Hour)
		batch := gen.day(dayStart, want)
		for _, e := range batch {
			if e.IsPageview() {
				pageviews++
			}
		}
		if err := publish(b, *topic, batch); err != nil {
			log.Fatal(err)
		}
		published += len(batch)
		fmt.Fprintf(os.Stderr, "day %2d/%d: %d events published (%.0f/s)\n", d+1, *days, published, float64(published)/time.Since(t0).Seconds())
	}
	fmt.Printf("published %d events (%d page views) for %s from %s to %s in %s\n",
		published, pageviews, *site, start.Format(time.RFC3339), end.Format(time.RFC3339), time.Since(t0).Round(time.Second))
}

func publish(b bus.Bus, topic string, evs []*event.Event) error {
	const chunk = 5000
	msgs := make([]bus.Message, 0, chunk)
	for i, e := range evs {
		v, err := event.Encode(e)
		if err != nil {
			return err
		}
		msgs = append(msgs, bus.Message{Key: e.Key(), Value: v})
		if len(msgs) == chunk || i == len(evs)-1 {
			if err := b.Publish(context.Background(), topic, msgs...); err != nil {
				return err
			}
			msgs = msgs[:0]
		}
	}
	return nil
}

type generator struct {
	rng   *rand.Rand
	site  string
	pages []string
}

var (
	browsers = []struct{ browser, os, device string }{
		{"Chrome", "Windows", "Desktop"}, {"Safari", "macOS", "Desktop"}, {"Firefox", "Linux", "Desktop"},
		{"Mobile Safari", "iOS", "Mobile"}, {"Chrome", "Android", "Mobile"}, {"Safari", "iPadOS", "Tablet"}, {"Edge", "Windows", "Desktop"},
	}
	sources   = []string{"", "Google", "Hacker News", "Twitter", "blog.example.org", "newsletter", "Bing", "DuckDuckGo"}
	countries = []string{"US", "DE", "FR", "GB", "IN", "BR", "JP", "CA", "NL", "SE"}
)

func newGenerator(seed uint64, site string, nPages int) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d)), site: site}
	for i := 0; i < nPages; i++ {
		g.pages = append(g.pages, fmt.Sprintf("/section-%d/page-%d", i%12, i))
	}
	return g
}

// day returns about n events of visits starting within the day from dayStart, in time order.
// Visits start early enough to end before midnight, so every event lies within the day.
func (g *generator) day(dayStart time.Time, n int) []*event.Event {
	out := make([]*event.Event, 0, n+8)
	for len(out) < n {
		at := dayStart.Add(time.Duration(g.rng.Int64N(int64(23 * time.Hour))))
		vid := g.rng.Uint64()
		br := browsers[g.rng.IntN(len(browsers))]
		src := sources[g.rng.IntN(len(sources))]
		cc := countries[g.rng.IntN(len(countries))]
		views := 1
		if g.rng.Float64() >= 0.4 {
			views = 2 + g.rng.IntN(6)
		}
		for v := 0; v < views && len(out) < n; v++ {
			e := &event.Event{
				Site: g.site, VisitorID: vid, Time: at.UnixMilli(), Name: event.PageviewName,
				Hostname: g.site, Path: g.pages[g.zipf(len(g.pages))],
				Browser: br.browser, OS: br.os, Device: br.device, Country: cc,
			}
			if v == 0 {
				e.Source = src
			}
			out = append(out, e)
			if v == 0 && g.rng.Float64() < 0.1 && len(out) < n {
				out = append(out, &event.Event{Site: g.site, VisitorID: vid, Time: at.UnixMilli() + 500, Name: "Signup",
					Hostname: g.site, Path: e.Path, Browser: br.browser, OS: br.os, Device: br.device, Country: cc,
					Props: map[string]string{"plan": []string{"free", "pro"}[g.rng.IntN(2)]}, Interactive: true})
			}
			at = at.Add(time.Duration(10+g.rng.IntN(170)) * time.Second)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time < out[j].Time })
	return out
}

func (g *generator) zipf(n int) int {
	for {
		i := int(g.rng.ExpFloat64() * float64(n) / 6)
		if i < n {
			return i
		}
	}
}
