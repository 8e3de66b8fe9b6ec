package processor

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// CheckpointNamespace is the store Meta namespace of processor checkpoints.
const CheckpointNamespace = "checkpoints"

// CheckpointKey is the Meta key of the checkpoint of one partition of topic consumed by
// group. The rows-high mark lives at CheckpointKey + "/rows-high", large checkpoints
// spill into CheckpointKey + "/chunk/<generation>/<n>".
func CheckpointKey(topic, group string, partition int32) string {
	return fmt.Sprintf("%s/%s/%d", topic, group, partition)
}

// Partition sessionises and aggregates the events of one bus partition (one shard of the
// rollups). It is not safe for concurrent use: one goroutine owns it; partitions are
// independent and can run in parallel.
//
// The bus handler of Processor drives it, and a bulk loader can drive it directly:
//
//	p, err := processor.OpenPartition(ctx, cfg, deps, shard)
//	for each event of the shard, with strictly increasing offsets from p.Next():
//		p.Prepare(ctx, ev) // reads the day's custom-property values when needed; retry on error
//		p.Apply(offset, ev)
//		every 10k-50k events: p.Flush(ctx)
//	p.Checkpoint(ctx) // flushes, then stores the position and open visits
//	p.Close()
//
// Memory grows with the events between flushes (their encoded payloads), the open visits,
// the cached rows (Config.MaxCachedRows) and the custom-property values of the days open
// to events (Config.MaxPropValues per set, at most maxPropSets sets).
//
// A loader must keep all events of one visitor (site and visitor id) in one shard, in
// time order, and must use shard numbers no bus partition uses (say 1<<20 and up): rows
// remember the highest offset of their shard, so a bus partition with the same number
// would take its own events at those offsets for already counted.
type Partition struct {
	st      store.Store
	log     *slog.Logger
	m       *metrics
	shard   int32
	key     string // checkpoint key
	highKey string // rows-high mark key, RowsHighKey
	sealKey string // store.SealKey of this partition
	sealed  int64  // seal last stored (see storeSeal); 0 when none

	lateMS, graceMS int64
	maxRows         int

	rows          *rowCache
	pendingRows   []*rowEntry
	dirtyRows     []*rowEntry
	recomputeRows []*rowEntry
	sessions      map[visitorKey]*session
	deferred      []*session // sessions whose visit rows lag behind them
	intern        *interner
	attrBuf       []byte // scratch of packVisitAttrs
	propDims      map[string]string

	maxPropValues int                                // Config.MaxPropValues
	propSets      map[propSetKey]map[string]struct{} // see propvalues.go

	events        []store.StoredEvent
	eventsWritten int // prefix of events already in the store

	last         int64 // last offset applied or skipped
	cur          int64 // offset of the event being applied
	flushed      int64 // last offset whose effects are all in the store
	checkpointed int64 // next offset recorded by the stored checkpoint; -1 when none
	rowsHigh     int64 // no stored row of this shard had a higher Row.Offset when opened
	storedHigh   int64 // rows-high mark as stored now

	watermark int64 // newest event time seen (Unix ms)
	seen      bool

	epoch    uint32 // number of flushes
	resumed  bool
	ckptGen  uint64
	ckptSize int // chunks of the stored checkpoint (0 = inline)

	stats    Stats
	reported Stats
	repSess  int
	repRows  int
	repBytes int // sketch bytes last added to the gauge
	repSets  int // value sets last added to the gauge
}

// Stats counts what a Partition did since it was opened.
type Stats struct {
	Processed   int64 // events folded in
	LateDropped int64 // events older than watermark - lateness
	Duplicates  int64 // resends: events whose id their open visit had already seen
	Skipped     int64 // offsets skipped (undecodable messages)
	RowsWritten int64
	Flushes     int64
	Checkpoints int64

	EngagementDropped int64 // engagement events without an open visit to extend
	PropValuesFolded  int64 // custom-property values counted as dims.OtherValue
}

// OpenPartition loads the checkpoint of shard (partition number) of cfg.Topic/cfg.Group
// from deps.Store and returns a Partition that continues from it. Without a checkpoint it
// starts empty at offset 0 (see StartAt). Only deps.Store, deps.Log and deps.Metrics are
// used.
func OpenPartition(ctx context.Context, cfg Config, deps Deps, shard int32) (*Partition, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	deps = deps.withDefaults()
	return openPartition(ctx, cfg, deps, newMetrics(deps.Metrics), shard)
}

func openPartition(ctx context.Context, cfg Config, deps Deps, m *metrics, shard int32) (*Partition, error) {
	if deps.Store == nil {
		return nil, fmt.Errorf("processor: no store")
	}
	p := &Partition{
		st:            deps.Store,
		log:           deps.Log.With("partition", shard),
		m:             m,
		shard:         shard,
		key:           CheckpointKey(cfg.Topic, cfg.Group, shard),
		highKey:       RowsHighKey(cfg.Topic, shard),
		sealKey:       store.SealKey(cfg.Topic, cfg.Group, shard),
		lateMS:        cfg.Lateness.Milliseconds(),
		graceMS:       cfg.SessionGrace.Milliseconds(),
		maxRows:       cfg.MaxCachedRows,
		rows:          newRowCache(),
		sessions:      make(map[visitorKey]*session),
		intern:        newInterner(100_000),
		propDims:      make(map[string]string),
		maxPropValues: cfg.MaxPropValues,
		propSets:      make(map[propSetKey]map[string]struct{}),
		last:          -1,
		flushed:       -1,
		checkpointed:  -1,
		rowsHigh:      -1,
		storedHigh:    -1,
	}
	if err := p.load(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Resumed reports whether a checkpoint was found.
func (p *Partition) Resumed() bool { return p.resumed }

// Next is the offset of the next message to apply.
func (p *Partition) Next() int64 { return p.last + 1 }

// StartAt sets the offset of the first message of a partition that has no checkpoint
// (the bus's committed position). It does nothing once a checkpoint was loaded or an
// offset was applied.
func (p *Partition) StartAt(next int64) {
	if p.resumed || p.last != -1 || next <= 0 {
		return
	}
	p.last, p.flushed = next-1, next-1
}

// Stats returns the counters of the partition.
func (p *Partition) Stats() Stats { return p.stats }

// OpenSessions is the number of visits held in memory.
func (p *Partition) OpenSessions() int { return len(p.sessions) }

// CachedRows is the number of rollup rows held in memory.
func (p *Partition) CachedRows() int { return p.rows.n }

// Watermark is the newest event time (Unix ms) seen on the partition; ok is false before
// the first event.
func (p *Partition) Watermark() (ms int64, ok bool) { return p.watermark, p.seen }

// Skip records that offset was consumed without an event (an undecodable message), so
// the next flush and checkpoint move past it.
func (p *Partition) Skip(offset int64) {
	if offset > p.last {
		p.last = offset
		p.stats.Skipped++
	}
}

// Apply folds the event at offset into the partition's visits and rows. Offsets must
// increase; an offset at or below the last one applied is ignored. It returns false when
// the event was not counted: a repeated offset, later than the lateness allows, a resend
// (an event id the open visit has already seen: it changes nothing, not even the
// watermark), or an engagement event without an open visit to extend.
// Apply reads no rollup row: rows it has not seen yet are loaded by the next Flush (or
// Resolve), and ev is not kept or modified. It reads the custom-property values of a day
// that Prepare has not read yet (see propvalues.go); if that read fails it returns false
// without consuming the offset, so call Prepare first to handle store errors.
func (p *Partition) Apply(offset int64, ev *event.Event) bool {
	if ev == nil || offset <= p.last {
		return false
	}
	if err := p.Prepare(context.Background(), ev); err != nil {
		p.log.Error("event not applied: its custom-property values could not be read", "offset", offset, "err", err)
		return false
	}
	p.last, p.cur = offset, offset
	t := ev.Time
	if p.seen && t < p.watermark-p.lateMS {
		p.stats.LateDropped++
		return false
	}
	var idHash uint64
	if ev.ID != "" {
		idHash = eventIDHash(ev.ID)
		// only a visit that would take the event can have seen it
		if s := p.sessions[visitorKey{ev.Site, ev.VisitorID}]; s != nil &&
			!p.ended(s, t, max(p.watermark, t)) && t >= s.start-visitTimeoutMS && s.seenID(idHash) {
			p.stats.Duplicates++
			return false
		}
	}
	if !p.seen || t > p.watermark {
		p.watermark, p.seen = t, true
	}

	key := visitorKey{ev.Site, ev.VisitorID}
	s := p.sessions[key]
	// A visit is over after 30 minutes without an event, or once the partition's newest
	// event is more than 30 minutes (plus grace) past its last one: deciding on the
	// watermark rather than on when the session happens to be evicted keeps a replay
	// deterministic.
	if s != nil && p.ended(s, t, p.watermark) {
		p.closeSession(s)
		delete(p.sessions, key)
		s = nil
	}
	if ev.IsEngagement() && (s == nil || t < s.start-visitTimeoutMS) {
		// An engagement event only extends the visit of the page it reports on: it never
		// starts one, so without an open visit to extend it counts nowhere.
		p.stats.EngagementDropped++
		return false
	}
	isNew, transient := false, false
	switch {
	case s == nil:
		s = p.newSession(ev, t)
		p.sessions[visitorKey{s.site, s.vid}] = s
		isNew = true
	case t < s.start-visitTimeoutMS:
		// A delayed event from before the open visit (and out of its reach): it is a
		// visit of its own, and nothing later can join it.
		s = p.newSession(ev, t)
		isNew, transient = true, true
	}
	// An event a little older than its visit's start (clock skew between collectors)
	// joins the visit at its start, so no event of a visit is ever before SessionStart.
	t = max(t, s.start)
	if !ev.IsEngagement() {
		// Before both the rows and the stored event take the values, so the rollups and
		// the event scan agree.
		ev = p.foldProps(ev, store.Day.Truncate(t))
	}

	if ev.ID != "" {
		s.rememberID(idHash)
	}
	p.fold(s, ev, t, isNew)
	p.keep(s, ev, t)
	if transient {
		p.closeSession(s)
	}
	p.stats.Processed++
	return true
}

// ended reports whether visit s can no longer take an event at time t when the
// partition's newest event time is watermark (see Apply).
func (p *Partition) ended(s *session, t, watermark int64) bool {
	return t > s.last+visitTimeoutMS || watermark-s.last > visitTimeoutMS+p.graceMS
}

// fold applies the effects of one event (at time t, already clamped) on the rollups.
func (p *Partition) fold(s *session, ev *event.Event, t int64, isNew bool) {
	if ev.IsEngagement() {
		// Not a page view or a custom event: no counts, no visitor, no breakdown value. The
		// visitor was still there at t, so the visit lasts at least until then.
		s.last = max(s.last, t)
		p.catchUp(s)
		return
	}
	pageview := ev.IsPageview()
	entry0, exit0 := s.entry, s.exit
	if pageview {
		s.pageviews++
		if t >= s.exitAt {
			s.exit, s.exitAt = p.intern.get(ev.Path), t
		}
		if t < s.entryAt {
			s.entry, s.entryAt = p.intern.get(ev.Path), t
		}
	} else if ev.Interactive {
		s.interactive++
	}
	s.last = max(s.last, t)

	// Visits, bounces and durations live in the rows of the visit's start bucket (they
	// follow at the end).
	if !isNew {
		if s.entry != entry0 {
			p.move(s, entrySlot, entry0, s.entry)
		}
		if s.exit != exit0 {
			p.move(s, exitSlot, exit0, s.exit)
		}
	}

	s.active = true

	// Page views, events and visitors live in the rows of the event's own bucket. A visit
	// adds its visitor to a row only with its first event in the row's bucket: adding it
	// again would change nothing.
	c := counts{events: 1}
	if pageview {
		c = counts{pageviews: 1}
	}
	minute, hour, day := store.Minute.Truncate(t), store.Hour.Truncate(t), store.Day.Truncate(t)
	newHour := !s.hasHour(hour)
	newDay := newHour && !s.hasDay(day)
	newMinute := minute != s.lastMinute
	s.lastMinute = minute
	p.eventRow(p.row(s.site, store.Minute, store.TotalsDimension, minute, ""), c, s.vid, newMinute)
	p.eventRow(p.row(s.site, store.Hour, store.TotalsDimension, hour, ""), c, s.vid, newHour)
	p.eventRow(p.row(s.site, store.Day, store.TotalsDimension, day, ""), c, s.vid, newDay)
	rows := p.evRows(s, hour, day)
	for i := 0; i < len(rows); i += 2 {
		h, dd := p.fresh(rows[i]), p.fresh(rows[i+1])
		rows[i], rows[i+1] = h, dd
		p.eventRow(h, c, s.vid, newHour)
		p.eventRow(dd, c, s.vid, newDay)
		if newHour && h.movable {
			p.joinVisitor(h, s.vid) // an open visit joins (see rowEntry)
		}
		if newDay && dd.movable {
			p.joinVisitor(dd, s.vid)
		}
	}
	for _, d := range eventDims {
		val, _ := dims.EventValue(d, ev)
		p.eventValue(s, d, val, hour, day, c)
	}
	if len(ev.Props) > 0 {
		keys := make([]string, 0, len(ev.Props))
		for k := range ev.Props {
			keys = append(keys, k)
		}
		slices.Sort(keys) // the order values join a full visit must not depend on map order
		for _, k := range keys {
			d := p.propDim(k)
			val, _ := dims.EventValue(d, ev)
			p.eventValue(s, d, val, hour, day, c)
		}
	}
	s.countHour(hour, pageview)

	p.catchUp(s)
}

// catchUp makes the visit rows follow the visit after an event changed it. The visit
// (new, or its bounce and duration changed) reaches the visit rows at the next flush, once
// for all its events since the last one: no row the store holds can be newer than them.
// Events the store may already hold (a replay) settle one by one, each under its own
// offset.
func (p *Partition) catchUp(s *session) {
	if s.behind() {
		if p.cur <= p.rowsHigh {
			p.settleVisit(s)
		} else if !s.deferred {
			s.deferred = true
			p.deferred = append(p.deferred, s)
		}
	}
}

// evRows returns the visit-dimension rows of the session at hour bucket hour and its day.
func (p *Partition) evRows(s *session, hour, day int64) []*rowEntry {
	if s.evRows != nil && s.evHour == hour {
		return s.evRows
	}
	rows := s.evRows[:0]
	if rows == nil {
		rows = make([]*rowEntry, 0, 2*len(visitDims))
	}
	var first event.Event
	v := s.visit(&first)
	for _, d := range visitDims {
		val, _ := dims.VisitValue(d, &v)
		rows = append(rows, p.row(s.site, store.Hour, d, hour, val), p.row(s.site, store.Day, d, day, val))
	}
	s.evRows, s.evHour = rows, hour
	return rows
}

// eventRow counts an event in row r, and its visitor when first is set.
func (p *Partition) eventRow(r *rowEntry, c counts, vid uint64, first bool) {
	p.add(r, c)
	if first {
		p.addVisitor(r, vid)
	}
}

// eventValue counts an event under value v of event dimension d, and the visit under it
// the first time the visit has that value.
func (p *Partition) eventValue(s *session, d, v string, hour, day int64, c counts) {
	h, dd := p.row(s.site, store.Hour, d, hour, v), p.row(s.site, store.Day, d, day, v)
	p.add(h, c)
	p.add(dd, c)
	dv := dimValue{d, v}
	i := s.valueIndex(dv)
	if i >= 0 {
		last := s.values[i].hour
		if last != hour {
			p.addVisitor(h, s.vid)
			if last == noHour || store.Day.Truncate(last*1000) != day {
				p.addVisitor(dd, s.vid)
			}
			s.values[i].hour = hour
		}
		return
	}
	p.addVisitor(h, s.vid)
	p.addVisitor(dd, s.vid)
	if len(s.values) >= MaxVisitValues {
		return
	}
	dv.value = p.intern.get(v)
	s.addValue(dv, hour)
	// the visit as its rows hold it; the change since follows with the others
	if a := s.applied(); !a.zero() {
		p.add(p.row(s.site, store.Hour, d, store.Hour.Truncate(s.start), dv.value), a)
		p.add(p.row(s.site, store.Day, d, store.Day.Truncate(s.start), dv.value), a)
	}
}

func (p *Partition) propDim(key string) string {
	if d, ok := p.propDims[key]; ok {
		return d
	}
	d := dims.PropsPrefix + key
	if len(p.propDims) < 10_000 {
		p.propDims[strings.Clone(key)] = d
	}
	return d
}

// move moves a visit from value from to value to of the visit dimension at slot (entry
// or exit page): its visit, bounce and duration at the start bucket (as the rows hold
// them), and the page views, events and open visitor of its earlier events at their
// buckets. The current event is counted under the new value by the caller.
func (p *Partition) move(s *session, slot int, from, to string) {
	if slot < 0 {
		return
	}
	dim := visitDims[slot]
	if a := s.applied(); !a.zero() {
		startHour, startDay := store.Hour.Truncate(s.start), store.Day.Truncate(s.start)
		p.add(p.row(s.site, store.Hour, dim, startHour, from), neg(a))
		p.add(p.row(s.site, store.Day, dim, startDay, from), neg(a))
		p.add(p.row(s.site, store.Hour, dim, startHour, to), a)
		p.add(p.row(s.site, store.Day, dim, startDay, to), a)
	}

	moveBucket := func(g store.Granularity, b int64, c counts) {
		o := p.row(s.site, g, dim, b, from)
		p.add(o, neg(c))
		n := p.row(s.site, g, dim, b, to)
		p.add(n, c)
		if o.movable {
			p.markRecompute(o)
			p.joinVisitor(n, s.vid)
		}
	}
	var dayCounts counts
	curDay := int64(math.MinInt64)
	for _, h := range s.hours {
		hc := counts{pageviews: h.pageviews, events: h.ev}
		moveBucket(store.Hour, h.hour, hc)
		if d := store.Day.Truncate(h.hour * 1000); d != curDay {
			if curDay != math.MinInt64 {
				moveBucket(store.Day, curDay, dayCounts)
			}
			curDay, dayCounts = d, counts{}
		}
		dayCounts.add(hc)
	}
	if curDay != math.MinInt64 {
		moveBucket(store.Day, curDay, dayCounts)
	}
	if s.evRows != nil {
		s.evRows[2*slot] = p.row(s.site, store.Hour, dim, s.evHour, to)
		s.evRows[2*slot+1] = p.row(s.site, store.Day, dim, store.Day.Truncate(s.evHour*1000), to)
	}
}

// keep buffers the enriched event for the store: its time as counted, the visit's
// attributes applied, and the visit's id and start.
func (p *Partition) keep(s *session, ev *event.Event, t int64) {
	e := *ev
	e.Time = t
	s.applyVisitAttrs(&e)
	payload, err := event.Encode(&e)
	if err != nil { // cannot happen for an event that was decoded from JSON
		p.log.Error("cannot encode event for the store", "offset", p.cur, "err", err)
		return
	}
	p.events = append(p.events, store.StoredEvent{
		Shard:        p.shard,
		Offset:       p.cur,
		SessionID:    s.id,
		SessionStart: s.start,
		Payload:      payload,
		Time:         t,
		Site:         s.site,
	})
}

// expireSessions ends the visits no event can join any more (their changes are attributed
// to the last offset applied) and returns, for every movable row to recompute, the
// visitors of the open visits that have its value in its bucket.
func (p *Partition) expireSessions() map[*rowEntry][]uint64 {
	var open map[*rowEntry][]uint64
	if len(p.recomputeRows) > 0 {
		open = make(map[*rowEntry][]uint64, len(p.recomputeRows))
	}
	if !p.seen {
		return open
	}
	p.cur = p.last
	limit := p.watermark - visitTimeoutMS - p.graceMS
	for k, s := range p.sessions {
		if s.last < limit {
			p.closeSession(s)
			delete(p.sessions, k)
			continue
		}
		if !s.active {
			s.evRows = nil
		}
		s.active = false
		if open == nil {
			continue
		}
		for _, slot := range movableSlots {
			dim, val := visitDims[slot], s.movableValue(slot)
			s.forEachBucket(func(g store.Granularity, b int64) {
				k := store.RowKey{Site: s.site, Granularity: g, Dimension: dim, Bucket: b, Value: val, Shard: p.shard}
				if r := p.cached(&k); r != nil && r.recompute {
					open[r] = append(open[r], s.vid)
				}
			})
		}
	}
	return open
}

// settleDeferred brings the visit rows of every session up to date (see fold).
func (p *Partition) settleDeferred() {
	p.cur = p.last
	for _, s := range p.deferred {
		if s.deferred {
			p.settleVisit(s)
		}
	}
	clear(p.deferred)
	p.deferred = p.deferred[:0]
}

// Resolve loads the rollup rows touched since the last call that are not cached yet, in
// as few store reads as possible. Flush calls it too; the bus handler calls it after each
// fetched batch so the early updates of a replay are settled batch by batch.
func (p *Partition) Resolve(ctx context.Context) error { return p.resolve(ctx) }

// Dirty reports whether Flush has anything to write.
func (p *Partition) Dirty() bool {
	return len(p.pendingRows) > 0 || len(p.dirtyRows) > 0 || len(p.deferred) > 0 || p.eventsWritten < len(p.events) || p.flushed != p.last
}

// Unwritten is the number of events applied since the last flush that it has not written.
func (p *Partition) Unwritten() int { return len(p.events) - p.eventsWritten }

const (
	writeEventsChunk = 1000
	// writeRowsChunk bounds one WriteRows call. The rows of a flush are sorted by partition
	// (site, granularity, dimension, bucket) first, so the store can write each partition's
	// rows together (Cassandra: one unlogged batch per partition, not one per chunk of
	// rows in the order they were touched).
	writeRowsChunk = 10_000
)

// Flush writes the buffered events and every changed row (with Row.Offset = the last
// offset applied) to the store. On error nothing in memory is lost; Flush can be called
// again, and writing a row or an event twice is harmless.
func (p *Partition) Flush(ctx context.Context) error {
	t0 := time.Now()
	open := p.expireSessions() // closing a visit flags no row for recomputing
	p.settleDeferred()
	for _, e := range p.recomputeRows {
		p.rowFor(ptr(companionKey(e.key))) // loaded with the others
	}
	if err := p.resolve(ctx); err != nil {
		return err
	}
	if len(p.recomputeRows) > 0 {
		for _, e := range p.recomputeRows {
			e.visitors, e.recompute = p.movableVisitors(e, open[e]), false
			e.ids = nil
			if e.ext != nil {
				e.ext.sk = nil
				p.trimExt(e)
			}
		}
		clear(p.recomputeRows)
		p.recomputeRows = p.recomputeRows[:0]
	}
	if len(p.dirtyRows) > 0 && p.last > p.storedHigh {
		// Written before the rows: after a crash, whoever opens the partition knows no
		// stored row is newer than this.
		if err := p.putRowsHigh(ctx, p.last); err != nil {
			return err
		}
	}
	for p.eventsWritten < len(p.events) {
		j := min(p.eventsWritten+writeEventsChunk, len(p.events))
		if err := p.st.WriteEvents(ctx, p.events[p.eventsWritten:j]); err != nil {
			return fmt.Errorf("write %d events: %w", j-p.eventsWritten, err)
		}
		p.eventsWritten = j
	}
	if len(p.dirtyRows) > 0 {
		rows := make([]store.Row, len(p.dirtyRows))
		for i, e := range p.dirtyRows {
			visitors := p.visitorBytes(e)
			rows[i] = store.Row{
				RowKey: e.key,
				Aggregate: store.Aggregate{
					Pageviews:  e.c.pageviews,
					Events:     e.c.events,
					Visits:     e.c.visits,
					Bounces:    e.c.bounces,
					DurationMS: e.c.durationMS,
					Visitors:   visitors,
				},
				// A row loaded during a replay may hold a newer offset than the one
				// reached; it must never go back.
				Offset: max(p.last, e.loadedAt),
			}
		}
		slices.SortFunc(rows, func(a, b store.Row) int {
			return cmp.Or(strings.Compare(a.Site, b.Site), cmp.Compare(a.Granularity, b.Granularity),
				strings.Compare(a.Dimension, b.Dimension), cmp.Compare(a.Bucket, b.Bucket))
		})
		for i := 0; i < len(rows); i += writeRowsChunk {
			j := min(i+writeRowsChunk, len(rows))
			if err := p.st.WriteRows(ctx, rows[i:j]); err != nil {
				return fmt.Errorf("write %d rollup rows: %w", len(rows), err)
			}
		}
		for _, e := range p.dirtyRows {
			e.dirty = false
		}
		p.stats.RowsWritten += int64(len(rows))
		clear(p.dirtyRows)
		p.dirtyRows = p.dirtyRows[:0]
	}
	stored := int64(p.eventsWritten)
	if cap(p.events) > 4*writeEventsChunk {
		p.events = nil
	} else {
		clear(p.events)
		p.events = p.events[:0]
	}
	p.eventsWritten = 0
	p.flushed = p.last
	p.epoch++
	p.stats.Flushes++
	p.evict()
	p.evictPropSets()
	p.m.flushSeconds.Observe(time.Since(t0).Seconds())
	p.m.eventsStored.Add(float64(stored))
	p.report()
	return nil
}

// report adds to the shared metrics what changed since the last report.
func (p *Partition) report() {
	d := p.stats
	r := p.reported
	p.m.processed.Add(float64(d.Processed - r.Processed))
	p.m.lateDropped.Add(float64(d.LateDropped - r.LateDropped))
	p.m.duplicates.Add(float64(d.Duplicates - r.Duplicates))
	p.m.engDropped.Add(float64(d.EngagementDropped - r.EngagementDropped))
	p.m.propFolded.Add(float64(d.PropValuesFolded - r.PropValuesFolded))
	p.m.rowsWritten.Add(float64(d.RowsWritten - r.RowsWritten))
	p.reported = d
	p.m.openSessions.Add(float64(len(p.sessions) - p.repSess))
	p.m.cachedRows.Add(float64(p.rows.n - p.repRows))
	p.repSess, p.repRows = len(p.sessions), p.rows.n
	sk := p.sketchBytes()
	p.m.sketchBytes.Add(float64(sk - p.repBytes))
	p.repBytes = sk
	p.m.propSets.Add(float64(len(p.propSets) - p.repSets))
	p.repSets = len(p.propSets)
}

// Close withdraws the partition's share of the gauges. The partition must not be used
// afterwards; nothing is written.
func (p *Partition) Close() {
	p.report()
	p.m.openSessions.Add(float64(-p.repSess))
	p.m.cachedRows.Add(float64(-p.repRows))
	p.m.sketchBytes.Add(float64(-p.repBytes))
	p.m.propSets.Add(float64(-p.repSets))
	p.repSess, p.repRows, p.repBytes, p.repSets = 0, 0, 0, 0
}
