package embedded

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/telemetry"
)

type metrics struct {
	published        *prometheus.CounterVec
	publishSeconds   prometheus.Histogram
	commits          *prometheus.CounterVec
	roundMessages    prometheus.Histogram
	retentionDeleted *prometheus.CounterVec
	deadLetters      *prometheus.CounterVec
	lag              *lagCollector
}

func newMetrics(b *Bus) *metrics {
	return &metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_bus_published_total",
			Help: "Messages durably appended to the bus.",
		}, []string{"topic"}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "glimpse_bus_publish_seconds",
			Help:    "Time from a Publish call to its messages being fsynced.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_bus_commits_total",
			Help: "Consumer group position commits.",
		}, []string{"topic", "group"}),
		roundMessages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "glimpse_bus_write_round_messages",
			Help:    "Messages stored per group-commit round (one fsync each).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		retentionDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_bus_retention_deleted_total",
			Help: "Messages deleted by retention.",
		}, []string{"topic"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_bus_dead_letters_total",
			Help: "Messages set aside on a dead-letter topic because their consumer could not process them, by the topic they were read from.",
		}, []string{"topic"}),
		lag: &lagCollector{b: b, desc: prometheus.NewDesc(
			"glimpse_bus_consumer_lag",
			"Messages between the group's committed position and the end of each partition a consumer of this process holds (the series goes when the partition is revoked).",
			[]string{"topic", "group", "partition"}, nil,
		)},
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.published, m.publishSeconds, m.commits, m.roundMessages, m.retentionDeleted, m.deadLetters, m.lag}
}

func (m *metrics) register(r prometheus.Registerer) error {
	return telemetry.RegisterAll(r, "the bus metrics are already registered (is another bus open with the same registry?)", m.collectors()...)
}

func (m *metrics) unregister(r prometheus.Registerer) {
	for _, c := range m.collectors() {
		r.Unregister(c)
	}
}

// lagCollector computes consumer lag at scrape time from the in-memory tails and
// committed positions, so publishing costs nothing extra. It reports the partitions a
// member of a group currently holds: a partition's series goes when it is revoked or its
// group's last member leaves.
type lagCollector struct {
	b    *Bus
	desc *prometheus.Desc
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.b.mu.RLock()
	groups := make([]*group, 0, len(c.b.groups))
	for _, g := range c.b.groups {
		groups = append(groups, g)
	}
	c.b.mu.RUnlock()
	for _, g := range groups {
		type held struct {
			p         int
			committed int64
		}
		var parts []held
		g.mu.Lock()
		for p, s := range g.slots {
			if s.holder != nil {
				parts = append(parts, held{p, g.committed[p]})
			}
		}
		g.mu.Unlock()
		for _, h := range parts {
			low, tail := g.t.parts[h.p].bounds()
			lag := tail - max(h.committed, low)
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(lag), g.t.name, g.name, strconv.Itoa(h.p))
		}
	}
}
