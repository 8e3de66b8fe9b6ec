package processor

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// VisitTimeout ends a visit: the first event after a longer gap (in event time) starts a
// new one. See docs/metrics.md.
const VisitTimeout = 30 * time.Minute

const visitTimeoutMS = int64(VisitTimeout / time.Millisecond)

// MaxVisitValues bounds the distinct event-dimension values (pages, event names, property
// values) a visit is counted under. A visit with more (a crawler) still counts its page
// views, events and visitor everywhere, but is not added to the visits of further values.
// Every flush updates the visit's row under each of its values (its duration grows), so
// the bound also caps what one endless visit can cost.
const MaxVisitValues = 256

// MaxVisitEventIDs is how many event ids (see event.Event.ID) a visit remembers: those of
// its latest events that carried one. An event whose id is among them is a resend and is
// dropped. A resend comes seconds after the original, so a short memory is enough; the
// bound caps what it costs per open visit (8 bytes an id, in memory and in checkpoints).
const MaxVisitEventIDs = 32

// visitDims are the rolled-up dimensions that belong to the visit, eventDims those that
// belong to the single event (event:props:<key> comes on top, from each event's props).
var visitDims, eventDims = splitRolled()

// entrySlot and exitSlot are the positions of the two visit dimensions whose value can
// change while a visit goes on (-1 when not rolled up); movableSlots lists those rolled up.
var (
	entrySlot, exitSlot = slices.Index(visitDims, dims.EntryPage), slices.Index(visitDims, dims.ExitPage)
	movableSlots        = slices.DeleteFunc([]int{entrySlot, exitSlot}, func(i int) bool { return i < 0 })
)

func splitRolled() (visit, ev []string) {
	for _, d := range dims.Rolled {
		if dims.IsEvent(d) {
			ev = append(ev, d)
		} else {
			visit = append(visit, d)
		}
	}
	return visit, ev
}

type visitorKey struct {
	site string
	vid  uint64
}

// dimValue is one event-dimension value a visit is counted under.
type dimValue struct{ dim, value string }

// countedValue is a dimValue of a visit, with the last hour bucket whose rows got the
// visit's visitor for it (noHour: none known).
type countedValue struct {
	dimValue
	hour int64
}

// valuesGrowthLimit is the length up to which a visit's values grow by a few at a time.
const valuesGrowthLimit = 16

// noHour marks a counted value whose visitor was not added in any known hour yet.
const noHour = math.MinInt64

// hourCount is how many page views and custom events of a visit fell in one hour bucket.
// Visit dimensions whose value moves (entry and exit page) move these counts along.
type hourCount struct {
	hour          int64 // bucket start, Unix seconds
	pageviews, ev int64
}

// session is an open visit.
type session struct {
	site  string
	vid   uint64
	id    uint64
	start int64 // Unix ms of the first event; later events are never placed before it
	last  int64 // Unix ms of the latest event

	pageviews   int64
	interactive int64 // interactive custom events

	entry, exit     string
	entryAt, exitAt int64 // times of the entry and exit page views

	attrs string // visit attributes of the first event, packed (see visitattrs.go)

	ids []uint64 // eventIDHash of the ids of the latest events that had one, oldest first

	hours  []hourCount // sorted by hour
	values []countedValue
	index  map[dimValue]int // position in values, once values grows

	// The visit rows (visits, bounces, durations at the start bucket) hold the visit as it
	// was when they were last updated (appliedVisits is 0 before the first time); the
	// change since is applied once per flush (see Partition.settleVisit).
	appliedVisits, appliedBounce, appliedDuration int64
	deferred                                      bool // listed in Partition.deferred

	lastMinute int64 // minute bucket of the previous event (noHour when unknown)

	// evRows caches the visit-dimension rows of hour bucket evHour and its day, two per
	// visit dimension (see Partition.fresh), while the visit is active: the cache is
	// dropped after a flush window without an event of the visit.
	evRows []*rowEntry
	evHour int64
	active bool // an event since the last flush
}

func (s *session) bounce() int64 {
	if s.pageviews == 1 && s.interactive == 0 {
		return 1
	}
	return 0
}

func (s *session) duration() int64 { return s.last - s.start }

// seenID reports whether an event of the visit had the id whose hash is h.
func (s *session) seenID(h uint64) bool { return slices.Contains(s.ids, h) }

// rememberID records the id hash h of an event of the visit, forgetting the oldest beyond
// MaxVisitEventIDs.
func (s *session) rememberID(h uint64) {
	if len(s.ids) == MaxVisitEventIDs {
		copy(s.ids, s.ids[1:])
		s.ids[len(s.ids)-1] = h
		return
	}
	s.ids = append(s.ids, h)
}

// eventIDHash is the 64-bit FNV-1a hash of an event id. Visits remember ids by it (and
// checkpoints store it), so it must never change. A new id is taken for one the visit
// remembers with a probability of at most 2^-59.
func eventIDHash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// applied is what the visit rows hold for this visit.
func (s *session) applied() counts {
	return counts{visits: s.appliedVisits, bounces: s.appliedBounce, durationMS: s.appliedDuration}
}

// behind reports whether the visit rows lag behind the visit.
func (s *session) behind() bool {
	return s.appliedVisits != 1 || s.appliedBounce != s.bounce() || s.appliedDuration != s.duration()
}

// movableValue is the visit's current value of the movable dimension at slot.
func (s *session) movableValue(slot int) string {
	if slot == entrySlot {
		return s.entry
	}
	return s.exit
}

// hasHour reports whether the visit has an event in hour bucket hour; hasDay likewise.
func (s *session) hasHour(hour int64) bool {
	for _, h := range s.hours {
		if h.hour == hour {
			return true
		}
	}
	return false
}

func (s *session) hasDay(day int64) bool {
	for _, h := range s.hours {
		if store.Day.Truncate(h.hour*1000) == day {
			return true
		}
	}
	return false
}

// forEachBucket calls fn for every hour bucket and every day bucket the visit has events
// in, in time order.
func (s *session) forEachBucket(fn func(g store.Granularity, bucket int64)) {
	curDay := int64(math.MinInt64)
	for _, h := range s.hours {
		fn(store.Hour, h.hour)
		if d := store.Day.Truncate(h.hour * 1000); d != curDay {
			fn(store.Day, d)
			curDay = d
		}
	}
}

// visit returns the visit for dims.VisitValue, its attributes unpacked into first.
func (s *session) visit(first *event.Event) dims.Visit {
	s.applyVisitAttrs(first)
	return dims.Visit{EntryPage: s.entry, ExitPage: s.exit, First: first}
}

// applyVisitAttrs sets the visit attributes of e to the visit's.
func (s *session) applyVisitAttrs(e *event.Event) {
	v := unpackVisitAttrs(s.attrs)
	v.applyTo(e)
}

// valueIndex returns the position of dv in s.values, or -1.
func (s *session) valueIndex(dv dimValue) int {
	if s.index != nil {
		if i, ok := s.index[dv]; ok {
			return i
		}
		return -1
	}
	for i := range s.values {
		if s.values[i].dimValue == dv {
			return i
		}
	}
	return -1
}

func (s *session) addValue(dv dimValue, hour int64) {
	if n := len(s.values); n == cap(s.values) && n < valuesGrowthLimit {
		// Grown by a few at a time, not doubled: most visits end with a handful of values,
		// and open visits make up most of the processor's memory.
		grown := make([]countedValue, n, n+max(len(eventDims), 2))
		copy(grown, s.values)
		s.values = grown
	}
	s.values = append(s.values, countedValue{dv, hour})
	if s.index != nil {
		s.index[dv] = len(s.values) - 1
	} else if len(s.values) > 16 {
		s.index = make(map[dimValue]int, 2*len(s.values))
		for i, v := range s.values {
			s.index[v.dimValue] = i
		}
	}
}

// countHour records an event of the visit in the hour bucket hour.
func (s *session) countHour(hour int64, pageview bool) {
	i, found := slices.BinarySearchFunc(s.hours, hour, func(h hourCount, t int64) int {
		switch {
		case h.hour < t:
			return -1
		case h.hour > t:
			return 1
		}
		return 0
	})
	if !found {
		s.hours = slices.Insert(s.hours, i, hourCount{hour: hour})
	}
	if pageview {
		s.hours[i].pageviews++
	} else {
		s.hours[i].ev++
	}
}

// SessionID is the stable id of the visit of visitor vid on site that started at start
// (Unix ms): a replay that rebuilds the visit gives it the same id.
func SessionID(site string, vid uint64, start int64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(site))
	var b [17]byte
	binary.BigEndian.PutUint64(b[1:9], vid)
	binary.BigEndian.PutUint64(b[9:17], uint64(start))
	h.Write(b[:])
	x := h.Sum64()
	// splitmix64 finaliser: FNV's low bits are weak for inputs that differ only at the end.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// newSession opens a visit whose first event is ev at time t.
func (p *Partition) newSession(ev *event.Event, t int64) *session {
	return &session{
		site:       p.intern.get(ev.Site),
		vid:        ev.VisitorID,
		id:         SessionID(ev.Site, ev.VisitorID, t),
		start:      t,
		last:       t,
		lastMinute: noHour,
		entryAt:    math.MaxInt64,
		exitAt:     math.MinInt64,
		attrs:      p.packVisitAttrs(ptr(visitAttrsOf(ev))),
	}
}

// forVisitRows calls fn with every row that holds the visit itself (visits, bounces,
// durations): at the bucket of its start, the totals at minute, hour and day, each visit
// dimension at hour and day, and each counted event-dimension value at hour and day.
func (p *Partition) forVisitRows(s *session, fn func(*rowEntry)) {
	minute, hour, day := store.Minute.Truncate(s.start), store.Hour.Truncate(s.start), store.Day.Truncate(s.start)
	fn(p.row(s.site, store.Minute, store.TotalsDimension, minute, ""))
	fn(p.row(s.site, store.Hour, store.TotalsDimension, hour, ""))
	fn(p.row(s.site, store.Day, store.TotalsDimension, day, ""))
	var first event.Event
	v := s.visit(&first)
	for _, d := range visitDims {
		val, _ := dims.VisitValue(d, &v)
		fn(p.row(s.site, store.Hour, d, hour, val))
		fn(p.row(s.site, store.Day, d, day, val))
	}
	for _, dv := range s.values {
		fn(p.row(s.site, store.Hour, dv.dim, hour, dv.value))
		fn(p.row(s.site, store.Day, dv.dim, day, dv.value))
	}
}

// settleVisit brings the visit rows up to the visit as it is now.
func (p *Partition) settleVisit(s *session) {
	s.deferred = false
	if !s.behind() {
		return
	}
	d := counts{visits: 1 - s.appliedVisits, bounces: s.bounce() - s.appliedBounce, durationMS: s.duration() - s.appliedDuration}
	p.forVisitRows(s, func(r *rowEntry) { p.add(r, d) })
	s.appliedVisits, s.appliedBounce, s.appliedDuration = 1, s.bounce(), s.duration()
}

// closeSession ends a visit: its pending change reaches its rows, and its visitor moves
// from the open to the finished visitors of the movable rows of its buckets.
func (p *Partition) closeSession(s *session) {
	if s.deferred {
		p.settleVisit(s)
	}
	for _, slot := range movableSlots {
		dim, val := visitDims[slot], s.movableValue(slot)
		s.forEachBucket(func(g store.Granularity, b int64) {
			p.closedAdd(p.row(s.site, g, dim, b, val), s.vid)
		})
	}
}

// interner shares the memory of repeated attribute strings (browsers, countries, pages)
// between the visits held in memory. It forgets everything when it grows too large.
type interner struct {
	m   map[string]string
	max int
}

func newInterner(max int) *interner { return &interner{m: make(map[string]string), max: max} }

func (in *interner) get(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := in.m[s]; ok {
		return v
	}
	// A copy: s is often part of a larger string (a decoded event's message, a visit's
	// packed attributes) that it would otherwise keep in memory for as long as it is shared.
	return in.add(strings.Clone(s))
}

// getBytes is get for a string held in b (looked up without copying b).
func (in *interner) getBytes(b []byte) string {
	if v, ok := in.m[string(b)]; ok {
		return v
	}
	if len(b) == 0 {
		return ""
	}
	return in.add(string(b)) // a copy of b
}

// add keeps s, a string no other value shares memory with, and returns it.
func (in *interner) add(s string) string {
	if len(in.m) >= in.max {
		clear(in.m)
	}
	in.m[s] = s
	return s
}
