package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// The lag of held partitions is reported from the start (before any fetch), follows
// commits, and its series go when the partitions are released.
func TestConsumerLag(t *testing.T) {
	forEachCluster(t, "lag", testConsumerLag)
}

func lagSeries(t *testing.T, reg *prometheus.Registry, topic string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "glimpse_bus_consumer_lag" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["topic"] == topic {
				out[l["partition"]] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func sumOf(m map[string]float64) (s float64) {
	for _, v := range m {
		s += v
	}
	return s
}

func testConsumerLag(t *testing.T, addr, prefix string) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	b := openTest(t, testConfig(addr), Options{Metrics: reg})
	topic, group := prefix+"-t", prefix+"-g"
	const n = 40
	msgs := make([]bus.Message, n)
	for i := range msgs {
		msgs[i] = bus.Message{Key: fmt.Appendf(nil, "visitor-%d", i), Value: []byte("v")}
	}
	if err := b.Publish(ctx, topic, msgs...); err != nil {
		t.Fatal(err)
	}

	consumeSome := make(chan struct{})
	var (
		mu        sync.Mutex
		held      int
		committed int64
		reported  int
	)
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(cctx, topic, group, func(ctx context.Context, c bus.Claim) error {
			mu.Lock()
			held++
			mu.Unlock()
			select {
			case <-consumeSome:
			case <-ctx.Done():
				return ctx.Err()
			}
			// Read and commit up to 3 messages of this partition (fewer if it holds fewer).
			fctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			got, err := c.Fetch(fctx, 3)
			cancel()
			var next int64
			if err == nil && len(got) > 0 {
				next = got[len(got)-1].Offset + 1
				if err := c.Commit(ctx, next); err != nil {
					return err
				}
			}
			mu.Lock()
			committed += next
			reported++
			mu.Unlock()
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	waitUntil(t, 30*time.Second, "every partition held", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return held == suitePartitions
	})
	// Nothing consumed: the whole topic is lag, read from the brokers since no fetch ran.
	got := lagSeries(t, reg, topic)
	if len(got) != suitePartitions || sumOf(got) != n {
		t.Fatalf("lag before consuming = %v, want %d series summing to %d", got, suitePartitions, n)
	}

	close(consumeSome)
	waitUntil(t, 30*time.Second, "every partition committed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return reported == suitePartitions
	})
	mu.Lock()
	want := float64(n - committed)
	mu.Unlock()
	if committed == 0 {
		t.Fatal("no partition committed anything")
	}
	if got := lagSeries(t, reg, topic); len(got) != suitePartitions || sumOf(got) != want {
		t.Fatalf("lag after committing %d = %v, want a sum of %v", committed, got, want)
	}

	stop()
	<-done
	if got := lagSeries(t, reg, topic); len(got) != 0 {
		t.Fatalf("lag series after leaving the group = %v, want none", got)
	}
}
