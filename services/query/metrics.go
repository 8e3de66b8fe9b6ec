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

	cacheHits, cacheMisses, cacheEvictions, cacheInvalidations prometheus.Counter
	cacheBytes                                                 prometheus.Gauge
	sealedRead, sealedMerged, sealedWriteErrors                prometheus.Counter
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
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_query_cache_hits_total",
			Help: "Rollup buckets answered from the query cache of past buckets.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_query_cache_misses_total",
			Help: "Past rollup buckets read from the store to be cached.",
		}),
		cacheEvictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_query_cache_evictions_total",
			Help: "Cached buckets evicted to stay within query.cache-bytes.",
		}),
		cacheInvalidations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_query_cache_invalidations_total",
			Help: "Cached buckets dropped because rows of them were written again.",
		}),
		sealedRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_query_sealed_days_read_total",
			Help: "Finished days (of one rollup) read from their rows merged across shards.",
		}),
		sealedMerged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_query_sealed_days_merged_total",
			Help: "Finished days (of one rollup) merged across shards and stored, after a query read them from the shards' rows.",
		}),
		sealedWriteErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_query_sealed_days_write_errors_total",
			Help: "Merges of finished days that could not be stored (the next query that reads the day tries again).",
		}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glimpse_query_cache_bytes",
			Help: "Approximate memory held by the query cache of past buckets.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.rowsRead, m.eventsScanned,
		m.cacheHits, m.cacheMisses, m.cacheEvictions, m.cacheInvalidations, m.cacheBytes,
		m.sealedRead, m.sealedMerged, m.sealedWriteErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("query metrics: %w", err)
		}
	}
	return m, nil
}
