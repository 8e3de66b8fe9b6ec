package embedded

import (
	"fmt"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/bus/bustest"
)

func benchFactory(tb testing.TB) bustest.Open {
	dir := tb.TempDir()
	return func(tb testing.TB) bus.Bus {
		b, err := Open(dir, Options{Logger: quietLogger()})
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
}

// go test -run '^$' -bench . ./internal/bus/embedded/
func BenchmarkPublishParallel(b *testing.B) {
	for _, g := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("publishers=%d", g), func(b *testing.B) {
			bustest.BenchPublishParallel(b, benchFactory, g)
		})
	}
}

func BenchmarkConsume(b *testing.B) {
	bustest.BenchConsume(b, benchFactory, 500)
}
