package cassandra

import (
	"context"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/store/storemetrics"
)

type metrics struct {
	storemetrics.Set
	retries  *prometheus.CounterVec
	requests *prometheus.CounterVec
}

const engineName = "cassandra"

func newMetrics() *metrics {
	return &metrics{
		Set: storemetrics.New(storemetrics.Options{
			Engine:      engineName,
			WriteHelp:   "Time of store writes by operation, until the consistency level acknowledged them.",
			ErrorsHelp:  "Store operations that failed, by operation and kind (unavailable, timeout, overloaded, failure, connection, server, invalid, closed, other); cancelled calls and callback errors excluded.",
			ErrorLabels: []string{"op", "kind"},
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "glimpse_store_retries_total",
			Help:        "Requests the Cassandra driver retried, by the kind of error that caused the retry.",
			ConstLabels: storemetrics.ConstLabels(engineName),
		}, []string{"kind"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "glimpse_store_cassandra_requests_total",
			Help:        "Requests (attempts, pages and batches included) sent to Cassandra nodes, by outcome (ok or an error kind).",
			ConstLabels: storemetrics.ConstLabels(engineName),
		}, []string{"outcome"}),
	}
}

// register registers m with reg (nothing when reg is nil). A collector that is already
// registered (a store reopened in the same process) is reused, so counters keep counting.
func (m *metrics) register(reg prometheus.Registerer) error {
	if err := m.Set.Register(reg); err != nil {
		return err
	}
	if err := storemetrics.Register(reg, &m.retries); err != nil {
		return err
	}
	return storemetrics.Register(reg, &m.requests)
}

// observe records one store operation. Errors caused by the caller (a cancelled context, an
// error returned by the caller's callback) are not store errors.
func (m *metrics) observe(op string, write bool, start time.Time, err error, callerErr bool) {
	m.ObserveTime(op, write, start)
	if err == nil || callerErr {
		return
	}
	if kind := errorKind(err); kind != kindCanceled {
		m.Errors.WithLabelValues(op, kind).Inc()
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
