package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/event"
)

func TestBadInput(t *testing.T) {
	h := newHarness(t)
	long := func(n int) string { return strings.Repeat("a", n) }
	props := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"n":"pageview","u":"https://example.com/","d":"example.com","p":{`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"k%d":"v"`, i)
		}
		b.WriteString("}}")
		return b.String()
	}
	ev := func(extra string) string {
		return `{"n":"buy","u":"https://example.com/","d":"example.com"` + extra + `}`
	}
	cases := []struct {
		name string
		r    req
		code int
		want string
	}{
		{"empty body", req{body: ""}, 400, "request body is empty"},
		{"whitespace body", req{body: "  \n"}, 400, "request body is empty"},
		{"not json", req{body: "n=pageview"}, 400, "must be one JSON object"},
		{"array", req{body: `[{"n":"pageview"}]`}, 400, "must be one JSON object"},
		{"broken json", req{body: `{"n":"pageview",`}, 400, "not valid JSON"},
		{"trailing garbage", req{body: `{"n":"pageview"} x`}, 400, "not valid JSON"},
		{"name wrong type", req{body: `{"n":5,"u":"https://example.com/","d":"example.com"}`}, 400, `field "n" must be a string, not a JSON number`},
		{"missing name", req{body: `{"u":"https://example.com/","d":"example.com"}`}, 400, `missing event name: set "n"`},
		{"blank name", req{body: `{"n":"  ","u":"https://example.com/","d":"example.com"}`}, 400, `missing event name`},
		{"name too long", req{body: `{"n":"` + long(event.MaxNameLen+1) + `","u":"https://example.com/","d":"example.com"}`}, 400, "is 121 bytes; the limit is 120"},
		{"name control char", req{body: `{"n":"a\u0000b","u":"https://example.com/","d":"example.com"}`}, 400, "control character"},
		{"missing url", req{body: `{"n":"pageview","d":"example.com"}`}, 400, `missing page URL: set "u"`},
		{"url too long", req{body: `{"n":"pageview","u":"https://example.com/` + long(event.MaxURLLen) + `","d":"example.com"}`}, 400, "the limit is 2048"},
		{"url relative", req{body: `{"n":"pageview","u":"/pricing","d":"example.com"}`}, 400, `page URL "u" is not an absolute URL`},
		{"url no host", req{body: `{"n":"pageview","u":"https:///pricing","d":"example.com"}`}, 400, "no host"},
		{"url bad escape host", req{body: `{"n":"pageview","u":"http://exa mple.com/","d":"example.com"}`}, 400, "not an absolute URL"},
		{"long url alias", req{body: `{"name":"pageview","url":"nope","domain":"example.com"}`}, 400, `page URL "url"`},
		{"missing domain", req{body: `{"n":"pageview","u":"https://example.com/"}`}, 400, `missing site: set "d"`},
		{"domain only commas", req{body: `{"n":"pageview","u":"https://example.com/","d":" , ,"}`}, 400, `missing site`},
		{"domain with space", req{body: `{"n":"pageview","u":"https://example.com/","d":"exa mple.com"}`}, 400, `site id "exa mple.com" in "d" is not valid`},
		{"domain too long", req{body: `{"n":"pageview","u":"https://example.com/","d":"` + long(event.MaxSiteLen+1) + `"}`}, 400, "the limit is 255"},
		{"too many domains", req{body: `{"n":"pageview","u":"https://example.com/","d":"` + strings.Repeat("a.com,", 11) + `"}`}, 400, "more than 10 sites"},
		{"props not object", req{body: ev(`,"p":[1,2]`)}, 400, `"p" must be a JSON object`},
		{"props number", req{body: ev(`,"p":5`)}, 400, `"p" must be a JSON object`},
		{"props bad string", req{body: ev(`,"p":"plan=pro"`)}, 400, `"p" must be a JSON object`},
		{"prop object value", req{body: ev(`,"p":{"a":{"b":1}}`)}, 400, `property "a" must be a string, number or boolean, not an object`},
		{"prop array value", req{body: ev(`,"props":{"a":[1]}`)}, 400, `"props": property "a" must be a string, number or boolean, not an array`},
		{"prop empty key", req{body: ev(`,"p":{"":"x"}`)}, 400, "empty name"},
		{"prop key too long", req{body: ev(`,"p":{"` + long(event.MaxPropKeyLen+1) + `":"x"}`)}, 400, "is 301 bytes; the limit is 300"},
		{"prop value too long", req{body: ev(`,"p":{"k":"` + long(event.MaxPropValLen+1) + `"}`)}, 400, "is 2001 bytes; the limit is 2000"},
		{"too many props", req{body: props(event.MaxPropKeys + 1)}, 400, `"p" has 31 properties; the limit is 30`},
		{"revenue not object", req{body: ev(`,"revenue":"9.99"`)}, 400, `"revenue" must be an object such as {"amount":"9.99","currency":"EUR"}`},
		{"revenue no amount", req{body: ev(`,"revenue":{"currency":"EUR"}`)}, 400, "missing revenue.amount"},
		{"revenue no currency", req{body: ev(`,"revenue":{"amount":"1"}`)}, 400, "missing revenue.currency"},
		{"revenue negative", req{body: ev(`,"revenue":{"amount":"-1","currency":"EUR"}`)}, 400, "revenue.amount must be a positive decimal"},
		{"revenue zero", req{body: ev(`,"revenue":{"amount":0,"currency":"EUR"}`)}, 400, "revenue.amount must be a positive decimal"},
		{"revenue exponent", req{body: ev(`,"revenue":{"amount":1e3,"currency":"EUR"}`)}, 400, "revenue.amount must be a positive decimal"},
		{"revenue comma", req{body: ev(`,"revenue":{"amount":"9,99","currency":"EUR"}`)}, 400, `got "9,99"`},
		{"revenue too many digits", req{body: ev(`,"revenue":{"amount":"1234567890123456","currency":"EUR"}`)}, 400, "at most 15 integer and 6 fractional digits"},
		{"revenue too precise", req{body: ev(`,"revenue":{"amount":"1.1234567","currency":"EUR"}`)}, 400, "at most 15 integer and 6 fractional digits"},
		{"revenue amount bool", req{body: ev(`,"revenue":{"amount":true,"currency":"EUR"}`)}, 400, "revenue.amount must be a decimal string or number"},
		{"currency long", req{body: ev(`,"revenue":{"amount":"1","currency":"EURO"}`)}, 400, `revenue.currency must be a 3-letter ISO 4217 code such as "EUR"; got "EURO"`},
		{"currency digits", req{body: ev(`,"$":{"amount":"1","currency":"E1R"}`)}, 400, `$.currency must be a 3-letter`},
		{"currency number", req{body: ev(`,"revenue":{"amount":"1","currency":978}`)}, 400, `revenue.currency must be a string`},
		{"interactive string", req{body: ev(`,"i":"no"`)}, 400, `"i" must be true or false`},
		{"hash object", req{body: ev(`,"h":{}`)}, 400, `"h" must be true or false`},
		{"engagement negative", req{body: ev(`,"e":-1`)}, 400, `"e" (engagement time) must be a number of milliseconds from 0 to 86400000`},
		{"engagement huge", req{body: ev(`,"e":86400001`)}, 400, `"e" (engagement time)`},
		{"engagement string", req{body: ev(`,"e":"10"`)}, 400, `"e" (engagement time)`},
		{"vid too long", req{body: ev(`,"vid":"` + long(MaxFirstPartyIDLen+1) + `"`)}, 400, `"vid" (first-party visitor id) must be a string of 1 to 64`},
		{"vid space", req{body: ev(`,"vid":"a b"`)}, 400, `"vid"`},
		{"vid number", req{body: ev(`,"vid":42`)}, 400, `"vid"`},
		{"eid too long", req{body: ev(`,"eid":"` + long(event.MaxIDLen+1) + `"`)}, 400, `"eid" (event id) must be a string of 1 to 64 printable ASCII characters without spaces`},
		{"eid space", req{body: ev(`,"eid":"a b"`)}, 400, `"eid" (event id)`},
		{"eid control char", req{body: ev(`,"eid":"a\u0007b"`)}, 400, `"eid" (event id)`},
		{"eid non-ASCII", req{body: ev(`,"eid":"café"`)}, 400, `"eid" (event id)`},
		{"eid number", req{body: ev(`,"eid":42`)}, 400, `"eid" (event id)`},
		{"eid object", req{body: ev(`,"eid":{"id":"x"}`)}, 400, `"eid" (event id)`},
		{"too large", req{body: `{"n":"pageview","u":"https://example.com/","d":"example.com","p":{"k":"` + long(20000) + `"}}`}, 413, "larger than 16384 bytes"},
		{"multipart", req{body: "x", ct: "multipart/form-data; boundary=x"}, 415, `unsupported Content-Type "multipart/form-data; boundary=x": send the event as a JSON object`},
		{"form", req{body: "n=pageview", ct: "application/x-www-form-urlencoded"}, 415, "unsupported Content-Type"},
		{"xml", req{body: "<e/>", ct: "application/xml"}, 415, "unsupported Content-Type"},
		{"GET", req{method: http.MethodGet}, 405, "method GET is not allowed"},
		{"PUT", req{method: http.MethodPut, body: "{}"}, 405, "send events with POST"},
		{"other path", req{path: "/api/events", body: "{}"}, 404, "no such endpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := h.do(tc.r)
			if w.Code != tc.code {
				t.Fatalf("status %d, body %s; want %d", w.Code, w.Body, tc.code)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q; want application/json", ct)
			}
			var body struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("error body %q is not JSON: %v", w.Body, err)
			}
			if !strings.Contains(body.Error, tc.want) {
				t.Errorf("error %q does not contain %q", body.Error, tc.want)
			}
			if tc.code == 405 && w.Header().Get("Allow") != "POST, OPTIONS" {
				t.Errorf("Allow %q; want POST, OPTIONS", w.Header().Get("Allow"))
			}
		})
	}
	if n := len(h.bus.events(t)); n != 0 {
		t.Errorf("%d events published for bad input", n)
	}
	if got := h.counter(t, resultInvalid); got < 40 {
		t.Errorf("invalid counter %v; want every 400 counted", got)
	}
	for _, r := range []string{resultTooLarge, resultUnsupported} {
		if h.counter(t, r) == 0 {
			t.Errorf("%s not counted", r)
		}
	}
}

func TestTooLargeByContentLengthAndStream(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBodyBytes = 300 })
	body := `{"n":"pageview","u":"https://example.com/","d":"example.com","p":{"k":"` + strings.Repeat("x", 300) + `"}}`
	for _, cl := range []int64{-1, int64(len(body))} { // -1: chunked, only the stream tells
		r := newPost(body)
		r.ContentLength = cl
		w := newRecorder()
		h.c.Handler().ServeHTTP(w, r)
		if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "larger than 300 bytes") {
			t.Errorf("content-length %d: %d %s; want 413", cl, w.Code, w.Body)
		}
	}
}

func TestOptions(t *testing.T) {
	h := newHarness(t)
	w := h.do(req{method: http.MethodOptions})
	if w.Code != http.StatusNoContent || w.Header().Get("Allow") != "POST, OPTIONS" {
		t.Fatalf("OPTIONS: %d Allow=%q", w.Code, w.Header().Get("Allow"))
	}
}

func TestPlausibleExamplesAccepted(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name  string
		r     req
		check func(t *testing.T, e *event.Event)
	}{
		{"design example as JSON", req{body: `{"n":"pageview","u":"https://example.com/a?utm_source=x","d":"example.com","r":"https://google.com/","p":{"plan":"pro"},"revenue":{"amount":"9.99","currency":"EUR"},"i":true}`},
			func(t *testing.T, e *event.Event) {
				want := event.Event{Site: "example.com", Name: "pageview", Hostname: "example.com", Path: "/a",
					Referrer: "google.com", Source: "x", UTMSource: "x", Props: map[string]string{"plan": "pro"},
					Revenue: &event.Revenue{Amount: "9.99", Currency: "EUR"}, Interactive: true,
					Browser: "Chrome", BrowserVersion: "124.0", OS: "macOS", OSVersion: "10.15", Device: "Desktop"}
				want.VisitorID, want.Time = e.VisitorID, e.Time
				if !equalEvents(e, &want) {
					t.Errorf("got  %+v\nwant %+v", e, &want)
				}
				if e.Time != day0.UnixMilli() {
					t.Errorf("time %d; want receive time %d", e.Time, day0.UnixMilli())
				}
			}},
		{"sendBeacon text/plain", req{ct: "text/plain;charset=UTF-8", body: `{"n":"pageview","u":"https://www.example.com/","d":"example.com","r":null}`},
			func(t *testing.T, e *event.Event) {
				if e.Path != "/" || e.Hostname != "example.com" || e.Source != "" || e.Referrer != "" {
					t.Errorf("got %+v", e)
				}
			}},
		{"no content type", req{ct: "-", body: `{"n":"pageview","u":"https://example.com/x","d":"example.com"}`}, nil},
		{"server-side long names", req{body: `{"name":"Signup","url":"https://example.com/register","domain":"example.com","referrer":"https://news.ycombinator.com/item?id=1","props":{"plan":"pro"},"interactive":false}`},
			func(t *testing.T, e *event.Event) {
				if e.Name != "Signup" || e.Path != "/register" || e.Source != "Hacker News" || e.Referrer != "news.ycombinator.com/item" || e.Interactive || e.Props["plan"] != "pro" {
					t.Errorf("got %+v", e)
				}
			}},
		{"numeric and bool props, nulls and empties dropped", req{body: `{"n":"Download","u":"https://example.com/","d":"example.com","p":{"size":1024,"ratio":-0.5,"big":1e3,"beta":true,"old":false,"gone":null,"empty":""}}`},
			func(t *testing.T, e *event.Event) {
				want := map[string]string{"size": "1024", "ratio": "-0.5", "big": "1e3", "beta": "true", "old": "false"}
				if fmt.Sprint(e.Props) != fmt.Sprint(want) {
					t.Errorf("props %v; want %v", e.Props, want)
				}
				if !e.Interactive {
					t.Error("custom event without i must be interactive")
				}
			}},
		{"props as JSON string (older scripts)", req{body: `{"n":"pageview","u":"https://example.com/","d":"example.com","p":"{\"author\":\"Ann\"}"}`},
			func(t *testing.T, e *event.Event) {
				if e.Props["author"] != "Ann" {
					t.Errorf("props %v", e.Props)
				}
			}},
		{"only null props", req{body: `{"n":"pageview","u":"https://example.com/","d":"example.com","p":{"a":null}}`},
			func(t *testing.T, e *event.Event) {
				if e.Props != nil {
					t.Errorf("props %v; want none", e.Props)
				}
			}},
		{"revenue number and lower-case currency", req{body: `{"n":"Purchase","u":"https://example.com/","d":"example.com","$":{"amount":19.90,"currency":"usd"}}`},
			func(t *testing.T, e *event.Event) {
				if e.Revenue == nil || *e.Revenue != (event.Revenue{Amount: "19.90", Currency: "USD"}) {
					t.Errorf("revenue %+v", e.Revenue)
				}
			}},
		{"hash routing keeps the fragment", req{body: `{"n":"pageview","u":"https://example.com/app?x=1#/settings/profile","d":"example.com","h":1}`},
			func(t *testing.T, e *event.Event) {
				if e.Path != "/app#/settings/profile" {
					t.Errorf("path %q", e.Path)
				}
			}},
		{"fragment dropped without h", req{body: `{"n":"pageview","u":"https://example.com/app#/settings","d":"example.com"}`},
			func(t *testing.T, e *event.Event) {
				if e.Path != "/app" {
					t.Errorf("path %q", e.Path)
				}
			}},
		{"engagement", req{body: `{"n":"engagement","u":"https://example.com/","d":"example.com","e":1234.9,"sd":80}`},
			func(t *testing.T, e *event.Event) {
				if e.EngagementMS != 1234 || e.Interactive {
					t.Errorf("engagement %d interactive %v; want 1234, false", e.EngagementMS, e.Interactive)
				}
			}},
		{"event id", req{body: `{"n":"pageview","u":"https://example.com/","d":"example.com","eid":"` + strings.Repeat("x", event.MaxIDLen-9) + `-42_~!{}#"}`},
			func(t *testing.T, e *event.Event) {
				if want := strings.Repeat("x", event.MaxIDLen-9) + "-42_~!{}#"; e.ID != want {
					t.Errorf("id %q; want %q", e.ID, want)
				}
			}},
		{"empty or null event id is none", req{body: `{"n":"pageview","u":"https://example.com/","d":"example.com","eid":null}`},
			func(t *testing.T, e *event.Event) {
				if e.ID != "" {
					t.Errorf("id %q; want none", e.ID)
				}
			}},
		{"repeated props key: the last wins", req{body: `{"n":"pageview","u":"https://example.com/","d":"example.com","p":{"a":"1"},"p":{"b":"2"}}`},
			func(t *testing.T, e *event.Event) {
				if len(e.Props) != 1 || e.Props["b"] != "2" {
					t.Errorf("props %v; want only b=2", e.Props)
				}
			}},
		{"unknown fields ignored", req{body: `{"n":"pageview","u":"https://example.com/","d":"example.com","w":1280,"m":null,"future":{"x":[1]}}`}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := h.one(t, tc.r)
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
	if got := h.counter(t, resultAccepted); got != float64(len(cases)) {
		t.Errorf("accepted counter %v; want %d", got, len(cases))
	}
}

func TestAcceptedBody(t *testing.T) {
	h := newHarness(t)
	w := h.post(`{"n":"pageview","u":"https://example.com/","d":"example.com"}`)
	if w.Code != http.StatusAccepted || w.Body.String() != "ok" {
		t.Fatalf("%d %q; want 202 ok", w.Code, w.Body)
	}
	if got := h.bus.topics[0]; got != "glimpse-events" {
		t.Errorf("topic %q", got)
	}
}

func TestCommaSeparatedDomains(t *testing.T) {
	h := newHarness(t)
	w := h.post(`{"n":"pageview","u":"https://blog.example.com/post","d":"example.com, https://www.Rollup.example/ ,example.com,"}`)
	if w.Code != http.StatusAccepted {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	evs := h.bus.events(t)
	if len(evs) != 2 || evs[0].Site != "example.com" || evs[1].Site != "rollup.example" {
		t.Fatalf("sites %v; want example.com and rollup.example once each", sitesOf(evs))
	}
	if evs[0].VisitorID == evs[1].VisitorID {
		t.Error("the same visitor must get a different id per site")
	}
	if evs[0].Path != "/post" || evs[1].Path != "/post" || evs[0].Hostname != "blog.example.com" {
		t.Errorf("events %+v %+v", evs[0], evs[1])
	}
	if got := h.counter(t, resultAccepted); got != 2 {
		t.Errorf("accepted %v; want 2 (one per site)", got)
	}
	if h.bus.calls != 1 {
		t.Errorf("%d publishes; want one for the whole request", h.bus.calls)
	}
}

func TestBotsDroppedWith202(t *testing.T) {
	h := newHarness(t)
	body := `{"n":"pageview","u":"https://example.com/","d":"example.com,other.com"}`
	for _, ua := range []string{
		"-",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
		"curl/8.5.0",
	} {
		w := h.do(req{body: body, ua: ua})
		if w.Code != http.StatusAccepted || w.Header().Get(DroppedHeader) != "bot" {
			t.Errorf("UA %q: %d %s=%q; want 202 with %s: bot", ua, w.Code, DroppedHeader, w.Header().Get(DroppedHeader), DroppedHeader)
		}
	}
	if n := len(h.bus.events(t)); n != 0 {
		t.Errorf("%d bot events published", n)
	}
	if got := h.counter(t, resultBot); got != 8 {
		t.Errorf("bot counter %v; want 8 (4 requests × 2 sites)", got)
	}
	// Bad input from a bot still gets its 400: the developer testing with curl learns why.
	if w := h.do(req{body: `{"n":"pageview"}`, ua: "curl/8.5.0"}); w.Code != http.StatusBadRequest {
		t.Errorf("invalid body from curl: %d; want 400", w.Code)
	}
}

func TestPublishFailureIs503AndNothingAcknowledged(t *testing.T) {
	body := `{"n":"pageview","u":"https://example.com/","d":"a.com,b.com"}`
	for _, tc := range []struct {
		name string
		err  error
		code int
	}{
		{"unavailable", fmt.Errorf("kafka: leader election: %w", bus.ErrUnavailable), 503},
		{"timeout", context.DeadlineExceeded, 503},
		{"other", errors.New("message too large"), 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.RetryAfter = 2500 * time.Millisecond })
			h.bus.setErr(tc.err)
			w := h.post(body)
			if w.Code != tc.code {
				t.Fatalf("%d %s; want %d", w.Code, w.Body, tc.code)
			}
			if tc.code == 503 {
				if ra := w.Header().Get("Retry-After"); ra != "3" {
					t.Errorf("Retry-After %q; want 3", ra)
				}
				if !strings.Contains(w.Body.String(), "retry later") || h.counter(t, resultUnavailable) != 2 {
					t.Errorf("body %s unavailable=%v", w.Body, h.counter(t, resultUnavailable))
				}
			}
			if strings.Contains(w.Body.String(), "ok") || len(h.bus.events(t)) != 0 || h.counter(t, resultAccepted) != 0 {
				t.Error("a failed publish must not be acknowledged")
			}
		})
	}
}

func TestPublishTimeout(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PublishTimeout = 20 * time.Millisecond })
	h.bus.block = make(chan struct{}) // never released: Publish waits for its ctx
	w := h.post(`{"n":"pageview","u":"https://example.com/","d":"example.com"}`)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "5" {
		t.Fatalf("%d Retry-After=%q %s; want 503 with Retry-After 5", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}

func TestSaltStoreDownIs503(t *testing.T) {
	h := newHarness(t)
	h.meta.setErr(errors.New("cassandra: no hosts"))
	h.clock.Set(day0.Add(72 * time.Hour)) // a day whose salt is not cached
	w := h.post(`{"n":"pageview","u":"https://example.com/","d":"example.com"}`)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("%d %s; want 503 with Retry-After", w.Code, w.Body)
	}
	if len(h.bus.events(t)) != 0 {
		t.Error("published without a visitor id")
	}
}

func TestClientGoneDoesNotCancelPublish(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := newPost(`{"n":"pageview","u":"https://example.com/","d":"example.com"}`).WithContext(ctx)
	cancel() // the page was closed right after sendBeacon
	w := newRecorder()
	h.c.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusAccepted || len(h.bus.events(t)) != 1 {
		t.Fatalf("%d, %d events; want the beacon stored although its sender left", w.Code, len(h.bus.events(t)))
	}
}

func TestStopWaitsForInFlightPublishes(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	h.bus.block = release
	done := make(chan int)
	go func() {
		done <- h.post(`{"n":"pageview","u":"https://example.com/","d":"example.com"}`).Code
	}()
	waitFor(t, func() bool { return h.c.pending.Load() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	err := h.c.Stop(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "1 publishes still in flight") {
		t.Fatalf("Stop with a stuck publish: %v; want a deadline error naming it", err)
	}
	// New requests are refused while stopping.
	if w := h.post(`{"n":"pageview","u":"https://example.com/","d":"example.com"}`); w.Code != http.StatusServiceUnavailable {
		t.Errorf("request during Stop: %d; want 503", w.Code)
	}
	stopped := make(chan error)
	go func() { stopped <- h.c.Stop(context.Background()) }()
	close(release)
	if code := <-done; code != http.StatusAccepted {
		t.Errorf("in-flight request got %d; want 202", code)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBodyBytes = 0
	cfg.Topic = " "
	_, err := New(cfg, Deps{Bus: &fakeBus{}, Meta: newMemMeta()})
	if err == nil || !strings.Contains(err.Error(), "collector.max-body-bytes") || !strings.Contains(err.Error(), "collector.topic") {
		t.Errorf("New with a bad config: %v", err)
	}
	if _, err := New(DefaultConfig(), Deps{Meta: newMemMeta()}); err == nil {
		t.Error("New without a bus must fail")
	}
	if _, err := New(DefaultConfig(), Deps{Bus: &fakeBus{}}); err == nil {
		t.Error("New without meta must fail")
	}
	reg := prometheus.NewRegistry()
	if _, err := New(DefaultConfig(), Deps{Bus: &fakeBus{}, Meta: newMemMeta(), Metrics: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(DefaultConfig(), Deps{Bus: &fakeBus{}, Meta: newMemMeta(), Metrics: reg}); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("second collector on one registry: %v", err)
	}
}

func TestOverHTTP(t *testing.T) {
	h := newHarness(t)
	srv := httptest.NewServer(h.c.Handler())
	defer srv.Close()
	post := func(ct, body string) (*http.Response, string) {
		t.Helper()
		r, _ := http.NewRequest(http.MethodPost, srv.URL+Path, strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		r.Header.Set("User-Agent", safariIOS)
		resp, err := srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := post("text/plain;charset=UTF-8", pv); resp.StatusCode != 202 || body != "ok" {
		t.Errorf("beacon: %d %q", resp.StatusCode, body)
	}
	if resp, body := post("application/json", `{"n":"pageview","u":"https://example.com/","d":"example.com","p":{"k":"`+strings.Repeat("x", 17000)+`"}}`); resp.StatusCode != 413 || !strings.Contains(body, "larger than") {
		t.Errorf("large body: %d %q", resp.StatusCode, body)
	}
	evs := h.bus.events(t)
	if len(evs) != 1 || evs[0].Device != "Mobile" || evs[0].VisitorID == 0 {
		t.Errorf("events %+v", evs)
	}
}

func equalEvents(a, b *event.Event) bool {
	ea, _ := event.Encode(a)
	eb, _ := event.Encode(b)
	return string(ea) == string(eb)
}

func sitesOf(evs []*event.Event) []string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Site)
	}
	return s
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMetricsExported(t *testing.T) {
	h := newHarness(t)
	h.post(pv)
	h.post(`{}`)
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetHistogram() != nil:
				got[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			case m.GetGauge() != nil:
				got[mf.GetName()] += m.GetGauge().GetValue()
			}
		}
	}
	for name, want := range map[string]float64{
		"glimpse_collector_request_duration_seconds": 2,
		"glimpse_collector_publish_duration_seconds": 1,
		"glimpse_collector_requests_in_flight":       0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v); want %v", name, v, ok, want)
		}
	}
	if h.counter(t, resultAccepted) != 1 || h.counter(t, resultInvalid) != 1 {
		t.Errorf("accepted %v invalid %v", h.counter(t, resultAccepted), h.counter(t, resultInvalid))
	}
}
