package pebblestore

import (
	"context"
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/store/storemetrics"
)

type metrics struct {
	storemetrics.Set
	writeStalls prometheus.Counter
	// retentionDeleted counts what retention sweeps removed, by kind (minute_rows,
	// hour_rows, day_rows, events).
	retentionDeleted *prometheus.CounterVec
}

const engineName = "pebble"

func newMetrics() *metrics {
	return &metrics{
		Set: storemetrics.New(storemetrics.Options{
			Engine:      engineName,
			WriteHelp:   "Time of store writes by operation, until the data is durable.",
			ErrorsHelp:  "Store operations that failed, by operation (cancelled calls and callback errors excluded).",
			ErrorLabels: []string{"op"},
		}),
		writeStalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "glimpse_store_write_stalls_total",
			Help:        "Times writes stalled waiting for memtable flushes or L0 compactions.",
			ConstLabels: storemetrics.ConstLabels(engineName),
		}),
		retentionDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "glimpse_store_retention_deleted_total",
			Help:        "Rollup rows and stored events removed by retention sweeps, by kind (minute_rows, hour_rows, day_rows, events).",
			ConstLabels: storemetrics.ConstLabels(engineName),
		}, []string{"kind"}),
	}
}

// register registers m with reg (nothing when reg is nil). A collector that is already
// registered (a store reopened in the same process) is reused, so counters keep counting.
func (m *metrics) register(reg prometheus.Registerer) error {
	if err := m.Set.Register(reg); err != nil {
		return err
	}
	if err := storemetrics.Register(reg, &m.writeStalls); err != nil {
		return err
	}
	return storemetrics.Register(reg, &m.retentionDeleted)
}

// observe records one operation. Errors caused by the caller (cancelled context, an error
// returned by the caller's callback) are not store errors.
func (m *metrics) observe(op string, write bool, start time.Time, err error, callerErr bool) {
	m.ObserveTime(op, write, start)
	if err != nil && !callerErr && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		m.Errors.WithLabelValues(op).Inc()
	}
}

// dbCollector exports a few Pebble health numbers, read when scraped.
type dbCollector struct {
	db *pebble.DB

	diskUsage, readAmp, compactionDebt, memtable, cacheSize *prometheus.Desc
	cacheHits, cacheMisses                                  *prometheus.Desc
}

func newDBCollector(db *pebble.DB) *dbCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, nil, storemetrics.ConstLabels(engineName))
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
