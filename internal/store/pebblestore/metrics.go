package pebblestore

import (
	"context"
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Operation names, the "op" label of the store metrics.
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
	opRetentionSweep  = "retention_sweep"
)

type metrics struct {
	writeSeconds  *prometheus.HistogramVec
	readSeconds   *prometheus.HistogramVec
	rowsWritten   prometheus.Counter
	rowsRead      prometheus.Counter
	eventsWritten prometheus.Counter
	eventsRead    prometheus.Counter
	errors        *prometheus.CounterVec
	writeStalls   prometheus.Counter
	// retentionDeleted counts what retention sweeps removed, by kind (minute_rows,
	// hour_rows, day_rows, events).
	retentionDeleted *prometheus.CounterVec
}

var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 3, 12) // 100µs .. ~18s

func newMetrics() *metrics {
	engine := prometheus.Labels{"engine": "pebble"}
	return &metrics{
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "glimpse_store_write_seconds",
			Help:        "Time of store writes by operation, until the data is durable.",
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
			Help:        "Store operations that failed, by operation (cancelled calls and callback errors excluded).",
			ConstLabels: engine,
		}, []string{"op"}),
		writeStalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "glimpse_store_write_stalls_total",
			Help:        "Times writes stalled waiting for memtable flushes or L0 compactions.",
			ConstLabels: engine,
		}),
		retentionDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "glimpse_store_retention_deleted_total",
			Help:        "Rollup rows and stored events removed by retention sweeps, by kind (minute_rows, hour_rows, day_rows, events).",
			ConstLabels: engine,
		}, []string{"kind"}),
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
	var err error
	var c prometheus.Collector
	if c, err = regOne(m.writeSeconds); err != nil {
		return err
	}
	m.writeSeconds = c.(*prometheus.HistogramVec)
	if c, err = regOne(m.readSeconds); err != nil {
		return err
	}
	m.readSeconds = c.(*prometheus.HistogramVec)
	if c, err = regOne(m.errors); err != nil {
		return err
	}
	m.errors = c.(*prometheus.CounterVec)
	if c, err = regOne(m.retentionDeleted); err != nil {
		return err
	}
	m.retentionDeleted = c.(*prometheus.CounterVec)
	for _, p := range []*prometheus.Counter{&m.rowsWritten, &m.rowsRead, &m.eventsWritten, &m.eventsRead, &m.writeStalls} {
		if c, err = regOne(*p); err != nil {
			return err
		}
		*p = c.(prometheus.Counter)
	}
	return nil
}

// observe records one operation. Errors caused by the caller (cancelled context, an error
// returned by the caller's callback) are not store errors.
func (m *metrics) observe(op string, write bool, start time.Time, err error, callerErr bool) {
	d := time.Since(start).Seconds()
	if write {
		m.writeSeconds.WithLabelValues(op).Observe(d)
	} else {
		m.readSeconds.WithLabelValues(op).Observe(d)
	}
	if err != nil && !callerErr && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		m.errors.WithLabelValues(op).Inc()
	}
}

// dbCollector exports a few Pebble health numbers, read when scraped.
type dbCollector struct {
	db *pebble.DB

	diskUsage, readAmp, compactionDebt, memtable, cacheSize *prometheus.Desc
	cacheHits, cacheMisses                                  *prometheus.Desc
}

func newDBCollector(db *pebble.DB) *dbCollector {
	engine := prometheus.Labels{"engine": "pebble"}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, nil, engine)
	}
	return &dbCollector{
		db:             db,
		diskUsage:      d("glimpse_store_disk_usage_bytes", "Bytes the embedded store uses on disk (tables, WAL, manifests)."),
		readAmp:        d("glimpse_store_read_amplification", "Sorted runs a point read may have to consult; high values mean compactions lag."),
		compactionDebt: d("glimpse_store_compaction_debt_bytes", "Estimated bytes compactions still have to rewrite."),
		memtable:       d("glimpse_store_memtable_bytes", "Bytes held in memtables."),
		cacheSize:      d("glimpse_store_block_cache_bytes", "Bytes held in the block cache."),
		cacheHits:      d("glimpse_store_block_cache_hits_total", "Block cache hits."),
		cacheMisses:    d("glimpse_store_block_cache_misses_total", "Block cache misses."),
	}
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.diskUsage, c.readAmp, c.compactionDebt, c.memtable, c.cacheSize, c.cacheHits, c.cacheMisses} {
		ch <- d
	}
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.db.Metrics()
	ch <- prometheus.MustNewConstMetric(c.diskUsage, prometheus.GaugeValue, float64(m.DiskSpaceUsage()))
	ch <- prometheus.MustNewConstMetric(c.readAmp, prometheus.GaugeValue, float64(m.ReadAmp()))
	ch <- prometheus.MustNewConstMetric(c.compactionDebt, prometheus.GaugeValue, float64(m.Compact.EstimatedDebt))
	ch <- prometheus.MustNewConstMetric(c.memtable, prometheus.GaugeValue, float64(m.MemTable.Size))
	ch <- prometheus.MustNewConstMetric(c.cacheSize, prometheus.GaugeValue, float64(m.BlockCache.Size))
	ch <- prometheus.MustNewConstMetric(c.cacheHits, prometheus.CounterValue, float64(m.BlockCache.Hits))
	ch <- prometheus.MustNewConstMetric(c.cacheMisses, prometheus.CounterValue, float64(m.BlockCache.Misses))
}
