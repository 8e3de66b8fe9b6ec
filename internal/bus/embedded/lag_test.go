package embedded

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// lagByPartition scrapes glimpse_bus_consumer_lag of one topic and group.
func lagByPartition(t *testing.T, reg *prometheus.Registry, topic, group string) map[string]float64 {
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
			if l["topic"] == topic && l["group"] == group {
				out[l["partition"]] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestConsumerLagOfHeldPartitions(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := openT(t, t.TempDir(), Options{Partitions: 2, Metrics: reg, Logger: quietLogger()})
	ctx := context.Background()
	const n = 40
	ends := [2]int64{}
	for i := 0; i < n; i++ {
		key := fmt.Appendf(nil, "visitor-%d", i)
		ends[PartitionFor(key, 2)]++
		if err := b.Publish(ctx, "events", bus.Message{Key: key, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if ends[0] < 3 || ends[1] < 3 {
		t.Fatalf("keys split %v over the partitions; the test needs both to hold some", ends)
	}

	// Partition 0 consumes and commits 3 messages, partition 1 none.
	cctx, stop := context.WithCancel(ctx)
	held := make(chan int, 2)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(cctx, "events", "g", func(hctx context.Context, c bus.Claim) error {
			if c.Partition() == 0 {
				msgs, err := c.Fetch(hctx, 3)
				if err != nil {
					return err
				}
				if err := c.Commit(hctx, msgs[len(msgs)-1].Offset+1); err != nil {
					return err
				}
			}
			held <- c.Partition()
			<-hctx.Done()
			return nil
		})
	}()
	<-held
	<-held
	got := lagByPartition(t, reg, "events", "g")
	want := map[string]float64{"0": float64(ends[0] - 3), "1": float64(ends[1])}
	if len(got) != 2 || got["0"] != want["0"] || got["1"] != want["1"] {
		t.Fatalf("lag while held = %v, want %v", got, want)
	}
	// New messages raise the lag.
	for i := 0; i < n; i++ {
		if err := b.Publish(ctx, "events", bus.Message{Key: fmt.Appendf(nil, "visitor-%d", i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	got = lagByPartition(t, reg, "events", "g")
	if got["0"] != float64(2*ends[0]-3) || got["1"] != float64(2*ends[1]) {
		t.Fatalf("lag after %d more = %v, want 0:%d 1:%d", n, got, 2*ends[0]-3, 2*ends[1])
	}
	stop()
	<-done
	if got := lagByPartition(t, reg, "events", "g"); len(got) != 0 {
		t.Fatalf("lag series after the consumer left = %v, want none", got)
	}
}
