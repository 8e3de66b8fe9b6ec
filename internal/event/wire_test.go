package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// fullEvent sets every field, so a field the wire form forgets fails the round trips.
func fullEvent() *Event {
	return &Event{
		Site: "example.com", VisitorID: 0xfedcba9876543210, Time: 1764150000123, Name: "Signup",
		Hostname: "shop.example.com", Path: "/pricing", Referrer: "news.ycombinator.com/item", Source: "Hacker News",
		UTMSource: "hn", UTMMedium: "social", UTMCampaign: "launch", UTMTerm: "analytics", UTMContent: "top",
		Browser: "Firefox", BrowserVersion: "133.0", OS: "Linux", OSVersion: "6.8", Device: "Desktop",
		Country: "DE", Region: "DE-BE", City: "Berlin",
		Props:       map[string]string{"plan": "pro", "seats": "5", "": "empty key", "ünïcode": "välue"},
		Revenue:     &Revenue{Amount: "9.99", Currency: "EUR"},
		Interactive: true, EngagementMS: 12345, ID: "7-3-1",
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	cases := map[string]*Event{
		"every field":     fullEvent(),
		"zero event":      {},
		"page view":       {Site: "example.com", VisitorID: 1, Time: 2, Name: PageviewName, Hostname: "example.com", Path: "/"},
		"negative times":  {Site: "a", Time: -1, EngagementMS: -9223372036854775808},
		"empty revenue":   {Site: "a", Revenue: &Revenue{}},
		"long path":       {Site: "a", Path: "/" + strings.Repeat("x", 5000)},
		"engagement":      {Site: "a", Name: EngagementName, EngagementMS: 1 << 40},
		"max visitor id":  {Site: "a", VisitorID: ^uint64(0)},
		"one empty prop":  {Site: "a", Props: map[string]string{"": ""}},
		"non-UTF-8 bytes": {Site: "a\xff", Path: "/\x00\x80"},
	}
	for name, e := range cases {
		b, err := Encode(e)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b[0] != Version {
			t.Fatalf("%s: first byte %d, want version %d", name, b[0], Version)
		}
		if len(b) != encodedLen(e) {
			t.Errorf("%s: encoded %d bytes, encodedLen says %d", name, len(b), encodedLen(e))
		}
		back, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Errorf("%s: round trip changed the event\n got %+v\nwant %+v", name, back, e)
		}
	}
}

// Events written by earlier releases (version 1, JSON) still decode to the same event.
func TestDecodesVersion1(t *testing.T) {
	e := fullEvent()
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(append([]byte{VersionJSON}, body...))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, e) {
		t.Errorf("version 1 decoded as %+v, want %+v", back, e)
	}
	// A stored version 1 event as an earlier release wrote it, byte for byte.
	stored := append([]byte{1}, `{"site":"example.com","vid":42,"ts":1700000000000,"n":"pageview","host":"example.com","path":"/a","src":"Google","br":"Chrome","cc":"FR","p":{"k":"v"},"i":true}`...)
	got, err := Decode(stored)
	if err != nil {
		t.Fatal(err)
	}
	want := &Event{Site: "example.com", VisitorID: 42, Time: 1700000000000, Name: PageviewName, Hostname: "example.com",
		Path: "/a", Source: "Google", Browser: "Chrome", Country: "FR", Props: map[string]string{"k": "v"}, Interactive: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stored version 1 event decoded as %+v, want %+v", got, want)
	}
}

// One event has one wire form, whatever order its props map iterates in: keys are written
// sorted, within MaxPropKeys and beyond it (events of version 1 were not limited).
func TestEncodingIsDeterministic(t *testing.T) {
	for _, n := range []int{20, MaxPropKeys, MaxPropKeys + 10} {
		e := fullEvent()
		clear(e.Props)
		for i := range n {
			e.Props[fmt.Sprintf("k%02d", i)] = "v"
		}
		first, err := Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			b, _ := Encode(e)
			if !bytes.Equal(b, first) {
				t.Fatalf("%d props: two encodings of one event differ", n)
			}
		}
		last := -1
		for i := range n {
			at := bytes.Index(first, fmt.Appendf(nil, "\x03k%02d", i))
			if at <= last {
				t.Fatalf("%d props: key k%02d at byte %d, not after the previous key (byte %d)", n, i, at, last)
			}
			last = at
		}
	}
}

// Every proper prefix of a valid message, every damaged flag byte and every message with
// extra bytes is an undecodable message: an error that is not ErrUnknownVersion, never a
// panic and never a partly filled event.
func TestMalformedBinaryBodies(t *testing.T) {
	valid, err := Encode(fullEvent())
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, msg []byte) {
		t.Helper()
		e, err := Decode(msg)
		if err == nil {
			t.Fatalf("%s: decoded %+v without error", what, e)
		}
		if e != nil {
			t.Errorf("%s: an event came back with the error %v", what, err)
		}
		if errors.Is(err, ErrUnknownVersion) {
			t.Errorf("%s: %v is ErrUnknownVersion; the processor would stop instead of setting it aside", what, err)
		}
	}
	for n := 1; n < len(valid); n++ {
		check("prefix", valid[:n])
	}
	check("trailing byte", append(bytes.Clone(valid), 0))
	for bit := 2; bit < 8; bit++ {
		b := bytes.Clone(valid)
		b[1] |= 1 << bit
		check("reserved flag", b)
	}
	check("string longer than the body", []byte{Version, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 'a'})
	check("varint overflow", append([]byte{Version, 0, 0, 0, 0, 0, 0, 0, 0, 0}, bytes.Repeat([]byte{0xff}, 11)...))
	check("huge prop count", append(append([]byte{Version, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, make([]byte, stringFieldCount)...), 0xff, 0xff, 0xff, 0xff, 0x0f))
	check("too long", append([]byte{Version}, make([]byte, MaxEncodedLen)...))
}

func TestEncodeRefusesWhatDecodeWouldRefuse(t *testing.T) {
	e := &Event{Site: "a", Path: strings.Repeat("x", MaxEncodedLen)}
	if _, err := Encode(e); err == nil {
		t.Fatal("encoded an event larger than MaxEncodedLen")
	}
}

// FuzzDecode: no input panics, and whatever decodes encodes again to an event that decodes
// to the same thing.
func FuzzDecode(f *testing.F) {
	valid, _ := Encode(fullEvent())
	f.Add(valid)
	small, _ := Encode(&Event{Site: "example.com", Name: PageviewName, Path: "/"})
	f.Add(small)
	f.Add(append([]byte{VersionJSON}, `{"site":"a","p":{"k":"v"},"rev":{"amount":"1","currency":"EUR"}}`...))
	f.Add([]byte{Version, flagRevenue})
	f.Add([]byte{Version + 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			if e != nil {
				t.Fatalf("error %v with an event", err)
			}
			return
		}
		again, err := Encode(e)
		if err != nil {
			if len(b) > 0 && b[0] == VersionJSON {
				return // a huge version 1 event need not fit the binary limit
			}
			t.Fatalf("decoded event does not encode again: %v", err)
		}
		back, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalise(back), normalise(e)) {
			t.Fatalf("round trip changed the event\n got %+v\nwant %+v", back, e)
		}
	})
}

// normalise makes an empty props map nil: both encode as "no props".
func normalise(e *Event) *Event {
	c := *e
	if len(c.Props) == 0 {
		c.Props = nil
	}
	return &c
}

func BenchmarkEncode(b *testing.B) {
	e := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	msg, _ := Encode(benchEvent())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeVersion1 is what decoding cost before version 2, for comparison.
func BenchmarkDecodeVersion1(b *testing.B) {
	body, _ := json.Marshal(benchEvent())
	msg := append([]byte{VersionJSON}, body...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// benchEvent is a typical page view as the collector publishes it.
func benchEvent() *Event {
	return &Event{
		Site: "example.com", VisitorID: 0x1234567890abcdef, Time: 1764150000123, Name: PageviewName,
		Hostname: "example.com", Path: "/blog/how-we-count-visitors", Referrer: "google.com/", Source: "Google",
		Browser: "Chrome", BrowserVersion: "131.0", OS: "Windows", OSVersion: "10", Device: "Desktop",
		Country: "DE", Interactive: true, ID: "1f3a-9c-2",
	}
}
