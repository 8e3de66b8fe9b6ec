//go:build race

package embedded

// raceEnabled: the race detector makes sync.Pool drop items at random, so allocation
// counts that rely on a pool mean nothing.
const raceEnabled = true
