package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests           *prometheus.CounterVec
	latency            *prometheus.HistogramVec
	breakerState       *prometheus.GaugeVec
	breakerTransitions *prometheus.CounterVec
	retries            *prometheus.CounterVec
	rejected           *prometheus.CounterVec
	limiterEvictions   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_gateway_requests_total", Help: "Requests answered by the gateway, by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "glimpse_gateway_request_seconds", Help: "Time to answer a request at the gateway, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "glimpse_gateway_breaker_state",
			Help: "State of the circuit breaker of an upstream instance: 0 closed, 1 half-open, 2 open.",
		}, []string{"upstream"}),
		breakerTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_gateway_breaker_transitions_total",
			Help: "Circuit breaker state changes of an upstream instance, by the state entered.",
		}, []string{"upstream", "to"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_gateway_retries_total",
			Help: "Requests sent again to another instance, by route and by what failed: dial (nothing reached the upstream), transport or status (idempotent requests only).",
		}, []string{"route", "reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_gateway_rejected_total",
			Help: "Requests the gateway answered itself instead of forwarding, by route and reason: ip_rate, site_rate (429), no_instance, breaker_open, bulkhead, upstream_failed (503).",
		}, []string{"route", "reason"}),
		limiterEvictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_gateway_rate_limit_evictions_total",
			Help: "Live rate-limit buckets dropped because the limiter held gateway.rate-limit.max-keys keys; a steady rate means the bound is too small.",
		}, []string{"limiter"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.latency, m.breakerState, m.breakerTransitions, m.retries, m.rejected, m.limiterEvictions} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("gateway metrics: %w", err)
			}
		}
	}
	return m, nil
}

// forgetUpstream drops the series of an upstream the gateway no longer keeps.
func (m *metrics) forgetUpstream(addr string) {
	m.breakerState.DeleteLabelValues(addr)
	m.breakerTransitions.DeletePartialMatch(prometheus.Labels{"upstream": addr})
}
