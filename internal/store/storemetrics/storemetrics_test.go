package storemetrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// seriesCount is how many series c has.
func seriesCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

func testSet(engine string) Set {
	return New(Options{Engine: engine, WriteHelp: "Writes.", ErrorsHelp: "Errors.", ErrorLabels: []string{"op"}})
}

// A store reopened in the same process registers its metrics again: the counts must go on
// in the collectors registered first, or a scrape would see them drop.
func TestRegisterReusesWhatIsRegistered(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	first := testSet("pebble")
	if err := first.Register(reg); err != nil {
		t.Fatal(err)
	}
	first.RowsWritten.Add(2)
	second := testSet("pebble")
	if err := second.Register(reg); err != nil {
		t.Fatalf("registering again: %v", err)
	}
	second.RowsWritten.Add(1)
	second.Errors.WithLabelValues(OpWriteRows).Inc()
	if got := counterValue(t, first.RowsWritten); got != 3 {
		t.Errorf("rows written = %v; want 3 (the reopened store must count into the registered counter)", got)
	}
	if got := counterValue(t, first.Errors.WithLabelValues(OpWriteRows)); got != 1 {
		t.Errorf("errors = %v; want 1", got)
	}
	second.ObserveTime(OpScanRows, false, time.Now())
	second.ObserveTime(OpWriteRows, true, time.Now())
	if n := seriesCount(first.ReadSeconds); n != 1 {
		t.Errorf("%d read series; want 1", n)
	}
	if n := seriesCount(first.WriteSeconds); n != 1 {
		t.Errorf("%d write series; want 1", n)
	}
	// Another engine in the same process gets its own series.
	cassandra := testSet("cassandra")
	if err := cassandra.Register(reg); err != nil {
		t.Fatalf("second engine: %v", err)
	}
	if cassandra.RowsWritten == first.RowsWritten {
		t.Error("another engine's set was merged into the first")
	}
	unregistered := testSet("pebble")
	if err := unregistered.Register(nil); err != nil {
		t.Errorf("nil registerer: %v", err)
	}
}

func TestRegisterRefusesAConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "glimpse_store_test_total", Help: "A counter."})
	if err := Register(reg, &c); err != nil {
		t.Fatal(err)
	}
	// The same name with other help text is a programming error, not a reopen.
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "glimpse_store_test_total", Help: "Other help."})
	if err := Register(reg, &other); err == nil {
		t.Error("a conflicting definition was accepted")
	}
}
