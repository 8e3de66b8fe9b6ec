package server

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/glimpse-analytics/glimpse/test/testkit"
)

var generatedID = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestNewRequestIDIsSixteenHexDigits(t *testing.T) {
	a, b := NewRequestID(), NewRequestID()
	if !generatedID.MatchString(a) || !generatedID.MatchString(b) {
		t.Fatalf("NewRequestID() = %q, %q; want 16 lowercase hex digits", a, b)
	}
	if a == b {
		t.Fatalf("two ids in a row are both %q; want random ones", a)
	}
}

func TestEnsureRequestIDSetsRequestAndResponse(t *testing.T) {
	for _, c := range []struct {
		name string
		sent []string
		keep string // "" : a new id
	}{
		{name: "none"},
		{name: "sane", sent: []string{"lb-1234.abc"}, keep: "lb-1234.abc"},
		{name: "first of several", sent: []string{"first", "second"}, keep: "first"},
		{name: "with a space", sent: []string{"a b"}},
		{name: "empty", sent: []string{""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/api/event", nil)
			for _, v := range c.sent {
				r.Header.Add(RequestIDHeader, v)
			}
			w := httptest.NewRecorder()
			id := ensureRequestID(w, r)
			if c.keep != "" && id != c.keep {
				t.Fatalf("id = %q, want the sent %q kept", id, c.keep)
			}
			if c.keep == "" && !generatedID.MatchString(id) {
				t.Fatalf("id = %q, want a new one of 16 hex digits", id)
			}
			if got := r.Header.Get(RequestIDHeader); got != id {
				t.Fatalf("request header = %q, want %q (a proxy forwards it)", got, id)
			}
			if got := w.Header().Values(RequestIDHeader); len(got) != 1 || got[0] != id {
				t.Fatalf("response header = %q, want exactly [%q]", got, id)
			}
			if c.keep != "" && len(r.Header.Values(RequestIDHeader)) != len(c.sent) {
				t.Fatalf("request header = %q, want the sent %q left alone", r.Header.Values(RequestIDHeader), c.sent)
			}
		})
	}
}

// The request and the response share one header value; adding to one of them must not
// show in the other.
func TestEnsureRequestIDSharedValueStaysSeparate(t *testing.T) {
	for _, sent := range []string{"", "kept-id"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if sent != "" {
			r.Header.Set(RequestIDHeader, sent)
		}
		w := httptest.NewRecorder()
		id := ensureRequestID(w, r)
		w.Header().Add(RequestIDHeader, "added-to-response")
		r.Header.Add(RequestIDHeader, "added-to-request")
		if got := r.Header.Values(RequestIDHeader); len(got) != 2 || got[0] != id || got[1] != "added-to-request" {
			t.Fatalf("request header = %q, want [%q added-to-request]", got, id)
		}
		if got := w.Header().Values(RequestIDHeader); len(got) != 2 || got[0] != id || got[1] != "added-to-response" {
			t.Fatalf("response header = %q, want [%q added-to-response]", got, id)
		}
	}
}

func TestEnsureRequestIDAllocations(t *testing.T) {
	if testkit.RaceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	w := httptest.NewRecorder()
	r.Header.Set(RequestIDHeader, "kept-id")
	if n := testing.AllocsPerRun(100, func() { ensureRequestID(w, r) }); n != 0 {
		t.Errorf("keeping a sent id allocates %v times; want 0", n)
	}
	// A new id: its string and the one value slice both headers share.
	if n := testing.AllocsPerRun(100, func() {
		delete(r.Header, RequestIDHeader)
		ensureRequestID(w, r)
	}); n > 2 {
		t.Errorf("a new id allocates %v times; want at most 2", n)
	}
}
