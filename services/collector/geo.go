package collector

import (
	"errors"
	"log/slog"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/geo"
)

// Results of a location lookup, the label of glimpse_collector_geoip_lookups_total.
const (
	geoFound    = "found"     // the database knows the address
	geoNotFound = "not_found" // it does not (private addresses, unlisted networks)
	geoError    = "error"     // the record could not be read: the database is damaged
)

type geoMetrics struct {
	lookups *prometheus.CounterVec
	built   prometheus.Gauge
}

func newGeoMetrics(reg prometheus.Registerer) (*geoMetrics, error) {
	m := &geoMetrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "glimpse", Subsystem: "collector", Name: "geoip_lookups_total",
			Help: "Client addresses looked up in the geoip.db database, by result (found, not_found, error). Nothing is counted without a database.",
		}, []string{"result"}),
		built: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "glimpse", Subsystem: "collector", Name: "geoip_database_build_timestamp_seconds",
			Help: "Build time of the geoip.db database in use, as a Unix timestamp; 0 without a database. Alert when it is months old: locations drift as networks move.",
		}),
	}
	for _, r := range []string{geoFound, geoNotFound, geoError} {
		m.lookups.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.lookups, m.built} {
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

// openGeo opens the database of cfg.GeoIPDB and says in the log which one is in use, or
// that there is none; a nil DB answers every lookup with "unknown".
func openGeo(path string, log *slog.Logger, m *geoMetrics) (*geo.DB, error) {
	if path == "" {
		log.Info("no geolocation database: countries, regions and cities are unknown; to add them, start with --geoip.db=/path/GeoLite2-City.mmdb (free from MaxMind or DB-IP)")
		return nil, nil
	}
	db, err := geo.Open(path)
	if err != nil {
		return nil, err
	}
	info := db.Info()
	m.built.Set(float64(info.Built.Unix()))
	log.Info("geolocation database in use", "path", info.Path, "type", info.Type,
		"built", info.Built.Format("2006-01-02"), "cities", info.HasCity, "ipv6", info.IPVersion == 6)
	return db, nil
}

// locate looks the client address up and counts the result. The address is used for
// nothing else here and is not kept.
func (c *Collector) locate(ip netip.Addr) geo.Location {
	if c.geo == nil {
		return geo.Location{}
	}
	loc, found, err := c.geo.Locate(ip)
	switch {
	case err != nil:
		c.geoMetrics.lookups.WithLabelValues(geoError).Inc()
		c.geoLog.do(func(suppressed int64) {
			// the error names no address: it is the database that is at fault
			c.log.Warn("geolocation database record unreadable; the event gets no location (replace the geoip.db file and restart)",
				"err", err, "suppressed", suppressed)
		})
	case found:
		c.geoMetrics.lookups.WithLabelValues(geoFound).Inc()
	default:
		c.geoMetrics.lookups.WithLabelValues(geoNotFound).Inc()
	}
	return loc
}
