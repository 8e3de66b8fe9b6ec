package collector

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/sites"
)

// The Measurement Protocol endpoint takes server-side events in the shape of Google
// Analytics 4's Measurement Protocol, so a backend that already reports to GA4 can report to
// Glimpse by changing the URL:
//
//	POST /mp/collect?measurement_id=<site>&api_secret=<secret>
//	{"client_id":"...", "user_id":"...", "timestamp_micros":1700000000000000,
//	 "events":[{"name":"page_view","params":{"page_location":"https://example.com/a"}},
//	           {"name":"purchase","params":{"value":9.99,"currency":"EUR","plan":"pro"}}]}
//
// The secret is made with `glimpse sites mp-secret create <site>` and proves the sender, so
// these events skip the bot filter and the hostname check of /api/event. Names and limits
// follow GA4's rules; docs/tracker.md describes the mapping onto Glimpse's events. All events
// of a request are published in one bus write, and 204 is answered only once the bus holds
// every one of them; any error means none was acknowledged.

// MPPath is the route of the Measurement Protocol endpoint.
const MPPath = "/mp/collect"

// Limits of a Measurement Protocol request. Event and parameter rules are GA4's.
const (
	// MaxMPBodyBytes is GA4's request size limit (130 kB), rounded to 128 KiB.
	MaxMPBodyBytes    = 128 << 10
	MaxMPEvents       = 25
	MaxMPParams       = 25
	MaxMPNameLen      = 40   // event and parameter names, characters
	MaxMPValueLen     = 100  // parameter values, characters
	MaxMPLocationLen  = 1000 // page_location, characters
	MaxMPReferrerLen  = 420  // page_referrer, characters
	MaxMPTitleLen     = 300  // page_title, characters
	MaxMPClientIDLen  = 256  // client_id and user_id, bytes
	MaxMPBackdate     = 48 * time.Hour
	maxMPFutureSkew   = time.Minute
	mpPageviewName    = "page_view"
	mpPageLocation    = "page_location"
	mpPageReferrer    = "page_referrer"
	mpPageTitle       = "page_title"
	mpEngagementParam = "engagement_time_msec"
	mpValueParam      = "value"
	mpCurrencyParam   = "currency"
	mpSessionIDParam  = "session_id"
)

// mpReservedPrefixes may not start an event or parameter name (GA4 keeps them).
var mpReservedPrefixes = []string{"firebase_", "ga_", "google_", "gtag."}

// mpReservedEvents are the event names GA4 reserves for its own collection.
var mpReservedEvents = map[string]bool{
	"ad_activeview": true, "ad_click": true, "ad_exposure": true, "ad_impression": true, "ad_query": true,
	"ad_reward": true, "adunit_exposure": true, "app_background": true, "app_clear_data": true,
	"app_exception": true, "app_remove": true, "app_store_refund": true, "app_store_subscription_cancel": true,
	"app_store_subscription_convert": true, "app_store_subscription_renew": true, "app_update": true,
	"app_upgrade": true, "dynamic_link_app_open": true, "dynamic_link_app_update": true,
	"dynamic_link_first_open": true, "error": true, "firebase_campaign": true, "first_open": true,
	"first_visit": true, "in_app_purchase": true, "notification_dismiss": true, "notification_foreground": true,
	"notification_open": true, "notification_receive": true, "os_update": true, "session_start": true,
	"session_start_with_rollout": true, "user_engagement": true,
}

// Validation codes of an MP error answer, GA4's names where GA4 has one.
const (
	mpCodeRequired     = "VALUE_REQUIRED"
	mpCodeInvalid      = "VALUE_INVALID"
	mpCodeOutOfBounds  = "VALUE_OUT_OF_BOUNDS"
	mpCodeNameInvalid  = "NAME_INVALID"
	mpCodeNameReserved = "NAME_RESERVED"
	mpCodeMaxEntities  = "EXCEEDED_MAX_ENTITIES"
	mpCodeUnknownSite  = "UNKNOWN_MEASUREMENT_ID"
	mpCodeBadSecret    = "API_SECRET_INVALID"
	mpCodeTooLarge     = "BODY_TOO_LARGE"
	mpCodeContentType  = "UNSUPPORTED_CONTENT_TYPE"
	mpCodeMethod       = "METHOD_NOT_ALLOWED"
	mpCodeUnavailable  = "UNAVAILABLE"
	mpCodeInternal     = "INTERNAL"
)

// mpError is one rejected MP request: the status, GA4-style validation code, the JSON path
// of the field at fault ("events[2].params.plan", "" for the request as a whole) and a
// message that says how to fix it.
type mpError struct {
	status int
	code   string
	field  string
	msg    string
	result string // metric label
	retry  bool
}

func (e *mpError) Error() string { return e.msg }

func mpInvalid(code, field, format string, args ...any) *mpError {
	return &mpError{status: http.StatusBadRequest, code: code, field: field, msg: fmt.Sprintf(format, args...), result: resultInvalid}
}

// mpRequest is a validated MP body.
type mpRequest struct {
	clientID string
	// backdated is the event time from timestamp_micros (Unix ms); 0 means now.
	backdated int64
	// timestampMicros as sent, for the event ids; 0 when absent.
	timestampMicros int64
	events          []mpEvent
}

// mpEvent is one validated event, already in Glimpse's terms.
type mpEvent struct {
	name         string // "pageview" or the custom event name
	location     string // page_location, may be empty for custom events
	referrer     string
	props        map[string]string
	revenue      *event.Revenue
	engagementMS int64
}

func (c *Collector) serveMP(w http.ResponseWriter, r *http.Request) {
	n, err := c.collectMP(r)
	if err == nil {
		c.m.events.WithLabelValues(resultAccepted).Add(float64(n))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var me *mpError
	if !errors.As(err, &me) {
		me = &mpError{status: http.StatusInternalServerError, code: mpCodeInternal, result: resultError, msg: "internal error: " + err.Error()}
	}
	c.m.events.WithLabelValues(me.result).Add(float64(max(n, 1)))
	if me.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	if me.retry {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(c.cfg.RetryAfter.Seconds()))))
	}
	writeMPError(w, me)
}

// mpErrorBody is the JSON of an MP error answer.
type mpErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	Field string `json:"field,omitempty"`
}

func writeMPError(w http.ResponseWriter, e *mpError) {
	body, _ := json.Marshal(mpErrorBody{Error: e.msg, Code: e.code, Field: e.field})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	_, _ = w.Write(append(body, '\n'))
}

// collectMP validates and publishes one MP request; it returns how many events it carried
// (0 when that is not known yet) and nil once the bus holds all of them.
func (c *Collector) collectMP(r *http.Request) (int, error) {
	if r.Method != http.MethodPost {
		return 0, &mpError{status: http.StatusMethodNotAllowed, code: mpCodeMethod, result: resultMethod,
			msg: fmt.Sprintf("method %s is not allowed on %s: send events with POST", clip(r.Method, 20), MPPath)}
	}
	q := r.URL.Query()
	rawSite := strings.TrimSpace(q.Get("measurement_id"))
	if rawSite == "" {
		return 0, mpInvalid(mpCodeRequired, "measurement_id", "missing measurement_id: send POST %s?measurement_id=<site id, e.g. example.com>&api_secret=<secret>", MPPath)
	}
	site, err := NormalizeSite(rawSite)
	if err != nil {
		return 0, mpInvalid(mpCodeInvalid, "measurement_id", "measurement_id %q is not a site id: %v", clip(rawSite, 100), err)
	}
	secret := q.Get("api_secret")
	if secret == "" {
		return 0, &mpError{status: http.StatusForbidden, code: mpCodeBadSecret, field: "api_secret", result: resultInvalid,
			msg: fmt.Sprintf("missing api_secret: create one with `glimpse sites mp-secret create %s` and send it as ?api_secret=", site)}
	}
	if !jsonCapable(r.Header.Get("Content-Type")) {
		return 0, &mpError{status: http.StatusUnsupportedMediaType, code: mpCodeContentType, result: resultUnsupported,
			msg: fmt.Sprintf("unsupported Content-Type %q: send the events as a JSON object with Content-Type application/json", clip(r.Header.Get("Content-Type"), 100))}
	}
	body, err := readMPBody(r)
	if err != nil {
		return 0, err
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), c.cfg.PublishTimeout)
	defer cancel()
	unavailable := func(what string, err error) error {
		c.saltLog.do(func(suppressed int64) {
			c.log.WarnContext(ctx, what+" unavailable; answering 503 to a measurement protocol request", "err", err, "suppressed", suppressed)
		})
		return &mpError{status: http.StatusServiceUnavailable, code: mpCodeUnavailable, result: resultUnavailable, retry: true,
			msg: "the collector cannot read the " + what + " right now (store unavailable); retry later"}
	}
	if _, ok, err := c.sites.Lookup(ctx, site); err != nil {
		return 0, unavailable("site list", err)
	} else if !ok {
		return 0, &mpError{status: http.StatusNotFound, code: mpCodeUnknownSite, field: "measurement_id", result: resultUnknownSite,
			msg: fmt.Sprintf("measurement_id %q is not a site of this Glimpse; add it with `glimpse sites add %s`", clip(site, 100), clip(site, 100))}
	}
	if _, err := c.mpSecrets.Verify(ctx, site, secret); errors.Is(err, sites.ErrInvalidMPSecret) {
		return 0, &mpError{status: http.StatusForbidden, code: mpCodeBadSecret, field: "api_secret", result: resultInvalid,
			msg: fmt.Sprintf("the api_secret is not valid for %s (mistyped, revoked, or made for another site); list the secrets with `glimpse sites mp-secret list %s`", site, site)}
	} else if err != nil {
		return 0, unavailable("API secrets", err)
	}

	now := c.now()
	req, err := decodeMP(body, now)
	if err != nil {
		return 0, err
	}
	msgs, err := c.buildMP(ctx, site, req, now)
	if err != nil {
		return len(req.events), err
	}
	res := c.publish(ctx, msgs)
	if res.code != http.StatusAccepted {
		status, code, msg := res.code, mpCodeInternal, res.msg
		if status == http.StatusServiceUnavailable {
			code = mpCodeUnavailable
			msg = "the event bus is unavailable or too slow right now; nothing was acknowledged: retry later with the same body (and the same timestamp_micros, so events that reached the bus after all count once)"
		}
		return len(msgs), &mpError{status: status, code: code, result: res.result, retry: res.retry, msg: msg}
	}
	return len(msgs), nil
}

func readMPBody(r *http.Request) ([]byte, error) {
	tooLarge := &mpError{status: http.StatusRequestEntityTooLarge, code: mpCodeTooLarge, result: resultTooLarge,
		msg: fmt.Sprintf("the request body is larger than %d bytes; send at most %d events per request and keep parameters short", MaxMPBodyBytes, MaxMPEvents)}
	if r.ContentLength > MaxMPBodyBytes {
		return nil, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxMPBodyBytes+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, &mpError{status: http.StatusBadRequest, code: mpCodeInvalid, result: resultCanceled, msg: "the request body could not be read: " + err.Error()}
	}
	if len(body) > MaxMPBodyBytes {
		return nil, tooLarge
	}
	return body, nil
}

const mpExample = `{"client_id":"123.456","events":[{"name":"page_view","params":{"page_location":"https://example.com/"}}]}`

// decodeMP parses and validates an MP body. Errors are *mpError.
func decodeMP(body []byte, now time.Time) (*mpRequest, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, mpInvalid(mpCodeInvalid, "", "the request body must be one JSON object such as %s", mpExample)
	}
	var w struct {
		ClientID        json.RawMessage `json:"client_id"`
		UserID          json.RawMessage `json:"user_id"`
		TimestampMicros json.RawMessage `json:"timestamp_micros"`
		Events          json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, mpInvalid(mpCodeInvalid, "", "the request body is not valid JSON: %v (at byte %d)", se, se.Offset)
		}
		return nil, mpInvalid(mpCodeInvalid, "", "the request body is not valid JSON: %v", err)
	}
	req := &mpRequest{}
	var err error
	if req.clientID, err = mpID(w.ClientID, "client_id", true); err != nil {
		return nil, err
	}
	// user_id is checked so a sender learns of a malformed one, but never stored: Glimpse
	// keeps no identity of a person, and the visitor id comes from client_id.
	if _, err = mpID(w.UserID, "user_id", false); err != nil {
		return nil, err
	}
	if len(w.TimestampMicros) > 0 && !isNull(w.TimestampMicros) {
		ts, err := strconv.ParseInt(string(w.TimestampMicros), 10, 64)
		if err != nil || ts <= 0 {
			return nil, mpInvalid(mpCodeInvalid, "timestamp_micros", "timestamp_micros must be a positive integer: microseconds since 1970-01-01 UTC")
		}
		t := time.UnixMicro(ts)
		if t.Before(now.Add(-MaxMPBackdate)) || t.After(now.Add(maxMPFutureSkew)) {
			return nil, mpInvalid(mpCodeOutOfBounds, "timestamp_micros", "timestamp_micros is %s; it must lie within the last %s and not in the future",
				t.UTC().Format(time.RFC3339), MaxMPBackdate)
		}
		req.timestampMicros, req.backdated = ts, t.UnixMilli()
	}

	if len(w.Events) == 0 || isNull(w.Events) {
		return nil, mpInvalid(mpCodeRequired, "events", "missing events: send an array of 1 to %d events such as %s", MaxMPEvents, mpExample)
	}
	var events []json.RawMessage
	if w.Events[0] != '[' || json.Unmarshal(w.Events, &events) != nil {
		return nil, mpInvalid(mpCodeInvalid, "events", "events must be an array of event objects such as [{\"name\":\"sign_up\",\"params\":{}}]")
	}
	switch {
	case len(events) == 0:
		return nil, mpInvalid(mpCodeRequired, "events", "events is empty: send 1 to %d events", MaxMPEvents)
	case len(events) > MaxMPEvents:
		return nil, mpInvalid(mpCodeMaxEntities, "events", "the request has %d events; the limit is %d per request: split them across requests", len(events), MaxMPEvents)
	}
	req.events = make([]mpEvent, 0, len(events))
	for i, raw := range events {
		ev, err := decodeMPEvent(raw, fmt.Sprintf("events[%d]", i))
		if err != nil {
			return nil, err
		}
		req.events = append(req.events, ev)
	}
	return req, nil
}

// mpID reads client_id or user_id: a string of 1 to MaxMPClientIDLen bytes of valid UTF-8
// without control characters.
func mpID(raw json.RawMessage, field string, required bool) (string, error) {
	if len(raw) == 0 || isNull(raw) {
		if required {
			return "", mpInvalid(mpCodeRequired, field, "missing %s: send the id of the browser or app instance (with Glimpse's tracker in cookie mode: its first-party id), e.g. \"123.456\"", field)
		}
		return "", nil
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", mpInvalid(mpCodeInvalid, field, "%s must be a string", field)
	}
	switch {
	case s == "" && required:
		return "", mpInvalid(mpCodeRequired, field, "%s is empty", field)
	case len(s) > MaxMPClientIDLen:
		return "", mpInvalid(mpCodeOutOfBounds, field, "%s is %d bytes; the limit is %d", field, len(s), MaxMPClientIDLen)
	case !utf8.ValidString(s) || hasControl(s):
		return "", mpInvalid(mpCodeInvalid, field, "%s must be valid UTF-8 without control characters", field)
	}
	return s, nil
}

// checkMPName applies GA4's naming rules to an event or parameter name.
func checkMPName(name, field, what string) error {
	if name == "" {
		return mpInvalid(mpCodeRequired, field, "missing %s", what)
	}
	if utf8.RuneCountInString(name) > MaxMPNameLen {
		return mpInvalid(mpCodeNameInvalid, field, "%s %q is longer than %d characters", what, clip(name, 60), MaxMPNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if i == 0 && !letter {
			return mpInvalid(mpCodeNameInvalid, field, "%s %q must start with a letter", what, clip(name, 60))
		}
		if !letter && !('0' <= c && c <= '9') && c != '_' {
			return mpInvalid(mpCodeNameInvalid, field, "%s %q may contain only letters, digits and underscores", what, clip(name, 60))
		}
	}
	for _, p := range mpReservedPrefixes {
		if strings.HasPrefix(strings.ToLower(name), p) {
			return mpInvalid(mpCodeNameReserved, field, "%s %q starts with the reserved prefix %q", what, name, p)
		}
	}
	return nil
}

func decodeMPEvent(raw json.RawMessage, field string) (mpEvent, error) {
	var w struct {
		Name   json.RawMessage `json:"name"`
		Params json.RawMessage `json:"params"`
	}
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &w) != nil {
		return mpEvent{}, mpInvalid(mpCodeInvalid, field, "%s must be an object such as {\"name\":\"sign_up\",\"params\":{\"method\":\"email\"}}", field)
	}
	var name string
	if len(w.Name) == 0 || isNull(w.Name) {
		return mpEvent{}, mpInvalid(mpCodeRequired, field+".name", "missing %s.name", field)
	}
	if w.Name[0] != '"' || json.Unmarshal(w.Name, &name) != nil {
		return mpEvent{}, mpInvalid(mpCodeInvalid, field+".name", "%s.name must be a string", field)
	}
	if err := checkMPName(name, field+".name", "event name"); err != nil {
		return mpEvent{}, err
	}
	if mpReservedEvents[name] {
		return mpEvent{}, mpInvalid(mpCodeNameReserved, field+".name", "event name %q is reserved (collected automatically by Google Analytics); choose another name", name)
	}

	ev := mpEvent{name: name}
	if name == mpPageviewName {
		ev.name = event.PageviewName
	}
	var params map[string]json.RawMessage
	if len(w.Params) > 0 && !isNull(w.Params) {
		if w.Params[0] != '{' || json.Unmarshal(w.Params, &params) != nil {
			return mpEvent{}, mpInvalid(mpCodeInvalid, field+".params", "%s.params must be an object of string, number or boolean values", field)
		}
	}
	if len(params) > MaxMPParams {
		return mpEvent{}, mpInvalid(mpCodeMaxEntities, field+".params", "%s has %d params; the limit is %d", field, len(params), MaxMPParams)
	}
	var value, currency string
	for _, k := range sortedKeys(params) {
		pf := field + ".params." + clip(k, 60)
		if err := checkMPName(k, pf, "parameter name"); err != nil {
			return mpEvent{}, err
		}
		v, ok, err := mpParamValue(params[k], pf, k)
		if err != nil {
			return mpEvent{}, err
		}
		if !ok {
			continue // null or ""
		}
		switch k {
		case mpPageLocation:
			ev.location = v
		case mpPageReferrer:
			ev.referrer = v
		case mpPageTitle, mpSessionIDParam:
			// Glimpse has no page titles, and visits come from its own 30-minute rule.
		case mpEngagementParam:
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > float64(MaxEngagementMS) {
				return mpEvent{}, mpInvalid(mpCodeOutOfBounds, pf, "%s must be a number of milliseconds from 0 to %d", pf, MaxEngagementMS)
			}
			ev.engagementMS = int64(f)
		case mpValueParam:
			value = v
		case mpCurrencyParam:
			currency = v
		default:
			if ev.props == nil {
				ev.props = make(map[string]string, len(params))
			}
			ev.props[k] = v
		}
	}

	if ev.location != "" {
		if _, err := parsePageURL(ev.location); err != nil {
			return mpEvent{}, mpInvalid(mpCodeInvalid, field+".params.page_location", "page_location %q is not an absolute URL such as \"https://example.com/pricing\": %v", clip(ev.location, 100), err)
		}
	} else if ev.name == event.PageviewName {
		return mpEvent{}, mpInvalid(mpCodeRequired, field+".params.page_location", "a page_view needs params.page_location, the absolute URL of the page, e.g. \"https://example.com/pricing\"")
	}
	if value != "" || currency != "" {
		rev, err := mpRevenue(value, currency, field, ev.name == event.PageviewName)
		if err != nil {
			return mpEvent{}, err
		}
		ev.revenue = rev
	}
	return ev, nil
}

// mpParamValue reads a parameter value as its string form; ok is false for null and "".
func mpParamValue(raw json.RawMessage, field, name string) (string, bool, error) {
	if len(raw) == 0 {
		return "", false, nil
	}
	var s string
	switch c := raw[0]; {
	case c == 'n':
		return "", false, nil
	case c == '"':
		if json.Unmarshal(raw, &s) != nil {
			return "", false, mpInvalid(mpCodeInvalid, field, "%s is not a valid string", field)
		}
		if hasControl(s) {
			return "", false, mpInvalid(mpCodeInvalid, field, "%s contains a control character", field)
		}
	case c == '{' || c == '[':
		return "", false, mpInvalid(mpCodeInvalid, field, "%s must be a string, number or boolean; objects and arrays (such as GA's items) are not supported", field)
	default: // number, true, false: keep the literal as written
		s = string(raw)
	}
	if s == "" {
		return "", false, nil
	}
	limit := MaxMPValueLen
	switch name {
	case mpPageLocation:
		limit = MaxMPLocationLen
	case mpPageReferrer:
		limit = MaxMPReferrerLen
	case mpPageTitle:
		limit = MaxMPTitleLen
	}
	if n := utf8.RuneCountInString(s); n > limit {
		return "", false, mpInvalid(mpCodeOutOfBounds, field, "%s is %d characters; the limit is %d", field, n, limit)
	}
	return s, true, nil
}

// mpRevenue turns GA4's value and currency parameters into revenue. A value of 0 carries no
// revenue; GA4's negative values (refunds) have no counterpart in Glimpse's revenue.
func mpRevenue(value, currency, field string, pageview bool) (*event.Revenue, error) {
	if pageview {
		return nil, mpInvalid(mpCodeInvalid, field+".params.value", "value and currency are revenue, which only custom events carry; send it with an event such as \"purchase\"")
	}
	if currency == "" {
		return nil, mpInvalid(mpCodeRequired, field+".params.currency", "%s.params.value needs params.currency, a 3-letter ISO 4217 code such as \"EUR\"", field)
	}
	if value == "" {
		return nil, mpInvalid(mpCodeRequired, field+".params.value", "%s.params.currency needs params.value, the amount, e.g. 9.99", field)
	}
	cur := strings.ToUpper(strings.TrimSpace(currency))
	if !isCurrency(cur) {
		return nil, mpInvalid(mpCodeInvalid, field+".params.currency", "currency must be a 3-letter ISO 4217 code such as \"EUR\"; got %q", clip(currency, 40))
	}
	if f, err := strconv.ParseFloat(value, 64); err == nil && f == 0 {
		return nil, nil
	}
	amount, ok := normalizeAmount(value)
	if !ok {
		return nil, mpInvalid(mpCodeInvalid, field+".params.value", "value must be a positive decimal number with at most %d integer and %d fractional digits, e.g. 9.99; got %s",
			MaxAmountIntDigits, MaxAmountFracDigits, clip(value, 40))
	}
	return &event.Revenue{Amount: amount, Currency: cur}, nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// buildMP turns a validated request into one bus message per event. The visitor id is the
// first-party id of client_id: the same keyed hash /api/event uses for the tracker's "vid",
// so a backend that sends the tracker's first-party id as client_id adds to the browser's
// visit.
func (c *Collector) buildMP(ctx context.Context, site string, req *mpRequest, now time.Time) ([]bus.Message, error) {
	k, err := c.salts.firstPartyKey(ctx)
	if err != nil {
		c.saltLog.do(func(suppressed int64) {
			c.log.WarnContext(ctx, "visitor-id key unavailable; answering 503", "err", err, "suppressed", suppressed)
		})
		return nil, &mpError{status: http.StatusServiceUnavailable, code: mpCodeUnavailable, result: resultUnavailable, retry: true,
			msg: "the collector cannot compute visitor ids right now (salt store unavailable); retry later"}
	}
	vid := firstPartyID(k, site, req.clientID)
	t := now.UnixMilli()
	if req.backdated != 0 {
		t = req.backdated
	}
	msgs := make([]bus.Message, 0, len(req.events))
	for i, ev := range req.events {
		e := event.Event{
			Site: site, VisitorID: vid, Time: t, Name: ev.name,
			Props: ev.props, Revenue: ev.revenue, Interactive: true, EngagementMS: ev.engagementMS,
		}
		if ev.location != "" {
			u, _ := parsePageURL(ev.location) // validated in decodeMPEvent
			p := pageOf(u, false)
			e.Hostname, e.Path = p.Hostname, p.Path
			e.UTMSource, e.UTMMedium, e.UTMCampaign, e.UTMTerm, e.UTMContent = p.UTM[0], p.UTM[1], p.UTM[2], p.UTM[3], p.UTM[4]
			e.Source, e.Referrer = sourceOf(ev.referrer, p.Hostname, p.refParam)
		} else if ev.referrer != "" {
			e.Source, e.Referrer = sourceOf(ev.referrer, "", "")
		}
		if req.timestampMicros != 0 {
			e.ID = mpEventID(req.clientID, req.timestampMicros, i, &ev)
		}
		v, err := event.Encode(&e)
		if err != nil {
			c.log.ErrorContext(ctx, "could not encode an event", "err", err)
			return nil, &mpError{status: http.StatusInternalServerError, code: mpCodeInternal, result: resultError,
				msg: "internal error: the event could not be encoded; nothing was stored"}
		}
		msgs = append(msgs, bus.Message{Key: e.Key(), Value: v})
	}
	return msgs, nil
}

// mpEventID gives an event of a request with timestamp_micros an id that is the same when
// the request is sent again (after a 503, say), so the processor counts it once. Without
// timestamp_micros two sends are two events, as GA4 counts them.
func mpEventID(clientID string, ts int64, index int, ev *mpEvent) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s\x00%s\x00%s\x00", clientID, ts, index, ev.name, ev.location, ev.referrer)
	keys := make([]string, 0, len(ev.props))
	for k := range ev.props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\x00", k, ev.props[k])
	}
	if ev.revenue != nil {
		fmt.Fprintf(h, "%s %s", ev.revenue.Amount, ev.revenue.Currency)
	}
	return "mp-" + hex.EncodeToString(h.Sum(nil)[:16])
}
