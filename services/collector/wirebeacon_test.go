package collector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// wireByReflection is what wireBeacon.scan must agree with whenever it handles a body.
func wireByReflection(body []byte) (wireBeacon, error) {
	var w wireBeacon
	err := json.Unmarshal(body, &w)
	return w, err
}

// diffWire describes how two wireBeacons of body differ: in a field's bytes, or in where in
// body the field lies (both must be slices of body, not copies). "" when they are the same.
func diffWire(body []byte, got, want *wireBeacon) string {
	g, w := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	var diffs []string
	for i := 0; i < g.NumField(); i++ {
		name := g.Type().Field(i).Name
		gf, wf := g.Field(i).Interface().(rawValue), w.Field(i).Interface().(rawValue)
		switch {
		case (gf == nil) != (wf == nil) || !bytes.Equal(gf, wf):
			diffs = append(diffs, name+": "+quoteRaw(gf)+" want "+quoteRaw(wf))
		case gf != nil && offsetIn(body, gf) != offsetIn(body, wf):
			diffs = append(diffs, name+": the same bytes, but at another place in the body")
		}
	}
	return strings.Join(diffs, "; ")
}

func quoteRaw(r rawValue) string {
	if r == nil {
		return "nil"
	}
	return "`" + string(r) + "`"
}

// offsetIn returns where sub starts in body, or -1 when it is not a slice of body.
func offsetIn(body, sub []byte) int {
	if len(sub) == 0 {
		return -1
	}
	off := cap(body) - cap(sub)
	if off < 0 || off+len(sub) > len(body) || &body[off] != &sub[0] {
		return -1
	}
	return off
}

// scannedBodies are bodies the scanner must handle itself: the tracker's beacons,
// Plausible's format, keys in other cases, repeated keys, nulls, nested properties, escapes.
var scannedBodies = []string{
	// The tracker (JSON.stringify drops undefined members).
	`{"n":"pageview","u":"https://example.com/pricing?utm_source=news","d":"example.com","r":"https://www.google.com/","h":false}`,
	`{"n":"Signup","u":"https://example.com/register","d":"example.com,rollup.example","r":"","p":{"plan":"pro","seats":3,"trial":true},"$":{"amount":"9.99","currency":"EUR"},"i":true,"h":false,"vid":"1234567890"}`,
	`{"n":"e","u":"https://example.com/app#/settings","d":"example.com","r":"","e":15234,"h":true}`,
	// Plausible's format.
	`{"name":"pageview","url":"https://example.com/a?utm_source=x","domain":"example.com","referrer":"https://google.com/","props":{"plan":"pro"},"revenue":{"amount":"9.99","currency":"EUR"},"interactive":true}`,
	`{"name":"Download","url":"https://example.com/","domain":"example.com","meta":"{\"file\":\"a.pdf\"}","m":null}`,
	`{"n":"pageview","u":"https://example.com/","d":"example.com","eid":"42-7-3"}`,
	// Keys in other cases, repeated keys, nulls, unknown keys.
	`{"N":"pageview","Url":"https://example.com/","DOMAIN":"example.com","ReFeRrEr":"x","PROPS":{"a":"b"},"Interactive":false,"VID":"v","EiD":"e","$":null}`,
	`{"n":"first","n":"last","d":"a.com","D":"b.com","domain":null,"domain":"c.com"}`,
	`{"n":"pageview","n":null,"u":null,"d":"a.com","p":null,"i":null,"h":null,"e":null,"vid":null,"eid":null,"revenue":null}`,
	`{"n":"pageview","w":1280,"unknown":{"deep":[1,{"x":[true,false,null]}]},"nameX":"not a field","interactivex":1,"reallyquitealongkeyname":2}`,
	`{"n":5,"u":[],"d":{},"r":true,"e":-1.5e3,"h":0,"i":1}`,
	// Escapes and other bytes inside values.
	`{"n":"page\nview","u":"https://example.com/caf\u00e9","d":"a\u002ecom","r":"\ud83d\ude00 \ud800","p":{"k\"ey":"v\\al"}}`,
	`{"n":"caf` + "\xc3\xa9" + `","u":"bad ` + "\xff\xfe" + `","d":"a.com"}`,
	" \t\r\n{\"n\":\"pageview\" , \"d\" : \"a.com\" }\r\n\t ",
	`{"p":` + strings.Repeat(`{"a":`, 20) + `1` + strings.Repeat(`}`, 20) + `,"d":"nested.com"}`,
	`{}`, `{"":""}`,
}

// declinedBodies are bodies the scanner must leave to encoding/json: escaped or non-ASCII
// keys, deep nesting, bad JSON.
var declinedBodies = []string{
	`{"\u006e":"escaped key","d":"a.com"}`, `{"nam\u0065":"x","n":"y"}`, `{"ſ":"long s","d":"a.com"}`,
	`{"` + "\u212a" + `":"Kelvin sign","d":"a.com"}`, `{"domaın":"dotless i"}`, `{"n` + "\xff" + `":"bad key"}`,
	`{"p":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `,"d":"deep.com"}`,
	// Bad JSON.
	`{"n":"pageview",}`, `{"n" "pageview"}`, `{"n":"pageview"`, `{"n":"pageview"} x`, `{"n":"pageview"}{}`,
	`{"n":"tab` + "\t" + `"}`, `{"n":"\x"}`, `{"n":01}`, `{"n":1.}`, `{"n":tru}`, `{"p":[1,]}`, `{"p":{"a"}}`,
	`{n:"pageview"}`, `[]`, `null`, `{"n":"pageview"}` + "\v",
}

// wireBodies are all test bodies.
var wireBodies = append(slices.Clip(scannedBodies), declinedBodies...)

func TestWireBeaconScanAgreesWithEncodingJSON(t *testing.T) {
	handled := 0
	for _, body := range wireBodies {
		b := []byte(body)
		var got wireBeacon
		if !got.scan(b) {
			continue
		}
		handled++
		want, err := wireByReflection(b)
		if err != nil {
			t.Errorf("scan handled %.80q, which encoding/json rejects: %v", body, err)
			continue
		}
		if d := diffWire(b, &got, &want); d != "" {
			t.Errorf("scan(%.80q) differs from encoding/json: %s", body, d)
		}
	}
	if handled != len(scannedBodies) {
		t.Errorf("scan handled %d of the test bodies; want the %d it is meant to", handled, len(scannedBodies))
	}
}

// TestWireBeaconScanHandlesCommonBodies: the fast path must be the usual path.
func TestWireBeaconScanHandlesCommonBodies(t *testing.T) {
	for _, body := range scannedBodies {
		var w wireBeacon
		if !w.scan([]byte(body)) {
			t.Errorf("scan left %.80q to encoding/json", body)
		}
	}
}

func TestWireBeaconScanDeclines(t *testing.T) {
	for _, body := range declinedBodies {
		var w wireBeacon
		if w.scan([]byte(body)) {
			t.Errorf("scan handled %.80q; it must leave it to encoding/json", body)
		}
	}
}

// TestEncodingJSONPassesNullToRawValue pins down what scan copies: encoding/json calls
// rawValue.UnmarshalJSON with "null" for a null value (it does not leave the field nil),
// and a later null replaces an earlier value.
func TestEncodingJSONPassesNullToRawValue(t *testing.T) {
	for _, body := range []string{`{"n":null}`, `{"n":"pageview","n":null}`, `{"N":  null  }`} {
		want, err := wireByReflection([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if string(want.N) != "null" {
			t.Fatalf("encoding/json gave N = %q for %s; scan assumes \"null\"", want.N, body)
		}
		var got wireBeacon
		if !got.scan([]byte(body)) || string(got.N) != "null" {
			t.Errorf("scan(%s) gave N = %q; want \"null\"", body, got.N)
		}
		if !got.N.absent() {
			t.Errorf("a null field is not absent")
		}
	}
}

// TestWireBeaconFieldCoversEveryTag: a field added to wireBeacon must be added to field too.
func TestWireBeaconFieldCoversEveryTag(t *testing.T) {
	var w wireBeacon
	v := reflect.ValueOf(&w).Elem()
	for i := 0; i < v.NumField(); i++ {
		tag := v.Type().Field(i).Tag.Get("json")
		want := v.Field(i).Addr().Interface().(*rawValue)
		for _, key := range []string{tag, strings.ToUpper(tag), strings.ToUpper(tag[:1]) + tag[1:]} {
			if got := w.field([]byte(key)); got != want {
				t.Errorf("field(%q) does not give wireBeacon.%s", key, v.Type().Field(i).Name)
			}
		}
	}
	for _, key := range []string{"", "x", "names", "interactivE1", "domai", "w", "vids"} {
		if w.field([]byte(key)) != nil {
			t.Errorf("field(%q) gives a field; want none", key)
		}
	}
}

// diffProps describes how scanProps differs from json.Unmarshal into map[string]rawValue on
// obj, "" when it agrees or declines.
func diffProps(obj []byte) string {
	t := bodyText{body: obj}
	got, ok := t.scanProps(obj)
	if !ok {
		return ""
	}
	var want map[string]rawValue
	if err := json.Unmarshal(obj, &want); err != nil {
		return "scanProps handled what encoding/json rejects: " + err.Error()
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d properties; encoding/json found %d", len(got), len(want))
	}
	for k, w := range want {
		g, found := got[k]
		if !found || !bytes.Equal(g, w) || offsetIn(obj, g) != offsetIn(obj, w) {
			return fmt.Sprintf("property %q is %s; encoding/json says %s", k, quoteRaw(g), quoteRaw(w))
		}
	}
	return ""
}

func TestScanPropsAgreesWithEncodingJSON(t *testing.T) {
	for _, obj := range append(slices.Clip(wireBodies),
		`{"plan":"pro","plan":{"x":1},"n":1.5,"b":false,"z":null,"":"empty name"}`,
		`{"a":{"b":1},"a":"later wins"}`, `{"k\"ey":"escaped names go to encoding/json"}`,
	) {
		if d := diffProps([]byte(obj)); d != "" {
			t.Errorf("%.80q: %s", obj, d)
		}
	}
	if props, ok := (&bodyText{}).scanProps(rawValue(`{"a":"1","a":"2"}`)); !ok || string(props["a"]) != `"2"` || len(props) != 1 {
		t.Errorf("scanProps of repeated keys gave %q, %v; want the last value", props, ok)
	}
}

// FuzzWireBeacon checks the scanner against encoding/json on any body: scan either declines
// or fills wireBeacon exactly as json.Unmarshal does, with the same slices of the body; the
// same for the properties object (scanProps) read from the body as a whole.
//
//	go test -run '^$' -fuzz '^FuzzWireBeacon$' -fuzztime 60s ./services/collector/
func FuzzWireBeacon(f *testing.F) {
	for _, body := range wireBodies {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if d := diffProps(body); d != "" {
			t.Fatalf("scanProps(%q): %s", body, d)
		}
		var got wireBeacon
		if !got.scan(body) {
			return
		}
		want, err := wireByReflection(body)
		if err != nil {
			t.Fatalf("scan handled %q, which encoding/json rejects: %v", body, err)
		}
		if d := diffWire(body, &got, &want); d != "" {
			t.Fatalf("scan(%q) differs from encoding/json: %s", body, d)
		}
	})
}
