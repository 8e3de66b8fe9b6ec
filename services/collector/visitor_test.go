package collector

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/sites"
)

const pv = `{"n":"pageview","u":"https://example.com/","d":"example.com"}`

func TestVisitorID(t *testing.T) {
	h := newHarness(t)
	id := func(r req) uint64 {
		t.Helper()
		if r.body == "" {
			r.body = pv
		}
		if r.remote == "" {
			r.remote = "203.0.113.7:51234"
		}
		return h.one(t, r).VisitorID
	}
	base := id(req{})
	if again := id(req{remote: "203.0.113.7:40000"}); again != base {
		t.Error("same site, IP and User-Agent on the same day must give the same id (the port does not matter)")
	}
	h.clock.Set(day0.Add(8 * time.Hour)) // 23:09 the same day
	if late := id(req{}); late != base {
		t.Error("the id changed within the day")
	}
	if other := id(req{remote: "203.0.113.8:51234"}); other == base {
		t.Error("another IP must give another id")
	}
	if other := id(req{ua: firefoxWin}); other == base {
		t.Error("another User-Agent must give another id")
	}
	if other := id(req{body: `{"n":"pageview","u":"https://example.com/","d":"example.org"}`}); other == base {
		t.Error("another site must give another id")
	}
	if v6, mapped := id(req{remote: "[2001:db8::1]:443"}), id(req{remote: "[::ffff:203.0.113.7]:51234"}); v6 == base || mapped != base {
		t.Error("an IPv4-mapped IPv6 peer must hash like its IPv4 address, a real IPv6 peer differently")
	}
	h.clock.Set(day0.Add(9 * time.Hour)) // 00:09 the next day
	if next := id(req{}); next == base {
		t.Error("the id must change with the daily salt")
	}
}

func TestVisitorIDCookieMode(t *testing.T) {
	h := newHarness(t)
	body := func(site, vid string) string {
		return `{"n":"pageview","u":"https://example.com/","d":"` + site + `","vid":"` + vid + `"}`
	}
	first := h.one(t, req{body: body("example.com", "k9Xq2-abc_DEF.123"), remote: "203.0.113.7:1"}).VisitorID
	cookieless := h.one(t, req{body: pv, remote: "203.0.113.7:1"}).VisitorID
	if first == cookieless {
		t.Error("cookie-mode id equals the cookieless id")
	}
	h.clock.Set(day0.Add(30 * 24 * time.Hour))
	if later := h.one(t, req{body: body("example.com", "k9Xq2-abc_DEF.123"), remote: "198.51.100.2:1", ua: firefoxWin}).VisitorID; later != first {
		t.Error("cookie-mode id must be stable across days, IPs and browsers")
	}
	if other := h.one(t, req{body: body("example.org", "k9Xq2-abc_DEF.123")}).VisitorID; other == first {
		t.Error("cookie-mode id must differ per site")
	}
	if other := h.one(t, req{body: body("example.com", "another")}).VisitorID; other == first {
		t.Error("another vid must give another id")
	}
	if empty := h.one(t, req{body: `{"n":"pageview","u":"https://example.com/","d":"example.com","vid":""}`, remote: "203.0.113.7:1"}).VisitorID; empty == first {
		t.Error(`"vid":"" must fall back to the cookieless id`)
	}
}

func TestFleetAgreesOnVisitorIDs(t *testing.T) {
	meta := newMemMeta()
	if _, err := sites.NewDirectory(meta, sites.Options{}).Put(context.Background(), sites.Site{Domain: "example.com"}); err != nil {
		t.Fatal(err)
	}
	mk := func() (*Collector, *fakeBus) {
		b := &fakeBus{}
		c, err := New(DefaultConfig(), Deps{Bus: b, Meta: meta, Now: func() time.Time { return day0 }, Metrics: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return c, b
	}
	c1, b1 := mk()
	c2, b2 := mk()
	for _, body := range []string{pv, `{"n":"pageview","u":"https://example.com/","d":"example.com","vid":"abc"}`} {
		for _, c := range []*Collector{c1, c2} {
			w := httptest.NewRecorder()
			c.Handler().ServeHTTP(w, newPost(body))
		}
	}
	e1, e2 := b1.events(t), b2.events(t)
	if len(e1) != 2 || len(e2) != 2 || e1[0].VisitorID != e2[0].VisitorID || e1[1].VisitorID != e2[1].VisitorID {
		t.Fatalf("two collectors on one store disagree: %v %v", e1, e2)
	}
	if meta.puts > 3 {
		t.Errorf("%d conditional writes for 3 keys; existing salts must be read, not rewritten", meta.puts)
	}
}

func TestSaltLifecycle(t *testing.T) {
	h := newHarness(t)
	today := dayOf(day0.UnixMilli())
	if got, want := h.meta.keys(SaltNamespace), []string{"2026-03-14", "2026-03-15", FirstPartyKeyName}; !slices.Equal(got, want) {
		t.Fatalf("after Start: salts %v; want %v", got, want)
	}
	for _, k := range h.meta.keys(SaltNamespace) {
		v, _, _ := h.meta.GetMeta(context.Background(), SaltNamespace, k)
		if len(v) < 16 {
			t.Errorf("salt %s is %d bytes", k, len(v))
		}
	}
	// Stale salts left by an earlier run, and a key that is no day.
	for _, k := range []string{"2026-03-01", "2026-03-12", "2026-03-13", "notes"} {
		_ = h.meta.PutMeta(context.Background(), SaltNamespace, k, bytes.Repeat([]byte{1}, 16))
	}
	h.c.maintain(context.Background())
	if got, want := h.meta.keys(SaltNamespace), []string{"2026-03-13", "2026-03-14", "2026-03-15", FirstPartyKeyName, "notes"}; !slices.Equal(got, want) {
		t.Fatalf("after maintain: %v; want %v", got, want)
	}

	// Across midnight: Run creates the day after and deletes what is older than yesterday.
	h.c.maintainEvery = 2 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.c.Run(ctx) }()
	h.clock.Set(day0.Add(24 * time.Hour))
	waitFor(t, func() bool {
		return slices.Equal(h.meta.keys(SaltNamespace), []string{"2026-03-14", "2026-03-15", "2026-03-16", FirstPartyKeyName, "notes"})
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v on cancel", err)
	}
	cached := *h.c.salts.days.Load()
	if _, ok := cached[today-1]; ok {
		t.Error("the salt of the day before yesterday is still cached")
	}
	if _, ok := cached[today+2]; !ok {
		t.Error("tomorrow's salt is not cached ahead of midnight")
	}
}

func TestStartNeedsTheSaltStore(t *testing.T) {
	meta := newMemMeta()
	meta.setErr(errors.New("connection refused"))
	c, err := New(DefaultConfig(), Deps{Bus: &fakeBus{}, Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Start with the store down: %v", err)
	}

	short := newMemMeta()
	_ = short.PutMeta(context.Background(), SaltNamespace, dayName(dayOf(time.Now().UnixMilli())), []byte("short"))
	c, _ = New(DefaultConfig(), Deps{Bus: &fakeBus{}, Meta: short})
	if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("Start with a corrupt salt: %v", err)
	}
}

func TestRawIPNeverLeaves(t *testing.T) {
	var logs bytes.Buffer
	h := newHarness(t)
	h.c.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	const ip = "203.0.113.77"
	h.do(req{body: pv, remote: ip + ":5555"})
	h.do(req{body: `{"n":"pageview"}`, remote: ip + ":5555"}) // rejected: logged at debug
	h.bus.setErr(errors.New("boom"))
	h.do(req{body: pv, remote: ip + ":5555"}) // failed publish: logged
	if strings.Contains(logs.String(), ip) {
		t.Errorf("the client IP appears in the logs: %s", logs.String())
	}
	for _, m := range h.bus.msgs {
		if bytes.Contains(m.Value, []byte(ip)) || bytes.Contains(m.Key, []byte(ip)) {
			t.Error("the client IP appears in a published event")
		}
	}
	for ns, kv := range h.meta.data {
		for k, v := range kv {
			if strings.Contains(k, ip) || bytes.Contains(v, []byte(ip)) {
				t.Errorf("the client IP appears in meta %s/%s", ns, k)
			}
		}
	}
}

func TestXFFThroughHandler(t *testing.T) {
	h := newHarness(t)
	direct := h.one(t, req{body: pv, remote: "198.51.100.9:1"}).VisitorID
	viaProxy := h.one(t, req{body: pv, remote: "127.0.0.1:1", xff: []string{"198.51.100.9"}}).VisitorID
	forged := h.one(t, req{body: pv, remote: "192.0.2.50:1", xff: []string{"198.51.100.9"}}).VisitorID
	if viaProxy != direct {
		t.Error("a client behind a trusted proxy must hash like the same client connecting directly")
	}
	if forged == direct {
		t.Error("X-Forwarded-For from an untrusted peer must be ignored")
	}
}

func TestTrustedProxiesFlag(t *testing.T) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if got := fs.Lookup("collector.trusted-proxies").DefValue; got != "127.0.0.0/8,::1/128" {
		t.Errorf("default %q", got)
	}
	if err := fs.Parse([]string{"-collector.trusted-proxies", "10.0.0.0/8, 192.168.1.5 ,fd00::/8,::ffff:172.16.0.0/108", "-collector.max-body-bytes", "4096", "-collector.publish-timeout", "2s"}); err != nil {
		t.Fatal(err)
	}
	if got := cfg.TrustedProxies.String(); got != "10.0.0.0/8,192.168.1.5/32,fd00::/8,172.16.0.0/12" {
		t.Errorf("parsed %q", got)
	}
	if cfg.MaxBodyBytes != 4096 || cfg.PublishTimeout != 2*time.Second {
		t.Errorf("flags not bound: %+v", cfg)
	}
	for _, bad := range []string{"10.0.0.0/33", "not-an-ip", "10.0.0.0/8,,x"} {
		if err := cfg.TrustedProxies.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := cfg.TrustedProxies.Set(""); err != nil || len(cfg.TrustedProxies) != 0 {
		t.Errorf("empty list: %v %v", cfg.TrustedProxies, err)
	}
	fs.VisitAll(func(f *flag.Flag) {
		// geoip.db names a file rather than a collector setting, so it carries no collector. prefix
		if (!strings.HasPrefix(f.Name, "collector.") && f.Name != "geoip.db") || len(f.Usage) < 30 {
			t.Errorf("flag %s: name or help text too thin: %q", f.Name, f.Usage)
		}
	})
}
