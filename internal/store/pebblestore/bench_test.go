package pebblestore

import (
	"context"
	"fmt"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// benchRows is one processor flush: rows of a few dimensions over a few minutes.
func benchRows(n int, round int64) []store.Row {
	rows := make([]store.Row, n)
	sketch := make([]byte, 120) // a typical sparse sketch
	for i := range rows {
		rows[i] = store.Row{
			RowKey: store.RowKey{
				Site: "example.com", Granularity: store.Minute, Dimension: "event:page",
				Bucket: 1_741_564_800 + 60*int64(i%10), Value: fmt.Sprintf("/docs/page-%04d", i/10), Shard: int32(i % 4),
			},
			Aggregate: store.Aggregate{Pageviews: round + int64(i), Visits: 3, Bounces: 1, DurationMS: 120_000, Visitors: sketch},
			Offset:    round*1000 + int64(i),
		}
	}
	return rows
}

func BenchmarkWriteRows(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s := mustOpen(b, b.TempDir(), testOptions())
			defer s.Close()
			ctx := context.Background()
			rows := benchRows(n, 0)
			b.ReportAllocs()
			b.ResetTimer()
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

func BenchmarkScanRows(b *testing.B) {
	s := mustOpen(b, b.TempDir(), testOptions())
	defer s.Close()
	ctx := context.Background()
	// 20k rows over 10 minute buckets, 1000 pages and 4 shards, plus a neighbour dimension.
	for round := int64(0); round < 10; round++ {
		rows := benchRows(4000, round)
		for i := range rows {
			rows[i].Value = fmt.Sprintf("/docs/page-%04d", int64(i/40)+100*round)
		}
		if err := s.WriteRows(ctx, rows); err != nil {
			b.Fatal(err)
		}
		for i := range rows {
			rows[i].Dimension = "visit:source"
		}
		if err := s.WriteRows(ctx, rows); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		r    store.RowRange
	}{
		{"ten-buckets", store.RowRange{Site: "example.com", Granularity: store.Minute, Dimension: "event:page", From: 1_741_564_800, To: 1_741_564_800 + 600}},
		{"one-bucket", store.RowRange{Site: "example.com", Granularity: store.Minute, Dimension: "event:page", From: 1_741_564_800 + 300, To: 1_741_564_800 + 360}},
		{"values=2-of-1000", store.RowRange{Site: "example.com", Granularity: store.Minute, Dimension: "event:page", From: 1_741_564_800, To: 1_741_564_800 + 600,
			Values: []string{"/docs/page-0042", "/docs/page-0777"}}},
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
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

func BenchmarkScanEvents(b *testing.B) {
	s := mustOpen(b, b.TempDir(), testOptions())
	defer s.Close()
	ctx := context.Background()
	const day0 = 1_741_564_800_000
	payload := make([]byte, 300)
	evs := make([]store.StoredEvent, 0, 1000)
	for i := int64(0); i < 30_000; i++ { // 3 days, 4 shards
		evs = append(evs, store.StoredEvent{Site: "example.com", Shard: int32(i % 4), Offset: i, Time: day0 + i*8640, SessionID: uint64(i / 5), Payload: payload})
		if len(evs) == cap(evs) {
			if err := s.WriteEvents(ctx, evs); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
	b.Run("one-day-of-3", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if err := s.ScanEvents(ctx, store.EventRange{Site: "example.com", From: day0 + 86_400_000 + 3_600_000, To: day0 + 2*86_400_000 + 3_600_000},
				func(store.StoredEvent) error { n++; return nil }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	})
}
