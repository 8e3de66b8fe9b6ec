package query

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
)

func withAuth(c *Config) { c.Auth = true }

func TestAuthDefaultsOn(t *testing.T) {
	if !DefaultConfig().Auth {
		t.Error("query.auth must default to true")
	}
}

// TestAuthMatrix checks every endpoint (query, CSV export, realtime) against keys of every
// kind: none, malformed, revoked, another site's, this site's, admin, and public sites.
func TestAuthMatrix(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	defer st.Close()
	dir := sites.NewDirectory(st, sites.Options{})
	for _, s := range []sites.Site{{Domain: "a.example"}, {Domain: "b.example"}, {Domain: "pub.example", Public: true}} {
		if _, err := dir.Add(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	ring := sites.NewKeyring(st, sites.Options{})
	mk := func(spec sites.KeySpec) string {
		k, _, err := ring.Create(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyA := mk(sites.KeySpec{Sites: []string{"a.example"}})
	keyB := mk(sites.KeySpec{Sites: []string{"b.example"}})
	keyAB := mk(sites.KeySpec{Sites: []string{"a.example", "b.example"}})
	admin := mk(sites.KeySpec{Admin: true})
	revoked := mk(sites.KeySpec{Sites: []string{"a.example"}})
	if ok, err := ring.Revoke(ctx, revoked); !ok || err != nil {
		t.Fatal(ok, err)
	}
	id, secret, _ := sites.ParseKey(keyA)
	first := "A"
	if secret[0] == 'A' {
		first = "B"
	}
	forged := sites.SecretPrefix + id + "_" + first + secret[1:] // the right id, a wrong secret

	svc := newTestService(t, st, withAuth)
	endpoints := map[string]func(site, auth string) *http.Request{
		"query": func(site, auth string) *http.Request {
			r := httptest.NewRequest(http.MethodPost, QueryPath, bytes.NewBufferString(`{"site_id":"`+site+`","metrics":["visitors"],"date_range":"7d"}`))
			r.Header.Set("Content-Type", "application/json")
			return withHeader(r, auth)
		},
		"csv": func(site, auth string) *http.Request {
			q := url.QueryEscape(`{"site_id":"` + site + `","metrics":["visitors"],"dimensions":["event:page"],"date_range":"7d"}`)
			return withHeader(httptest.NewRequest(http.MethodGet, QueryPath+"?format=csv&query="+q, nil), auth)
		},
		"realtime": func(site, auth string) *http.Request {
			return withHeader(httptest.NewRequest(http.MethodGet, RealtimePath+"?site_id="+site, nil), auth)
		},
	}
	cases := []struct {
		name, site, auth string
		want             int
	}{
		{"no key", "a.example", "", 401},
		{"no key, unknown site", "nowhere.example", "", 401},
		{"malformed key", "a.example", "Bearer hunter2", 401},
		{"another scheme", "a.example", "Basic " + keyA, 401},
		{"forged secret", "a.example", "Bearer " + forged, 401},
		{"revoked key", "a.example", "Bearer " + revoked, 401},
		{"site key", "a.example", "Bearer " + keyA, 200},
		{"scheme in lower case", "a.example", "bearer " + keyA, 200},
		{"site key, other site", "b.example", "Bearer " + keyA, 403},
		{"other site's key", "a.example", "Bearer " + keyB, 403},
		{"two-site key", "b.example", "Bearer " + keyAB, 200},
		{"site key, unknown site", "nowhere.example", "Bearer " + keyA, 403},
		{"admin key", "a.example", "Bearer " + admin, 200},
		{"admin key, unknown site", "nowhere.example", "Bearer " + admin, 200},
		{"public site, no key", "pub.example", "", 200},
		{"public site, other key", "pub.example", "Bearer " + keyB, 200},
		{"public site, bad key", "pub.example", "Bearer glk_nope", 401},
	}
	for name, req := range endpoints {
		for _, c := range cases {
			w := svc.do(req(c.site, c.auth))
			if w.Code != c.want {
				t.Errorf("%s, %s: status %d, want %d: %s", name, c.name, w.Code, c.want, w.Body)
				continue
			}
			switch c.want {
			case 401:
				if msg := errorOf(t, w); !strings.Contains(msg, "Authorization: Bearer") || !strings.Contains(msg, "glimpse keys create --site="+c.site) {
					t.Errorf("%s, %s: message %q", name, c.name, msg)
				}
				if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s, %s: WWW-Authenticate %q", name, c.name, w.Header().Get("WWW-Authenticate"))
				}
			case 403:
				if msg := errorOf(t, w); !strings.Contains(msg, "does not give access") || strings.Contains(msg, secret) {
					t.Errorf("%s, %s: message %q", name, c.name, msg)
				}
			}
		}
	}

	// With query.auth off every site is open.
	open := newTestService(t, st)
	if w := open.do(endpoints["query"]("a.example", "")); w.Code != 200 {
		t.Errorf("query.auth=false: status %d", w.Code)
	}
}

func TestAuthStoreDownIs503(t *testing.T) {
	st := memstore.New()
	ring := sites.NewKeyring(st, sites.Options{})
	key, _, err := ring.Create(context.Background(), sites.KeySpec{Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	svc := newTestService(t, st, withAuth)
	st.Close()
	for _, auth := range []string{"", "Bearer " + key} {
		w := svc.do(withHeader(httptest.NewRequest(http.MethodGet, RealtimePath+"?site_id=a.example", nil), auth))
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(errorOf(t, w), "API keys") {
			t.Errorf("auth %q: status %d: %s", auth, w.Code, w.Body)
		}
	}
}

func withHeader(r *http.Request, auth string) *http.Request {
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}
