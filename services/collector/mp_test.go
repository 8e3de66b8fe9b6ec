package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/sites"
)

// newMPHarness is a collector in closed-site mode with site example.com and one MP secret.
func newMPHarness(t *testing.T) (*harness, string) {
	t.Helper()
	h := newHarness(t, closedSites)
	ctx := context.Background()
	if _, err := sites.NewDirectory(h.meta, sites.Options{}).Add(ctx, sites.Site{Domain: "example.com"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sites.NewDirectory(h.meta, sites.Options{}).Add(ctx, sites.Site{Domain: "other.example"}); err != nil {
		t.Fatal(err)
	}
	secret, _, err := sites.NewMPSecrets(h.meta, sites.Options{}).Create(ctx, "example.com", "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.c.sites.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	return h, secret
}

func mpURL(site, secret string) string {
	q := url.Values{}
	if site != "" {
		q.Set("measurement_id", site)
	}
	if secret != "" {
		q.Set("api_secret", secret)
	}
	return MPPath + "?" + q.Encode()
}

// mpEvents builds a body with n copies of one event.
func mpEvents(n int, ev string) string {
	evs := make([]string, n)
	for i := range evs {
		evs[i] = ev
	}
	return `{"client_id":"c1","events":[` + strings.Join(evs, ",") + `]}`
}

func TestMPValidationErrors(t *testing.T) {
	h, secret := newMPHarness(t)
	good := `{"client_id":"c1","events":[{"name":"sign_up"}]}`
	longParams := map[string]any{}
	for i := range MaxMPParams + 1 {
		longParams[fmt.Sprintf("p%d", i)] = "x"
	}
	tooMany, _ := json.Marshal(map[string]any{"client_id": "c1", "events": []any{map[string]any{"name": "x", "params": longParams}}})
	cases := []struct {
		name   string
		r      req
		status int
		code   string
		field  string
		msg    string // a part of the message
	}{
		{"method", req{method: http.MethodGet, path: mpURL("example.com", secret)}, 405, mpCodeMethod, "", "send events with POST"},
		{"missing measurement_id", req{path: mpURL("", secret), body: good}, 400, mpCodeRequired, "measurement_id", "missing measurement_id"},
		{"bad measurement_id", req{path: mpURL("a b", secret), body: good}, 400, mpCodeInvalid, "measurement_id", "is not a site id"},
		{"unknown measurement_id", req{path: mpURL("nope.example", secret), body: good}, 404, mpCodeUnknownSite, "measurement_id", "glimpse sites add nope.example"},
		{"missing secret", req{path: mpURL("example.com", ""), body: good}, 403, mpCodeBadSecret, "api_secret", "glimpse sites mp-secret create example.com"},
		{"wrong secret", req{path: mpURL("example.com", secret+"x"), body: good}, 403, mpCodeBadSecret, "api_secret", "not valid for example.com"},
		{"secret of another site", req{path: mpURL("other.example", secret), body: good}, 403, mpCodeBadSecret, "api_secret", "not valid for other.example"},
		{"content type", req{path: mpURL("example.com", secret), body: good, ct: "multipart/form-data"}, 415, mpCodeContentType, "", "Content-Type"},
		{"too large", req{path: mpURL("example.com", secret), body: `{"client_id":"` + strings.Repeat("x", MaxMPBodyBytes) + `"}`}, 413, mpCodeTooLarge, "", "larger than 131072 bytes"},
		{"bad JSON", req{path: mpURL("example.com", secret), body: `{"client_id":`}, 400, mpCodeInvalid, "", "not valid JSON"},
		{"not an object", req{path: mpURL("example.com", secret), body: `[1]`}, 400, mpCodeInvalid, "", "one JSON object"},
		{"missing client_id", req{path: mpURL("example.com", secret), body: `{"events":[{"name":"a"}]}`}, 400, mpCodeRequired, "client_id", "missing client_id"},
		{"client_id not a string", req{path: mpURL("example.com", secret), body: `{"client_id":5,"events":[{"name":"a"}]}`}, 400, mpCodeInvalid, "client_id", "must be a string"},
		{"client_id too long", req{path: mpURL("example.com", secret), body: `{"client_id":"` + strings.Repeat("x", MaxMPClientIDLen+1) + `","events":[{"name":"a"}]}`}, 400, mpCodeOutOfBounds, "client_id", "the limit is 256"},
		{"user_id not a string", req{path: mpURL("example.com", secret), body: `{"client_id":"c","user_id":{},"events":[{"name":"a"}]}`}, 400, mpCodeInvalid, "user_id", "must be a string"},
		{"timestamp too old", req{path: mpURL("example.com", secret), body: fmt.Sprintf(`{"client_id":"c","timestamp_micros":%d,"events":[{"name":"a"}]}`, day0.Add(-49*time.Hour).UnixMicro())}, 400, mpCodeOutOfBounds, "timestamp_micros", "within the last 48h0m0s"},
		{"timestamp in the future", req{path: mpURL("example.com", secret), body: fmt.Sprintf(`{"client_id":"c","timestamp_micros":%d,"events":[{"name":"a"}]}`, day0.Add(time.Hour).UnixMicro())}, 400, mpCodeOutOfBounds, "timestamp_micros", "not in the future"},
		{"timestamp not a number", req{path: mpURL("example.com", secret), body: `{"client_id":"c","timestamp_micros":"soon","events":[{"name":"a"}]}`}, 400, mpCodeInvalid, "timestamp_micros", "positive integer"},
		{"missing events", req{path: mpURL("example.com", secret), body: `{"client_id":"c"}`}, 400, mpCodeRequired, "events", "missing events"},
		{"events not an array", req{path: mpURL("example.com", secret), body: `{"client_id":"c","events":{}}`}, 400, mpCodeInvalid, "events", "must be an array"},
		{"no events", req{path: mpURL("example.com", secret), body: `{"client_id":"c","events":[]}`}, 400, mpCodeRequired, "events", "events is empty"},
		{"26 events", req{path: mpURL("example.com", secret), body: mpEvents(26, `{"name":"a"}`)}, 400, mpCodeMaxEntities, "events", "the limit is 25"},
		{"event not an object", req{path: mpURL("example.com", secret), body: mpEvents(1, `"a"`)}, 400, mpCodeInvalid, "events[0]", "must be an object"},
		{"missing name", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"params":{}}`)}, 400, mpCodeRequired, "events[0].name", "missing events[0].name"},
		{"name starts with a digit", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"1st"}`)}, 400, mpCodeNameInvalid, "events[0].name", "must start with a letter"},
		{"name with a dash", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"sign-up"}`)}, 400, mpCodeNameInvalid, "events[0].name", "only letters, digits and underscores"},
		{"name too long", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"`+strings.Repeat("a", 41)+`"}`)}, 400, mpCodeNameInvalid, "events[0].name", "longer than 40"},
		{"reserved name", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"session_start"}`)}, 400, mpCodeNameReserved, "events[0].name", "is reserved"},
		{"reserved prefix", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"google_thing"}`)}, 400, mpCodeNameReserved, "events[0].name", `reserved prefix "google_"`},
		{"params not an object", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"a","params":[]}`)}, 400, mpCodeInvalid, "events[0].params", "must be an object"},
		{"too many params", req{path: mpURL("example.com", secret), body: string(tooMany)}, 400, mpCodeMaxEntities, "events[0].params", "the limit is 25"},
		{"bad param name", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"a","params":{"my param":"x"}}`)}, 400, mpCodeNameInvalid, "events[0].params.my param", "only letters"},
		{"reserved param prefix", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"a","params":{"ga_x":"x"}}`)}, 400, mpCodeNameReserved, "events[0].params.ga_x", "reserved prefix"},
		{"value too long", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"a","params":{"plan":"`+strings.Repeat("é", 101)+`"}}`)}, 400, mpCodeOutOfBounds, "events[0].params.plan", "101 characters; the limit is 100"},
		{"page_location too long", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"page_view","params":{"page_location":"https://example.com/`+strings.Repeat("a", 1000)+`"}}`)}, 400, mpCodeOutOfBounds, "events[0].params.page_location", "the limit is 1000"},
		{"array param", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"purchase","params":{"items":[{"item_id":"x"}]}}`)}, 400, mpCodeInvalid, "events[0].params.items", "objects and arrays"},
		{"page_view without page_location", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"page_view"}`)}, 400, mpCodeRequired, "events[0].params.page_location", "needs params.page_location"},
		{"relative page_location", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"page_view","params":{"page_location":"/a"}}`)}, 400, mpCodeInvalid, "events[0].params.page_location", "not an absolute URL"},
		{"value without currency", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"purchase","params":{"value":9.99}}`)}, 400, mpCodeRequired, "events[0].params.currency", "needs params.currency"},
		{"negative value", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"refund","params":{"value":-5,"currency":"EUR"}}`)}, 400, mpCodeInvalid, "events[0].params.value", "positive decimal"},
		{"bad currency", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"purchase","params":{"value":5,"currency":"EURO"}}`)}, 400, mpCodeInvalid, "events[0].params.currency", "ISO 4217"},
		{"revenue on a page view", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"page_view","params":{"page_location":"https://example.com/","value":5,"currency":"EUR"}}`)}, 400, mpCodeInvalid, "events[0].params.value", "only custom events"},
		{"bad engagement time", req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"a","params":{"engagement_time_msec":-1}}`)}, 400, mpCodeOutOfBounds, "events[0].params.engagement_time_msec", "milliseconds"},
		{"error in a later event", req{path: mpURL("example.com", secret), body: `{"client_id":"c","events":[{"name":"ok"},{"name":"bad name"}]}`}, 400, mpCodeNameInvalid, "events[1].name", "only letters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := h.do(tc.r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var body mpErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("error body %q is not JSON: %v", w.Body, err)
			}
			if body.Code != tc.code || body.Field != tc.field || !strings.Contains(body.Error, tc.msg) {
				t.Errorf("answer %+v; want code %s, field %q and a message containing %q", body, tc.code, tc.field, tc.msg)
			}
		})
	}
	if n := len(h.bus.events(t)); n != 0 {
		t.Errorf("rejected requests published %d events", n)
	}
	if got := h.counter(t, resultInvalid); got < 30 {
		t.Errorf("invalid = %v; every rejected request must be counted", got)
	}
}

func TestMPGoodPayloadIsPublished(t *testing.T) {
	h, secret := newMPHarness(t)
	ts := day0.Add(-time.Hour)
	body := fmt.Sprintf(`{
		"client_id": "123.456", "user_id": "u-1", "timestamp_micros": %d,
		"events": [
			{"name": "page_view", "params": {"page_location": "https://www.example.com/pricing?utm_source=newsletter&utm_medium=email", "page_referrer": "https://news.ycombinator.com/item?id=1", "page_title": "Pricing", "engagement_time_msec": 1200}},
			{"name": "purchase", "params": {"value": 9.99, "currency": "eur", "plan": "pro", "seats": 3, "trial": false, "note": "", "gone": null, "session_id": "s1"}},
			{"name": "server_ping"}
		]}`, ts.UnixMicro())
	w := h.do(req{path: mpURL("Example.com", secret), body: body, ua: "python-requests/2.31"})
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	evs := h.bus.events(t)
	if len(evs) != 3 {
		t.Fatalf("published %d events, want 3", len(evs))
	}
	h.bus.mu.Lock()
	calls := h.bus.calls
	h.bus.mu.Unlock()
	if calls != 1 {
		t.Errorf("%d publishes; all events of a request must go to the bus in one write", calls)
	}
	k, err := h.c.salts.firstPartyKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantVID := firstPartyID(k, "example.com", "123.456")
	pv, purchase, ping := evs[0], evs[1], evs[2]
	for _, e := range evs {
		if e.Site != "example.com" || e.VisitorID != wantVID || e.Time != ts.UnixMilli() || !e.Interactive {
			t.Errorf("event %+v: want site example.com, visitor %d, time %d, interactive", e, wantVID, ts.UnixMilli())
		}
		if e.Browser != "" || e.Device != "" {
			t.Errorf("event %q has browser/device %q/%q from the sender's User-Agent", e.Name, e.Browser, e.Device)
		}
		if !strings.HasPrefix(e.ID, "mp-") {
			t.Errorf("event %q has id %q; with timestamp_micros every event gets one", e.Name, e.ID)
		}
	}
	if pv.Name != event.PageviewName || pv.Hostname != "example.com" || pv.Path != "/pricing" ||
		pv.UTMSource != "newsletter" || pv.UTMMedium != "email" || pv.Source != "newsletter" ||
		pv.Referrer != "news.ycombinator.com/item" || pv.EngagementMS != 1200 || pv.Props != nil {
		t.Errorf("page view %+v", pv)
	}
	wantProps := map[string]string{"plan": "pro", "seats": "3", "trial": "false"}
	if purchase.Name != "purchase" || fmt.Sprint(purchase.Props) != fmt.Sprint(wantProps) ||
		purchase.Revenue == nil || *purchase.Revenue != (event.Revenue{Amount: "9.99", Currency: "EUR"}) || purchase.Path != "" {
		t.Errorf("purchase %+v (revenue %+v)", purchase, purchase.Revenue)
	}
	if ping.Name != "server_ping" || ping.Props != nil || ping.Revenue != nil {
		t.Errorf("ping %+v", ping)
	}
	if got := h.counter(t, resultAccepted); got != 3 {
		t.Errorf("accepted = %v, want 3", got)
	}

	// The same request again gives the same event ids, so the processor counts it once;
	// another client's events get other ids and another visitor.
	if w := h.do(req{path: mpURL("example.com", secret), body: body}); w.Code != http.StatusNoContent {
		t.Fatalf("resend: status %d", w.Code)
	}
	again := h.bus.events(t)[3:]
	for i := range again {
		if again[i].ID != evs[i].ID {
			t.Errorf("event %d: id %q on the resend, %q before", i, again[i].ID, evs[i].ID)
		}
	}
	if evs[0].ID == evs[1].ID {
		t.Error("two events of one request share an id")
	}
	if w := h.do(req{path: mpURL("example.com", secret), body: strings.Replace(body, "123.456", "999", 1)}); w.Code != http.StatusNoContent {
		t.Fatalf("other client: status %d", w.Code)
	}
	other := h.bus.events(t)[6]
	if other.VisitorID == wantVID || other.ID == evs[0].ID {
		t.Errorf("another client_id gave visitor %d and id %q", other.VisitorID, other.ID)
	}
}

func TestMPWithoutTimestampUsesNowAndNoID(t *testing.T) {
	h, secret := newMPHarness(t)
	w := h.do(req{path: mpURL("example.com", secret), body: `{"client_id":"c","events":[{"name":"signup","params":{"value":0,"currency":"USD"}}]}`})
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	e := h.bus.events(t)[0]
	if e.Time != day0.UnixMilli() || e.ID != "" || e.Revenue != nil {
		t.Errorf("event %+v: want the receive time, no id, and no revenue for a value of 0", e)
	}
}

func TestMPClientIDMatchesTheTrackersFirstPartyID(t *testing.T) {
	h, secret := newMPHarness(t)
	browser := h.one(t, req{body: `{"n":"pageview","u":"https://example.com/","d":"example.com","vid":"abc123"}`})
	if w := h.do(req{path: mpURL("example.com", secret), body: `{"client_id":"abc123","events":[{"name":"signup"}]}`}); w.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	server := h.bus.events(t)[1]
	if server.VisitorID != browser.VisitorID {
		t.Errorf("the server-side event has visitor %d, the browser's page view %d", server.VisitorID, browser.VisitorID)
	}
}

func TestMPBusDownIs503AndNothingAcknowledged(t *testing.T) {
	h, secret := newMPHarness(t)
	h.bus.setErr(fmt.Errorf("broker gone: %w", bus.ErrUnavailable))
	w := h.do(req{path: mpURL("example.com", secret), body: mpEvents(3, `{"name":"a"}`)})
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q: %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if !strings.Contains(w.Body.String(), "timestamp_micros") {
		t.Errorf("the 503 does not say how to retry safely: %s", w.Body)
	}
	if n := len(h.bus.events(t)); n != 0 {
		t.Errorf("%d events on the bus after a failed publish", n)
	}
	h.bus.setErr(errors.New("disk full"))
	if w := h.do(req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"a"}`)}); w.Code != http.StatusInternalServerError {
		t.Errorf("other bus error: status %d", w.Code)
	}
}

func TestMPStoreDownIs503(t *testing.T) {
	h, secret := newMPHarness(t)
	h.meta.setErr(errors.New("cassandra timeout"))
	w := h.do(req{path: mpURL("example.com", secret), body: mpEvents(1, `{"name":"a"}`)})
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
}

func TestMPRevokedSecretIsRefusedAfterTheRefresh(t *testing.T) {
	h, secret := newMPHarness(t)
	body := mpEvents(1, `{"name":"a"}`)
	if w := h.do(req{path: mpURL("example.com", secret), body: body}); w.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ok, err := sites.NewMPSecrets(h.meta, sites.Options{}).Revoke(context.Background(), "example.com", secret); err != nil || !ok {
		t.Fatal(ok, err)
	}
	h.clock.Set(day0.Add(DefaultConfig().SitesRefresh))
	if w := h.do(req{path: mpURL("example.com", secret), body: body}); w.Code != http.StatusForbidden {
		t.Errorf("revoked secret: status %d", w.Code)
	}
}
