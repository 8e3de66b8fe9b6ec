package query

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/sketch"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Execute answers a parsed query from the store: from rollup rows when a rollup holds the
// answer, otherwise by scanning stored events (see makePlan).
func (s *Service) Execute(ctx context.Context, q *Query) (*Response, error) {
	p := makePlan(q, s.cfg.ForceScan)
	resp := &Response{Query: echo(q)}
	resp.Meta.Path = p.path
	resp.Meta.PathReason = p.reason
	resp.Meta.Warnings = append([]string{}, q.warnings...)
	var (
		g   *groups
		err error
	)
	if p.path == PathRollup {
		resp.Meta.Granularity = p.gran.String()
		g, err = s.rollup(ctx, q, p, &resp.Meta)
	} else {
		g, err = s.scan(ctx, q, &resp.Meta)
	}
	if err != nil {
		return resp, err
	}
	finish(q, g, resp)
	return resp, nil
}

// ctxCheckEvery is how many rows or events pass between checks of the request's context.
const ctxCheckEvery = 4096

// errScanLimit stops a scan that would read more than Config.MaxScanEvents events.
var errScanLimit = errors.New("scan limit reached")

// scanEvent is what the scan keeps of one stored event.
type scanEvent struct {
	t           int64 // Unix ms
	shard       int32
	offset      int64
	vid         uint64
	pageview    bool
	interactive bool
	engagement  bool     // only extends its visit (docs/metrics.md)
	kept        bool     // passes every event filter
	path        string   // for entry and exit pages
	vals        []string // values of the query's event dimensions, by dimension index
}

// scanVisit gathers the events of one visit seen in the scan window.
type scanVisit struct {
	start  int64        // SessionStart, Unix ms
	first  *event.Event // earliest event seen: carries the visit's attributes
	firstT int64
	evs    []scanEvent
}

// scan answers q from stored events, following docs/metrics.md:
//
//   - events are grouped into visits by SessionID; a visit is counted (visits, bounces,
//     duration) when its SessionStart lies in range, in the time bucket of its start;
//   - page views, custom events and visitors count the events whose own time is in range;
//   - an engagement event only makes its visit last until its time: it counts in no metric
//     and no breakdown and is never an interaction;
//   - a filter on a visit dimension keeps or drops whole visits; a filter on an event
//     dimension keeps the matching events, and a visit counts when it keeps at least one;
//   - under an event-dimension breakdown a visit counts once for every value its kept events
//     have, under a visit dimension once for its own value.
//
// The window read is the date range widened by Config.VisitMargin after it (so visits that
// started in range are seen whole for their duration, bounce, exit page and the pages they
// viewed) and, when the query uses the entry page, before it too. A visit longer than the
// margin is seen cut at the window's edge: see docs/api.md.
func (s *Service) scan(ctx context.Context, q *Query, meta *Meta) (*groups, error) {
	from, to := q.Range.From.UnixMilli(), q.Range.To.UnixMilli()
	margin := s.cfg.VisitMargin.Milliseconds()
	usesEntry := usesDimension(q, dims.EntryPage)
	usesPages := usesEntry || usesDimension(q, dims.ExitPage)
	lo, hi := from, to+margin
	if usesEntry {
		lo = from - margin
	}

	nd := len(q.Dimensions)
	eventDim := make([]bool, nd)
	hasEventDims := false
	for i, d := range q.Dimensions {
		if !isTimeDim(d) && dims.IsEvent(d) {
			eventDim[i], hasEventDims = true, true
		}
	}
	var eventFilters, visitFilters []*Filter
	for i := range q.Filters {
		if dims.IsEvent(q.Filters[i].Dimension) {
			eventFilters = append(eventFilters, &q.Filters[i])
		} else {
			visitFilters = append(visitFilters, &q.Filters[i])
		}
	}

	visits := map[uint64]*scanVisit{}
	var (
		scanned, unreadable int64
		firstBad            error
	)
	limit := int64(s.cfg.MaxScanEvents)
	err := s.store.ScanEvents(ctx, store.EventRange{Site: q.SiteID, From: lo, To: hi}, func(se store.StoredEvent) error {
		scanned++
		if scanned > limit {
			return errScanLimit
		}
		if scanned%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if se.Site != q.SiteID || se.Time < lo || se.Time >= hi {
			return nil
		}
		e, err := event.Decode(se.Payload)
		if err != nil {
			unreadable++
			if firstBad == nil {
				firstBad = err
			}
			return nil
		}
		ev := scanEvent{
			t: se.Time, shard: se.Shard, offset: se.Offset, vid: e.VisitorID,
			pageview: e.IsPageview(), interactive: e.Interactive, engagement: e.IsEngagement(), kept: true,
		}
		if usesPages {
			ev.path = e.Path
		}
		for _, f := range eventFilters {
			if v, _ := dims.EventValue(f.Dimension, e); !f.Match(v) {
				ev.kept = false
				break
			}
		}
		if hasEventDims {
			ev.vals = make([]string, nd)
			for i, d := range q.Dimensions {
				if eventDim[i] {
					ev.vals[i], _ = dims.EventValue(d, e)
				}
			}
		}
		v := visits[se.SessionID]
		if v == nil {
			v = &scanVisit{start: se.SessionStart, first: e, firstT: se.Time}
			visits[se.SessionID] = v
		} else if se.Time < v.firstT {
			v.first, v.firstT = e, se.Time
		}
		v.evs = append(v.evs, ev)
		return nil
	})
	if scanned > limit {
		scanned = limit
	}
	meta.EventsScanned = scanned
	s.metrics.eventsScanned.Add(float64(scanned))
	if errors.Is(err, errScanLimit) {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf(
			"this query needs to scan more than %d stored events (query.max-scan-events), because %s; shorten date_range, or drop filters and breakdowns so that rollups can answer it",
			limit, meta.PathReason)}
	}
	if err != nil {
		return nil, err
	}
	if unreadable > 0 {
		meta.Warnings = append(meta.Warnings, fmt.Sprintf("%d stored events could not be read and were left out (first error: %v)", unreadable, firstBad))
	}

	g := newGroups(q, true)
	tdIdx := -1
	var td string
	for i, d := range q.Dimensions {
		if isTimeDim(d) {
			tdIdx, td = i, d
		}
	}
	labels := map[int64]string{}
	label := func(ms int64) string {
		b := bucketStart(td, floorDiv(ms, 1000))
		l, ok := labels[b]
		if !ok {
			l = formatLabel(td, b)
			labels[b] = l
		}
		return l
	}

	var (
		entryGuessed int
		visitKeys    []gkey
		n            int
	)
	for _, v := range visits {
		if n++; n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		slices.SortFunc(v.evs, func(a, b scanEvent) int {
			if c := cmp.Compare(a.t, b.t); c != 0 {
				return c
			}
			if c := cmp.Compare(a.shard, b.shard); c != 0 {
				return c
			}
			return cmp.Compare(a.offset, b.offset)
		})
		var (
			visit       = dims.Visit{First: v.first}
			pageviews   int
			interactive bool
			inRange     bool // the visit has events in range
			last        = v.start
		)
		for i := range v.evs {
			e := &v.evs[i]
			last = max64(last, e.t)
			if e.engagement {
				continue
			}
			if e.pageview {
				if pageviews == 0 {
					visit.EntryPage = e.path
				}
				visit.ExitPage = e.path
				pageviews++
			} else if e.interactive {
				interactive = true
			}
			inRange = inRange || (e.t >= from && e.t < to)
		}
		visit.DurationMS = last - v.start
		keepVisit := true
		for _, f := range visitFilters {
			if val, _ := dims.VisitValue(f.Dimension, &visit); !f.Match(val) {
				keepVisit = false
				break
			}
		}
		if !keepVisit {
			continue
		}
		if usesEntry && v.start < lo && inRange {
			entryGuessed++
		}

		var base gkey
		for i, d := range q.Dimensions {
			if !isTimeDim(d) && !eventDim[i] {
				base[i], _ = dims.VisitValue(d, &visit)
			}
		}
		counted := v.start >= from && v.start < to
		visitKeys = visitKeys[:0]
		for i := range v.evs {
			e := &v.evs[i]
			if !e.kept || e.engagement {
				continue
			}
			k := base
			for j := range nd {
				if eventDim[j] {
					k[j] = e.vals[j]
				}
			}
			if e.t >= from && e.t < to {
				ek := k
				if tdIdx >= 0 {
					ek[tdIdx] = label(e.t)
				}
				a := g.get(ek)
				if e.pageview {
					a.pageviews++
				} else {
					a.events++
				}
				if a.ids != nil {
					a.ids[e.vid] = struct{}{}
				}
			}
			if counted {
				if tdIdx >= 0 {
					k[tdIdx] = label(v.start)
				}
				if !slices.Contains(visitKeys, k) {
					visitKeys = append(visitKeys, k)
				}
			}
		}
		var bounce int64
		if pageviews == 1 && !interactive {
			bounce = 1
		}
		for _, k := range visitKeys {
			a := g.get(k)
			a.visits++
			a.bounces += bounce
			a.durationMS += last - v.start
		}
	}
	if entryGuessed > 0 {
		meta.Warnings = append(meta.Warnings, fmt.Sprintf(
			"%d visits started more than %s before the date range; their entry page is the first page they viewed in range", entryGuessed, s.cfg.VisitMargin))
	}
	return g, nil
}

// usesDimension reports whether q breaks down or filters by d.
func usesDimension(q *Query, d string) bool {
	if contains(q.Dimensions, d) {
		return true
	}
	for _, f := range q.Filters {
		if f.Dimension == d {
			return true
		}
	}
	return false
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// RealtimeVisitors counts the distinct visitors of site in the last five minutes (the
// current minute and the four before it), from the minute totals rows.
func (s *Service) RealtimeVisitors(ctx context.Context, site string) (int64, error) {
	now := s.now().UTC()
	end := now.Truncate(time.Minute).Add(time.Minute)
	from := end.Add(-RealtimeVisitorsWindow)
	var (
		sk   sketch.Union
		read int64
	)
	err := s.visitRows(ctx, store.RowRange{
		Site: site, Granularity: store.Minute, Dimension: store.TotalsDimension,
		From: from.Unix(), To: end.Unix(),
	}, func(r *store.Row) error {
		read++
		if r.Site != site || r.Dimension != store.TotalsDimension || r.Bucket < from.Unix() || r.Bucket >= end.Unix() {
			return nil
		}
		return sk.Add(r.Visitors)
	})
	s.metrics.rowsRead.Add(float64(read))
	if err != nil {
		return 0, err
	}
	return sk.Estimate(), nil
}
