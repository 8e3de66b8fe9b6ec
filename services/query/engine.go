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
	if err := s.localize(ctx, q); err != nil { // zone.go
		return nil, err
	}
	resp := &Response{Query: echo(q)}
	resp.Meta.Warnings = append([]string{}, q.warnings...)
	if err := s.prepareSite(ctx, q); err != nil { // goals.go
		return resp, err
	}
	var (
		g   *groups
		err error
	)
	if q.usesGoals() {
		g, err = s.goalGroups(ctx, q, &resp.Meta) // goals.go
	} else {
		g, err = s.answer(ctx, q, &resp.Meta)
	}
	if err != nil {
		return resp, err
	}
	finish(q, g, resp)
	if q.Compare != nil {
		if err := s.compare(ctx, q, resp); err != nil { // compare.go
			return resp, err
		}
	}
	return resp, nil
}

// answer computes the groups of q from rollups or the scan, and says which in meta.
func (s *Service) answer(ctx context.Context, q *Query, meta *Meta) (*groups, error) {
	p := makePlan(q, s.cfg.ForceScan)
	meta.Path = p.path
	meta.PathReason = p.reason
	if p.path == PathRollup {
		meta.Granularity = p.gran.String()
		return s.rollupTiled(ctx, q, p, meta) // tiles.go
	}
	return s.scan(ctx, q, meta)
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
	mixedVals   []string // values of the event dimensions of filters that also compare visit dimensions

	// rev is the event's revenue, kept only when the query asks for revenue.
	rev *event.Revenue
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
// viewed) and, when the query uses the entry or exit page, before it too. A visit longer than the
// margin is seen cut at the window's edge: see docs/api.md.
func (s *Service) scan(ctx context.Context, q *Query, meta *Meta) (*groups, error) {
	from, to := q.Range.From.UnixMilli(), q.Range.To.UnixMilli()
	margin := s.cfg.VisitMargin.Milliseconds()
	usesEntry := usesDimension(q, dims.EntryPage)
	usesPages := usesEntry || usesDimension(q, dims.ExitPage)
	lo, hi := from, to+margin
	if usesPages {
		// a visit going on at the start of the range may have viewed its entry page, and
		// its exit page too when it only sends custom events afterwards, before the range
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
	// A filter on event dimensions only is decided per event as it is read, one on visit
	// dimensions only per visit once the visit is whole; one comparing both is decided per
	// event once its visit is whole, so each event keeps the values it compares (mixedDims).
	var (
		eventFilters, visitFilters, mixedFilters []*Filter
		mixedDims                                []string
	)
	for i := range q.Filters {
		f := &q.Filters[i]
		fdims := f.dimensions(nil)
		onEvents, onVisits := false, false
		for _, d := range fdims {
			if dims.IsEvent(d) {
				onEvents = true
			} else {
				onVisits = true
			}
		}
		switch {
		case onEvents && onVisits:
			mixedFilters = append(mixedFilters, f)
			for _, d := range fdims {
				if dims.IsEvent(d) && !slices.Contains(mixedDims, d) {
					mixedDims = append(mixedDims, d)
				}
			}
		case onEvents:
			eventFilters = append(eventFilters, f)
		default:
			visitFilters = append(visitFilters, f)
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
		if q.revenue != nil && !ev.pageview {
			ev.rev = e.Revenue
		}
		if usesPages {
			ev.path = e.Path
		}
		for _, f := range eventFilters {
			if !evalOn(f, func(d string) string { v, _ := dims.EventValue(d, e); return v }) {
				ev.kept = false
				break
			}
		}
		if len(mixedDims) > 0 {
			ev.mixedVals = make([]string, len(mixedDims))
			for i, d := range mixedDims {
				ev.mixedVals[i], _ = dims.EventValue(d, e)
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
		b := bucketStartIn(td, floorDiv(ms, 1000), q.Location)
		l, ok := labels[b]
		if !ok {
			l = formatLabelIn(td, b, q.Location)
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
		visitValue := func(d string) string { val, _ := dims.VisitValue(d, &visit); return val }
		for _, f := range visitFilters {
			if !evalOn(f, visitValue) {
				keepVisit = false
				break
			}
		}
		if !keepVisit {
			continue
		}
		for i := range v.evs {
			e := &v.evs[i]
			if len(mixedFilters) == 0 {
				break
			}
			if !e.kept || e.engagement {
				continue
			}
			value := func(d string) string {
				if j := slices.Index(mixedDims, d); j >= 0 {
					return e.mixedVals[j]
				}
				return visitValue(d)
			}
			for _, f := range mixedFilters {
				if !f.Eval(value) {
					e.kept = false
					break
				}
			}
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
					a.rev.add(e.rev)
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
	for i := range q.Filters {
		if slices.Contains(q.Filters[i].dimensions(nil), d) {
			return true
		}
	}
	return false
}

// evalOn reports whether f holds for the values value gives; a comparison reads one value.
func evalOn(f *Filter, value func(d string) string) bool {
	if !f.isLogical() {
		return f.Match(value(f.Dimension))
	}
	return f.Eval(value)
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
