package kafka

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/glimpse-analytics/glimpse/internal/telemetry"
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
	deadLetters    *prometheus.CounterVec
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
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "glimpse_bus_dead_letters_total",
			Help:        "Messages set aside on a dead-letter topic because their consumer could not process them, by the topic they were read from.",
			ConstLabels: engine,
		}, []string{"topic"}),
		lag: &lagCollector{b: b, desc: prometheus.NewDesc(
			"glimpse_bus_consumer_lag",
			"Messages between the group's committed position and the end of each partition this process holds (the series goes when the partition is revoked); ends older than 5s are read again at scrape time.",
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
	return []prometheus.Collector{m.published, m.publishSeconds, m.inflight, m.commits, m.rebalances, m.errors, m.deadLetters, m.lag}
}

func (m *metrics) register(r prometheus.Registerer) error {
	return telemetry.RegisterAll(r, "the bus metrics are already registered (is another bus open with the same registry?)", m.collectors()...)
}

func (m *metrics) unregister(r prometheus.Registerer) {
	for _, c := range m.collectors() {
		r.Unregister(c)
	}
}

// lagStaleAfter is how old a claim's last known partition end may be before a scrape
// asks the brokers again: a handler that keeps fetching refreshes it for free, one that
// has not fetched yet (or is stuck behind a slow store) would otherwise show no lag or an
// old one.
const lagStaleAfter = 5 * time.Second

// lagCollector reports the lag of the partitions this process holds at scrape time: the
// partition's end (high watermark) minus the group's committed position. A partition's
// series disappears when its claim ends (revocation, rebalance, shutdown).
type lagCollector struct {
	b    *Bus
	desc *prometheus.Desc

	refreshing sync.Mutex // one refresh at a time; concurrent scrapes use what is known
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	claims := c.b.activeClaims()
	c.refreshEnds(claims)
	for _, cl := range claims {
		hwm := cl.hwm.Load()
		if hwm < 0 {
			continue // the end is not known yet (brokers unreachable)
		}
		lag := max(hwm-max(cl.committed.Load(), cl.logStart.Load()), 0)
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(lag), cl.topic, cl.group, strconv.Itoa(cl.partition))
	}
}

// refreshEnds asks the brokers for the end of every held partition whose last known end is
// missing or older than lagStaleAfter, in one request per topic, bounded by a short
// timeout so a scrape never waits long on an unreachable cluster.
func (c *lagCollector) refreshEnds(claims []*claim) {
	if !c.refreshing.TryLock() {
		return
	}
	defer c.refreshing.Unlock()
	staleBefore := time.Now().Add(-lagStaleAfter).UnixNano()
	byTopic := map[string][]*claim{}
	for _, cl := range claims {
		if cl.hwm.Load() < 0 || cl.hwmAt.Load() < staleBefore {
			byTopic[cl.topic] = append(byTopic[cl.topic], cl)
		}
	}
	if len(byTopic) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(c.b.cfg.RequestTimeout, 2*time.Second))
	defer cancel()
	for topic, cls := range byTopic {
		reqs := make([]kafkago.OffsetRequest, 0, len(cls))
		for _, cl := range cls {
			reqs = append(reqs, kafkago.LastOffsetOf(cl.partition))
		}
		res, err := c.b.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
		if err != nil {
			c.b.m.errors.WithLabelValues(opOffsets).Inc()
			c.b.log.Debug("cannot read partition ends for the lag metric", "topic", topic, "err", err)
			continue
		}
		ends := map[int]int64{}
		for _, po := range res.Topics[topic] {
			if po.Error == nil {
				ends[po.Partition] = po.LastOffset
			}
		}
		for _, cl := range cls {
			if end, ok := ends[cl.partition]; ok && end >= cl.hwm.Load() {
				cl.setEnd(end)
			}
		}
	}
}
