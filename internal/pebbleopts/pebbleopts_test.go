package pebbleopts

import "testing"

// Smaller memtables keep 32 MiB of room for a burst of writes before Pebble stalls them.
func TestMemTableStopWrites(t *testing.T) {
	for _, c := range []struct {
		size uint64
		want int
	}{
		{16 << 20, 2},
		{64 << 20, 2}, // never under Pebble's minimum of 2
		{8 << 20, 4},
		{5 << 20, 7}, // rounded up
		{4 << 20, 8},
		{0, 2},
	} {
		if got := MemTableStopWrites(c.size); got != c.want {
			t.Errorf("MemTableStopWrites(%d MiB) = %d, want %d", c.size>>20, got, c.want)
		}
	}
}
