package gateway

import (
	"net/http"
	"strconv"

	"github.com/glimpse-analytics/glimpse/docs"
)

// mpPath is the collector's Measurement Protocol endpoint (server-side events).
const mpPath = "/mp/collect"

// maxMPBytes bounds a Measurement Protocol body at the gateway: the collector's own limit
// (GA4's 130 kB, rounded to 128 KiB), so an oversized request is refused here already.
const maxMPBytes = 128 << 10

// openAPIPath serves the OpenAPI document of the public API.
const openAPIPath = "/api/openapi.json"

// mpSite returns the site of a Measurement Protocol request (?measurement_id=), for the
// per-site rate limit.
func mpSite(r *http.Request, _ []byte) []string {
	if s := normalizeSite(r.URL.Query().Get("measurement_id")); s != "" {
		return []string{s}
	}
	return nil
}

// serveOpenAPI answers the OpenAPI document (docs/openapi.json), readable from any origin
// so API tools in a browser can load it.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(docs.OpenAPI)))
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(docs.OpenAPI)
}
