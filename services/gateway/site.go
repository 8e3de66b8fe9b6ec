package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

// The gateway reads the site of a request only to rate-limit it: a body it cannot read
// yields no site (only the per-IP limit applies) and is left to the upstream to reject
// with a proper message.

// maxSitesPerEvent bounds how many sites of one "d" list are charged; the collector
// rejects longer lists.
const maxSitesPerEvent = 10

// eventSites returns the sites of a beacon body ({"d":"a.com,b.com"} or "domain"),
// normalised and deduplicated.
func eventSites(body []byte) []string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil
	}
	d, domain := beaconSiteFields(body)
	// "d" wins over "domain" as in the collector.
	list := d
	if list == "" {
		list = domain
	}
	var sites []string
	for part := range strings.SplitSeq(list, ",") {
		s := normalizeSite(part)
		if s == "" || contains(sites, s) {
			continue
		}
		sites = append(sites, s)
		if len(sites) == maxSitesPerEvent {
			break
		}
	}
	return sites
}

// apiSite returns the site_id of a query API request: from the JSON body of a POST, the
// site_id URL parameter (realtime) or the JSON in the query URL parameter (CSV links).
func apiSite(r *http.Request, body []byte) []string {
	var raw []byte
	if r.Method == http.MethodPost {
		raw = body
	} else if s := r.URL.Query().Get("site_id"); s != "" {
		if s = normalizeSite(s); s != "" {
			return []string{s}
		}
		return nil
	} else {
		raw = []byte(r.URL.Query().Get("query"))
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var q struct {
		SiteID *string `json:"site_id"`
	}
	_ = json.Unmarshal(raw, &q)
	if q.SiteID == nil {
		return nil
	}
	if s := normalizeSite(*q.SiteID); s != "" {
		return []string{s}
	}
	return nil
}

// normalizeSite turns a site id into the form the collector stores ("https://www.Example.com/"
// → "example.com"), or "" for something no site is called.
func normalizeSite(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	s = strings.ToLower(strings.TrimRight(s, "/"))
	s = strings.TrimPrefix(s, "www.")
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > event.MaxSiteLen {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || strings.IndexByte(`/?#@\,"`, c) >= 0 {
			return ""
		}
	}
	return s
}
