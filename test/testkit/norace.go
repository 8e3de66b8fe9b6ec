//go:build !race

package testkit

// RaceEnabled reports a build with the race detector (see race.go).
const RaceEnabled = false
