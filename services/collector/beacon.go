package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/jsonscan"
)

// Limits of the fields this package defines beyond those of internal/event.
const (
	MaxFirstPartyIDLen  = 64
	MaxEngagementMS     = int64(24 * 60 * 60 * 1000)
	MaxAmountIntDigits  = 15
	MaxAmountFracDigits = 6
)

// EngagementName is the event name under which trackers report engagement time ("e"). Such
// events never count as interaction.
const EngagementName = event.EngagementName

// Beacon is one decoded and validated request body, before enrichment. Every field is within
// the limits of internal/event.
type Beacon struct {
	Name         string            // trimmed event name
	URL          string            // page URL as sent
	Sites        []string          // normalised site ids, deduplicated, in the order sent
	Referrer     string            // referrer as sent; may be empty or unusable
	Props        map[string]string // nil when none
	Revenue      *event.Revenue    // nil when none
	Interactive  bool              // default true
	HashRouting  bool              // "h": keep the fragment in the path
	EngagementMS int64             // "e"
	FirstPartyID string            // "vid"; empty in cookieless mode
	ID           string            // "eid": the sender's event id, the same on a resend; may be empty

	page *url.URL
}

// InputError is a problem with the request that its sender can fix. Its message names the
// field and, for a limit, the limit.
type InputError struct {
	Field string // JSON field at fault, "" for the body as a whole
	Msg   string
}

func (e *InputError) Error() string { return e.Msg }

func inputErr(field, format string, args ...any) *InputError {
	return &InputError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// wireBeacon is the JSON body: its keys matched to these fields, the values raw (slices of
// the body, not copies) for DecodeBeacon to decode, whose strings share one copy of the body
// instead of one allocation each. scan fills it without reflection; encoding/json does when
// scan cannot, and defines the result either way.
type wireBeacon struct {
	N           rawValue `json:"n"`
	Name        rawValue `json:"name"`
	U           rawValue `json:"u"`
	URL         rawValue `json:"url"`
	D           rawValue `json:"d"`
	Domain      rawValue `json:"domain"`
	R           rawValue `json:"r"`
	Referrer    rawValue `json:"referrer"`
	P           rawValue `json:"p"`
	Props       rawValue `json:"props"`
	M           rawValue `json:"m"`
	Meta        rawValue `json:"meta"`
	Revenue     rawValue `json:"revenue"`
	Dollar      rawValue `json:"$"`
	I           rawValue `json:"i"`
	Interactive rawValue `json:"interactive"`
	H           rawValue `json:"h"`
	E           rawValue `json:"e"`
	VID         rawValue `json:"vid"`
	EID         rawValue `json:"eid"`
}

// scan fills w from body as json.Unmarshal(body, w) would. It reports false, leaving w
// partly filled, when it cannot: for invalid JSON, whose error message encoding/json words,
// and for what jsonscan declines, such as keys with escapes or non-ASCII bytes, which
// encoding/json decodes and matches with Unicode case folding.
func (w *wireBeacon) scan(body []byte) bool {
	o := jsonscan.NewObject(body)
	for key, value, ok := o.Next(); ok; key, value, ok = o.Next() {
		if f := w.field(key); f != nil {
			*f = value // the last of repeated keys wins, as with encoding/json
		}
	}
	return o.Complete()
}

// field returns the field that encoding/json fills for a plain (printable ASCII) key: the
// field of that name, else of that name in another case. No two names differ only in case,
// so the lower-cased key names it. Unknown keys give nil.
func (w *wireBeacon) field(key []byte) *rawValue {
	var lower [len("interactive")]byte // the longest name
	if len(key) > len(lower) {
		return nil
	}
	for i, c := range key {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	switch string(lower[:len(key)]) {
	case "n":
		return &w.N
	case "name":
		return &w.Name
	case "u":
		return &w.U
	case "url":
		return &w.URL
	case "d":
		return &w.D
	case "domain":
		return &w.Domain
	case "r":
		return &w.R
	case "referrer":
		return &w.Referrer
	case "p":
		return &w.P
	case "props":
		return &w.Props
	case "m":
		return &w.M
	case "meta":
		return &w.Meta
	case "revenue":
		return &w.Revenue
	case "$":
		return &w.Dollar
	case "i":
		return &w.I
	case "interactive":
		return &w.Interactive
	case "h":
		return &w.H
	case "e":
		return &w.E
	case "vid":
		return &w.VID
	case "eid":
		return &w.EID
	}
	return nil
}

// rawValue is one JSON value as encoding/json hands it to UnmarshalJSON (and jsonscan hands
// it out): a slice of the body, not a copy (json.RawMessage copies every value), so it is
// only valid while the body is, which DecodeBeacon guarantees by keeping none of them. null
// arrives as "null"; a field that was not sent stays empty.
type rawValue []byte

func (r *rawValue) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

// absent reports whether the field was not sent or is null.
func (r rawValue) absent() bool { return len(r) == 0 || isNull(json.RawMessage(r)) }

// bodyText turns raw JSON strings of one body into Go strings. A string without escapes
// that is valid UTF-8 is its bytes, so it becomes a substring of a single string copy of
// the whole body, made on first use; anything else goes through encoding/json.
type bodyText struct {
	body []byte
	text string // string(body), or "" until first needed
}

// str decodes a JSON string; null or a missing field is "". ok is false for any other JSON
// type.
func (t *bodyText) str(raw rawValue) (string, bool) {
	if raw.absent() {
		return "", true
	}
	if raw[0] != '"' {
		return "", false
	}
	if inner, plain := jsonscan.PlainString(raw); plain {
		return t.sub(inner), true
	}
	return unquote(raw)
}

// unquote decodes a JSON string with escapes or invalid UTF-8 (replaced by U+FFFD).
func unquote(raw rawValue) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// sub returns b as a string: a substring of the body's copy when b lies within the body,
// else a copy of its own.
func (t *bodyText) sub(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	// A slice of the body has the body's capacity less its offset.
	off := cap(t.body) - cap(b)
	if off < 0 || off+len(b) > len(t.body) || &t.body[off] != &b[0] {
		return string(b)
	}
	if t.text == "" {
		t.text = string(t.body)
	}
	return t.text[off : off+len(b)]
}

// pickString decodes the string fields a and b, the short and the long name of one field,
// and returns the first that is not empty and the name it was sent under. A field of
// another JSON type is an error whether or not it would have been picked.
func (t *bodyText) pickString(a rawValue, an string, b rawValue, bn string) (string, string, error) {
	sa, ok := t.str(a)
	if !ok {
		return "", an, typeError(an, a)
	}
	sb, ok := t.str(b)
	if !ok {
		return "", bn, typeError(bn, b)
	}
	if sa != "" {
		return sa, an, nil
	}
	return sb, bn, nil
}

// typeError is the error for a field that should hold a string but holds raw.
func typeError(field string, raw rawValue) *InputError {
	return inputErr(field, "field %q must be a string, not a JSON %s", field, jsonTypeOf(raw))
}

// jsonTypeOf names the JSON type of a valid value as encoding/json's type errors do.
func jsonTypeOf(raw rawValue) string {
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	}
	return "number"
}

// rawField is a polymorphic field and the name the sender gave it.
type rawField struct {
	raw  rawValue
	name string
}

// pickRaw returns the first field that was sent and is not null; raw is nil when none was.
func pickRaw(fields ...rawField) rawField {
	for _, f := range fields {
		if !f.raw.absent() {
			return f
		}
	}
	return rawField{name: fields[0].name}
}

func isNull(r json.RawMessage) bool { return string(bytes.TrimSpace(r)) == "null" }

const exampleBody = `{"n":"pageview","u":"https://example.com/","d":"example.com"}`

// DecodeBeacon parses and validates a request body in Plausible's event format (see the
// package documentation). maxSites bounds the comma-separated site ids of "d" (≤ 0: 10).
// Errors are *InputError. The returned beacon shares no memory with body.
func DecodeBeacon(body []byte, maxSites int) (*Beacon, error) {
	if maxSites <= 0 {
		maxSites = 10
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, inputErr("", "the request body is empty; send one JSON object such as %s", exampleBody)
	}
	if body[0] != '{' {
		return nil, inputErr("", "the request body must be one JSON object such as %s", exampleBody)
	}
	var w wireBeacon
	if !w.scan(body) {
		// encoding/json keeps its target on the heap: only this rare path pays for that.
		slow := new(wireBeacon)
		if err := json.Unmarshal(body, slow); err != nil {
			return nil, jsonError(err)
		}
		w = *slow
	}
	t := bodyText{body: body}
	b := &Beacon{Interactive: true}

	// The string fields first: a wrongly typed one is reported before anything else.
	name, nf, err := t.pickString(w.N, "n", w.Name, "name")
	if err != nil {
		return nil, err
	}
	rawURL, uf, err := t.pickString(w.U, "u", w.URL, "url")
	if err != nil {
		return nil, err
	}
	domains, df, err := t.pickString(w.D, "d", w.Domain, "domain")
	if err != nil {
		return nil, err
	}
	if b.Referrer, _, err = t.pickString(w.R, "r", w.Referrer, "referrer"); err != nil {
		return nil, err
	}

	// Name.
	b.Name = strings.TrimSpace(name)
	switch {
	case b.Name == "":
		return nil, inputErr("n", `missing event name: set "n" (or "name") to "pageview" or a custom event name`)
	case len(b.Name) > event.MaxNameLen:
		return nil, inputErr(nf, "event name %q is %d bytes; the limit is %d", nf, len(b.Name), event.MaxNameLen)
	case hasControl(b.Name):
		return nil, inputErr(nf, "event name %q contains a control character", nf)
	}

	// Page URL.
	b.URL = strings.TrimSpace(rawURL)
	switch {
	case b.URL == "":
		return nil, inputErr("u", `missing page URL: set "u" (or "url") to the page's absolute URL, e.g. "https://example.com/pricing"`)
	case len(b.URL) > event.MaxURLLen:
		return nil, inputErr(uf, "page URL %q is %d bytes; the limit is %d", uf, len(b.URL), event.MaxURLLen)
	}
	u, err := parsePageURL(b.URL)
	if err != nil {
		return nil, inputErr(uf, "page URL %q is not an absolute URL such as \"https://example.com/pricing\": %v", uf, err)
	}
	b.page = u

	// Sites.
	if b.Sites, err = decodeSites(domains, df, maxSites); err != nil {
		return nil, err
	}

	if b.Props, err = t.pickProps(rawField{w.P, "p"}, rawField{w.Props, "props"}, rawField{w.M, "m"}, rawField{w.Meta, "meta"}); err != nil {
		return nil, err
	}
	rev := pickRaw(rawField{w.Revenue, "revenue"}, rawField{w.Dollar, "$"})
	if b.Revenue, err = decodeRevenue(json.RawMessage(rev.raw), rev.name); err != nil {
		return nil, err
	}
	if f := pickRaw(rawField{w.I, "i"}, rawField{w.Interactive, "interactive"}); f.raw != nil {
		if b.Interactive, err = decodeBool(json.RawMessage(f.raw), f.name); err != nil {
			return nil, err
		}
	}
	if !w.H.absent() {
		if b.HashRouting, err = decodeBool(json.RawMessage(w.H), "h"); err != nil {
			return nil, err
		}
	}
	if b.EngagementMS, err = decodeEngagement(json.RawMessage(w.E)); err != nil {
		return nil, err
	}
	if b.FirstPartyID, err = t.firstPartyID(w.VID); err != nil {
		return nil, err
	}
	if b.ID, err = t.eventID(w.EID); err != nil {
		return nil, err
	}
	return b, nil
}

// jsonError turns an encoding/json error into a message about the sender's body.
func jsonError(err error) *InputError {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return inputErr("", "the request body is not valid JSON: %v (at byte %d)", se, se.Offset)
	case errors.As(err, &te):
		if te.Field == "" {
			return inputErr("", "the request body must be one JSON object such as %s", exampleBody)
		}
		want := "string"
		if te.Type != nil {
			want = jsonKind(te.Type.Kind().String())
		}
		return inputErr(te.Field, "field %q must be a %s, not a JSON %s", te.Field, want, te.Value)
	}
	return inputErr("", "the request body is not valid JSON: %v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "map", "struct":
		return "object"
	case "slice":
		return "array"
	}
	return "number"
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

func decodeSites(list, field string, maxSites int) ([]string, error) {
	var sites []string
	n := 0
	for part := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		n++
		if n > maxSites {
			return nil, inputErr(field, "%q names more than %d sites; the limit is %d per event", field, maxSites, maxSites)
		}
		s, err := NormalizeSite(part)
		if err != nil {
			return nil, inputErr(field, "site id %q in %q is not valid: %v", clip(strings.TrimSpace(part), 80), field, err)
		}
		dup := false
		for _, have := range sites {
			dup = dup || have == s
		}
		if !dup {
			sites = append(sites, s)
		}
	}
	if len(sites) == 0 {
		return nil, inputErr("d", `missing site: set "d" (or "domain") to the site id registered in Glimpse, e.g. "example.com"`)
	}
	return sites, nil
}

// clip shortens s for quoting in an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return truncate(s, n) + "…"
}

// pickProps validates the first of the property fields that was sent: an object (even an
// empty one), a JSON string holding an object (older Plausible scripts), or a value of
// another type, which is an error. null, "" and "null" count as not sent.
func (t *bodyText) pickProps(fields ...rawField) (map[string]string, error) {
	for _, f := range fields {
		if f.raw.absent() {
			continue
		}
		obj := f.raw
		switch f.raw[0] {
		case '{':
		case '"':
			s, _ := t.str(f.raw)
			s = strings.TrimSpace(s)
			if s == "" || s == "null" {
				continue
			}
			if s[0] != '{' || !json.Valid([]byte(s)) {
				return nil, propsTypeError(f.name, "string")
			}
			obj = rawValue(s)
		case '[':
			return nil, propsTypeError(f.name, "array")
		case 't', 'f':
			return nil, propsTypeError(f.name, "boolean")
		default:
			return nil, propsTypeError(f.name, "number")
		}
		return t.decodeProps(obj, f.name)
	}
	return nil, nil
}

func propsTypeError(field, got string) *InputError {
	return inputErr(field, "%q must be a JSON object of string, number or boolean values, e.g. {\"plan\":\"pro\"}; got a %s", field, got)
}

// decodeProps validates a JSON object of properties. Values are strings, or numbers and
// booleans kept as written; null and "" values are dropped.
func (t *bodyText) decodeProps(obj rawValue, field string) (map[string]string, error) {
	raw, ok := t.scanProps(obj)
	if !ok {
		raw = nil
		if err := json.Unmarshal(obj, &raw); err != nil {
			// Not reached: the object was validated with the body (or by json.Valid).
			return nil, propsTypeError(field, "string")
		}
	}
	if len(raw) == 0 {
		return nil, nil
	}
	props := make(map[string]string, min(len(raw), event.MaxPropKeys))
	for k, v := range raw {
		var val string
		switch v[0] {
		case 'n':
			continue
		case '"':
			val, _ = t.str(v)
			if val == "" {
				continue
			}
		case '{':
			return nil, inputErr(field, "%q: property %q must be a string, number or boolean, not an object", field, clip(k, 40))
		case '[':
			return nil, inputErr(field, "%q: property %q must be a string, number or boolean, not an array", field, clip(k, 40))
		default: // number, true, false: keep the literal as written
			val = t.sub(v)
		}
		switch {
		case k == "":
			return nil, inputErr(field, "%q has a property with an empty name", field)
		case len(k) > event.MaxPropKeyLen:
			return nil, inputErr(field, "%q: property name %q is %d bytes; the limit is %d", field, clip(k, 40), len(k), event.MaxPropKeyLen)
		case len(val) > event.MaxPropValLen:
			return nil, inputErr(field, "%q: the value of property %q is %d bytes; the limit is %d", field, clip(k, 40), len(val), event.MaxPropValLen)
		}
		props[k] = val
	}
	if len(props) > event.MaxPropKeys {
		return nil, inputErr(field, "%q has %d properties; the limit is %d", field, len(props), event.MaxPropKeys)
	}
	if len(props) == 0 {
		return nil, nil
	}
	return props, nil
}

// scanProps reads a properties object as json.Unmarshal into map[string]rawValue does (the
// last of repeated keys wins), without reflection and with keys that share the body's copy.
// ok is false when jsonscan leaves the object to encoding/json.
func (t *bodyText) scanProps(obj rawValue) (props map[string]rawValue, ok bool) {
	o := jsonscan.NewObject(obj)
	for key, value, more := o.Next(); more; key, value, more = o.Next() {
		if props == nil {
			props = make(map[string]rawValue)
		}
		props[t.sub(key)] = value
	}
	return props, o.Complete()
}

func decodeRevenue(raw json.RawMessage, field string) (*event.Revenue, error) {
	if raw == nil {
		return nil, nil
	}
	example := fmt.Sprintf(`%q must be an object such as {"amount":"9.99","currency":"EUR"}`, field)
	var w struct {
		Amount   json.RawMessage `json:"amount"`
		Currency json.RawMessage `json:"currency"`
	}
	if raw[0] != '{' || json.Unmarshal(raw, &w) != nil {
		return nil, inputErr(field, "%s", example)
	}
	if len(w.Amount) == 0 || isNull(w.Amount) {
		return nil, inputErr(field+".amount", "missing %s.amount: %s", field, example)
	}
	if len(w.Currency) == 0 || isNull(w.Currency) {
		return nil, inputErr(field+".currency", "missing %s.currency: %s", field, example)
	}
	var amount string
	switch c := w.Amount[0]; {
	case c == '"':
		_ = json.Unmarshal(w.Amount, &amount)
	case c == '-' || '0' <= c && c <= '9':
		amount = string(w.Amount)
	default:
		return nil, inputErr(field+".amount", "%s.amount must be a decimal string or number such as \"9.99\"", field)
	}
	norm, ok := normalizeAmount(amount)
	if !ok {
		return nil, inputErr(field+".amount", "%s.amount must be a positive decimal number with at most %d integer and %d fractional digits, e.g. \"9.99\"; got %q",
			field, MaxAmountIntDigits, MaxAmountFracDigits, clip(amount, 40))
	}
	var currency string
	if w.Currency[0] != '"' || json.Unmarshal(w.Currency, &currency) != nil {
		return nil, inputErr(field+".currency", "%s.currency must be a string such as \"EUR\"", field)
	}
	currency = strings.ToUpper(strings.TrimSpace(currency))
	if !isCurrency(currency) {
		return nil, inputErr(field+".currency", "%s.currency must be a %d-letter ISO 4217 code such as \"EUR\"; got %q", field, event.MaxCurrencyLen, clip(currency, 40))
	}
	return &event.Revenue{Amount: norm, Currency: currency}, nil
}

// normalizeAmount checks that s is a positive plain decimal ("9.99", "10", "0.5") within the
// digit limits and drops its leading zeros.
func normalizeAmount(s string) (string, bool) {
	s = strings.TrimSpace(s)
	intPart, frac, hasDot := strings.Cut(s, ".")
	if !allDigits(intPart) || !allDigits(frac) || hasDot && frac == "" || intPart == "" && frac == "" {
		return "", false
	}
	intPart = strings.TrimLeft(intPart, "0")
	if intPart == "" {
		intPart = "0"
	}
	if len(intPart) > MaxAmountIntDigits || len(frac) > MaxAmountFracDigits {
		return "", false
	}
	if intPart == "0" && strings.Trim(frac, "0") == "" {
		return "", false // zero
	}
	if hasDot {
		return intPart + "." + frac, true
	}
	return intPart, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isCurrency(s string) bool {
	if len(s) != event.MaxCurrencyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// decodeBool reads true/false, or 1/0 as older scripts send.
func decodeBool(raw json.RawMessage, field string) (bool, error) {
	switch string(raw) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, inputErr(field, "%q must be true or false", field)
}

func decodeEngagement(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || isNull(raw) {
		return 0, nil
	}
	bad := inputErr("e", `"e" (engagement time) must be a number of milliseconds from 0 to %d`, MaxEngagementMS)
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return 0, bad
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > float64(MaxEngagementMS) {
		return 0, bad
	}
	return int64(f), nil
}

// firstPartyID reads "vid": a string of 1 to MaxFirstPartyIDLen printable ASCII characters
// without spaces. An empty string or null means none.
func (t *bodyText) firstPartyID(raw rawValue) (string, error) {
	if raw.absent() {
		return "", nil
	}
	bad := inputErr("vid", `"vid" (first-party visitor id) must be a string of 1 to %d printable ASCII characters without spaces`, MaxFirstPartyIDLen)
	s, ok := t.str(raw)
	if !ok || raw[0] != '"' {
		return "", bad
	}
	if len(s) > MaxFirstPartyIDLen || !printableASCII(s) {
		return "", bad
	}
	return s, nil
}

// eventID reads "eid": a string of 1 to event.MaxIDLen printable ASCII characters without
// spaces. An empty string or null means no id.
func (t *bodyText) eventID(raw rawValue) (string, error) {
	if raw.absent() {
		return "", nil
	}
	s, ok := t.str(raw)
	if !ok || raw[0] != '"' || len(s) > event.MaxIDLen || !printableASCII(s) {
		return "", inputErr("eid", `"eid" (event id) must be a string of 1 to %d printable ASCII characters without spaces, the same on every resend of the event`, event.MaxIDLen)
	}
	return s, nil
}

// printableASCII reports whether s has only the bytes '!' to '~'.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
