package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// `glimpse all` allocates a few kilobytes per beacon (HTTP, decoding, the processor's
// rollups) while its live heap stays small, so with Go's default GOGC=100 the collector of
// garbage runs several times a second and takes about a tenth of the CPU of an ingest
// burst. Letting the heap grow to three times the live heap instead of two halves that, but
// only while there is room: heapTuner raises GOGC up to tunedGCPercent as long as the heap
// goal it implies stays under heapGoalBound, and gives the default back as the live heap
// grows (a processor with many open sessions), so the heap never grows past what the
// default would allow beyond heapGoalBound. --memory-limit still bounds everything.
const (
	tunedGCPercent   = 200
	defaultGCPercent = 100
	heapGoalBound    = 160 << 20
	heapTuneEvery    = 2 * time.Second
)

// tuneGC starts the heap tuner of `glimpse all` unless GOGC is set in the environment (an
// operator's choice wins). It stops when ctx ends.
func tuneGC(ctx context.Context, log *slog.Logger) {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return
	}
	go heapTuner(ctx, log)
}

func heapTuner(ctx context.Context, log *slog.Logger) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := defaultGCPercent
	t := time.NewTicker(heapTuneEvery)
	defer t.Stop()
	for {
		metrics.Read(sample)
		live := uint64(0)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = sample[0].Value.Uint64()
		}
		if want := gcPercentFor(live); want != current {
			debug.SetGCPercent(want)
			log.Debug("GC percent tuned", "gogc", want, "live_heap_bytes", live)
			current = want
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// gcPercentFor is the GOGC that keeps the heap goal, live*(1+GOGC/100), under
// heapGoalBound, between the default and tunedGCPercent. A live heap of 0 (not measured
// yet) gets the default.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return defaultGCPercent
	}
	p := int((heapGoalBound/float64(live) - 1) * 100)
	return max(defaultGCPercent, min(tunedGCPercent, p))
}
