package collector

import (
	"bytes"
	"maps"
	"strings"
	"testing"
)

// TestDecodeBeaconOwnsItsStrings: the decoder takes its strings from the body without a copy
// per field, but the beacon must survive the body buffer being reused for the next request.
func TestDecodeBeaconOwnsItsStrings(t *testing.T) {
	body := []byte(`  {"n":"Signup","u":"https://example.com/a?utm_source=news","d":"example.com,b.org",` +
		`"r":"https://news.ycombinator.com/","p":{"plan":"pro","seats":12,"trial":false},"vid":"v-1","eid":"e-1"}  `)
	b, err := DecodeBeacon(body, 10)
	if err != nil {
		t.Fatal(err)
	}
	copy(body, bytes.Repeat([]byte{'x'}, len(body)))

	if b.Name != "Signup" || b.URL != "https://example.com/a?utm_source=news" || b.Referrer != "https://news.ycombinator.com/" ||
		b.FirstPartyID != "v-1" || b.ID != "e-1" || strings.Join(b.Sites, ",") != "example.com,b.org" {
		t.Errorf("beacon changed with its body: %+v", b)
	}
	if want := map[string]string{"plan": "pro", "seats": "12", "trial": "false"}; !maps.Equal(b.Props, want) {
		t.Errorf("props = %v; want %v", b.Props, want)
	}
}

// TestDecodeBeaconStrings: strings with escapes or invalid UTF-8 decode as encoding/json
// decodes them, whichever field they are in.
func TestDecodeBeaconStrings(t *testing.T) {
	const rest = `,"u":"https://example.com/","d":"example.com"`
	cases := []struct {
		name, body string
		check      func(*Beacon) bool
	}{
		{"escaped name", `{"n":"page\u0076iew"` + rest + `}`, func(b *Beacon) bool { return b.Name == "pageview" }},
		{"escaped referrer", `{"n":"pageview","r":"https:\/\/t.co\/x"` + rest + `}`, func(b *Beacon) bool { return b.Referrer == "https://t.co/x" }},
		{"invalid UTF-8 replaced", "{\"n\":\"a\xffb\"" + rest + "}", func(b *Beacon) bool { return b.Name == "a\uFFFDb" }},
		{"long name wins over empty short one", `{"n":"","name":"Signup"` + rest + `}`, func(b *Beacon) bool { return b.Name == "Signup" }},
		{"short name wins", `{"n":"a","name":"b"` + rest + `}`, func(b *Beacon) bool { return b.Name == "a" }},
		{"null is not sent", `{"n":null,"name":"b"` + rest + `}`, func(b *Beacon) bool { return b.Name == "b" }},
		{"last repeated key wins", `{"n":"a","n":"c"` + rest + `}`, func(b *Beacon) bool { return b.Name == "c" }},
		{"keys match in any case", `{"N":"a","URL":"https://example.com/x","Domain":"example.com"}`, func(b *Beacon) bool { return b.Name == "a" && b.URL == "https://example.com/x" }},
		{"props in a JSON string", `{"n":"a","p":"{\"k\":\"v\\u00e9\",\"n\":1.5}"` + rest + `}`, func(b *Beacon) bool { return b.Props["k"] == "vé" && b.Props["n"] == "1.5" }},
		{"escaped prop value", `{"n":"a","p":{"k":"\u0041"}` + rest + `}`, func(b *Beacon) bool { return b.Props["k"] == "A" }},
		{"empty props object hides later fields", `{"n":"a","p":{},"props":{"k":"v"}` + rest + `}`, func(b *Beacon) bool { return b.Props == nil }},
		{"null props fall through", `{"n":"a","p":null,"props":{"k":"v"}` + rest + `}`, func(b *Beacon) bool { return b.Props["k"] == "v" }},
		{"escaped event id", `{"n":"a","eid":"x\u002Dy"` + rest + `}`, func(b *Beacon) bool { return b.ID == "x-y" }},
	}
	for _, tc := range cases {
		b, err := DecodeBeacon([]byte(tc.body), 10)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !tc.check(b) {
			t.Errorf("%s: got %+v", tc.name, b)
		}
	}
}

func TestDecodeBeaconFieldTypes(t *testing.T) {
	cases := []struct{ body, want string }{
		{`{"n":"a","u":true,"d":"example.com"}`, `field "u" must be a string, not a JSON bool`},
		{`{"n":"a","u":"https://example.com/","domain":["x"]}`, `field "domain" must be a string, not a JSON array`},
		{`{"n":"a","u":"https://example.com/","d":"example.com","r":{}}`, `field "r" must be a string, not a JSON object`},
		{`{"n":"a","name":1,"u":"https://example.com/","d":"example.com"}`, `field "name" must be a string, not a JSON number`},
		{`{"n":"a","u":"https://example.com/","d":"example.com","meta":true}`, `"meta" must be a JSON object of string, number or boolean values`},
		{`{"n":"a","u":"https://example.com/","d":"example.com","vid":7}`, `"vid" (first-party visitor id) must be a string`},
		{`{"n":"a","u":"https://example.com/","d":"example.com","eid":"a b"}`, `"eid" (event id) must be a string`},
	}
	for _, tc := range cases {
		_, err := DecodeBeacon([]byte(tc.body), 10)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v; want it to contain %q", tc.body, err, tc.want)
		}
	}
}
