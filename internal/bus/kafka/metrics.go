package kafka

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Operations counted in glimpse_bus_errors_total{op}.
const (
	opPublish     = "publish"
	opCreateTopic = "create_topic"
	opFetch       = "fetch"
	opCommit      = "commit"
	opGroup       = "group"
	opOffsets     = "list_offsets"
)

// metrics share their names with the embedded bus where they mean the same thing, with
// the constant label engine="kafka".
type metrics struct {
	published      *prometheus.CounterVec
	publishSeconds prometheus.Histogram
	inflight       prometheus.GaugeFunc
	commits        *prometheus.CounterVec
	rebalances     *prometheus.CounterVec
	errors         *prometheus.CounterVec
	lag            *lagCollector
}

func newMetrics(b *Bus) *metrics {
	engine := prometheus.Labels{"engine": "kafka"}
	m := &metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "glimpse_bus_published_total",
			Help:        "Messages durably appended to the bus (acknowledged by all in-sync replicas).",
			ConstLabels: engine,
		}, []string{"topic"}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "glimpse_bus_publish_seconds",
			Help:        "Time from a Publish call to the broker's acknowledgement of all its messages.",
			ConstLabels: engine,
			Buckets:     []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "glimpse_bus_commits_total",
			Help:        "Consumer group position commits.",
			ConstLabels: engine,
		}, []string{"topic", "group"}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "glimpse_bus_rebalances_total",
			Help:        "Consumer group generations this process joined (each follows a rebalance).",
			ConstLabels: engine,
		}, []string{"topic", "group"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "glimpse_bus_errors_total",
			Help:        "Failed bus operations by operation (publish, create_topic, fetch, commit, group, list_offsets).",
			ConstLabels: engine,
		}, []string{"op"}),
		lag: &lagCollector{b: b, desc: prometheus.NewDesc(
			"glimpse_bus_consumer_lag",
			"Messages after the group's committed position on partitions this process holds (high watermark of the last fetch minus committed offset).",
			[]string{"topic", "group", "partition"}, engine,
		)},
	}
	m.inflight = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "glimpse_bus_publish_buffered",
		Help:        "Messages of Publish calls waiting for the broker's acknowledgement (bounded by --kafka.max-buffered).",
		ConstLabels: engine,
	}, func() float64 { return float64(b.buffered.Load()) })
	for _, op := range []string{opPublish, opCreateTopic, opFetch, opCommit, opGroup, opOffsets} {
		m.errors.WithLabelValues(op)
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.published, m.publishSeconds, m.inflight, m.commits, m.rebalances, m.errors, m.lag}
}

func (m *metrics) register(r prometheus.Registerer) error {
	var done []prometheus.Collector
	for _, c := range m.collectors() {
		if err := r.Register(c); err != nil {
			for _, d := range done {
				r.Unregister(d)
			}
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return errors.New("the bus metrics are already registered (is another bus open with the same registry?)")
			}
			return err
		}
		done = append(done, c)
	}
	return nil
}

func (m *metrics) unregister(r prometheus.Registerer) {
	for _, c := range m.collectors() {
		r.Unregister(c)
	}
}

// lagCollector reports the lag of the partitions this process holds at scrape time, from
// each claim's last fetched high watermark and committed offset.
type lagCollector struct {
	b    *Bus
	desc *prometheus.Desc
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	for _, cl := range c.b.activeClaims() {
		hwm := cl.hwm.Load()
		if hwm < 0 {
			continue // nothing fetched yet
		}
		lag := max(hwm-max(cl.committed.Load(), cl.logStart.Load()), 0)
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(lag), cl.topic, cl.group, strconv.Itoa(cl.partition))
	}
}
