package main

import (
	"math"
	"testing"
)

func TestEngineMemoryFollowsTheMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name  string
		limit int64
		want  engineMemory
	}{
		{"no limit", 0, fleetEngineMemory},
		{"no limit (runtime default)", math.MaxInt64, fleetEngineMemory},
		{"glimpse all default", 256 * mib, engineMemory{storeCache: 32 * mib, storeMemTable: 8 * mib, busCache: 8 * mib, busMemTable: 8 * mib}},
		{"512 MiB and more keep the fleet sizes (as --help says)", 512 * mib, fleetEngineMemory},
		{"large limit keeps the fleet sizes", 4096 * mib, fleetEngineMemory},
		{"small limit keeps workable minimums", 64 * mib, engineMemory{storeCache: 8 * mib, storeMemTable: 4 * mib, busCache: 8 * mib, busMemTable: 4 * mib}},
	} {
		if got := engineMemoryFor(c.limit); got != c.want {
			t.Errorf("%s: engineMemoryFor(%d) = %+v, want %+v", c.name, c.limit, got, c.want)
		}
	}
}

// Under `glimpse all`'s default limit the engines' caches and memtables (two per database,
// the one written and Pebble's spare) leave most of the heap to the services and the
// collector of garbage's headroom.
func TestEngineMemoryLeavesHeadroom(t *testing.T) {
	limit := int64(256 << 20)
	m := engineMemoryFor(limit)
	total := m.storeCache + m.busCache + 2*int64(m.storeMemTable) + 2*int64(m.busMemTable)
	if total > limit*3/10 {
		t.Errorf("engines take %d MiB of a %d MiB limit, more than 30 %%", total>>20, limit>>20)
	}
}
