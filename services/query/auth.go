package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// authorizer decides who may read a site's numbers: a request must carry an API key
// (Authorization: Bearer glk_...) that covers the site, unless the site is public. Keys and
// the site list live in the store's meta table (internal/sites); both are cached briefly,
// so a revoked key or a site made private takes effect within sites.DefaultTTL.
type authorizer struct {
	keys  *sites.Keyring
	sites *sites.Directory
}

func newAuthorizer(meta store.Meta, now func() time.Time) *authorizer {
	opts := sites.Options{Now: now}
	return &authorizer{keys: sites.NewKeyring(meta, opts), sites: sites.NewDirectory(meta, opts)}
}

// bearer returns the credentials of an Authorization header: the token of the Bearer
// scheme, or the whole header when it uses another scheme (which no key matches).
func bearer(r *http.Request) (string, bool) {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if h == "" {
		return "", false
	}
	if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(token), true
	}
	return h, true
}

// authorize returns 0 when r may read site, or the status and message to answer with. It
// sets the headers that go with them (WWW-Authenticate on 401, Retry-After on 503).
func (s *Service) authorize(w http.ResponseWriter, r *http.Request, site string) (int, string) {
	if s.auth == nil {
		return 0, ""
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	unavailable := func(err error) (int, string) {
		s.log.WarnContext(ctx, "could not check the API key; answering 503", "site", site, "err", err)
		w.Header().Set("Retry-After", "5")
		return http.StatusServiceUnavailable, "the store cannot check API keys right now; try again in a few seconds"
	}
	token, sent := bearer(r)
	if sent {
		k, err := s.auth.keys.Verify(ctx, token)
		switch {
		case errors.Is(err, sites.ErrInvalidKey):
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			return http.StatusUnauthorized, fmt.Sprintf("the API key is not valid (mistyped, revoked, or from another Glimpse); send a key as \"Authorization: Bearer glk_...\"; create one with `glimpse keys create --site=%s`", site)
		case err != nil:
			return unavailable(err)
		case k.Covers(site):
			return 0, ""
		}
	}
	sc, ok, err := s.auth.sites.Lookup(ctx, site)
	if err != nil {
		return unavailable(err)
	}
	if ok && sc.Public {
		return 0, ""
	}
	if sent {
		return http.StatusForbidden, fmt.Sprintf("this API key does not give access to site %q; create one that does with `glimpse keys create --site=%s`", site, site)
	}
	w.Header().Set("WWW-Authenticate", "Bearer")
	return http.StatusUnauthorized, fmt.Sprintf("send an API key: \"Authorization: Bearer glk_...\"; create one with `glimpse keys create --site=%s`", site)
}
