package kafka

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/bus/bustest"
)

// Benchmarks run against the real broker only:
//
//	deploy/local/kafka.sh start
//	GLIMPSE_TEST_KAFKA=127.0.0.1:9092 go test -run '^$' -bench . -benchtime 20000x ./internal/bus/kafka/
//
// Topics get the default partition count (12), as in production.

// benchValue is about the size of an encoded enriched event (as in bustest).
var benchValue = func() []byte {
	v := make([]byte, 320)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}()

func benchBus(b *testing.B, mutate func(*Config)) (*Bus, string) {
	addr := testBroker(b)
	prefix := runPrefix + "-bench"
	b.Cleanup(func() { deleteTopics(b, addr, prefix) })
	cfg := DefaultConfig()
	cfg.Brokers = []string{addr}
	if mutate != nil {
		mutate(&cfg)
	}
	bb := openTest(b, cfg, Options{})
	topic := fmt.Sprintf("%s-%x", prefix, time.Now().UnixNano())
	if _, err := bb.Partitions(context.Background(), topic); err != nil {
		b.Fatal(err)
	}
	return bb, topic
}

// BenchmarkPublishParallel: N concurrent publishers, one message per Publish (the
// collector's pattern: one request, one event); reports msgs/s and the p50/p99 latency of
// a Publish (until the broker acknowledged it from every in-sync replica).
func BenchmarkPublishParallel(b *testing.B) {
	for _, g := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("publishers=%d", g), func(b *testing.B) {
			benchPublish(b, g, nil)
		})
	}
}

// BenchmarkPublishBatchTimeout compares batch timeouts with 1, 64 and 256 publishers.
func BenchmarkPublishBatchTimeout(b *testing.B) {
	for _, d := range []time.Duration{time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond} {
		for _, g := range []int{1, 64, 256} {
			b.Run(fmt.Sprintf("timeout=%v/publishers=%d", d, g), func(b *testing.B) {
				benchPublish(b, g, func(c *Config) { c.BatchTimeout = d })
			})
		}
	}
}

// BenchmarkPublishCompression compares codecs with 256 publishers.
func BenchmarkPublishCompression(b *testing.B) {
	for _, codec := range []string{"none", "snappy", "lz4", "zstd"} {
		b.Run("codec="+codec, func(b *testing.B) {
			benchPublish(b, 256, func(c *Config) { c.Compression = codec })
		})
	}
}

func benchPublish(b *testing.B, publishers int, mutate func(*Config)) {
	bb, topic := benchBus(b, mutate)
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism(max(1, (publishers+procs-1)/procs))
	var (
		seq sync.Mutex
		all []time.Duration
		n   atomic.Int64
	)
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			key := fmt.Appendf(nil, "example.com/visitor-%d", n.Add(1)%100000)
			t0 := time.Now()
			if err := bb.Publish(ctx, topic, bus.Message{Key: key, Value: benchValue}); err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, time.Since(t0))
		}
		seq.Lock()
		all = append(all, lat...)
		seq.Unlock()
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if len(all) > 0 {
		slices.Sort(all)
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// BenchmarkConsume is bustest's consumer benchmark: one member reads b.N messages from
// every partition with Fetch(max=500), committing after each fetch.
func BenchmarkConsume(b *testing.B) {
	addr := testBroker(b)
	cfg := DefaultConfig()
	cfg.Brokers = []string{addr}
	// bustest names its topics "bustest-bench-…": remove the ones this run created.
	before := topicSet(b, addr)
	b.Cleanup(func() {
		for name := range topicSet(b, addr) {
			if !before[name] && strings.HasPrefix(name, "bustest-bench-") {
				deleteTopics(b, addr, name)
			}
		}
	})
	bustest.BenchConsume(b, func(tb testing.TB) bustest.Open {
		return func(tb testing.TB) bus.Bus {
			bb, err := New(cfg, Options{Logger: testLogger()})
			if err != nil {
				tb.Fatal(err)
			}
			return bb
		}
	}, 500)
}

func topicSet(tb testing.TB, addr string) map[string]bool {
	tb.Helper()
	transport := &kafkago.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafkago.Client{Addr: kafkago.TCP(addr), Timeout: 20 * time.Second, Transport: transport}
	md, err := client.Metadata(context.Background(), &kafkago.MetadataRequest{})
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]bool{}
	for _, t := range md.Topics {
		out[t.Name] = true
	}
	return out
}
