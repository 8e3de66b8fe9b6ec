package main

import "testing"

func TestGCPercentKeepsTheHeapGoalBounded(t *testing.T) {
	cases := []struct {
		live uint64
		want int
	}{
		{0, defaultGCPercent},
		{1 << 20, tunedGCPercent},
		{40 << 20, tunedGCPercent},
		{64 << 20, 150},
		{80 << 20, defaultGCPercent},
		{1 << 30, defaultGCPercent},
	}
	for _, c := range cases {
		got := gcPercentFor(c.live)
		if got != c.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
		if goal := float64(c.live) * (1 + float64(got)/100); got > defaultGCPercent && goal > heapGoalBound {
			t.Errorf("live %d MiB: GOGC %d sets a heap goal of %.0f MiB, above the bound", c.live>>20, got, goal/(1<<20))
		}
	}
}
