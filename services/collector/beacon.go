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
	"unicode/utf8"

	"github.com/glimpse-analytics/glimpse/internal/event"
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

// wireBeacon is the JSON body. Polymorphic fields stay raw and are decoded by hand.
type wireBeacon struct {
	N           string          `json:"n"`
	Name        string          `json:"name"`
	U           string          `json:"u"`
	URL         string          `json:"url"`
	D           string          `json:"d"`
	Domain      string          `json:"domain"`
	R           string          `json:"r"`
	Referrer    string          `json:"referrer"`
	P           *propsField     `json:"p"`
	Props       *propsField     `json:"props"`
	M           *propsField     `json:"m"`
	Meta        *propsField     `json:"meta"`
	Revenue     json.RawMessage `json:"revenue"`
	Dollar      json.RawMessage `json:"$"`
	I           json.RawMessage `json:"i"`
	Interactive json.RawMessage `json:"interactive"`
	H           json.RawMessage `json:"h"`
	E           json.RawMessage `json:"e"`
	VID         json.RawMessage `json:"vid"`
	EID         json.RawMessage `json:"eid"`
}

// pick returns the first non-empty value and the name of the field it came from.
func pick(a, an, b, bn string) (string, string) {
	if a != "" {
		return a, an
	}
	return b, bn
}

// rawField is a polymorphic field and the name the sender gave it.
type rawField struct {
	raw  json.RawMessage
	name string
}

// pickRaw returns the first field that was sent and is not null; raw is nil when none was.
func pickRaw(fields ...rawField) rawField {
	for _, f := range fields {
		if len(f.raw) > 0 && !isNull(f.raw) {
			return f
		}
	}
	return rawField{name: fields[0].name}
}

func isNull(r json.RawMessage) bool { return string(bytes.TrimSpace(r)) == "null" }

const exampleBody = `{"n":"pageview","u":"https://example.com/","d":"example.com"}`

// DecodeBeacon parses and validates a request body in Plausible's event format (see the
// package documentation). maxSites bounds the comma-separated site ids of "d" (≤ 0: 10).
// Errors are *InputError.
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
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, jsonError(err)
	}
	b := &Beacon{Interactive: true}

	// Name.
	name, nf := pick(w.N, "n", w.Name, "name")
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
	rawURL, uf := pick(w.U, "u", w.URL, "url")
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
	domains, df := pick(w.D, "d", w.Domain, "domain")
	if b.Sites, err = decodeSites(domains, df, maxSites); err != nil {
		return nil, err
	}

	b.Referrer, _ = pick(w.R, "r", w.Referrer, "referrer")

	if b.Props, err = pickProps(propsNamed{w.P, "p"}, propsNamed{w.Props, "props"}, propsNamed{w.M, "m"}, propsNamed{w.Meta, "meta"}); err != nil {
		return nil, err
	}
	rev := pickRaw(rawField{w.Revenue, "revenue"}, rawField{w.Dollar, "$"})
	if b.Revenue, err = decodeRevenue(rev.raw, rev.name); err != nil {
		return nil, err
	}
	if f := pickRaw(rawField{w.I, "i"}, rawField{w.Interactive, "interactive"}); f.raw != nil {
		if b.Interactive, err = decodeBool(f.raw, f.name); err != nil {
			return nil, err
		}
	}
	if len(w.H) > 0 && !isNull(w.H) {
		if b.HashRouting, err = decodeBool(w.H, "h"); err != nil {
			return nil, err
		}
	}
	if b.EngagementMS, err = decodeEngagement(w.E); err != nil {
		return nil, err
	}
	if b.FirstPartyID, err = decodeFirstPartyID(w.VID); err != nil {
		return nil, err
	}
	if b.ID, err = decodeEventID(w.EID); err != nil {
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

// propsField is a "p" value as sent: an object, or a JSON string holding one (older
// Plausible scripts). Values are classified while the body is parsed, in one pass.
type propsField struct {
	obj map[string]propValue
	bad string // what was sent instead of an object ("array", "number", "string"), or ""
}

func (p *propsField) UnmarshalJSON(b []byte) error {
	*p = propsField{} // a repeated key replaces, as for every other field
	switch b[0] {
	case '{':
		return json.Unmarshal(b, &p.obj)
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" || s == "null" {
			return nil
		}
		if s[0] != '{' || !json.Valid([]byte(s)) {
			p.bad = "string"
			return nil
		}
		return json.Unmarshal([]byte(s), &p.obj)
	case '[':
		p.bad = "array"
	case 't', 'f':
		p.bad = "boolean"
	case 'n':
	default:
		p.bad = "number"
	}
	return nil
}

func (p *propsField) empty() bool { return p == nil || p.obj == nil && p.bad == "" }

// propValue is one property value: kind 's' string, 'l' number or boolean literal, 'o'
// object, 'a' array, 0 null.
type propValue struct {
	s    string
	kind byte
}

func (v *propValue) UnmarshalJSON(b []byte) error {
	switch b[0] {
	case 'n':
		v.kind = 0
	case '"':
		v.kind = 's'
		inner := b[1 : len(b)-1]
		if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			v.s = string(inner) // already validated JSON: no escapes, no control characters
			return nil
		}
		return json.Unmarshal(b, &v.s)
	case '{':
		v.kind = 'o'
	case '[':
		v.kind = 'a'
	default: // number, true, false: keep the literal as written
		v.kind, v.s = 'l', string(b)
	}
	return nil
}

// propsNamed is a property field and the name the sender gave it.
type propsNamed struct {
	p    *propsField
	name string
}

// pickProps validates the first of the property fields that was sent.
func pickProps(fields ...propsNamed) (map[string]string, error) {
	for _, f := range fields {
		if !f.p.empty() {
			return decodeProps(f.p, f.name)
		}
	}
	return nil, nil
}

func decodeProps(p *propsField, field string) (map[string]string, error) {
	if p.bad != "" {
		return nil, inputErr(field, "%q must be a JSON object of string, number or boolean values, e.g. {\"plan\":\"pro\"}; got a %s", field, p.bad)
	}
	if len(p.obj) == 0 {
		return nil, nil
	}
	props := make(map[string]string, min(len(p.obj), event.MaxPropKeys))
	for k, v := range p.obj {
		switch v.kind {
		case 0:
			continue
		case 's':
			if v.s == "" {
				continue
			}
		case 'o':
			return nil, inputErr(field, "%q: property %q must be a string, number or boolean, not an object", field, clip(k, 40))
		case 'a':
			return nil, inputErr(field, "%q: property %q must be a string, number or boolean, not an array", field, clip(k, 40))
		}
		switch {
		case k == "":
			return nil, inputErr(field, "%q has a property with an empty name", field)
		case len(k) > event.MaxPropKeyLen:
			return nil, inputErr(field, "%q: property name %q is %d bytes; the limit is %d", field, clip(k, 40), len(k), event.MaxPropKeyLen)
		case len(v.s) > event.MaxPropValLen:
			return nil, inputErr(field, "%q: the value of property %q is %d bytes; the limit is %d", field, clip(k, 40), len(v.s), event.MaxPropValLen)
		}
		props[k] = v.s
	}
	if len(props) > event.MaxPropKeys {
		return nil, inputErr(field, "%q has %d properties; the limit is %d", field, len(props), event.MaxPropKeys)
	}
	if len(props) == 0 {
		return nil, nil
	}
	return props, nil
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

func decodeFirstPartyID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || isNull(raw) {
		return "", nil
	}
	bad := inputErr("vid", `"vid" (first-party visitor id) must be a string of 1 to %d printable ASCII characters without spaces`, MaxFirstPartyIDLen)
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", bad
	}
	if s == "" {
		return "", nil
	}
	if len(s) > MaxFirstPartyIDLen || !utf8.ValidString(s) {
		return "", bad
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return "", bad
		}
	}
	return s, nil
}

// decodeEventID reads "eid": a string of 1 to event.MaxIDLen printable ASCII characters
// without spaces. An empty string or null means no id.
func decodeEventID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || isNull(raw) {
		return "", nil
	}
	bad := func() error {
		return inputErr("eid", `"eid" (event id) must be a string of 1 to %d printable ASCII characters without spaces, the same on every resend of the event`, event.MaxIDLen)
	}
	if raw[0] != '"' {
		return "", bad()
	}
	var s string
	if len(raw) >= 2 && raw[len(raw)-1] == '"' && bytes.IndexByte(raw[1:len(raw)-1], '\\') < 0 {
		// No escapes: the JSON string is its bytes (the checks below refuse anything that
		// is not printable ASCII), so a second JSON pass is not needed.
		s = string(raw[1 : len(raw)-1])
	} else if json.Unmarshal(raw, &s) != nil {
		return "", bad()
	}
	if len(s) > event.MaxIDLen {
		return "", bad()
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return "", bad()
		}
	}
	return s, nil
}
