package collector

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/sites"
)

func closedSites(c *Config) { c.OpenSites = false }

func TestUnknownSiteIsDroppedAndCounted(t *testing.T) {
	h := newHarness(t, closedSites)
	w := h.post(`{"n":"pageview","u":"https://example.com/a","d":"example.com"}`)
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if got := w.Header().Get(DroppedHeader); !strings.HasPrefix(got, "unknown_site: ") || !strings.Contains(got, "glimpse sites add example.com") {
		t.Errorf("%s = %q", DroppedHeader, got)
	}
	if n := len(h.bus.events(t)); n != 0 {
		t.Errorf("published %d events for an unknown site", n)
	}
	if got := h.counter(t, resultUnknownSite); got != 1 {
		t.Errorf("unknown_site = %v, want 1", got)
	}
	if got := h.counter(t, resultAccepted); got != 0 {
		t.Errorf("accepted = %v, want 0", got)
	}
	if keys := h.meta.keys(sites.SitesNamespace); len(keys) != 0 {
		t.Errorf("closed mode created sites %v", keys)
	}

	// The site is added elsewhere (the CLI): the collector notices it once its copy of the
	// list is older than collector.sites-refresh.
	if _, err := sites.NewDirectory(h.meta, sites.Options{}).Add(context.Background(), sites.Site{Domain: "example.com"}); err != nil {
		t.Fatal(err)
	}
	h.clock.Set(day0.Add(DefaultConfig().SitesRefresh))
	deadline := time.Now().Add(5 * time.Second)
	for len(h.bus.events(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the added site was never noticed")
		}
		w := h.post(`{"n":"pageview","u":"https://example.com/a","d":"example.com"}`)
		if w.Code != http.StatusAccepted {
			t.Fatalf("status %d", w.Code)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestForeignHostnameIsDroppedAndCounted(t *testing.T) {
	h := newHarness(t, closedSites)
	if _, err := sites.NewDirectory(h.meta, sites.Options{}).Add(context.Background(), sites.Site{Domain: "example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := h.c.sites.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"https://example.com/", "https://www.example.com/", "https://blog.example.com/x"} {
		h.one(t, req{body: `{"n":"pageview","u":"` + u + `","d":"example.com"}`})
	}
	for _, u := range []string{"https://evil.test/", "https://example.com.evil.test/", "http://localhost:3000/"} {
		w := h.post(`{"n":"pageview","u":"` + u + `","d":"example.com"}`)
		if w.Code != http.StatusAccepted || !strings.HasPrefix(w.Header().Get(DroppedHeader), "foreign_hostname: ") {
			t.Errorf("%s: status %d, %s %q", u, w.Code, DroppedHeader, w.Header().Get(DroppedHeader))
		}
	}
	if got := h.counter(t, resultForeignHostname); got != 3 {
		t.Errorf("foreign_hostname = %v, want 3", got)
	}
	if got := h.counter(t, resultAccepted); got != 3 {
		t.Errorf("accepted = %v, want 3", got)
	}
	if n := len(h.bus.events(t)); n != 3 {
		t.Errorf("published %d events, want 3", n)
	}

	// One event for two sites, one of them unknown: the known one is published, the other
	// dropped, and the answer says which.
	w := h.post(`{"n":"pageview","u":"https://example.com/","d":"example.com,unknown.example"}`)
	if w.Code != http.StatusAccepted || !strings.Contains(w.Header().Get(DroppedHeader), `"unknown.example"`) {
		t.Errorf("status %d, %s %q", w.Code, DroppedHeader, w.Header().Get(DroppedHeader))
	}
	if got := h.counter(t, resultUnknownSite); got != 1 {
		t.Errorf("unknown_site = %v, want 1", got)
	}
	if evs := h.bus.events(t); len(evs) != 4 || evs[3].Site != "example.com" {
		t.Errorf("published %d events", len(evs))
	}
}

func TestOpenSitesCreatesASiteOnItsFirstEvent(t *testing.T) {
	h := newHarness(t) // open
	// A bot's event creates nothing.
	if w := h.do(req{body: `{"n":"pageview","u":"http://localhost:8000/","d":"new.example"}`, ua: "curl/8.5.0"}); w.Header().Get(DroppedHeader) != "bot" {
		t.Fatalf("bot: %q", w.Header().Get(DroppedHeader))
	}
	if keys := h.meta.keys(sites.SitesNamespace); len(keys) != 0 {
		t.Fatalf("a bot created sites %v", keys)
	}
	e := h.one(t, req{body: `{"n":"pageview","u":"http://localhost:8000/","d":"new.example"}`})
	if e.Site != "new.example" || e.Hostname != "localhost" {
		t.Errorf("event %+v", e)
	}
	s, ok, err := sites.NewDirectory(h.meta, sites.Options{}).Get(context.Background(), "new.example")
	if err != nil || !ok {
		t.Fatalf("the site was not stored: %v", err)
	}
	if !s.Auto || s.Timezone != "UTC" || strings.Join(s.Hostnames, ",") != "new.example,*.new.example,localhost" {
		t.Errorf("created %+v", s)
	}
	// Later events from the real domain count; other hostnames are still foreign.
	h.one(t, req{body: `{"n":"pageview","u":"https://new.example/","d":"new.example"}`})
	if w := h.post(`{"n":"pageview","u":"https://elsewhere.test/","d":"new.example"}`); !strings.HasPrefix(w.Header().Get(DroppedHeader), "foreign_hostname") {
		t.Errorf("foreign hostname in open mode: %q", w.Header().Get(DroppedHeader))
	}
	if got := h.counter(t, resultAccepted); got != 2 {
		t.Errorf("accepted = %v, want 2", got)
	}

	// The store cannot take the new site: 503, nothing published.
	h.meta.setErr(errors.New("cassandra: no hosts"))
	w := h.post(`{"n":"pageview","u":"https://other.example/","d":"other.example"}`)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "site list") {
		t.Errorf("status %d %s", w.Code, w.Body)
	}
	// Known sites keep working from memory while the store is down.
	h.one(t, req{body: `{"n":"pageview","u":"https://new.example/b","d":"new.example"}`})
}

// A site id no site can have is the sender's mistake: 400 naming the field, not a 503 that
// would make the tracker retry forever (found by FuzzDecodeBeacon).
func TestOpenSitesRejectsImpossibleSiteIDs(t *testing.T) {
	h := newHarness(t)
	rec := h.post(`{"n":"pageview","u":"epp://x/y","d":"*"}`)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `cannot be a site id`) {
		t.Fatalf("got %d %s, want 400 naming the site id", rec.Code, rec.Body.String())
	}
}
