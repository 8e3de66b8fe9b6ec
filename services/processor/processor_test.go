package processor

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/bus/embedded"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/lifecycle"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

var _ lifecycle.Service = (*Processor)(nil)

func newProcessor(t *testing.T, b bus.Bus, st *testStore, reg *prometheus.Registry) *Processor {
	t.Helper()
	deps := Deps{Bus: b, Store: st, Log: quiet()}
	if reg != nil {
		deps.Metrics = reg
	}
	p, err := New(testConfig(), deps)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs p until the returned stop is called; stop returns Run's error.
func start(t *testing.T, p *Processor) (stop func() error) {
	t.Helper()
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() error {
		cancel()
		if err := p.Stop(context.Background()); err != nil {
			t.Error(err)
		}
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
			return nil
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func splitByShard(evs []*event.Event, shards int) [][]*event.Event {
	out := make([][]*event.Event, shards)
	for _, e := range evs {
		i := e.VisitorID % uint64(shards)
		out[i] = append(out[i], e)
	}
	return out
}

func TestProcessorConsumesCheckpointsAndCommits(t *testing.T) {
	evs := synthetic(5, 30, 12*time.Hour)
	parts := splitByShard(evs, 2)
	b := &fakeBus{claims: []*fakeClaim{newFakeClaim(0, messages(t, parts[0]...)), newFakeClaim(1, messages(t, parts[1]...))}}
	st := newTestStore(t)
	reg := prometheus.NewRegistry()
	stop := start(t, newProcessor(t, b, st, reg))
	waitFor(t, "every event", func() bool {
		return metricValue(t, reg, "glimpse_processor_events_processed_total") == float64(len(evs))
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	diffRows(t, "rollups", st.dump(t, false), oracle(evs))
	for i, c := range b.claims {
		if c.Committed() != int64(len(parts[i])) {
			t.Errorf("partition %d committed %d, want %d", i, c.Committed(), len(parts[i]))
		}
		if _, ok, _ := st.GetMeta(context.Background(), CheckpointNamespace, CheckpointKey("glimpse-events", "glimpse-processor", int32(i))); !ok {
			t.Errorf("partition %d has no checkpoint", i)
		}
	}
	if v := metricValue(t, reg, "glimpse_processor_open_sessions"); v != 0 {
		t.Errorf("open sessions gauge %v after stop", v)
	}
	if v := metricValue(t, reg, "glimpse_processor_rows_written_total"); v == 0 {
		t.Error("no rows counted as written")
	}
}

func TestProcessorFlushesWhileIdle(t *testing.T) {
	c := newFakeClaim(0, messages(t, pv(1, 0, "/")))
	st := newTestStore(t)
	stop := start(t, newProcessor(t, &fakeBus{claims: []*fakeClaim{c}}, st, nil))
	defer stop()
	waitFor(t, "the first row", func() bool { return len(st.dump(t, false)) > 0 })
	waitFor(t, "a commit", func() bool { return c.Committed() == 1 })
	c.append(encode(t, pv(2, time.Minute, "/"))...)
	waitFor(t, "the second event's rows", func() bool { return st.dump(t, false)[key(store.Hour, "", 0, "")].Visits == 2 })
	waitFor(t, "the second commit", func() bool { return c.Committed() == 2 })
}

// A partition holding Config.FlushEvents unwritten events flushes without waiting for its
// interval (an hour here): a processor catching up on a backlog keeps no more than that
// waiting in memory.
func TestProcessorFlushesByEventCount(t *testing.T) {
	var evs []*event.Event
	for i := range 25 {
		evs = append(evs, pv(uint64(i+1), time.Duration(i)*time.Second, "/"))
	}
	c := newFakeClaim(0, messages(t, evs...))
	st := newTestStore(t)
	cfg := testConfig()
	cfg.FlushInterval, cfg.CheckpointInterval = time.Hour, time.Hour
	cfg.FlushEvents, cfg.MaxBatch = 10, 5
	p, err := New(cfg, Deps{Bus: &fakeBus{claims: []*fakeClaim{c}}, Store: st, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, p)
	defer stop()
	// 25 events in batches of 5: flushes after the 10th and the 20th; the last 5 wait.
	waitFor(t, "a flush by event count", func() bool {
		return st.dump(t, false)[key(store.Hour, "", 0, "")].Pageviews == 20
	})
	time.Sleep(50 * time.Millisecond)
	if got := st.dump(t, false)[key(store.Hour, "", 0, "")].Pageviews; got != 20 {
		t.Errorf("stored pageviews %d before the interval, want 20 (two flushes of 10)", got)
	}
}

// A checkpoint is stored but the commit is lost (crash in between): the next processor
// trusts the checkpoint and counts nothing twice.
func TestResumeFromCheckpointNotFromCommit(t *testing.T) {
	evs := synthetic(6, 20, 8*time.Hour)
	for _, e := range evs {
		e.Site = site
	}
	st := newTestStore(t)
	half := len(evs) / 2
	c := newFakeClaim(0, messages(t, evs[:half]...))
	reg := prometheus.NewRegistry()
	stop := start(t, newProcessor(t, &fakeBus{claims: []*fakeClaim{c}}, st, reg))
	waitFor(t, "half the events", func() bool { return c.Committed() == int64(half) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	c2 := newFakeClaim(0, messages(t, evs...))
	c2.committed = 3 // the bus lost the commits
	reg2 := prometheus.NewRegistry()
	stop = start(t, newProcessor(t, &fakeBus{claims: []*fakeClaim{c2}}, st, reg2))
	waitFor(t, "the rest", func() bool { return c2.Committed() == int64(len(evs)) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := metricValue(t, reg2, "glimpse_processor_events_processed_total"); n != float64(len(evs)-half) {
		t.Errorf("the second processor processed %v events, want %d", n, len(evs)-half)
	}
	diffRows(t, "rollups", st.dump(t, false), oracle(evs))
}

func TestUnknownWireVersionStopsTheProcessor(t *testing.T) {
	good := encode(t, pv(1, 0, "/"), pv(2, 0, "/"))
	newer := append([]byte{event.Version + 1}, `{"site":"example.com"}`...)
	c := newFakeClaim(0, nil)
	c.append(good[0], good[1], newer, good[0])
	st := newTestStore(t)
	p := newProcessor(t, &fakeBus{claims: []*fakeClaim{c}}, st, nil)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Run(context.Background()) }()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop on an event of a newer wire version")
	}
	if !errors.Is(err, event.ErrUnknownVersion) {
		t.Fatalf("Run returned %v, want ErrUnknownVersion", err)
	}
	// what came before is stored and committed; the newer event is where a newer
	// processor will start
	if c.Committed() != 2 {
		t.Errorf("committed %d, want 2", c.Committed())
	}
	if a := st.dump(t, false)[key(store.Hour, "", 0, "")]; a.Visits != 2 {
		t.Errorf("the events before the newer one were not stored: %v", a)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestUndecodableMessagesAreSkippedAndCounted(t *testing.T) {
	good := encode(t, pv(1, 0, "/"), pv(2, 0, "/"))
	c := newFakeClaim(0, nil)
	c.append(good[0], []byte{event.Version, '{', 'x'}, nil, good[1])
	st := newTestStore(t)
	reg := prometheus.NewRegistry()
	stop := start(t, newProcessor(t, &fakeBus{claims: []*fakeClaim{c}}, st, reg))
	waitFor(t, "a commit past every message", func() bool { return c.Committed() == 4 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, reg, "glimpse_processor_undecodable_messages_total"); v != 2 {
		t.Errorf("undecodable = %v, want 2", v)
	}
	if a := st.dump(t, false)[key(store.Hour, "", 0, "")]; a.Visits != 2 {
		t.Errorf("hour totals %v", a)
	}
}

// A store outage neither loses nor double counts: the processor backs off, does not
// commit, and catches up when the store is back.
func TestStoreOutage(t *testing.T) {
	evs := synthetic(8, 20, 8*time.Hour)
	for _, e := range evs {
		e.Site = site
	}
	st := newTestStore(t)
	c := newFakeClaim(0, messages(t, evs[:10]...))
	reg := prometheus.NewRegistry()
	stop := start(t, newProcessor(t, &fakeBus{claims: []*fakeClaim{c}}, st, reg))
	waitFor(t, "the first commit", func() bool { return c.Committed() == 10 })

	st.setFailing(true)
	c.append(encode(t, evs[10:]...)...)
	waitFor(t, "retries", func() bool { return metricValue(t, reg, "glimpse_processor_store_retries_total") >= 5 })
	if got := c.Committed(); got != 10 {
		t.Fatalf("committed %d during the outage", got)
	}
	st.setFailing(false)
	waitFor(t, "the commit after the outage", func() bool { return c.Committed() == int64(len(evs)) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	diffRows(t, "rollups", st.dump(t, false), oracle(evs))
}

// Stop while the store is down: the final flush gives up when Stop's deadline passes,
// nothing is committed, and a later processor replays from the last checkpoint.
func TestStopDuringOutageThenReplay(t *testing.T) {
	evs := synthetic(9, 20, 8*time.Hour)
	for _, e := range evs {
		e.Site = site
	}
	st := newTestStore(t)
	c := newFakeClaim(0, messages(t, evs[:20]...))
	p := newProcessor(t, &fakeBus{claims: []*fakeClaim{c}}, st, nil)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	go p.Run(context.Background())
	waitFor(t, "the first commit", func() bool { return c.Committed() == 20 })
	st.setFailing(true)
	c.append(encode(t, evs[20:]...)...)
	time.Sleep(30 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Stop(ctx); err == nil {
		t.Error("Stop reported success although nothing could be flushed")
	}
	if c.Committed() != 20 {
		t.Fatalf("committed %d while the store was down", c.Committed())
	}
	st.setFailing(false)

	c2 := newFakeClaim(0, messages(t, evs...))
	c2.committed = 20
	stop := start(t, newProcessor(t, &fakeBus{claims: []*fakeClaim{c2}}, st, nil))
	waitFor(t, "everything", func() bool { return c2.Committed() == int64(len(evs)) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	diffRows(t, "rollups", st.dump(t, false), oracle(evs))
}

// With the embedded bus and two processors in one group: partitions move between them
// (rebalance) and every event is counted once.
func TestEmbeddedBusRebalance(t *testing.T) {
	b, err := embedded.Open(t.TempDir(), embedded.Options{Partitions: 4, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	evs := synthetic(10, 40, 10*time.Hour)
	ctx := context.Background()
	publish := func(evs []*event.Event) {
		for _, e := range evs {
			v, err := event.Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Publish(ctx, "glimpse-events", bus.Message{Key: e.Key(), Value: v}); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := newTestStore(t)
	reg := prometheus.NewRegistry()
	third := len(evs) / 3
	publish(evs[:third])
	stop1 := start(t, newProcessor(t, b, st, reg))
	waitFor(t, "the first third", func() bool { return metricValue(t, reg, "glimpse_processor_events_processed_total") >= float64(third) })
	stop2 := start(t, newProcessor(t, b, st, reg)) // takes half the partitions
	publish(evs[third : 2*third])
	time.Sleep(50 * time.Millisecond)
	if err := stop1(); err != nil { // hands its partitions to the second
		t.Fatal(err)
	}
	publish(evs[2*third:])
	waitFor(t, "every event", func() bool {
		return metricValue(t, reg, "glimpse_processor_events_processed_total") >= float64(len(evs))
	})
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if n := metricValue(t, reg, "glimpse_processor_events_processed_total"); n != float64(len(evs)) {
		t.Errorf("%v events processed for %d published", n, len(evs))
	}
	diffRows(t, "rollups", st.dump(t, false), oracle(evs))
}

func TestConfigFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if c != DefaultConfig() {
		t.Errorf("flag defaults %+v differ from DefaultConfig %+v", c, DefaultConfig())
	}
	if err := fs.Parse([]string{"-processor.flush-interval=2s", "-processor.checkpoint-interval=10s", "-processor.lateness=1h", "-processor.group=g"}); err != nil {
		t.Fatal(err)
	}
	if c.FlushInterval != 2*time.Second || c.CheckpointInterval != 10*time.Second || c.Lateness != time.Hour || c.Group != "g" {
		t.Errorf("parsed %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	c.CheckpointInterval = time.Second
	if err := c.Validate(); err == nil {
		t.Error("a checkpoint interval below the flush interval was accepted")
	}
	c = DefaultConfig()
	c.FlushEvents = -1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "processor.flush-events") {
		t.Errorf("a negative flush-events: %v", err)
	}
	if _, err := New(DefaultConfig(), Deps{}); err == nil {
		t.Error("New without a bus and a store succeeded")
	}
}
