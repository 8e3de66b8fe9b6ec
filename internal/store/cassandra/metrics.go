package cassandra

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
)

// Operation names, the "op" label of the store metrics (the same as the embedded store's).
const (
	opWriteRows       = "write_rows"
	opGetRows         = "get_rows"
	opScanRows        = "scan_rows"
	opWriteEvents     = "write_events"
	opScanEvents      = "scan_events"
	opGetMeta         = "get_meta"
	opPutMeta         = "put_meta"
	opPutMetaIfAbsent = "put_meta_if_absent"
	opDeleteMeta      = "delete_meta"
	opListMeta        = "list_meta"
	opDeleteSite      = "delete_site"
)

type metrics struct {
	writeSeconds  *prometheus.HistogramVec
	readSeconds   *prometheus.HistogramVec
	rowsWritten   prometheus.Counter
	rowsRead      prometheus.Counter
	eventsWritten prometheus.Counter
	eventsRead    prometheus.Counter
	errors        *prometheus.CounterVec
	retries       *prometheus.CounterVec
	requests      *prometheus.CounterVec
}

var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 3, 12) // 100µs .. ~18s

func newMetrics() *metrics {
	engine := prometheus.Labels{"engine": "cassandra"}
	return &metrics{
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "glimpse_store_write_seconds",
			Help:        "Time of store writes by operation, until the consistency level acknowledged them.",
			ConstLabels: engine,
			Buckets:     latencyBuckets,
		}, []string{"op"}),
		readSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "glimpse_store_read_seconds",
			Help:        "Time of store reads by operation; scans include the caller's per-item work.",
			ConstLabels: engine,
			Buckets:     latencyBuckets,
		}, []string{"op"}),
		rowsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "glimpse_store_rows_written_total",
			Help:        "Rollup rows written (upserts, rewrites included).",
			ConstLabels: engine,
		}),
		rowsRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "glimpse_store_rows_read_total",
			Help:        "Rollup rows returned by GetRows and ScanRows.",
			ConstLabels: engine,
		}),
		eventsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "glimpse_store_events_written_total",
			Help:        "Enriched events written (upserts, rewrites included).",
			ConstLabels: engine,
		}),
		eventsRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "glimpse_store_events_read_total",
			Help:        "Enriched events returned by ScanEvents.",
			ConstLabels: engine,
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "glimpse_store_errors_total",
			Help:        "Store operations that failed, by operation and kind (unavailable, timeout, overloaded, failure, connection, server, invalid, closed, other); cancelled calls and callback errors excluded.",
			ConstLabels: engine,
		}, []string{"op", "kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "glimpse_store_retries_total",
			Help:        "Requests the Cassandra driver retried, by the kind of error that caused the retry.",
			ConstLabels: engine,
		}, []string{"kind"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "glimpse_store_cassandra_requests_total",
			Help:        "Requests (attempts, pages and batches included) sent to Cassandra nodes, by outcome (ok or an error kind).",
			ConstLabels: engine,
		}, []string{"outcome"}),
	}
}

// register registers m with reg. A collector that is already registered (a store reopened
// in the same process) is reused, so counters keep counting.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	regOne := func(c prometheus.Collector) (prometheus.Collector, error) {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return are.ExistingCollector, nil
			}
			return nil, err
		}
		return c, nil
	}
	for _, h := range []**prometheus.HistogramVec{&m.writeSeconds, &m.readSeconds} {
		c, err := regOne(*h)
		if err != nil {
			return err
		}
		*h = c.(*prometheus.HistogramVec)
	}
	for _, v := range []**prometheus.CounterVec{&m.errors, &m.retries, &m.requests} {
		c, err := regOne(*v)
		if err != nil {
			return err
		}
		*v = c.(*prometheus.CounterVec)
	}
	for _, p := range []*prometheus.Counter{&m.rowsWritten, &m.rowsRead, &m.eventsWritten, &m.eventsRead} {
		c, err := regOne(*p)
		if err != nil {
			return err
		}
		*p = c.(prometheus.Counter)
	}
	return nil
}

// observe records one store operation. Errors caused by the caller (a cancelled context, an
// error returned by the caller's callback) are not store errors.
func (m *metrics) observe(op string, write bool, start time.Time, err error, callerErr bool) {
	d := time.Since(start).Seconds()
	if write {
		m.writeSeconds.WithLabelValues(op).Observe(d)
	} else {
		m.readSeconds.WithLabelValues(op).Observe(d)
	}
	if err == nil || callerErr {
		return
	}
	if kind := errorKind(err); kind != kindCanceled {
		m.errors.WithLabelValues(op, kind).Inc()
	}
}

// observer counts every request gocql sends (gocql.QueryObserver and gocql.BatchObserver).
type observer struct{ m *metrics }

func (o observer) ObserveQuery(_ context.Context, q gocql.ObservedQuery) { o.count(q.Err) }
func (o observer) ObserveBatch(_ context.Context, b gocql.ObservedBatch) { o.count(b.Err) }

func (o observer) count(err error) {
	outcome := "ok"
	if err != nil {
		outcome = errorKind(err)
	}
	o.m.requests.WithLabelValues(outcome).Inc()
}
