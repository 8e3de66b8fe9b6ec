package collector

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/event"
)

// fakeBus records published messages. err, when set, fails every publish; block, when set,
// makes Publish wait for it (or for ctx).
type fakeBus struct {
	mu     sync.Mutex
	msgs   []bus.Message
	topics []string
	calls  int
	err    error
	block  chan struct{}
	// discard drops published messages instead of keeping them (fuzzing, benchmarks).
	discard bool
}

func (b *fakeBus) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	b.mu.Lock()
	b.calls++
	err, block := b.err, b.block
	b.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.discard {
		return nil
	}
	b.msgs = append(b.msgs, msgs...)
	for range msgs {
		b.topics = append(b.topics, topic)
	}
	return nil
}

func (b *fakeBus) Consume(context.Context, string, string, bus.Handler) error {
	return errors.New("not implemented")
}
func (b *fakeBus) Partitions(context.Context, string) (int, error) { return 1, nil }
func (b *fakeBus) Close() error                                    { return nil }

func (b *fakeBus) setErr(err error) {
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
}

// events decodes everything published so far.
func (b *fakeBus) events(t *testing.T) []*event.Event {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*event.Event, 0, len(b.msgs))
	for _, m := range b.msgs {
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatalf("published message does not decode: %v", err)
		}
		if string(m.Key) != string(e.Key()) {
			t.Fatalf("message key %q is not the event's key %q", m.Key, e.Key())
		}
		out = append(out, e)
	}
	return out
}

// memMeta is an in-memory store.Meta with an injectable failure.
type memMeta struct {
	mu   sync.Mutex
	data map[string]map[string][]byte
	err  error
	puts int // PutMetaIfAbsent calls
}

func newMemMeta() *memMeta { return &memMeta{data: map[string]map[string][]byte{}} }

func (m *memMeta) GetMeta(_ context.Context, ns, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, false, m.err
	}
	v, ok := m.data[ns][key]
	return append([]byte(nil), v...), ok, nil
}

func (m *memMeta) PutMeta(_ context.Context, ns, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	if m.data[ns] == nil {
		m.data[ns] = map[string][]byte{}
	}
	m.data[ns][key] = append([]byte(nil), value...)
	return nil
}

func (m *memMeta) PutMetaIfAbsent(_ context.Context, ns, key string, value []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	m.puts++
	if m.data[ns] == nil {
		m.data[ns] = map[string][]byte{}
	}
	if v, ok := m.data[ns][key]; ok {
		return append([]byte(nil), v...), nil
	}
	m.data[ns][key] = append([]byte(nil), value...)
	return append([]byte(nil), value...), nil
}

func (m *memMeta) DeleteMeta(_ context.Context, ns, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	delete(m.data[ns], key)
	return nil
}

func (m *memMeta) ListMeta(_ context.Context, ns string, fn func(string, []byte) error) error {
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return m.err
	}
	keys := make([]string, 0, len(m.data[ns]))
	for k := range m.data[ns] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = m.data[ns][k]
	}
	m.mu.Unlock()
	for i, k := range keys {
		if err := fn(k, vals[i]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memMeta) setErr(err error) {
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
}

func (m *memMeta) keys(ns string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.data[ns] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// clock is a settable Deps.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var day0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

type harness struct {
	c     *Collector
	bus   *fakeBus
	meta  *memMeta
	clock *clock
	reg   *prometheus.Registry
}

func newHarness(t testing.TB, mutate ...func(*Config)) *harness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.PublishTimeout = 2 * time.Second
	cfg.OpenSites = true // most tests are about events, not the site list (see sites_test.go)
	for _, f := range mutate {
		f(&cfg)
	}
	h := &harness{bus: &fakeBus{}, meta: newMemMeta(), clock: &clock{t: day0}, reg: prometheus.NewRegistry()}
	c, err := New(cfg, Deps{
		Bus: h.bus, Meta: h.meta, Now: h.clock.Now, Metrics: h.reg,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	h.c = c
	return h
}

const (
	chromeMac  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.91 Safari/537.36"
	safariIOS  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
	firefoxWin = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
)

type req struct {
	method string
	path   string
	body   string
	ct     string // Content-Type; "-" for none
	ua     string // "-" for none
	remote string
	xff    []string
}

func (h *harness) do(r req) *httptest.ResponseRecorder {
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.path == "" {
		r.path = Path
	}
	hr := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	switch r.ct {
	case "":
		hr.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		hr.Header.Set("Content-Type", r.ct)
	}
	switch r.ua {
	case "":
		hr.Header.Set("User-Agent", chromeMac)
	case "-":
	default:
		hr.Header.Set("User-Agent", r.ua)
	}
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	for _, v := range r.xff {
		hr.Header.Add("X-Forwarded-For", v)
	}
	w := httptest.NewRecorder()
	h.c.Handler().ServeHTTP(w, hr)
	return w
}

// post sends body with the defaults and returns the recorder.
func (h *harness) post(body string) *httptest.ResponseRecorder { return h.do(req{body: body}) }

// one posts body, requires 202 and returns the single event published by it.
func (h *harness) one(t *testing.T, r req) *event.Event {
	t.Helper()
	before := len(h.bus.events(t))
	w := h.do(r)
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d, body %s; want 202", w.Code, w.Body)
	}
	evs := h.bus.events(t)
	if len(evs) != before+1 {
		t.Fatalf("published %d events; want 1", len(evs)-before)
	}
	return evs[len(evs)-1]
}

// counter reads glimpse_collector_events_total{result}.
func (h *harness) counter(t *testing.T, result string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "glimpse_collector_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

// newPost is a JSON POST of body from a desktop Chrome at 192.0.2.1.
func newPost(body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", chromeMac)
	return r
}
