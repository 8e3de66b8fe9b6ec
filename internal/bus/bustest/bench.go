package bustest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// benchValue is about the size of an encoded enriched event.
var benchValue = func() []byte {
	v := make([]byte, 320)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}()

func benchTopic(prefix string) string {
	return fmt.Sprintf("%s-bench-%x-%d", prefix, time.Now().UnixNano(), nameSeq.Add(1))
}

// BenchPublishParallel measures Publish from `goroutines` concurrent callers, each call
// carrying one message (the collector's pattern: one HTTP request, one event), and reports
// msgs/s.
func BenchPublishParallel(b *testing.B, f Factory, goroutines int) {
	bb := f(b)(b)
	defer bb.Close()
	topic := benchTopic("bustest")
	if _, err := bb.Partitions(context.Background(), topic); err != nil {
		b.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism(max(1, (goroutines+procs-1)/procs))
	var seq atomic.Int64
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			key := fmt.Appendf(nil, "example.com/visitor-%d", seq.Add(1)%100000)
			if err := bb.Publish(ctx, topic, bus.Message{Key: key, Value: benchValue}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchConsume measures one group member reading b.N messages from all partitions with
// Fetch(max=batch), committing after each fetch, and reports msgs/s.
func BenchConsume(b *testing.B, f Factory, batch int) {
	bb := f(b)(b)
	defer bb.Close()
	ctx := context.Background()
	topic := benchTopic("bustest")
	msgs := make([]bus.Message, 0, 1000)
	for i := 0; i < b.N; i++ {
		msgs = append(msgs, bus.Message{Key: fmt.Appendf(nil, "example.com/visitor-%d", i%100000), Value: benchValue})
		if len(msgs) == cap(msgs) || i == b.N-1 {
			if err := bb.Publish(ctx, topic, msgs...); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	var (
		read atomic.Int64
		once sync.Once
	)
	cctx, cancel := context.WithCancel(ctx)
	err := bb.Consume(cctx, topic, benchTopic("group"), func(ctx context.Context, c bus.Claim) error {
		for {
			ms, err := c.Fetch(ctx, batch)
			if err != nil {
				return ctx.Err()
			}
			if err := c.Commit(ctx, ms[len(ms)-1].Offset+1); err != nil {
				return ctx.Err()
			}
			if read.Add(int64(len(ms))) >= int64(b.N) {
				once.Do(cancel)
			}
		}
	})
	b.StopTimer()
	if err != nil && cctx.Err() == nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(read.Load())/b.Elapsed().Seconds(), "msgs/s")
}
