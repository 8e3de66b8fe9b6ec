package gateway

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestEventSites(t *testing.T) {
	for body, want := range map[string]string{
		`{"n":"pageview","d":"example.com"}`:                       "example.com",
		`{"domain":"https://www.Example.com/"}`:                    "example.com",
		`{"d":"a.com, b.com,a.com","domain":"c.com"}`:              "a.com,b.com",
		`{"d":"","domain":"c.com"}`:                                "c.com",
		`  {"d":"x.org","p":{"k":1},"revenue":{"amount":"9.99"}} `: "x.org",
		`{"d":"x.org","n":5}`:                                      "x.org", // a type error elsewhere
		`{"d":5}`:                                                  "",
		`{"d":"has space.com"}`:                                    "",
		`{"d":"a.com"`:                                             "", // truncated
		`not json`:                                                 "",
		``:                                                         "",
		`["d","a.com"]`:                                            "",
		`{"d":"` + strings.Repeat("a", 300) + `"}`:                 "",
		`{"d":"1.com,2.com,3.com,4.com,5.com,6.com,7.com,8.com,9.com,10.com,11.com"}`: "1.com,2.com,3.com,4.com,5.com,6.com,7.com,8.com,9.com,10.com",
	} {
		if got := strings.Join(eventSites([]byte(body)), ","); got != want {
			t.Errorf("eventSites(%.60q) = %q, want %q", body, got, want)
		}
	}
}

func TestAPISite(t *testing.T) {
	post := func(body string) string {
		r := httptest.NewRequest("POST", "/api/v1/query", strings.NewReader(body))
		return strings.Join(apiSite(r, []byte(body)), ",")
	}
	get := func(q string) string {
		return strings.Join(apiSite(httptest.NewRequest("GET", "/api/v1/realtime?"+q, nil), nil), ",")
	}
	for got, want := range map[string]string{
		post(`{"site_id":"Example.com","metrics":["visitors"]}`): "example.com",
		post(`{"metrics":["visitors"]}`):                         "",
		post(`{"site_id":["a"]}`):                                "",
		post(`garbage`):                                          "",
		get("site_id=www.example.com"):                           "example.com",
		get("query=" + url.QueryEscape(`{"site_id":"b.org"}`)):   "b.org",
		get("query=%7B"):                                         "",
		get(""):                                                  "",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func FuzzSites(f *testing.F) {
	for _, s := range []string{`{"d":"a.com,b.com"}`, `{"domain":"x"}`, `{"site_id":"q.com"}`, `{"d":`, "\x00{"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, s := range eventSites(body) {
			if s == "" || len(s) > 255 || strings.ContainsAny(s, ", /") {
				t.Fatalf("site %q not normalised", s)
			}
		}
		r := httptest.NewRequest("POST", "/api/v1/query", nil)
		for _, s := range apiSite(r, body) {
			if s == "" || len(s) > 255 || strings.ContainsAny(s, ", /") {
				t.Fatalf("site %q not normalised", s)
			}
		}
	})
}
