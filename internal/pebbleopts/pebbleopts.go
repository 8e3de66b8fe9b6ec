// Package pebbleopts holds the Pebble settings the embedded bus and the embedded store
// share.
package pebbleopts

// MemTableQueueBytes is how much memtable data may wait for flushing before Pebble stalls
// writes: its default of two memtables at the engines' default size of 16 MiB.
const MemTableQueueBytes = 2 * (16 << 20)

// MemTableStopWrites is Pebble's MemTableStopWritesThreshold for memtables of
// memTableSize bytes: smaller memtables (a process under a small memory limit) keep
// MemTableQueueBytes of room for a burst of writes, in more memtables, while an idle
// engine holds only two small ones. Never below Pebble's minimum of two.
func MemTableStopWrites(memTableSize uint64) int {
	if memTableSize == 0 {
		return 2
	}
	return max(2, int((MemTableQueueBytes+memTableSize-1)/memTableSize))
}
