package collector

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a request, the label of glimpse_collector_events_total.
const (
	resultAccepted    = "accepted"    // published; the sender got 202
	resultBot         = "bot"         // dropped as a bot; the sender got 202
	resultInvalid     = "invalid"     // 400: a field is missing, malformed or over a limit
	resultTooLarge    = "too_large"   // 413
	resultUnsupported = "unsupported" // 415: the content type cannot carry JSON
	resultMethod      = "bad_method"  // 405
	resultNotFound    = "not_found"   // 404: another path
	resultUnavailable = "unavailable" // 503: bus or salt store unavailable, publish timed out, shutting down
	resultError       = "error"       // 500: the bus failed for another reason
	resultCanceled    = "client_gone" // the body could not be read: the sender went away

	resultUnknownSite     = "unknown_site"     // dropped: the site was never added; the sender got 202
	resultForeignHostname = "foreign_hostname" // dropped: the page's hostname is not one of the site's; 202
)

type metrics struct {
	events   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	publish  *prometheus.HistogramVec
	inFlight prometheus.Gauge

	// The children every accepted beacon touches, looked up once: a lookup by label value
	// hashes the value on every request.
	accepted         prometheus.Counter
	acceptedDuration prometheus.Observer
	publishOK        prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "glimpse", Subsystem: "collector", Name: "events_total",
			Help: "Events received, by result (accepted, bot, invalid, too_large, unsupported, bad_method, not_found, unavailable, error, client_gone, unknown_site, foreign_hostname). An accepted request counts once per site it names, and so does a site dropped as unknown_site or foreign_hostname; a rejected one counts once.",
		}, []string{"result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "glimpse", Subsystem: "collector", Name: "request_duration_seconds",
			Help:    "Time to answer a POST /api/event request, in seconds, by HTTP status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"code"}),
		publish: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "glimpse", Subsystem: "collector", Name: "publish_duration_seconds",
			Help:    "Time of one bus publish (all events of a request), in seconds, by outcome (ok, unavailable, error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "glimpse", Subsystem: "collector", Name: "requests_in_flight",
			Help: "POST /api/event requests being handled right now.",
		}),
	}
	for _, r := range []string{resultAccepted, resultBot, resultInvalid, resultTooLarge, resultUnsupported, resultMethod, resultNotFound, resultUnavailable, resultError, resultCanceled, resultUnknownSite, resultForeignHostname} {
		m.events.WithLabelValues(r)
	}
	m.accepted = m.events.WithLabelValues(resultAccepted)
	m.acceptedDuration = m.duration.WithLabelValues("202")
	m.publishOK = m.publish.WithLabelValues("ok")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.events, m.duration, m.publish, m.inFlight} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("collector metrics are already registered: give each collector its own prometheus.Registerer")
			}
			return nil, err
		}
	}
	return m, nil
}
