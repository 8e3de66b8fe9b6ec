package processor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/sketch"
	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
)

// base is a Monday, 10:00 UTC.
var base = time.Date(2026, 3, 9, 10, 0, 0, 0, time.UTC)

func ms(d time.Duration) int64 { return base.Add(d).UnixMilli() }

const site = "example.com"

func pv(vid uint64, at time.Duration, path string) *event.Event {
	return &event.Event{Site: site, VisitorID: vid, Time: ms(at), Name: event.PageviewName, Hostname: site, Path: path}
}

func custom(vid uint64, at time.Duration, name, path string, interactive bool) *event.Event {
	return &event.Event{Site: site, VisitorID: vid, Time: ms(at), Name: name, Hostname: site, Path: path, Interactive: interactive}
}

func withAttrs(e *event.Event, source, device, country string) *event.Event {
	e.Source, e.Device, e.Country = source, device, country
	return e
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func testConfig() Config {
	c := DefaultConfig()
	c.FlushInterval = 20 * time.Millisecond
	c.CheckpointInterval = 40 * time.Millisecond
	c.RetryMin = time.Millisecond
	c.RetryMax = 5 * time.Millisecond
	c.StopTimeout = 5 * time.Second
	return c
}

// testStore is a memstore that remembers which row keys were written (so a test can read
// them all back) and can be made to fail.
type testStore struct {
	*memstore.Store
	mu      sync.Mutex
	keys    map[store.RowKey]struct{}
	failing bool
	// failAfterRows, when > 0, lets that many more rows be written and then fails every
	// call until failing is cleared: a crash in the middle of a flush.
	failAfterRows int
	writes        int
}

func newTestStore(t testing.TB) *testStore {
	st := &testStore{Store: memstore.New(), keys: map[store.RowKey]struct{}{}}
	t.Cleanup(func() { st.Store.Close() })
	return st
}

var errDown = fmt.Errorf("%w: test outage", store.ErrUnavailable)

func (s *testStore) setFailing(on bool) {
	s.mu.Lock()
	s.failing = on
	s.mu.Unlock()
}

func (s *testStore) check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		return errDown
	}
	return nil
}

func (s *testStore) WriteRows(ctx context.Context, rows []store.Row) error {
	s.mu.Lock()
	if s.failing {
		s.mu.Unlock()
		return errDown
	}
	if s.failAfterRows > 0 {
		if len(rows) >= s.failAfterRows {
			rows = rows[:s.failAfterRows]
			s.failAfterRows = 0
			s.failing = true
		} else {
			s.failAfterRows -= len(rows)
		}
	}
	for _, r := range rows {
		s.keys[r.RowKey] = struct{}{}
	}
	s.writes++
	failNow := s.failing
	s.mu.Unlock()
	if err := s.Store.WriteRows(ctx, rows); err != nil {
		return err
	}
	if failNow {
		return errDown
	}
	return nil
}

func (s *testStore) GetRows(ctx context.Context, keys []store.RowKey) ([]store.Row, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.Store.GetRows(ctx, keys)
}

func (s *testStore) WriteEvents(ctx context.Context, evs []store.StoredEvent) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.Store.WriteEvents(ctx, evs)
}

func (s *testStore) PutMeta(ctx context.Context, ns, key string, v []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.Store.PutMeta(ctx, ns, key, v)
}

func (s *testStore) GetMeta(ctx context.Context, ns, key string) ([]byte, bool, error) {
	if err := s.check(); err != nil {
		return nil, false, err
	}
	return s.Store.GetMeta(ctx, ns, key)
}

// agg is a row as tests compare it: counts plus the visitor estimate.
type agg struct {
	Pageviews, Events, Visits, Bounces, DurationMS, Visitors int64
}

func (a agg) String() string {
	return fmt.Sprintf("pv=%d ev=%d visits=%d bounces=%d dur=%d visitors=%d", a.Pageviews, a.Events, a.Visits, a.Bounces, a.DurationMS, a.Visitors)
}

// dump reads back every row ever written, keyed without the shard, with shards summed
// (sketches merged). Companion rows of the movable dimensions are left out unless all.
func (s *testStore) dump(t testing.TB, all bool) map[store.RowKey]agg {
	t.Helper()
	rows := s.rawRows(t)
	sks := map[store.RowKey]*sketch.Sketch{}
	out := map[store.RowKey]agg{}
	for _, r := range rows {
		if !all && strings.HasPrefix(r.Dimension, "internal:") {
			continue
		}
		k := r.RowKey
		k.Shard = 0
		a := out[k]
		a.Pageviews += r.Pageviews
		a.Events += r.Events
		a.Visits += r.Visits
		a.Bounces += r.Bounces
		a.DurationMS += r.DurationMS
		if sks[k] == nil {
			sks[k] = sketch.New()
		}
		if err := sks[k].MergeBinary(r.Visitors); err != nil {
			t.Fatal(err)
		}
		a.Visitors = sks[k].Estimate()
		out[k] = a
	}
	for k, a := range out {
		if a == (agg{}) {
			delete(out, k) // a row that was moved away from counts as absent
		}
	}
	return out
}

// rawRows returns every stored row as written.
func (s *testStore) rawRows(t testing.TB) []store.Row {
	t.Helper()
	s.mu.Lock()
	keys := slices.Collect(maps.Keys(s.keys))
	s.mu.Unlock()
	rows, err := s.Store.GetRows(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rows, func(a, b store.Row) int { return cmpKey(a.RowKey, b.RowKey) })
	return rows
}

func cmpKey(a, b store.RowKey) int {
	return cmp.Or(strings.Compare(a.Site, b.Site), cmp.Compare(a.Granularity, b.Granularity),
		strings.Compare(a.Dimension, b.Dimension), cmp.Compare(a.Bucket, b.Bucket),
		strings.Compare(a.Value, b.Value), cmp.Compare(a.Shard, b.Shard))
}

// storedEvents returns every stored event of site in time order.
func (s *testStore) storedEvents(t testing.TB, site string) []store.StoredEvent {
	t.Helper()
	var out []store.StoredEvent
	err := s.Store.ScanEvents(context.Background(), store.EventRange{Site: site, From: -1 << 62, To: 1 << 62}, func(e store.StoredEvent) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b store.StoredEvent) int {
		return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.Shard, b.Shard), cmp.Compare(a.Offset, b.Offset))
	})
	return out
}

// metricValue reads a counter or gauge (summed over its series) from reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return v
}

func decodeStored(t testing.TB, se store.StoredEvent) *event.Event {
	t.Helper()
	e, err := event.Decode(se.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func key(g store.Granularity, dim string, at time.Duration, value string) store.RowKey {
	return store.RowKey{Site: site, Granularity: g, Dimension: dim, Bucket: g.Truncate(ms(at)), Value: value}
}

// run applies evs (offsets from 0) to a fresh partition on st and flushes.
func run(t testing.TB, st store.Store, evs ...*event.Event) *Partition {
	t.Helper()
	p := open(t, st, 0)
	for i, e := range evs {
		p.Apply(int64(i), e)
	}
	flush(t, p)
	return p
}

func open(t testing.TB, st store.Store, shard int32) *Partition {
	t.Helper()
	p, err := OpenPartition(context.Background(), testConfig(), Deps{Store: st, Log: quiet()}, shard)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func flush(t testing.TB, p *Partition) {
	t.Helper()
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// wantRows checks the given rows (and only asserts those).
func wantRows(t *testing.T, got map[store.RowKey]agg, want map[store.RowKey]agg) {
	t.Helper()
	for k, w := range want {
		if g := got[k]; g != w {
			t.Errorf("%s %s bucket %s value %q:\n got %v\nwant %v", k.Granularity, k.Dimension, time.Unix(k.Bucket, 0).UTC().Format(time.DateTime), k.Value, g, w)
		}
	}
}

// ---- the oracle: docs/metrics.md applied to a whole, time-ordered event list ----

// oracle computes every rollup row from complete visits, the way a batch job would: it
// sorts each visitor's events by time and cuts visits at gaps over 30 minutes. An
// engagement event that would start a visit belongs to none.
func oracle(evs []*event.Event) map[store.RowKey]agg {
	sorted := slices.Clone(evs)
	slices.SortStableFunc(sorted, func(a, b *event.Event) int {
		return cmp.Or(strings.Compare(a.Site, b.Site), cmp.Compare(a.VisitorID, b.VisitorID), cmp.Compare(a.Time, b.Time))
	})
	var visits []oracleVisit
	var prev *event.Event // last event of the current visit
	for _, e := range sorted {
		if prev == nil || prev.Site != e.Site || prev.VisitorID != e.VisitorID || e.Time-prev.Time > visitTimeoutMS {
			if e.IsEngagement() {
				continue
			}
			visits = append(visits, oracleVisit{start: e.Time})
		}
		v := &visits[len(visits)-1]
		v.events = append(v.events, e)
		prev = e
	}
	return rowsOfVisits(visits)
}

// scanOracle computes the rows the way the query engine's scan path sees stored events:
// grouped by SessionID, started at SessionStart, in (time, offset) order, with the visit
// attributes each stored event carries.
func scanOracle(t testing.TB, stored []store.StoredEvent) map[store.RowKey]agg {
	t.Helper()
	stored = slices.Clone(stored)
	slices.SortStableFunc(stored, func(a, b store.StoredEvent) int {
		return cmp.Or(cmp.Compare(a.SessionID, b.SessionID), cmp.Compare(a.Time, b.Time), cmp.Compare(a.Shard, b.Shard), cmp.Compare(a.Offset, b.Offset))
	})
	var visits []oracleVisit
	for i, se := range stored {
		if i == 0 || stored[i-1].SessionID != se.SessionID {
			visits = append(visits, oracleVisit{start: se.SessionStart})
		}
		v := &visits[len(visits)-1]
		v.events = append(v.events, decodeStored(t, se))
	}
	return rowsOfVisits(visits)
}

// oracleVisit is a visit's start and its events in order.
type oracleVisit struct {
	start  int64
	events []*event.Event
}

// rowsOfVisits applies docs/metrics.md to complete visits. Engagement events only make
// their visit last until their time.
func rowsOfVisits(visits []oracleVisit) map[store.RowKey]agg {
	type acc struct {
		agg
		sk *sketch.Sketch
	}
	rows := map[store.RowKey]*acc{}
	get := func(k store.RowKey) *acc {
		a := rows[k]
		if a == nil {
			a = &acc{sk: sketch.New()}
			rows[k] = a
		}
		return a
	}
	for _, ov := range visits {
		v := ov.events
		first := v[0]
		info := dims.Visit{First: first}
		pvs, interactive := 0, false
		last := ov.start
		for _, e := range v {
			last = max(last, e.Time)
			if e.IsEngagement() {
				continue
			}
			if e.IsPageview() {
				if pvs == 0 {
					info.EntryPage = e.Path
				}
				info.ExitPage = e.Path
				pvs++
			} else if e.Interactive {
				interactive = true
			}
		}
		counted := slices.DeleteFunc(slices.Clone(v), (*event.Event).IsEngagement)
		var bounce int64
		if pvs == 1 && !interactive {
			bounce = 1
		}
		start, dur := ov.start, last-ov.start
		for _, g := range []store.Granularity{store.Minute, store.Hour, store.Day} {
			dimList := []string{store.TotalsDimension}
			if g != store.Minute {
				dimList = append(dimList, dims.Rolled...)
				for _, e := range v {
					for k := range e.Props {
						if d := dims.PropsPrefix + k; !slices.Contains(dimList, d) {
							dimList = append(dimList, d)
						}
					}
				}
			}
			k := func(d string, t int64, val string) store.RowKey {
				return store.RowKey{Site: first.Site, Granularity: g, Dimension: d, Bucket: g.Truncate(t), Value: val}
			}
			for _, d := range dimList {
				isProp := strings.HasPrefix(d, dims.PropsPrefix)
				var vals []string
				switch {
				case d == store.TotalsDimension:
					vals = []string{""}
				case dims.IsEvent(d):
					for _, e := range counted {
						if isProp {
							if _, ok := e.Props[d[len(dims.PropsPrefix):]]; !ok {
								continue
							}
						}
						if ev, _ := dims.EventValue(d, e); !slices.Contains(vals, ev) {
							vals = append(vals, ev)
						}
					}
				default:
					vv, _ := dims.VisitValue(d, &info)
					vals = []string{vv}
				}
				for _, val := range vals {
					a := get(k(d, start, val))
					a.Visits++
					a.Bounces += bounce
					a.DurationMS += dur
				}
				for _, e := range counted {
					val := ""
					switch {
					case d == store.TotalsDimension:
					case dims.IsEvent(d):
						if isProp {
							if _, ok := e.Props[d[len(dims.PropsPrefix):]]; !ok {
								continue
							}
						}
						val, _ = dims.EventValue(d, e)
					default:
						val, _ = dims.VisitValue(d, &info)
					}
					a := get(k(d, e.Time, val))
					if e.IsPageview() {
						a.Pageviews++
					} else {
						a.Events++
					}
					a.sk.Add(e.VisitorID)
				}
			}
		}
	}
	out := map[store.RowKey]agg{}
	for k, a := range rows {
		a.Visitors = a.sk.Estimate()
		if a.agg != (agg{}) {
			out[k] = a.agg
		}
	}
	return out
}

func diffRows(t *testing.T, label string, got, want map[store.RowKey]agg) {
	t.Helper()
	keys := slices.Collect(maps.Keys(want))
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, cmpKey)
	bad := 0
	for _, k := range keys {
		if got[k] != want[k] {
			if bad++; bad <= 15 {
				t.Errorf("%s: %s %s %s %q:\n got %v\nwant %v", label, k.Granularity, k.Dimension, time.Unix(k.Bucket, 0).UTC().Format(time.DateTime), k.Value, got[k], want[k])
			}
		}
	}
	if bad > 15 {
		t.Errorf("%s: %d rows differ in all", label, bad)
	}
}

// synthetic makes a time-ordered stream: visitors with several visits of one to eight
// events, gaps inside visits up to 29 minutes, between visits over 31 minutes, custom
// events (some not interactive) with props, visits across hour and day boundaries.
func synthetic(seed uint64, visitors int, span time.Duration) []*event.Event {
	rng := rand.New(rand.NewPCG(seed, 7))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	var evs []*event.Event
	for v := 1; v <= visitors; v++ {
		vid := uint64(v) * 0x9e3779b97f4a7c15
		t := base.Add(-2 * time.Hour).Add(time.Duration(rng.Int64N(int64(span / 4))))
		end := base.Add(-2 * time.Hour).Add(span)
		for t.Before(end) {
			attrs := event.Event{
				Source: pick("", "Google", "news.ycombinator.com"), Referrer: pick("", "google.com/"),
				UTMCampaign: pick("", "", "spring"), Browser: pick("Firefox", "Chrome"), OS: pick("Linux", "iOS"),
				Device: pick("Desktop", "Mobile"), Country: pick("DE", "US", ""),
			}
			n := 1 + rng.IntN(8)
			for i := 0; i < n; i++ {
				e := &event.Event{Site: pick(site, site, "other.test"), VisitorID: vid, Time: t.UnixMilli(), Hostname: site,
					Path: pick("/", "/pricing", "/blog", "/docs", "/about")}
				if i == 0 {
					e.Source, e.Referrer, e.UTMCampaign, e.Browser, e.OS, e.Device, e.Country =
						attrs.Source, attrs.Referrer, attrs.UTMCampaign, attrs.Browser, attrs.OS, attrs.Device, attrs.Country
				} else {
					e.Source, e.Device = "self", "ignored" // the visit's first event wins
				}
				if rng.IntN(4) == 0 {
					e.Name = pick("Signup", "Scroll", "Download")
					e.Interactive = rng.IntN(3) > 0
					if rng.IntN(2) == 0 {
						e.Props = map[string]string{"plan": pick("free", "pro"), "ab": pick("a", "b")}
					}
				} else {
					e.Name = event.PageviewName
				}
				evs = append(evs, e)
				t = t.Add(time.Second + time.Duration(rng.Int64N(int64(29*time.Minute))))
			}
			t = t.Add(31*time.Minute + time.Duration(rng.Int64N(int64(6*time.Hour))))
		}
	}
	// one site per visitor keeps visits simple for the oracle
	for _, e := range evs {
		if e.VisitorID%3 == 0 {
			e.Site = "other.test"
		} else {
			e.Site = site
		}
	}
	slices.SortStableFunc(evs, func(a, b *event.Event) int { return cmp.Compare(a.Time, b.Time) })
	return evs
}

// ---- a bus claim and a bus in memory ----

type fakeClaim struct {
	topic     string
	partition int

	mu        sync.Mutex
	msgs      []bus.Message
	next      int64
	committed int64
	commits   []int64
	notify    chan struct{}
}

func newFakeClaim(partition int, msgs []bus.Message) *fakeClaim {
	for i := range msgs {
		msgs[i].Partition, msgs[i].Offset = partition, int64(i)
	}
	return &fakeClaim{topic: "glimpse-events", partition: partition, msgs: msgs, notify: make(chan struct{})}
}

func (c *fakeClaim) Topic() string  { return c.topic }
func (c *fakeClaim) Partition() int { return c.partition }
func (c *fakeClaim) Committed() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.committed
}

func (c *fakeClaim) SetOffset(o int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o < 0 || o > int64(len(c.msgs)) {
		return errors.New("fake claim: offset out of range")
	}
	c.next = o
	return nil
}

func (c *fakeClaim) append(values ...[]byte) {
	c.mu.Lock()
	for _, v := range values {
		c.msgs = append(c.msgs, bus.Message{Value: v, Partition: c.partition, Offset: int64(len(c.msgs))})
	}
	close(c.notify)
	c.notify = make(chan struct{})
	c.mu.Unlock()
}

func (c *fakeClaim) Fetch(ctx context.Context, max int) ([]bus.Message, error) {
	for {
		c.mu.Lock()
		if c.next < int64(len(c.msgs)) {
			end := min(int64(len(c.msgs)), c.next+int64(max))
			out := slices.Clone(c.msgs[c.next:end])
			c.next = end
			c.mu.Unlock()
			return out, nil
		}
		notify := c.notify
		c.mu.Unlock()
		select {
		case <-notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *fakeClaim) Commit(ctx context.Context, next int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.committed = next
	c.commits = append(c.commits, next)
	return nil
}

// fakeBus hands every claim to the handler at once and keeps it until ctx ends.
type fakeBus struct {
	claims []*fakeClaim
}

func (b *fakeBus) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	return errors.New("fake bus: publish not supported")
}

func (b *fakeBus) Partitions(ctx context.Context, topic string) (int, error) {
	return len(b.claims), nil
}
func (b *fakeBus) Close() error { return nil }

func (b *fakeBus) Consume(ctx context.Context, topic, group string, h bus.Handler) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, c := range b.claims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h(ctx, c); err != nil {
				cancel(err)
			}
		}()
	}
	<-ctx.Done()
	wg.Wait()
	return context.Cause(ctx)
}

func encode(t testing.TB, evs ...*event.Event) [][]byte {
	t.Helper()
	out := make([][]byte, len(evs))
	for i, e := range evs {
		b, err := event.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

func messages(t testing.TB, evs ...*event.Event) []bus.Message {
	var out []bus.Message
	for _, v := range encode(t, evs...) {
		out = append(out, bus.Message{Value: v})
	}
	return out
}

func (s *testStore) ScanRows(ctx context.Context, r store.RowRange, fn func(store.Row) error) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.Store.ScanRows(ctx, r, fn)
}
