package consul

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reachable       prometheus.Gauge
	instances       *prometheus.GaugeVec
	reregistrations prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reachable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glimpse_registry_consul_reachable",
			Help: "1 when the last call to the Consul agent got an answer, 0 when it failed (lookups then answer from the last known healthy instances).",
		}),
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "glimpse_registry_instances",
			Help: "Healthy instances of a service in this process's registry cache, by service.",
		}, []string{"service"}),
		reregistrations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_registry_consul_reregistrations_total",
			Help: "Instances of this process registered again because the Consul agent no longer knew them (agent restart, reaped instance).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.reachable, m.instances, m.reregistrations} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("consul registry metrics: %w", err)
			}
		}
	}
	return m, nil
}
