package processor

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are shared by every partition of a process; partitions add to the gauges the
// change since they last reported, so the gauges hold the sum over partitions.
type metrics struct {
	processed    prometheus.Counter
	lateDropped  prometheus.Counter
	duplicates   prometheus.Counter
	engDropped   prometheus.Counter
	undecodable  prometheus.Counter
	flushSeconds prometheus.Histogram
	rowsWritten  prometheus.Counter
	eventsStored prometheus.Counter
	openSessions prometheus.Gauge
	cachedRows   prometheus.Gauge
	sketchBytes  prometheus.Gauge
	storeRetries prometheus.Counter
	checkpoints  prometheus.Counter
	ckptBytes    prometheus.Gauge
	propFolded   prometheus.Counter
	propSets     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		processed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_processor_events_processed_total",
			Help: "Events folded into sessions and rollups.",
		}),
		lateDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_processor_late_events_dropped_total",
			Help: "Events dropped because they were older than the lateness allowed behind the newest event of their partition.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_processor_duplicates_dropped_total",
			Help: "Events dropped as resends: their event id (eid) was already seen in the open visit of their site and visitor.",
		}),
		engDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_processor_engagement_dropped_total",
			Help: "Engagement events dropped because their visitor had no open visit for them to extend.",
		}),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_processor_undecodable_messages_total",
			Help: "Bus messages skipped because they could not be decoded as events.",
		}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "glimpse_processor_flush_duration_seconds",
			Help:    "Time to write a partition's events and dirty rollup rows to the store.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		rowsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_processor_rows_written_total",
			Help: "Rollup rows written to the store.",
		}),
		eventsStored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_processor_events_stored_total",
			Help: "Enriched events written to the store.",
		}),
		openSessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glimpse_processor_open_sessions",
			Help: "Visits held in memory by the partitions of this process.",
		}),
		cachedRows: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glimpse_processor_cached_rows",
			Help: "Rollup rows held in memory by the partitions of this process.",
		}),
		sketchBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glimpse_processor_sketch_bytes",
			Help: "Approximate bytes of unique-visitor (HyperLogLog) sketches held in the rollup rows cached by the partitions of this process: serialised sketches and buffered visitor ids exactly, each live sketch counted at its dense size (16 KiB, an upper bound). Updated after each flush.",
		}),
		storeRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_processor_store_retries_total",
			Help: "Store operations retried after an error.",
		}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_processor_checkpoints_total",
			Help: "Checkpoints (position and open sessions) written.",
		}),
		ckptBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glimpse_processor_checkpoint_bytes",
			Help: "Size of the last checkpoint written by any partition of this process.",
		}),
		propFolded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_processor_prop_values_folded_total",
			Help: "Custom-property values counted as \"(other)\" because their key already had --processor.max-prop-values distinct values that UTC day in the partition.",
		}),
		propSets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glimpse_processor_prop_value_sets",
			Help: "Sets of custom-property values (per site, key and UTC day) held in memory by the partitions of this process to enforce --processor.max-prop-values.",
		}),
	}
	if r, ok := reg.(*prometheus.Registry); reg == nil || ok && r == nil {
		return m
	}
	m.processed = register(reg, m.processed)
	m.lateDropped = register(reg, m.lateDropped)
	m.duplicates = register(reg, m.duplicates)
	m.engDropped = register(reg, m.engDropped)
	m.undecodable = register(reg, m.undecodable)
	m.flushSeconds = register(reg, m.flushSeconds)
	m.rowsWritten = register(reg, m.rowsWritten)
	m.eventsStored = register(reg, m.eventsStored)
	m.openSessions = register(reg, m.openSessions)
	m.cachedRows = register(reg, m.cachedRows)
	m.sketchBytes = register(reg, m.sketchBytes)
	m.storeRetries = register(reg, m.storeRetries)
	m.checkpoints = register(reg, m.checkpoints)
	m.ckptBytes = register(reg, m.ckptBytes)
	m.propFolded = register(reg, m.propFolded)
	m.propSets = register(reg, m.propSets)
	return m
}

// register registers c, or returns the collector already registered under its name so
// several processors (or a bulk loader's partitions) can share one registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a metric of the same name but another type: a programming error
	}
	return c
}
