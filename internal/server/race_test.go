//go:build race

package server

// raceEnabled: the race detector's instrumentation moves some values to the heap, so
// allocation counts differ from those of a normal build.
const raceEnabled = true
