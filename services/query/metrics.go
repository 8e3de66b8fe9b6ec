package query

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Endpoint label values.
const (
	endpointQuery    = "query"
	endpointRealtime = "realtime"
)

// metrics are the query service's Prometheus metrics (glimpse_query_*).
type metrics struct {
	requests      *prometheus.CounterVec   // endpoint, path, code
	latency       *prometheus.HistogramVec // endpoint, path
	rowsRead      prometheus.Counter
	eventsScanned prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_query_requests_total",
			Help: "Query API requests by endpoint, answering path (rollup, scan, or none when the request was refused before planning) and HTTP status code.",
		}, []string{"endpoint", "path", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "glimpse_query_request_duration_seconds",
			Help:    "Time to answer a query API request, by endpoint and answering path.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint", "path"}),
		rowsRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_query_rollup_rows_read_total",
			Help: "Rollup rows read from the store by queries.",
		}),
		eventsScanned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_query_events_scanned_total",
			Help: "Stored events read from the store by queries answered on the scan path.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.rowsRead, m.eventsScanned} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("query metrics: %w", err)
		}
	}
	return m, nil
}
