package query

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config holds the query service's settings.
type Config struct {
	// MaxScanEvents bounds how many stored events one query may read on the scan path.
	// A query that needs more is refused with 422 rather than answered from a partial scan
	// (stored events arrive in no particular order, so a cut-off scan would be a random
	// sample, not a prefix).
	MaxScanEvents int
	// DefaultLimit is the page size when a query names none; MaxLimit the largest accepted.
	DefaultLimit int
	MaxLimit     int
	// Timeout bounds the time one request may spend reading the store.
	Timeout time.Duration
	// MaxBodyBytes is the largest request body accepted (413 above it).
	MaxBodyBytes int64
	// VisitMargin widens the scan window on both sides so that visits crossing the edges of
	// the date range are seen whole: before the range, to learn the entry page of visits that
	// started shortly before it; after it, for the duration, exit page and bounce of visits
	// that started in range and went on past its end.
	VisitMargin time.Duration
	// ForceScan answers every query by scanning stored events, never from rollups. Meant for
	// tests that compare both paths and for checking a suspicious rollup.
	ForceScan bool
	// Auth requires an API key (Authorization: Bearer) that covers the queried site, except
	// for sites marked public. Keys are made with `glimpse keys create`.
	Auth bool
	// CacheBytes bounds the memory of the cache of past rollup buckets: the rows of one
	// bucket (one day of the top pages, say) merged across shards and kept, so a dashboard
	// that asks for the same past days again does not read and merge them again. 0 disables
	// it. With a store that reports writes (the embedded Pebble store of glimpse all) every
	// write to a cached bucket drops it, so answers never go stale. With one that does not
	// (Cassandra, written by processors elsewhere), only buckets of finished days (see
	// SealedDays) are cached: no processor changes them any more.
	CacheBytes int64
	// CacheAfter is how long after a bucket ends it is cached: buckets that may still
	// change often stay out of the cache, since each change drops them again. Set it to the
	// processor's --processor.lateness, after which a bucket only changes on a replay.
	CacheAfter time.Duration
	// FXRates is a file of exchange rates (fx.go) that revenue is converted with into each
	// site's reporting currency; "" for none, and revenue in other currencies is then
	// reported by currency.
	FXRates string
	// MinuteRetention is how long the store keeps minute rollup rows (--retention.minute,
	// set by the binary from the store's settings; 0 means store.DefaultRetention's, and a
	// store that keeps them forever passes a longer duration than any range): a range
	// reaching further back is answered from other rows or by scanning events.
	MinuteRetention time.Duration
	// SealedDays reads finished days from rows merged across shards (see store.SealedDimension),
	// and merges a finished day the first time it is read from the shards' rows. A day is
	// finished once every processor partition has recorded that it will not change it again.
	SealedDays bool
}

// DefaultConfig returns the defaults the flags show.
func DefaultConfig() Config {
	return Config{
		MaxScanEvents: 1_000_000,
		DefaultLimit:  10_000,
		MaxLimit:      100_000,
		Timeout:       30 * time.Second,
		MaxBodyBytes:  64 << 10,
		VisitMargin:   time.Hour,
		CacheBytes:    64 << 20,
		CacheAfter:    48 * time.Hour,
		Auth:          true,
		SealedDays:    true,
	}
}

// RegisterFlags adds the query service's flags under the "query." prefix, with the current
// values of c as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxScanEvents, "query.max-scan-events", c.MaxScanEvents, "most stored events one query may scan when no rollup answers it (more gets 422)")
	fs.IntVar(&c.DefaultLimit, "query.default-limit", c.DefaultLimit, "result rows returned when a query sets no limit")
	fs.IntVar(&c.MaxLimit, "query.max-limit", c.MaxLimit, "largest limit a query may ask for")
	fs.DurationVar(&c.Timeout, "query.timeout", c.Timeout, "how long one query may take before it is answered with 503")
	fs.Int64Var(&c.MaxBodyBytes, "query.max-body-bytes", c.MaxBodyBytes, "largest query body accepted, in bytes (larger gets 413)")
	fs.DurationVar(&c.VisitMargin, "query.visit-margin", c.VisitMargin, "extra time scanned before and after the date range so visits crossing its edges are seen whole")
	fs.Int64Var(&c.CacheBytes, "query.cache-bytes", c.CacheBytes, "memory for cached past rollup buckets, in bytes (0 disables the cache)")
	fs.DurationVar(&c.CacheAfter, "query.cache-after", c.CacheAfter, "cache rollup buckets that ended longer ago than this (match --processor.lateness)")
	fs.BoolVar(&c.SealedDays, "query.sealed-days", c.SealedDays, "read days no processor can change any more from rows merged across shards, and store that merge the first time such a day is read")
	fs.BoolVar(&c.ForceScan, "query.force-scan", c.ForceScan, "answer every query by scanning stored events instead of rollups (slow; for checks)")
	fs.StringVar(&c.FXRates, "query.fx-rates", c.FXRates, "`file` of exchange rates for revenue: CSV lines CODE,RATE (a .csv name) or a JSON object {\"USD\": 0.92}; a rate is the value of one unit in a common base currency (see docs/api.md)")
	fs.BoolVar(&c.Auth, "query.auth", c.Auth, "require an API key (Authorization: Bearer, made with \"glimpse keys create\") covering the queried site, except for public sites")
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.MaxScanEvents <= 0 {
		errs = append(errs, fmt.Errorf("query.max-scan-events must be positive, got %d", c.MaxScanEvents))
	}
	if c.DefaultLimit <= 0 {
		errs = append(errs, fmt.Errorf("query.default-limit must be positive, got %d", c.DefaultLimit))
	}
	if c.MaxLimit < c.DefaultLimit {
		errs = append(errs, fmt.Errorf("query.max-limit (%d) must be at least query.default-limit (%d)", c.MaxLimit, c.DefaultLimit))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("query.timeout must be positive, got %s", c.Timeout))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("query.max-body-bytes must be positive, got %d", c.MaxBodyBytes))
	}
	if c.VisitMargin < 0 {
		errs = append(errs, fmt.Errorf("query.visit-margin must not be negative, got %s", c.VisitMargin))
	}
	if c.CacheBytes < 0 {
		errs = append(errs, fmt.Errorf("query.cache-bytes must not be negative, got %d", c.CacheBytes))
	}
	if c.CacheAfter < 0 {
		errs = append(errs, fmt.Errorf("query.cache-after must not be negative, got %s", c.CacheAfter))
	}
	return errors.Join(errs...)
}
