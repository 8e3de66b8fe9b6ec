package query

import "testing"

// benchEngines lists the (store, cache) variants BenchmarkDashboardRealistic runs.
func benchEngines() [][2]string {
	return [][2]string{{"mem", "off"}, {"pebble", "off"}, {"pebble", "fill"}, {"mem", "warm"}, {"pebble", "warm"}}
}

func benchCacheConfig(mode string) func(*Config) {
	return func(c *Config) {
		if mode == "off" {
			c.CacheBytes = 0
		}
	}
}

// benchCacheMetrics reports how many buckets came from the cache and what it holds.
func benchCacheMetrics(b *testing.B, svc testService) {
	if svc.cache == nil {
		return
	}
	svc.cache.mu.Lock()
	defer svc.cache.mu.Unlock()
	b.ReportMetric(float64(svc.cache.size)/(1<<20), "cache-MiB")
}

func benchBucketsCached(r *Response) int64 { return int64(r.Meta.BucketsCached) }

// benchEmptyCache gives svc an empty cache before each round of cache=fill, so every past
// bucket is read and kept: the cost of a dashboard whose days are not cached yet.
func benchEmptyCache(svc testService, mode string) {
	if mode == "fill" {
		svc.cache = newRollupCache(svc.cfg.CacheBytes, svc.metrics)
	}
}
