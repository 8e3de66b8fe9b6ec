package collector

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

// FuzzDecodeBeacon feeds arbitrary bodies to the decoder and the handler: nothing may panic,
// every rejection is an *InputError with a message, and every accepted event respects every
// limit of internal/event.
func FuzzDecodeBeacon(f *testing.F) {
	for _, seed := range []string{
		`{"n":"pageview","u":"https://example.com/a?utm_source=x","d":"example.com","r":"https://google.com/","p":{"plan":"pro"},"revenue":{"amount":"9.99","currency":"EUR"},"i":true}`,
		`{"name":"Signup","url":"https://www.example.com/register#x","domain":"example.com,b.org","referrer":"https://news.ycombinator.com/item?id=1","props":{"n":1,"b":false,"z":null},"interactive":false}`,
		`{"n":"engagement","u":"https://example.com/app#/x","d":"example.com","h":1,"e":1234.5,"vid":"abc-DEF_123","eid":"42-7-3"}`,
		`{"n":"pageview","u":"https://example.com/","d":"example.com","eid":"a\u00e9"}`,
		`{"n":"pageview","u":"https://example.com/caf%C3%A9/%2F%00","d":"https://WWW.Example.com/","p":"{\"a\":\"b\"}","$":{"amount":12,"currency":"usd"}}`,
		`{"n":"pageview","u":"app://x/y","d":"a.com","r":"android-app://com.google.android.gm/"}`,
		`{"n":"","u":"","d":""}`,
		`{"n":5}`,
		`[]`,
		`null`,
		`{"n":"pageview","u":"https://example.com/","d":"example.com","p":{"a":{"b":1}}}`,
		`{"n":"pageview","u":"https://example.com/","d":"example.com","revenue":{"amount":"-1","currency":"EURO"}}`,
		`{"n":"pageview","u":"https://example.com/","d":"example.com","e":-1,"vid":"a b"}`,
		`{"n":"pageview","u":"https://example.com/","d":"example.com"`,
		"",
		"\xff\xfe{",
	} {
		f.Add([]byte(seed))
	}
	h := newHarness(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := DecodeBeacon(body, 10)
		if err != nil {
			ie, ok := err.(*InputError)
			if !ok || ie.Msg == "" {
				t.Fatalf("rejection %v (%T) is not an *InputError with a message", err, err)
			}
		} else {
			if len(b.Sites) == 0 || len(b.Sites) > 10 {
				t.Fatalf("%d sites", len(b.Sites))
			}
			for _, ua := range []string{chromeMac, ""} {
				e := enrich(b, ParseUserAgent(ua), day0.UnixMilli())
				for _, site := range b.Sites {
					e.Site = site
					checkLimits(t, &e)
				}
			}
		}

		// The whole handler: only these answers, and what it publishes is within limits.
		h.bus.mu.Lock()
		h.bus.msgs = h.bus.msgs[:0]
		h.bus.mu.Unlock()
		w := h.do(req{body: string(body), ct: "text/plain"})
		switch w.Code {
		case http.StatusAccepted:
			if err != nil {
				t.Fatalf("handler accepted what DecodeBeacon rejected: %v", err)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if !strings.HasPrefix(w.Body.String(), `{"error":"`) {
				t.Fatalf("rejection body %q", w.Body)
			}
		default:
			t.Fatalf("status %d for %q", w.Code, body)
		}
		for _, e := range h.bus.events(t) {
			checkLimits(t, e)
		}
	})
}

func checkLimits(t *testing.T, e *event.Event) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("event %+v: "+format, append([]any{e}, args...)...)
	}
	if e.Site == "" || len(e.Site) > event.MaxSiteLen || strings.ContainsAny(e.Site, " /,") {
		fail("site %q", e.Site)
	}
	if e.Name == "" || len(e.Name) > event.MaxNameLen {
		fail("name %q", e.Name)
	}
	if len(e.Hostname) > event.MaxURLLen || strings.HasPrefix(e.Hostname, "www.") {
		fail("hostname %q", e.Hostname)
	}
	if !strings.HasPrefix(e.Path, "/") || len(e.Path) > event.MaxPathLen || !utf8.ValidString(e.Path) {
		fail("path %q", e.Path)
	}
	if len(e.Referrer) > event.MaxURLLen || strings.ContainsAny(e.Referrer, "?") {
		fail("referrer %q", e.Referrer)
	}
	for _, s := range []string{e.Source, e.UTMSource, e.UTMMedium, e.UTMCampaign, e.UTMTerm, e.UTMContent} {
		if len(s) > event.MaxURLLen || !utf8.ValidString(s) {
			fail("source/utm %q", s)
		}
	}
	if len(e.Props) > event.MaxPropKeys {
		fail("%d props", len(e.Props))
	}
	for k, v := range e.Props {
		if k == "" || len(k) > event.MaxPropKeyLen || v == "" || len(v) > event.MaxPropValLen {
			fail("prop %q=%q", k, v)
		}
	}
	if r := e.Revenue; r != nil {
		if !isCurrency(r.Currency) {
			fail("currency %q", r.Currency)
		}
		if norm, ok := normalizeAmount(r.Amount); !ok || norm != r.Amount {
			fail("amount %q", r.Amount)
		}
	}
	if e.EngagementMS < 0 || e.EngagementMS > MaxEngagementMS {
		fail("engagement %d", e.EngagementMS)
	}
	if len(e.ID) > event.MaxIDLen || strings.ContainsFunc(e.ID, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		fail("id %q", e.ID)
	}
	if e.Time != day0.UnixMilli() {
		fail("time %d", e.Time)
	}
	enc, err := event.Encode(e)
	if err != nil {
		fail("encode: %v", err)
	}
	back, err := event.Decode(enc)
	if err != nil || !equalEvents(back, e) {
		fail("round trip: %v %+v", err, back)
	}
}
