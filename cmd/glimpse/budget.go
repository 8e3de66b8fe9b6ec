package main

import (
	"math"
	"runtime/debug"

	"github.com/glimpse-analytics/glimpse/internal/bus/embedded"
	"github.com/glimpse-analytics/glimpse/internal/store/pebblestore"
)

// engineMemory is what the embedded engines (Pebble under the store and the bus) may hold
// in caches and memtables. Built without cgo, as released, Pebble allocates both in the Go
// heap, under --memory-limit; they stay allocated while the process idles (Pebble keeps a
// spare memtable of each database for reuse). With the fleet defaults (64 MiB of store
// cache, 16 MiB memtables, 16 MiB of bus cache) they alone took 144 MiB of the 256 MiB
// `glimpse all` runs in: after a large load the live heap then sat at the limit and the
// collector of garbage ran without pause, taking half a core from every query.
type engineMemory struct {
	storeCache    int64
	storeMemTable uint64
	busCache      int64
	busMemTable   uint64
}

// Shares of the memory limit, as divisors: the store's block cache gets an eighth, each
// memtable and the bus's cache a thirty-second. With two memtables per database that is
// at most 28 % of the limit, leaving the rest to the services and the collector's headroom.
const (
	storeCacheShare  = 8
	smallEngineShare = 32

	minEngineCache    = 8 << 20
	minEngineMemTable = 4 << 20
)

// fleetEngineMemory is the engines' sizing without a memory limit (and the most any
// limit gets).
var fleetEngineMemory = engineMemory{
	storeCache: pebblestore.DefaultCacheSize, storeMemTable: pebblestore.DefaultMemTableSize,
	busCache: embedded.DefaultCacheSize, busMemTable: embedded.DefaultMemTableSize,
}

// engineMemoryFor sizes the engines for a soft memory limit of limit bytes (0, negative or
// math.MaxInt64: none).
func engineMemoryFor(limit int64) engineMemory {
	m := fleetEngineMemory
	if limit <= 0 || limit == math.MaxInt64 {
		return m
	}
	m.storeCache = clampSize(limit/storeCacheShare, minEngineCache, m.storeCache)
	m.busCache = clampSize(limit/smallEngineShare, minEngineCache, m.busCache)
	m.storeMemTable = uint64(clampSize(limit/smallEngineShare, minEngineMemTable, int64(m.storeMemTable)))
	m.busMemTable = uint64(clampSize(limit/smallEngineShare, minEngineMemTable, int64(m.busMemTable)))
	return m
}

func clampSize(n, lo, hi int64) int64 { return max(lo, min(hi, n)) }

// currentEngineMemory sizes the engines for the memory limit in effect (--memory-limit or
// GOMEMLIMIT).
func currentEngineMemory() engineMemory { return engineMemoryFor(debug.SetMemoryLimit(-1)) }
