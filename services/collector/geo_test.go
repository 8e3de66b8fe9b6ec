package collector

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/geo/geotest"
)

// geoCounter reads glimpse_collector_geoip_lookups_total{result}.
func (h *harness) geoCounter(t *testing.T, result string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "glimpse_collector_geoip_lookups_total" {
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
	t.Fatalf("no glimpse_collector_geoip_lookups_total{result=%q}", result)
	return 0
}

func TestGeoEnrichment(t *testing.T) {
	db := geotest.CityDB(t)
	h := newHarness(t, func(c *Config) { c.GeoIPDB = db })
	body := `{"n":"pageview","u":"https://example.com/","d":"example.com"}`
	cases := []struct {
		name                  string
		remote                string
		xff                   []string
		ip                    string // the client address, which must appear nowhere in the event
		country, region, city string
		found                 bool
	}{
		{"IPv4 behind a trusted proxy", "127.0.0.1:4000", []string{geotest.LondonIPv4}, geotest.LondonIPv4, "GB", "England", "London", true},
		{"IPv6 peer", "[" + geotest.BerlinIPv6 + "]:4000", nil, geotest.BerlinIPv6, "DE", "Berlin", "Berlin", true},
		{"IPv4-mapped IPv6 forwarded", "127.0.0.1:4000", []string{"::ffff:" + geotest.BrisbaneIPv4}, geotest.BrisbaneIPv4, "AU", "Queensland", "Brisbane", true},
		{"country-only record", "127.0.0.1:4000", []string{geotest.SwedenIPv4}, geotest.SwedenIPv4, "SE", "", "", true},
		{"unlisted address", geotest.UnlistedIPv4 + ":4000", nil, geotest.UnlistedIPv4, "", "", "", false},
		{"private address", geotest.PrivateIPv4 + ":4000", nil, geotest.PrivateIPv4, "", "", "", false},
		// a forged header from an untrusted peer is ignored: the peer's own address counts
		{"untrusted X-Forwarded-For", geotest.UnlistedIPv4 + ":4000", []string{geotest.LondonIPv4}, geotest.UnlistedIPv4, "", "", "", false},
	}
	wantFound, wantNotFound := 0.0, 0.0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(h.bus.msgs)
			e := h.one(t, req{body: body, remote: c.remote, xff: c.xff})
			if e.Country != c.country || e.Region != c.region || e.City != c.city {
				t.Errorf("event location %q / %q / %q; want %q / %q / %q", e.Country, e.Region, e.City, c.country, c.region, c.city)
			}
			msg := h.bus.msgs[before]
			addr := netip.MustParseAddr(c.ip)
			for _, form := range []string{c.ip, addr.String(), addr.StringExpanded(), "::ffff:" + c.ip, string(addr.AsSlice())} {
				if bytes.Contains(msg.Value, []byte(form)) || bytes.Contains(msg.Key, []byte(form)) {
					t.Errorf("the published event carries the client address (%q): key %q value %s", form, msg.Key, msg.Value)
				}
			}
		})
		if c.found {
			wantFound++
		} else {
			wantNotFound++
		}
	}
	if got := h.geoCounter(t, "found"); got != wantFound {
		t.Errorf("found lookups = %v, want %v", got, wantFound)
	}
	if got := h.geoCounter(t, "not_found"); got != wantNotFound {
		t.Errorf("not_found lookups = %v, want %v", got, wantNotFound)
	}
	if got := h.geoCounter(t, "error"); got != 0 {
		t.Errorf("error lookups = %v, want 0", got)
	}

	// a dropped bot costs no lookup
	if w := h.do(req{body: body, ua: "Googlebot/2.1 (+http://www.google.com/bot.html)", remote: geotest.LondonIPv4 + ":1"}); w.Code != 202 {
		t.Fatalf("bot: %d %s", w.Code, w.Body)
	}
	if got := h.geoCounter(t, "found"); got != wantFound {
		t.Errorf("a bot request was looked up: found = %v, want %v", got, wantFound)
	}
}

func TestGeoCountryDatabaseAndFirstPartyIDs(t *testing.T) {
	db := geotest.CountryDB(t)
	h := newHarness(t, func(c *Config) { c.GeoIPDB = db })
	// a first-party id replaces the address in the visitor id, but not in the location
	e := h.one(t, req{body: `{"n":"pageview","u":"https://example.com/","d":"example.com","vid":"abc123"}`, remote: geotest.LondonIPv4 + ":1"})
	if e.Country != "GB" || e.Region != "" || e.City != "" {
		t.Fatalf("location %q / %q / %q; want GB and no region or city from a Country database", e.Country, e.Region, e.City)
	}
}

func TestGeoWithoutDatabase(t *testing.T) {
	h := newHarness(t)
	e := h.one(t, req{body: `{"n":"pageview","u":"https://example.com/","d":"example.com"}`, remote: geotest.LondonIPv4 + ":1"})
	if e.Country != "" || e.Region != "" || e.City != "" {
		t.Fatalf("location %q / %q / %q without a database", e.Country, e.Region, e.City)
	}
	for _, r := range []string{"found", "not_found", "error"} {
		if got := h.geoCounter(t, r); got != 0 {
			t.Errorf("%s lookups = %v without a database", r, got)
		}
	}
}

func TestGeoDatabaseErrorsStopNew(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GeoIPDB = filepath.Join(t.TempDir(), "GeoLite2-City.mmdb")
	_, err := New(cfg, Deps{Bus: &fakeBus{}, Meta: newMemMeta(), Metrics: prometheus.NewRegistry(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "geoip.db") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("New with a missing database: %v", err)
	}
}

func TestGeoDatabaseIsLogged(t *testing.T) {
	var logs bytes.Buffer
	cfg := DefaultConfig()
	cfg.GeoIPDB = geotest.CityDB(t)
	if _, err := New(cfg, Deps{Bus: &fakeBus{}, Meta: newMemMeta(), Log: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"type=GeoLite2-City", "built=2026-01-01"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("start-up log lacks %q:\n%s", want, logs.String())
		}
	}
}

func TestGeoFlag(t *testing.T) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"--geoip.db=/data/GeoLite2-City.mmdb"}); err != nil {
		t.Fatal(err)
	}
	if cfg.GeoIPDB != "/data/GeoLite2-City.mmdb" {
		t.Fatalf("GeoIPDB = %q", cfg.GeoIPDB)
	}
}
