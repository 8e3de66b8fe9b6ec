//go:build race

package testkit

// RaceEnabled reports a build with the race detector, whose instrumentation moves some
// values to the heap and makes sync.Pool drop items at random: allocation counts then
// differ from those of a normal build, and tests of them skip.
const RaceEnabled = true
