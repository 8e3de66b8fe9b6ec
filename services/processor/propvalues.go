package processor

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Custom-property values per day
//
// Every distinct value of event:props:<key> is a rollup row per hour and per day, so a
// property that carries ids or free text would grow the rollups without bound. A partition
// therefore keeps, per site, property key and UTC day, the set of values that have page
// views or events in its rows of that day. A value already in the set keeps its name; a
// new value joins while the set holds fewer than Config.MaxPropValues values; any other
// value becomes dims.OtherValue. The fold happens in Apply before the event reaches the
// rows or the stored event, so the rollups and the event scan of the query engine see
// the same value. The limit holds per partition: a topic with P partitions keeps at most
// P × MaxPropValues values per key and day.
//
// A value counts for the day its event is counted in. A visit that began on an earlier
// day also lists the value under its start bucket (visits, bounces and durations live
// there); such rows hold no page view or event, so they are not part of the earlier day's
// set and the earlier day may show a few values beyond the limit.
//
// The sets are not checkpointed. A set is read from the store (the shard's day rows of
// the dimension with page views or events) the first time an event needs it, and dropped
// after a flush once the day is beyond the lateness or too many sets are held; a dropped
// set is simply read again. A replay after a crash makes the same decisions as the run
// that crashed, because the store can only hold more of the set than that run had in
// memory when it decided, and never a value it folded:
//   - Everything before the checkpoint was flushed before it, and a replayed event before
//     the one at hand decided as before (by induction), so every value the crashed run had
//     in the set at an event is in the replay's set too.
//   - Flushes write everything up to the last offset applied. If the crashed run flushed
//     nothing after the event, the replay's set is exactly the crashed run's. Otherwise
//     the event's own rows are stored: a value it admitted is found in the set.
//   - A value it folded met a full set that did not hold it. Sets only grow, so no later
//     event of that day admitted the value either, and no stored row of the day has it:
//     the replay finds the set at least as full, without the value, and folds it again.
// The same holds when a new consumer group reprocesses the topic over rows that already
// hold it. Changing --processor.max-prop-values changes the decisions from then on.

// propSetKey names one value set of a partition.
type propSetKey struct {
	site, key string
	day       int64 // UTC day, Unix seconds
}

// maxPropSets bounds the value sets a partition keeps between flushes; beyond it the
// oldest days are dropped first (and read again when an event needs them).
const maxPropSets = 10_000

// propSetsFor calls fn for every value set the event at offset may need: the UTC day of
// its time, and of its time plus the visit timeout (an event slightly before the start of
// its visit is counted at the start, see Apply). It stops as soon as fn returns false.
func (p *Partition) propSetsFor(ev *event.Event, fn func(k propSetKey) bool) {
	if p.maxPropValues <= 0 || len(ev.Props) == 0 || ev.IsEngagement() {
		return
	}
	if p.seen && ev.Time < p.watermark-p.lateMS {
		return // dropped as late
	}
	d0, d1 := store.Day.Truncate(ev.Time), store.Day.Truncate(ev.Time+visitTimeoutMS)
	for k := range ev.Props {
		if !fn(propSetKey{ev.Site, k, d0}) {
			return
		}
		if d1 != d0 && !fn(propSetKey{ev.Site, k, d1}) {
			return
		}
	}
}

// Prepare reads from the store the custom-property value sets that Apply may need for ev
// and does not hold yet. Apply reads them itself otherwise, but cannot report a failed
// read other than by refusing the event; the bus handler calls Prepare (retrying) first.
func (p *Partition) Prepare(ctx context.Context, ev *event.Event) error {
	var err error
	p.propSetsFor(ev, func(k propSetKey) bool {
		if _, ok := p.propSets[k]; !ok {
			err = p.loadPropSet(ctx, k)
		}
		return err == nil
	})
	return err
}

// loadPropSet reads the values of one set from the shard's day rows.
func (p *Partition) loadPropSet(ctx context.Context, k propSetKey) error {
	set := make(map[string]struct{})
	r := store.RowRange{Site: k.site, Granularity: store.Day, Dimension: dims.PropsPrefix + k.key, From: k.day, To: k.day + 86400}
	err := p.st.ScanRows(ctx, r, func(row store.Row) error {
		if row.Shard == p.shard && row.Bucket == k.day && row.Value != dims.OtherValue && row.Pageviews+row.Events > 0 {
			set[strings.Clone(row.Value)] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the values of custom property %q of site %q on day %d: %w", k.key, k.site, k.day, err)
	}
	p.propSets[propSetKey{strings.Clone(k.site), strings.Clone(k.key), k.day}] = set
	return nil
}

// foldProps returns ev with every custom-property value that its key may not take any more
// on day (UTC, Unix seconds) replaced by dims.OtherValue, admitting new values while their
// set has room. ev itself is never modified; a changed event is a copy. Every set must be
// loaded (see Prepare).
func (p *Partition) foldProps(ev *event.Event, day int64) *event.Event {
	if p.maxPropValues <= 0 || len(ev.Props) == 0 {
		return ev
	}
	var folded map[string]string
	for k, v := range ev.Props {
		if v == dims.OtherValue {
			continue
		}
		set := p.propSets[propSetKey{ev.Site, k, day}]
		if set == nil { // cannot happen after Prepare; keep the value rather than guess
			p.log.Error("custom-property values were not loaded; keeping the value", "key", k, "day", day)
			continue
		}
		if _, ok := set[v]; ok {
			continue
		}
		if len(set) < p.maxPropValues {
			set[strings.Clone(v)] = struct{}{}
			continue
		}
		if folded == nil {
			folded = maps.Clone(ev.Props)
		}
		folded[k] = dims.OtherValue
		p.stats.PropValuesFolded++
	}
	if folded == nil {
		return ev
	}
	e := *ev
	e.Props = folded
	return &e
}

// evictPropSets drops, after a flush (the store then holds every value of every set),
// the sets of days no accepted event can reach any more, then the oldest ones while more
// than maxPropSets remain.
func (p *Partition) evictPropSets() {
	if len(p.propSets) == 0 {
		return
	}
	if p.seen {
		// An event is counted at or after its own time, which is at least
		// watermark - lateness.
		cutoff := store.Day.Truncate(p.watermark - p.lateMS)
		maps.DeleteFunc(p.propSets, func(k propSetKey, _ map[string]struct{}) bool { return k.day < cutoff })
	}
	if len(p.propSets) <= maxPropSets {
		return
	}
	keys := slices.Collect(maps.Keys(p.propSets))
	slices.SortFunc(keys, func(a, b propSetKey) int { return cmp.Compare(a.day, b.day) })
	for _, k := range keys[:len(keys)-maxPropSets] {
		delete(p.propSets, k)
	}
}
