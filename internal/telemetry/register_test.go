package telemetry

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterAllIsAllOrNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "a"})
	b := prometheus.NewCounter(prometheus.CounterOpts{Name: "b_total", Help: "b"})
	if err := RegisterAll(reg, "twice", a, b); err != nil {
		t.Fatal(err)
	}
	// A second set with a new collector first and a taken name second registers nothing.
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total", Help: "c"})
	err := RegisterAll(reg, "the test metrics are already registered", c, b)
	if err == nil || err.Error() != "the test metrics are already registered" {
		t.Fatalf("RegisterAll over a registered collector = %v, want the caller's message", err)
	}
	if !reg.Unregister(a) || reg.Unregister(c) {
		t.Fatal("the failed RegisterAll must take back c and leave the first set alone")
	}
}
