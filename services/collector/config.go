package collector

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/clientip"
	"github.com/glimpse-analytics/glimpse/internal/geo"
)

// Config holds the collector's settings. Start from DefaultConfig.
type Config struct {
	// Topic is the bus topic events are published to.
	Topic string
	// MaxBodyBytes bounds a request body; larger requests get 413.
	MaxBodyBytes int64
	// MaxSites bounds how many site ids one request may name in "d".
	MaxSites int
	// TrustedProxies are the peers whose X-Forwarded-For header is believed.
	TrustedProxies clientip.PrefixList
	// PublishTimeout bounds the site and salt lookups and the bus publish of one request; on
	// expiry the request gets 503. Requests share deadline timers, so the bound may run up
	// to 10 ms longer (deadlineGrain).
	PublishTimeout time.Duration
	// RetryAfter is what a 503 asks the sender to wait before retrying.
	RetryAfter time.Duration
	// UACacheSize is how many distinct User-Agent strings keep their parsed form in memory.
	UACacheSize int
	// OpenSites creates a site on its first event instead of dropping events for sites that
	// were never added (`glimpse sites add`). On by default only in `glimpse all`.
	OpenSites bool
	// SitesRefresh is how often the site list is reloaded from the store, so a site added
	// or removed elsewhere is noticed.
	SitesRefresh time.Duration
	// GeoIPDB is the path of a City or Country database in MaxMind DB format (.mmdb) that
	// gives events their country, region and city; empty leaves them unknown.
	GeoIPDB string
}

// DefaultConfig returns the settings used when no flag is given.
func DefaultConfig() Config {
	return Config{
		Topic:          "glimpse-events",
		MaxBodyBytes:   16 << 10,
		MaxSites:       10,
		TrustedProxies: clientip.Loopback(),
		PublishTimeout: 5 * time.Second,
		RetryAfter:     5 * time.Second,
		UACacheSize:    10000,
		SitesRefresh:   5 * time.Second,
	}
}

// RegisterFlags binds the settings to flags named collector.*; the current values of c are
// the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Topic, "collector.topic", c.Topic,
		"bus topic the collector publishes enriched events to")
	fs.Int64Var(&c.MaxBodyBytes, "collector.max-body-bytes", c.MaxBodyBytes,
		"largest accepted request body, in bytes; larger requests are answered 413")
	fs.IntVar(&c.MaxSites, "collector.max-sites", c.MaxSites,
		"most site ids one event may name in its comma-separated \"d\" field (count); one event is published per site")
	fs.Var(&c.TrustedProxies, "collector.trusted-proxies",
		"comma-separated CIDRs (or single addresses) of proxies whose X-Forwarded-For header is trusted to carry the client address, e.g. the gateways' network; empty trusts no proxy")
	fs.DurationVar(&c.PublishTimeout, "collector.publish-timeout", c.PublishTimeout,
		"how long one publish to the bus may take (duration, e.g. 5s) before the request is answered 503")
	fs.DurationVar(&c.RetryAfter, "collector.retry-after", c.RetryAfter,
		"delay suggested to senders in the Retry-After header of a 503 answer (duration, rounded up to whole seconds)")
	fs.IntVar(&c.UACacheSize, "collector.ua-cache-size", c.UACacheSize,
		"number of distinct User-Agent strings whose parsed form is cached in memory (entries); 0 disables the cache")
	fs.BoolVar(&c.OpenSites, "collector.open-sites", c.OpenSites,
		"create a site on its first event (allowing that event's page hostname) instead of dropping events for sites never added with \"glimpse sites add\"")
	fs.DurationVar(&c.SitesRefresh, "collector.sites-refresh", c.SitesRefresh,
		"how often the site list is reloaded from the store (duration), so sites added or removed with \"glimpse sites\" are noticed")
	fs.StringVar(&c.GeoIPDB, geo.Flag, c.GeoIPDB,
		"path of a City or Country database in MaxMind DB format (.mmdb: GeoLite2-City or GeoLite2-Country from MaxMind, dbip-city-lite or dbip-country-lite from DB-IP) that gives each event the country, region and city of its client address, which is then discarded; empty: locations are unknown")
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Topic) == "" {
		errs = append(errs, errors.New("collector.topic must not be empty"))
	}
	if c.MaxBodyBytes < 256 || c.MaxBodyBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("collector.max-body-bytes is %d; it must be between 256 and 1048576 bytes", c.MaxBodyBytes))
	}
	if c.MaxSites < 1 || c.MaxSites > 100 {
		errs = append(errs, fmt.Errorf("collector.max-sites is %d; it must be between 1 and 100", c.MaxSites))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, fmt.Errorf("collector.publish-timeout is %s; it must be positive", c.PublishTimeout))
	}
	if c.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("collector.retry-after is %s; it must not be negative", c.RetryAfter))
	}
	if c.SitesRefresh <= 0 {
		errs = append(errs, fmt.Errorf("collector.sites-refresh is %s; it must be positive", c.SitesRefresh))
	}
	if c.UACacheSize < 0 {
		errs = append(errs, fmt.Errorf("collector.ua-cache-size is %d; it must not be negative", c.UACacheSize))
	}
	return errors.Join(errs...)
}
