package query

import (
	"context"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// tile is a span [from, to) of Unix seconds read at one granularity.
type tile struct {
	from, to int64
	gran     store.Granularity
}

// tileRange splits [from, to) into spans each read at the coarsest granularity whose
// buckets fit in it, finest at the edges: a 30-day range of a Europe/Berlin site (from
// 23:00 UTC to 23:00 UTC) is one hour, 29 UTC days and 23 hours; one of Asia/Kolkata (from
// 18:30 UTC) adds 30 minutes at each end. finest must tile [from, to).
func tileRange(from, to int64, finest store.Granularity) []tile {
	var out []tile
	var split func(from, to int64, g store.Granularity)
	split = func(from, to int64, g store.Granularity) {
		if from >= to {
			return
		}
		if g <= finest {
			out = append(out, tile{from, to, finest})
			return
		}
		w := int64(g.Duration() / time.Second)
		a := floorDiv(from+w-1, w) * w // first bucket start at or after from
		b := floorDiv(to, w) * w       // last bucket end at or before to
		if a >= b {
			split(from, to, g-1)
			return
		}
		split(from, a, g-1)
		out = append(out, tile{a, b, g})
		split(b, to, g-1)
	}
	split(from, to, store.Day)
	return out
}

// rollupTiled answers q from rollups like rollup, reading the whole UTC days and hours
// inside the range from the coarser rows when the range's edges need finer ones: the
// rows of the days in between hold the same counts as their hours, in 24 times fewer
// rows. Queries with a time dimension read one granularity throughout, since the buckets
// of a site's time zone need not align with UTC days.
func (s *Service) rollupTiled(ctx context.Context, q *Query, p plan, meta *Meta) (*groups, error) {
	if q.timeDim() != "" || p.gran == store.Day {
		return s.rollup(ctx, q, p, meta)
	}
	tiles := tileRange(q.Range.From.Unix(), q.Range.To.Unix(), p.gran)
	if len(tiles) <= 1 {
		return s.rollup(ctx, q, p, meta)
	}
	var g *groups
	for _, t := range tiles {
		tq, tp := *q, p
		tq.Range.From, tq.Range.To = time.Unix(t.from, 0).UTC(), time.Unix(t.to, 0).UTC()
		tp.gran = t.gran
		var m Meta
		tg, err := s.rollup(ctx, &tq, tp, &m)
		if err != nil {
			return nil, err
		}
		meta.RowsRead += m.RowsRead
		meta.BucketsCached += m.BucketsCached
		if g == nil {
			g = tg
		} else {
			g.merge(tg)
		}
	}
	return g, nil
}
