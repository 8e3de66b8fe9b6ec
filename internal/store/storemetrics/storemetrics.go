// Package storemetrics defines the glimpse_store_* metrics that every store engine exports,
// so that the alerts and the dashboard read the embedded store and Cassandra alike: the
// same names, the same "op" values and an "engine" const label telling them apart.
package storemetrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Operation names, the "op" label of the store metrics.
const (
	OpWriteRows       = "write_rows"
	OpGetRows         = "get_rows"
	OpScanRows        = "scan_rows"
	OpWriteEvents     = "write_events"
	OpScanEvents      = "scan_events"
	OpGetMeta         = "get_meta"
	OpPutMeta         = "put_meta"
	OpPutMetaIfAbsent = "put_meta_if_absent"
	OpDeleteMeta      = "delete_meta"
	OpListMeta        = "list_meta"
	OpDeleteSite      = "delete_site"
	OpRetentionSweep  = "retention_sweep"
)

// LatencyBuckets are the buckets of the store's latency histograms.
var LatencyBuckets = prometheus.ExponentialBuckets(0.0001, 3, 12) // 100µs .. ~18s

// Options are what differs between engines in the common metrics.
type Options struct {
	// Engine is the value of the "engine" const label ("pebble", "cassandra").
	Engine string
	// WriteHelp is the help of glimpse_store_write_seconds: it says when a write counts as
	// done on this engine.
	WriteHelp string
	// ErrorsHelp and ErrorLabels describe glimpse_store_errors_total. ErrorLabels starts with
	// "op"; an engine that can tell kinds of failure apart adds a label for them.
	ErrorsHelp  string
	ErrorLabels []string
}

// Set is the metrics every engine exports. Engines add their own next to it and register
// those with Register.
type Set struct {
	WriteSeconds  *prometheus.HistogramVec
	ReadSeconds   *prometheus.HistogramVec
	RowsWritten   prometheus.Counter
	RowsRead      prometheus.Counter
	EventsWritten prometheus.Counter
	EventsRead    prometheus.Counter
	Errors        *prometheus.CounterVec
}

// ConstLabels returns the const labels of an engine's store metrics, for the metrics an
// engine defines on its own.
func ConstLabels(engine string) prometheus.Labels {
	return prometheus.Labels{"engine": engine}
}

// New returns the common metrics of one engine, not yet registered.
func New(o Options) Set {
	engine := ConstLabels(o.Engine)
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: engine})
	}
	return Set{
		WriteSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "glimpse_store_write_seconds",
			Help:        o.WriteHelp,
			ConstLabels: engine,
			Buckets:     LatencyBuckets,
		}, []string{"op"}),
		ReadSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "glimpse_store_read_seconds",
			Help:        "Time of store reads by operation; scans include the caller's per-item work.",
			ConstLabels: engine,
			Buckets:     LatencyBuckets,
		}, []string{"op"}),
		RowsWritten:   counter("glimpse_store_rows_written_total", "Rollup rows written (upserts, rewrites included)."),
		RowsRead:      counter("glimpse_store_rows_read_total", "Rollup rows returned by GetRows and ScanRows."),
		EventsWritten: counter("glimpse_store_events_written_total", "Enriched events written (upserts, rewrites included)."),
		EventsRead:    counter("glimpse_store_events_read_total", "Enriched events returned by ScanEvents."),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "glimpse_store_errors_total",
			Help:        o.ErrorsHelp,
			ConstLabels: engine,
		}, o.ErrorLabels),
	}
}

// Register registers the set with reg (nothing when reg is nil). Metrics already registered
// by a store opened earlier in the same process are reused, so counters keep counting.
func (s *Set) Register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	if err := Register(reg, &s.WriteSeconds); err != nil {
		return err
	}
	if err := Register(reg, &s.ReadSeconds); err != nil {
		return err
	}
	if err := Register(reg, &s.Errors); err != nil {
		return err
	}
	for _, c := range []*prometheus.Counter{&s.RowsWritten, &s.RowsRead, &s.EventsWritten, &s.EventsRead} {
		if err := Register(reg, c); err != nil {
			return err
		}
	}
	return nil
}

// Register registers *c with reg (nothing when reg is nil). When an equal collector is
// already registered (a store reopened in the same process), *c is replaced by that one, so
// its counts go on.
func Register[C prometheus.Collector](reg prometheus.Registerer, c *C) error {
	if reg == nil {
		return nil
	}
	err := reg.Register(*c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		existing, ok := are.ExistingCollector.(C)
		if !ok {
			return err
		}
		*c = existing
		return nil
	}
	return err
}

// ObserveTime records how long op took since start, as a write or a read.
func (s *Set) ObserveTime(op string, write bool, start time.Time) {
	d := time.Since(start).Seconds()
	if write {
		s.WriteSeconds.WithLabelValues(op).Observe(d)
	} else {
		s.ReadSeconds.WithLabelValues(op).Observe(d)
	}
}
