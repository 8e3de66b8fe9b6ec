package cassandra

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// The benchmarks need a node, like the integration tests:
//
//	GLIMPSE_TEST_CASSANDRA=127.0.0.1:9042 go test -run '^$' -bench . ./internal/store/cassandra/

var benchDay0 = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).Unix()

// benchRows is one processor flush: hour rows of five dimensions (five partitions) over ten
// hours, with values, four shards and a typical small sketch.
func benchRows(site string, n int, round int64) []store.Row {
	dims := []string{"event:page", "visit:source", "visit:country", "visit:browser", "visit:entry_page"}
	sketch := make([]byte, 120)
	rows := make([]store.Row, n)
	for i := range rows {
		rows[i] = store.Row{
			RowKey: store.RowKey{
				Site: site, Granularity: store.Hour, Dimension: dims[i%len(dims)],
				Bucket: benchDay0 + 3600*int64(i/len(dims)%10), Value: fmt.Sprintf("/docs/page-%04d", i/50), Shard: int32(i % 4),
			},
			Aggregate: store.Aggregate{Pageviews: round + int64(i), Visits: 3, Bounces: 1, DurationMS: 120_000, Visitors: sketch},
			Offset:    round*1000 + int64(i),
		}
	}
	return rows
}

func BenchmarkWriteRows(b *testing.B) {
	needNode(b)
	s := openTest(b, testConfig(testKeyspace), Options{})
	defer s.Close()
	ctx := context.Background()
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			rows := benchRows(fmt.Sprintf("bench-write-%x.example", rand.Uint64()), n, 0)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				for j := range rows {
					rows[j].Offset = int64(i)
				}
				if err := s.WriteRows(ctx, rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkScanRows30Days scans the 30 daily partitions of a 30-day range, the read behind a
// "30d" dashboard card.
func BenchmarkScanRows30Days(b *testing.B) {
	needNode(b)
	s := openTest(b, testConfig(testKeyspace), Options{})
	defer s.Close()
	ctx := context.Background()
	site := fmt.Sprintf("bench-scan-%x.example", rand.Uint64())
	const days, pages, shards = 30, 20, 4
	sketch := make([]byte, 120)
	write := func(g store.Granularity, dim string, perDay int64, values int) int {
		t0 := time.Now()
		var rows []store.Row
		n := 0
		w := int64(g.Duration() / time.Second)
		for i := int64(0); i < days*perDay; i++ {
			for v := range values {
				for sh := int32(0); sh < shards; sh++ {
					value := ""
					if values > 1 {
						value = fmt.Sprintf("/page-%02d", v)
					}
					rows = append(rows, store.Row{
						RowKey:    store.RowKey{Site: site, Granularity: g, Dimension: dim, Bucket: benchDay0 + i*w, Value: value, Shard: sh},
						Aggregate: store.Aggregate{Pageviews: i, Visits: 1, Visitors: sketch},
						Offset:    i,
					})
					if len(rows) == 2000 {
						if err := s.WriteRows(ctx, rows); err != nil {
							b.Fatal(err)
						}
						n += len(rows)
						rows = rows[:0]
					}
				}
			}
		}
		if err := s.WriteRows(ctx, rows); err != nil {
			b.Fatal(err)
		}
		n += len(rows)
		b.Logf("wrote %d %s rows of %q in %v", n, g, dim, time.Since(t0).Round(time.Millisecond))
		return n
	}
	write(store.Day, "event:page", 1, pages)
	write(store.Hour, "event:page", 24, pages)
	write(store.Minute, store.TotalsDimension, 1440, 1)

	to := benchDay0 + days*secondsPerDay
	cases := []struct {
		name string
		r    store.RowRange
	}{
		{"day/event:page", store.RowRange{Site: site, Granularity: store.Day, Dimension: "event:page", From: benchDay0, To: to}},
		{"hour/event:page", store.RowRange{Site: site, Granularity: store.Hour, Dimension: "event:page", From: benchDay0, To: to}},
		{"hour/event:page/values=2", store.RowRange{Site: site, Granularity: store.Hour, Dimension: "event:page", From: benchDay0, To: to, Values: []string{"/page-03", "/page-17"}}},
		{"minute/totals", store.RowRange{Site: site, Granularity: store.Minute, Dimension: store.TotalsDimension, From: benchDay0, To: to}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if err := s.ScanRows(ctx, c.r, func(store.Row) error { n++; return nil }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/float64(b.N), "rows/op")
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
