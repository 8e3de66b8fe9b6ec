package processor

import (
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

// Every visit attribute goes through visitAttrsOf and applyTo to its own field, and
// nothing else does: a field added to one but not the other, or two swapped, fails here.
func TestVisitAttrsCoverTheVisitFields(t *testing.T) {
	var src event.Event
	rv := reflect.ValueOf(&src).Elem()
	for i := range rv.NumField() {
		if f := rv.Field(i); f.Kind() == reflect.String {
			f.SetString(rv.Type().Field(i).Name)
		}
	}
	attrs := visitAttrsOf(&src)
	var dst event.Event
	attrs.applyTo(&dst)
	var got []string
	dv := reflect.ValueOf(dst)
	for i := range dv.NumField() {
		if f := dv.Field(i); f.Kind() == reflect.String && f.String() != "" {
			name := dv.Type().Field(i).Name
			if f.String() != name {
				t.Errorf("field %s got the value of %s", name, f.String())
			}
			got = append(got, name)
		}
	}
	want := []string{"Referrer", "Source", "UTMSource", "UTMMedium", "UTMCampaign", "UTMTerm", "UTMContent",
		"Browser", "BrowserVersion", "OS", "OSVersion", "Device", "Country", "Region", "City"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("visit attributes carried: %v, want %v", got, want)
	}
}

func TestPackedVisitAttrsRoundTrip(t *testing.T) {
	cases := []visitAttrValues{
		{},
		{"news.example/a", "news.example", "", "", "spring", "", "", "Chrome", "131.0", "Windows", "10", "Desktop", "DE", "DE-BE", "Berlin"},
		{strings.Repeat("r", 127), strings.Repeat("s", 128), strings.Repeat("u", 16383), strings.Repeat("m", 16384), "", "é", "\x00\xff", "", "", "", "", "", "", "", "z"},
	}
	for i, v := range cases {
		packed := string(v.appendPacked(nil))
		if got := unpackVisitAttrs(packed); got != v {
			t.Errorf("case %d: unpacked %q, want %q", i, got, v)
		}
	}
}

// Open visits with the same attributes share one packed string, and rows and interned
// strings never keep a larger string (a decoded message, a packed visit) alive.
func TestVisitAttrsAreSharedAndRowsHoldCopies(t *testing.T) {
	st := newTestStore(t)
	p := open(t, st, 1)
	a, b := pv(1, 0, "/a"), pv(2, 0, "/b")
	for _, e := range []*event.Event{a, b} {
		e.Source, e.Browser, e.Country = "Google", "Firefox", "FR"
	}
	p.Apply(0, a)
	p.Apply(1, b)
	var packed []string
	for _, s := range p.sessions {
		packed = append(packed, s.attrs)
	}
	if len(packed) != 2 || unsafe.StringData(packed[0]) != unsafe.StringData(packed[1]) {
		t.Fatalf("two visits with equal attributes do not share them: %d visits", len(packed))
	}
	lo := uintptr(unsafe.Pointer(unsafe.StringData(packed[0])))
	hi := lo + uintptr(len(packed[0]))
	for _, e := range p.rows.m {
		if v := e.key.Value; v != "" {
			if d := uintptr(unsafe.Pointer(unsafe.StringData(v))); d >= lo && d < hi {
				t.Errorf("row %+v keeps the packed attributes alive", e.key)
			}
		}
	}
	in := newInterner(10)
	big := "prefix/value"
	if got := in.get(big[7:]); unsafe.StringData(got) == unsafe.StringData(big[7:]) {
		t.Error("the interner kept a part of a larger string instead of a copy")
	}
}
